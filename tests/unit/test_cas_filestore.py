"""The file back-end of the content-addressed store (master/cas/filestore.py)."""

import hashlib
import os
import zlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor
from twisted.python.threadpool import ThreadPool
from zope.interface.verify import verifyObject

from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.interfaces import ContentMismatch, IContentStore, NotStored
from buildfarm.master.cas.namespaces import parse_namespace

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
