"""The file back-end of the content-addressed store (master/cas/filestore.py)."""

import base64
import hashlib
import os
import zlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.python.threadpool import ThreadPool
from zope.interface.verify import verifyObject

from buildfarm.master.cas.filestore import STALE_TMP_S, FileStore
from buildfarm.master.cas.interfaces import ContentMismatch, ExpiryPass, IContentStore, NotStored
from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.cas.settings import Expiry
from fixtures.memorymaster import MemoryThreadsReactor

GZIP = parse_namespace("default-gzip")
PLAIN = parse_namespace("sha256-plain")


@pytest.fixture
def store(tmp_path):
    pool = ThreadPool(minthreads=1, maxthreads=4, name="cas-test")
    pool.start()
    yield FileStore(str(tmp_path / "cas"), reactor, pool)
    pool.stop()


def item(content: bytes, ns=GZIP) -> tuple[str, int, bytes]:
    return hashlib.new(ns.algorithm, content).hexdigest(), len(content), ns.compress(content)


def test_the_file_store_provides_the_interface(store):
    assert verifyObject(IContentStore, store)


@pytest_twisted.ensureDeferred
async def test_a_stored_item_is_contained_and_read_back_as_stored(store):
    digest, size, data = item(b"hello " * 1000)
    assert await store.contains(GZIP, {digest}) == set()
    await store.put(GZIP, digest, size, data)
    assert await store.contains(GZIP, {digest, "0" * 40}) == {digest}
    assert await store.get(GZIP, digest) == (data, len(data))
    assert await store.get(GZIP, digest, 10) == (data[10:], len(data))
    assert zlib.decompress((await store.get(GZIP, digest))[0]) == b"hello " * 1000


@pytest_twisted.ensureDeferred
async def test_an_uncompressed_namespace_stores_the_bytes(store):
    digest, size, data = item(b"plain", PLAIN)
    await store.put(PLAIN, digest, size, data)
    assert await store.get(PLAIN, digest) == (b"plain", 5)


@pytest_twisted.ensureDeferred
async def test_a_missing_item_is_not_stored(store):
    with pytest.raises(NotStored):
        await store.get(GZIP, "0" * 40)


@pytest_twisted.ensureDeferred
async def test_an_offset_past_the_end_is_refused(store):
    digest, size, data = item(b"abc")
    await store.put(GZIP, digest, size, data)
    with pytest.raises(ValueError, match="past"):
        await store.get(GZIP, digest, len(data) + 1)


@pytest.mark.parametrize("case", ["other content", "wrong size", "larger", "not zlib", "truncated",
                                  "trailing bytes"])
@pytest_twisted.ensureDeferred
async def test_content_that_does_not_match_its_digest_is_refused_and_never_stored(store, case):
    digest, size, data = item(b"the real content" * 50)
    bad = {"other content": (digest, size, zlib.compress(b"the fake content" * 50)),
           "wrong size": (digest, size + 1, data),
           "larger": (digest, size - 1, data),
           "not zlib": (digest, size, b"the real content" * 50),
           "truncated": (digest, size, data[:-5]),
           "trailing bytes": (digest, size, data + b"x")}[case]
    with pytest.raises(ContentMismatch):
        await store.put(GZIP, *bad)
    assert await store.contains(GZIP, {digest}) == set()
    assert not os.path.exists(os.path.join(store.root, "default-gzip", digest[:2], digest))


@pytest_twisted.ensureDeferred
async def test_a_zlib_bomb_is_refused_without_inflating_it(store):
    bomb = zlib.compress(b"\0" * (16 * 1024 * 1024), 9)
    with pytest.raises(ContentMismatch, match="larger"):
        await store.put(GZIP, "0" * 40, 10, bomb)


@pytest_twisted.ensureDeferred
async def test_concurrent_puts_of_one_digest_leave_one_whole_item(store):
    digest, size, data = item(os.urandom(256 * 1024) * 4)
    await defer.gatherResults([store.put(GZIP, digest, size, data) for _ in range(8)])
    assert await store.get(GZIP, digest) == (data, len(data))
    assert os.listdir(os.path.join(store.root, "default-gzip", "tmp")) == []
    assert os.listdir(os.path.join(store.root, "default-gzip", digest[:2])) == [digest]


def test_a_digest_that_is_no_hex_never_reaches_the_disk(store):
    with pytest.raises(ValueError):
        store.path_of(GZIP, "../../etc/passwd" + "0" * 24)


# -- expiry ---------------------------------------------------------------------------------

LIFETIME_S = 10 * 24 * 3600.0
EXPIRY = Expiry(LIFETIME_S)


@pytest.fixture
def clock():
    reactor = MemoryThreadsReactor()
    reactor.advance(1_000_000)
    return reactor


@pytest.fixture
def timed_store(tmp_path, clock):
    pool = ThreadPool(minthreads=1, maxthreads=2, name="cas-expiry-test")
    pool.start()
    yield FileStore(str(tmp_path / "cas"), clock, pool, EXPIRY)
    pool.stop()


def mtime(store, digest) -> float:
    return os.stat(store.path_of(GZIP, digest)).st_mtime


@pytest_twisted.ensureDeferred
async def test_an_item_is_stamped_with_the_clock_and_refreshed_only_past_a_tenth_of_the_expiry(timed_store,
                                                                                                clock):
    digest, size, data = item(b"warm")
    await timed_store.put(GZIP, digest, size, data)
    stored_at = clock.seconds()
    assert mtime(timed_store, digest) == stored_at
    clock.advance(EXPIRY.refresh_after_s - 1)
    assert await timed_store.contains(GZIP, {digest}) == {digest}
    assert mtime(timed_store, digest) == stored_at  # a warm archive writes nothing
    clock.advance(2)
    assert await timed_store.contains(GZIP, {digest}) == {digest}
    assert mtime(timed_store, digest) == clock.seconds()


@pytest_twisted.ensureDeferred
async def test_a_put_of_a_stored_item_refreshes_it(timed_store, clock):
    digest, size, data = item(b"again")
    assert (await timed_store.put(GZIP, digest, size, data)).new
    clock.advance(LIFETIME_S * 2)
    assert not (await timed_store.put(GZIP, digest, size, data)).new
    assert mtime(timed_store, digest) == clock.seconds()
    assert os.listdir(os.path.join(timed_store.root, "default-gzip", "tmp")) == []


@pytest_twisted.ensureDeferred
async def test_the_janitor_deletes_expired_items_after_the_grace_and_keeps_refreshed_ones(timed_store, clock):
    old, kept, plain = item(b"old"), item(b"kept"), item(b"plain", PLAIN)
    for ns, entry in ((GZIP, old), (GZIP, kept), (PLAIN, plain)):
        await timed_store.put(ns, *entry)
    clock.advance(LIFETIME_S / 2)
    assert await timed_store.contains(GZIP, {kept[0]}) == {kept[0]}
    clock.advance(LIFETIME_S / 2)
    assert await timed_store.contains(GZIP, {old[0], kept[0]}) == {kept[0]}  # expired: absent
    assert (await timed_store.expire(2)).deleted == {}  # within the grace
    clock.advance(EXPIRY.grace_s)
    found = await timed_store.expire(1)  # one item a batch
    assert found.deleted == {"default-gzip": [1, len(old[2])], "sha256-plain": [1, len(plain[2])]}
    assert found.stored == {"default-gzip": [1, len(kept[2])]}
    assert not os.path.exists(timed_store.path_of(GZIP, old[0]))
    assert await timed_store.get(GZIP, kept[0]) == (kept[2], len(kept[2]))


@pytest_twisted.ensureDeferred
async def test_an_item_refreshed_after_the_walk_saw_it_is_not_deleted(timed_store, clock):
    digest, size, data = item(b"raced")
    await timed_store.put(GZIP, digest, size, data)
    clock.advance(LIFETIME_S + EXPIRY.grace_s)
    candidate = ("default-gzip", timed_store.path_of(GZIP, digest))
    await timed_store.put(GZIP, digest, size, data)  # refreshed between the walk and the delete
    found = ExpiryPass()
    timed_store._delete([candidate], clock.seconds(), found)
    assert found.deleted == {} and os.path.exists(timed_store.path_of(GZIP, digest))


@pytest_twisted.ensureDeferred
async def test_the_janitor_removes_temporary_files_a_crash_left(timed_store, clock):
    tmp = os.path.join(timed_store.root, "default-gzip", "tmp")
    os.makedirs(tmp)
    for name, age in (("stale", STALE_TMP_S + 1), ("fresh", 10)):
        open(os.path.join(tmp, name), "wb").close()
        os.utime(os.path.join(tmp, name), (clock.seconds() - age,) * 2)
    await timed_store.expire(10)
    assert os.listdir(tmp) == ["fresh"]


@pytest_twisted.ensureDeferred
async def test_a_put_from_a_spool_file_is_copied_as_it_is_verified(store, tmp_path):
    digest, size, data = item(os.urandom(3 * 1024 * 1024))
    with open(tmp_path / "spool", "w+b") as spool:
        spool.write(data)  # left at its end: the store reads it from the start
        stored = await store.put(GZIP, digest, size, spool)
    assert stored.new and stored.stored_bytes == len(data)
    assert stored.md5_b64 == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert await store.get(GZIP, digest) == (data, len(data))


@pytest_twisted.ensureDeferred
async def test_a_read_under_way_when_the_janitor_deletes_the_item_still_reads_it_whole(timed_store, clock):
    digest, size, data = item(os.urandom(100_000))
    await timed_store.put(GZIP, digest, size, data)
    reader, total = await timed_store.open(GZIP, digest, 10)
    clock.advance(LIFETIME_S + EXPIRY.grace_s)
    assert (await timed_store.expire(10)).deleted == {"default-gzip": [1, len(data)]}
    with reader:
        assert (reader.read(), total) == (data[10:], len(data))
    with pytest.raises(NotStored):
        await timed_store.open(GZIP, digest)
