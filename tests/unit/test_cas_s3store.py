"""The S3 back-end of the content-addressed store (master/cas/s3store.py) against a real
S3-compatible server on loopback (moto's standalone server), with an injected clock for expiry."""

import base64
import hashlib
import io
import os
import time
import zlib

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.python.threadpool import ThreadPool
from zope.interface.verify import verifyObject

from buildfarm.master.cas.interfaces import ContentMismatch, ExpiryPass, IContentStore, NotStored
from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.cas.s3store import S3Store
from buildfarm.master.cas.settings import DAY_S, Expiry, S3Location
from fixtures.memorymaster import MemoryThreadsReactor
from fixtures.moto_server import MotoServer

GZIP = parse_namespace("default-gzip")
PLAIN = parse_namespace("sha256-plain")
LIFETIME_S = 10 * DAY_S
EXPIRY = Expiry(LIFETIME_S)


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer.start(str(tmp_path_factory.mktemp("moto")))
    yield server
    server.stop()


@pytest.fixture
def clock():
    """The store's reactor: results from the pool reach the running reactor, time is the
    test's (started at the real time: S3's LastModified is the server's clock)."""
    reactor = MemoryThreadsReactor()
    reactor.advance(time.time())
    return reactor


@pytest.fixture
def store(moto, clock, request):
    bucket = "cas-" + hashlib.sha1(request.node.name.encode()).hexdigest()[:20]
    moto.s3().create_bucket(Bucket=bucket)
    pool = ThreadPool(minthreads=1, maxthreads=4, name="cas-s3-test")
    pool.start()
    location = S3Location(bucket, "store/", moto.endpoint_url, moto.region, moto.access_key_id,
                          moto.secret_access_key)
    yield S3Store(location, clock, pool, EXPIRY)
    pool.stop()


def item(content: bytes, ns=GZIP) -> tuple[str, int, bytes]:
    return hashlib.new(ns.algorithm, content).hexdigest(), len(content), ns.compress(content)


def keys(moto, store) -> list[str]:
    return sorted(o["Key"] for o in moto.s3().list_objects_v2(Bucket=store.bucket).get("Contents", []))


def refreshed_at(moto, store, ns, digest) -> float:
    head = moto.s3().head_object(Bucket=store.bucket, Key=store.key_of(ns, digest))
    return float(head["Metadata"]["refreshed"])


def test_the_s3_store_provides_the_interface(store):
    assert verifyObject(IContentStore, store)


@pytest_twisted.ensureDeferred
async def test_a_stored_item_is_one_object_read_back_whole_or_from_an_offset(store, moto):
    digest, size, data = item(os.urandom(5000) + b"hello " * 1000)
    assert await store.contains(GZIP, {digest}) == set()
    stored = await store.put(GZIP, digest, size, data)
    assert stored.new and stored.stored_bytes == len(data)
    assert keys(moto, store) == [f"store/default-gzip/{digest}"]
    assert await store.contains(GZIP, {digest, "0" * 40}) == {digest}
    assert await store.get(GZIP, digest) == (data, len(data))
    assert await store.get(GZIP, digest, 100) == (data[100:], len(data))
    assert await store.get(GZIP, digest, len(data)) == (b"", len(data))
    reader, total = await store.open(GZIP, digest, 4000)  # streamed: a ranged GetObject's body
    with reader:
        assert (reader.read(1000), reader.read(), total) == (data[4000:5000], data[5000:], len(data))
    with pytest.raises(ValueError, match="past"):
        await store.get(GZIP, digest, len(data) + 1)
    with pytest.raises(NotStored):
        await store.get(GZIP, "0" * 40)


@pytest_twisted.ensureDeferred
async def test_an_upload_spool_file_is_stored_with_its_md5(store):
    digest, size, data = item(b"plain bytes " * 10_000, PLAIN)
    spool = io.BytesIO(b"junk before")  # a file not at its start: the store reads it from 0
    spool.seek(0)
    spool.truncate()
    spool.write(data)
    stored = await store.put(PLAIN, digest, size, spool)
    assert stored.md5_b64 == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert await store.get(PLAIN, digest) == (data, len(data))


@pytest.mark.parametrize("case", ["other content", "wrong size", "not zlib", "trailing bytes"])
@pytest_twisted.ensureDeferred
async def test_content_that_does_not_match_is_refused_and_nothing_reaches_the_bucket(store, moto, case):
    digest, size, data = item(b"the real content" * 50)
    bad = {"other content": (digest, size, zlib.compress(b"the fake content" * 50)),
           "wrong size": (digest, size + 1, data),
           "not zlib": (digest, size, b"the real content" * 50),
           "trailing bytes": (digest, size, data + b"x")}[case]
    with pytest.raises(ContentMismatch):
        await store.put(GZIP, *bad)
    assert keys(moto, store) == []


@pytest_twisted.ensureDeferred
async def test_concurrent_puts_of_one_digest_leave_one_whole_object(store, moto):
    digest, size, data = item(os.urandom(200 * 1024))
    await defer.gatherResults([store.put(GZIP, digest, size, data) for _ in range(6)])
    assert keys(moto, store) == [f"store/default-gzip/{digest}"]
    assert await store.get(GZIP, digest) == (data, len(data))


class BreaksAfterVerifying(io.FileIO):
    """An upload's spool file whose reads fail, part way through, once it has been verified:
    a connection or disk that breaks while the object is being sent."""

    def __init__(self, path: str):
        super().__init__(path, "rb")
        self.passes = 0

    def seek(self, offset, whence=0):
        if offset == 0 and whence == 0:
            self.passes += 1
        return super().seek(offset, whence)

    def read(self, n=-1):
        if self.passes > 1 and self.tell() > 64 * 1024:
            raise OSError("the connection broke")
        return super().read(n if n != -1 else 16 * 1024)


@pytest_twisted.ensureDeferred
async def test_an_upload_that_breaks_part_way_leaves_no_object(store, moto, tmp_path):
    digest, size, data = item(os.urandom(1024 * 1024), PLAIN)
    (tmp_path / "spool").write_bytes(data)
    with pytest.raises(Exception, match="broke"), BreaksAfterVerifying(str(tmp_path / "spool")) as spool:
        await store.put(PLAIN, digest, size, spool)
    assert keys(moto, store) == []
    assert await store.contains(PLAIN, {digest}) == set()


@pytest_twisted.ensureDeferred
async def test_a_presence_check_refreshes_only_an_item_not_refreshed_for_a_tenth_of_the_expiry(store, moto,
                                                                                                clock):
    digest, size, data = item(b"warm item")
    await store.put(GZIP, digest, size, data)
    put_at = clock.seconds()
    clock.advance(EXPIRY.refresh_after_s / 2)
    assert await store.contains(GZIP, {digest}) == {digest}
    assert refreshed_at(moto, store, GZIP, digest) == put_at  # recent: no write at all
    clock.advance(EXPIRY.refresh_after_s)
    assert await store.contains(GZIP, {digest}) == {digest}
    assert refreshed_at(moto, store, GZIP, digest) == clock.seconds()
    assert await store.get(GZIP, digest) == (data, len(data))  # the copy in place kept the bytes


@pytest_twisted.ensureDeferred
async def test_the_janitor_deletes_expired_items_and_keeps_refreshed_ones(store, moto, clock):
    old, kept = item(b"old item"), item(b"kept item")
    await store.put(GZIP, *old)
    await store.put(GZIP, *kept)
    clock.advance(LIFETIME_S / 2)
    assert await store.contains(GZIP, {kept[0]}) == {kept[0]}  # refreshes it
    clock.advance(LIFETIME_S / 2)
    assert await store.contains(GZIP, {old[0], kept[0]}) == {kept[0]}  # expired: absent for preupload
    assert (await store.expire(100)).deleted == {}  # ... but not deleted within the grace
    clock.advance(EXPIRY.grace_s)
    found = await store.expire(100)
    assert found.deleted == {"default-gzip": [1, len(old[2])]}
    assert found.stored == {"default-gzip": [1, len(kept[2])]}
    assert keys(moto, store) == [f"store/default-gzip/{kept[0]}"]


@pytest_twisted.ensureDeferred
async def test_an_item_refreshed_after_the_listing_saw_it_is_not_deleted(store, moto, clock):
    digest, size, data = item(b"raced")
    await store.put(GZIP, digest, size, data)
    clock.advance(LIFETIME_S + EXPIRY.grace_s)
    # the listing took it as a candidate; then a put refreshed it before the batch was deleted
    candidate = ("default-gzip", store.key_of(GZIP, digest), len(data))
    assert not (await store.put(GZIP, digest, size, data)).new
    found = ExpiryPass()
    store._delete([candidate], clock.seconds(), found)
    assert found.deleted == {} and found.stored == {"default-gzip": [1, len(data)]}
    assert await store.get(GZIP, digest) == (data, len(data))


@pytest_twisted.ensureDeferred
async def test_objects_under_the_prefix_that_are_no_items_are_left_alone(store, moto, clock):
    moto.s3().put_object(Bucket=store.bucket, Key="store/README", Body=b"not an item")
    moto.s3().put_object(Bucket=store.bucket, Key="elsewhere/default-gzip/" + "0" * 40, Body=b"x")
    clock.advance(LIFETIME_S * 3)
    assert await store.expire(10) == ExpiryPass()
    assert keys(moto, store) == ["elsewhere/default-gzip/" + "0" * 40, "store/README"]


@pytest_twisted.ensureDeferred
async def test_a_batch_of_presence_checks_is_answered_across_parallel_calls(store):
    stored = [item(b"item %d" % i) for i in range(25)]
    await defer.gatherResults([store.put(GZIP, *entry) for entry in stored[::2]])
    wanted = {digest for digest, _, _ in stored} | {"0" * 40}
    assert await store.contains(GZIP, wanted) == {digest for digest, _, _ in stored[::2]}
    assert await store.contains(GZIP, set()) == set()
