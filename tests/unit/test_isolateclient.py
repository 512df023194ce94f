"""The Isolate client (common/isolateclient.py) against the real Isolate v1 API (master/cas/api.py
on a real file store and an in-memory master's auth service), served on a loopback port: the
archive pipeline's batches, its bounds and statistics, downloads into a DiskCache and what goes
wrong."""

import base64
import dataclasses
import hashlib
import json
import os
import stat
import tempfile
import zlib

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from buildfarm.common import cascache, isolateclient
from buildfarm.common.isolateclient import IsolateServer, IsolateServerError
from buildfarm.common.isolated import serialise
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.settings import CASSettings
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture, with_fast_password_checks

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
master = memory_master_fixture(MASTER_CFG)


class Served:
    """The real API on 127.0.0.1:<port>; ``calls`` counts requests by method name."""

    def __init__(self, api, port, store_root):
        self.api = api
        self.port = port
        self.store_root = store_root
        self.url = f"http://127.0.0.1:{port.getHost().port}"

    def stored(self, namespace="default-gzip") -> set[str]:
        root = os.path.join(self.store_root, namespace)
        return {name for dirpath, _, names in os.walk(root) for name in names
                if len(name) == 40 and not dirpath.endswith("tmp")}


@pytest.fixture
def served(master, tmp_path):
    with_fast_password_checks(master)
    pool = ThreadPool(minthreads=1, maxthreads=4, name="cas-api-test")
    pool.start()
    settings = CASSettings(inline_max_bytes=100, retrieve_inline_max_bytes=1000, upload_secret=b"k" * 32)
    store_root = str(tmp_path / "cas")
    # the API's own reactor is the master's clock for tickets; its threads answer on the real one
    api = IsolateAPI(master, FileStore(store_root, reactor, pool), settings, master.reactor, pool)
    port = reactor.listenTCP(0, Site(api.resource()), interface="127.0.0.1")
    yield Served(api, port, store_root)
    port.stopListening()
    pool.stop()


class RecordingServer(IsolateServer):
    """The real client, recording the preupload batch sizes and the most calls in flight."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.batches: list[int] = []
        self.in_flight = {"preupload": 0, "push": 0, "retrieve": 0}
        self.most = dict(self.in_flight)

    async def _counted(self, kind, coro):
        self.in_flight[kind] += 1
        self.most[kind] = max(self.most[kind], self.in_flight[kind])
        try:
            return await coro
        finally:
            self.in_flight[kind] -= 1

    async def preupload(self, items):
        self.batches.append(len(items))
        return await self._counted("preupload", super().preupload(items))

    async def push(self, ticket, stored):
        return await self._counted("push", super().push(ticket, stored))

    async def retrieve(self, digest, offset=0, sink=None):
        return await self._counted("retrieve", super().retrieve(digest, offset, sink))


def client(served, cls=RecordingServer, namespace="default-gzip", headers=ADMIN):
    return cls(served.url, namespace, reactor=reactor, headers=headers)


def make_tree(root, count=0, files=None):
    os.makedirs(root, exist_ok=True)
    for i in range(count):
        sub = os.path.join(root, f"d{i % 7}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{i}.txt"), "wb") as f:
            f.write(f"file {i}\n".encode() * (i % 50 + 1))
    for rel, content in (files or {}).items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(content)
    return str(root)


def test_batches_are_20_20_50_50_50_then_100():
    sizes = [len(b) for b in isolateclient.batches(list(range(500)))]
    assert sizes == [20, 20, 50, 50, 50, 100, 100, 100, 10]
    assert [len(b) for b in isolateclient.batches(list(range(15)))] == [15]
    assert isolateclient.batches([]) == []


@pytest_twisted.ensureDeferred
async def test_archive_checks_in_batches_uploads_only_misses_and_isolated_last(served, tmp_path):
    tree = make_tree(tmp_path / "tree", 400)
    server = client(served)
    result = await isolateclient.archive(server, [tree], reactor=reactor)
    digest, path = result.items[0]
    assert path == tree
    # 400 files in batches 20, 20, 50, 50, 50, 100, 100, 10, then the .isolated on its own
    assert server.batches == [20, 20, 50, 50, 50, 100, 100, 10, 1]
    assert server.most["preupload"] <= isolateclient.PREUPLOADS_IN_FLIGHT
    assert 1 < server.most["push"] <= isolateclient.UPLOADS_IN_FLIGHT
    stats = result.stats
    assert (stats.checked, stats.hits, stats.misses, stats.uploaded) == (401, 0, 401, 401)
    assert stats.hashed == 400 and stats.uploaded_bytes > 0
    assert len(served.stored()) == 401 and digest in served.stored()

    again = await isolateclient.archive(client(served), [tree], reactor=reactor)
    assert again.items == result.items
    assert (again.stats.hits, again.stats.misses, again.stats.uploaded) == (401, 0, 0)
    assert "401 items checked: 401 hits, 0 misses; uploaded 0 items (0 B)" in str(again.stats)
    await server.close()


@pytest_twisted.ensureDeferred
async def test_the_isolated_of_a_directory_records_links_and_modes(served, tmp_path):
    tree = make_tree(tmp_path / "tree", files={"bin/run": b"#!/bin/sh\necho hi\n", "data/a": b"a"})
    os.chmod(os.path.join(tree, "bin/run"), 0o755)
    os.symlink("../data/a", os.path.join(tree, "bin/link"))
    server = client(served)
    result = await isolateclient.archive(server, [tree], reactor=reactor)
    data = await server.retrieve(result.items[0][0])
    doc = json.loads(zlib.decompress(data))
    assert doc["files"]["bin/link"] == {"l": "../data/a"}
    assert doc["files"]["bin/run"]["m"] == 0o750 and doc["files"]["data/a"]["s"] == 1
    assert doc["algo"] == "sha-1"


@pytest_twisted.ensureDeferred
async def test_a_single_file_and_a_big_one_streamed_through_a_temporary_file(served, tmp_path, monkeypatch):
    monkeypatch.setattr(isolateclient, "IN_MEMORY_ITEM_BYTES", 10_000)
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporaries))
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(50_000) + b"z" * 100_000)
    server = client(served)
    result = await isolateclient.archive(server, [str(big)], reactor=reactor)
    assert result.items == [(hashlib.sha1(big.read_bytes()).hexdigest(), str(big))]
    assert zlib.decompress(await server.retrieve(result.items[0][0])) == big.read_bytes()
    assert os.listdir(temporaries) == []  # the compressed copy is gone


@pytest_twisted.ensureDeferred
async def test_an_uncompressed_namespace_and_sha256(served, tmp_path):
    f = tmp_path / "x"
    f.write_bytes(b"raw content" * 20)
    server = client(served, namespace="sha256-raw")
    result = await isolateclient.archive(server, [str(f)], reactor=reactor)
    assert result.items[0][0] == hashlib.sha256(f.read_bytes()).hexdigest()
    assert await server.retrieve(result.items[0][0]) == f.read_bytes()


@pytest_twisted.ensureDeferred
async def test_blacklist_leaves_paths_out(served, tmp_path):
    tree = make_tree(tmp_path / "t", files={"keep.c": b"c", "junk.o": b"o", ".git/HEAD": b"ref"})
    server = client(served)
    result = await isolateclient.archive(server, [tree], blacklist=[r"\.o$", r"^\.git"], reactor=reactor)
    doc = json.loads(zlib.decompress(await server.retrieve(result.items[0][0])))
    assert sorted(doc["files"]) == ["keep.c"]


@pytest_twisted.ensureDeferred
async def test_the_digest_cache_spares_hashing_an_unchanged_tree(served, tmp_path):
    tree = make_tree(tmp_path / "t", 30)
    state = str(tmp_path / "digests.json")
    first = await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    second = await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    assert (first.stats.hashed, second.stats.hashed) == (30, 0)
    assert first.items == second.items


class LaterReactor:
    """The real reactor, its clock ``shift_s`` ahead (for what the client records in time)."""

    def __init__(self, shift_s):
        self.shift_s = shift_s

    def seconds(self):
        return reactor.seconds() + self.shift_s

    def __getattr__(self, name):
        return getattr(reactor, name)


@pytest_twisted.ensureDeferred
async def test_a_tree_confirmed_recently_is_checked_by_its_isolated_alone(served, tmp_path):
    tree = make_tree(tmp_path / "t", 60)
    state = str(tmp_path / "digests.json")
    await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    again = client(served)
    result = await isolateclient.archive(again, [tree], digest_cache_path=state, reactor=reactor)
    assert again.batches == [1]  # the .isolated: still there, so its 60 files are too
    stats = result.stats
    assert (stats.checked, stats.hits, stats.trusted, stats.uploaded) == (61, 61, 60, 0)
    assert "61 hits (60 confirmed recently)" in str(stats)

    # an hour later the files are asked about again (which refreshes them on the server)
    later = client(served)
    await isolateclient.archive(later, [tree], digest_cache_path=state,
                                reactor=LaterReactor(isolateclient.CONFIRMED_FRESH_S + 1))
    assert later.batches == [20, 20, 20, 1]


class DetailsCounted(RecordingServer):
    """Counts the server_details calls (one per archive that may trust a confirmed tree)."""

    details_calls = 0

    async def server_details(self):
        self.details_calls += 1
        return await super().server_details()


def with_expiry(served, expiry_s: float) -> None:
    served.api.reconfigure(served.api.store, dataclasses.replace(served.api.settings,
                                                                 expiry_days=expiry_s / 86400))


@pytest_twisted.ensureDeferred
async def test_a_server_keeping_items_briefly_bounds_the_trust_to_a_tenth_of_its_expiry(served, tmp_path):
    with_expiry(served, 600)  # items live ten minutes: a tree is trusted for a minute at most
    tree = make_tree(tmp_path / "t", 30)
    state = str(tmp_path / "digests.json")
    first = DetailsCounted(served.url, "default-gzip", reactor=reactor, headers=ADMIN)
    await isolateclient.archive(first, [tree], digest_cache_path=state, reactor=reactor)
    assert first.details_calls == 0  # nothing confirmed yet: no call more

    soon = DetailsCounted(served.url, "default-gzip", reactor=LaterReactor(30), headers=ADMIN)
    result = await isolateclient.archive(soon, [tree], digest_cache_path=state, reactor=LaterReactor(30))
    assert soon.details_calls == 1 and soon.batches == [1] and result.stats.trusted == 30

    # 90 s later: within the hour, but past a tenth of the expiry: every file is asked again
    later = DetailsCounted(served.url, "default-gzip", reactor=LaterReactor(90), headers=ADMIN)
    result = await isolateclient.archive(later, [tree], digest_cache_path=state, reactor=LaterReactor(90))
    assert later.details_calls == 1 and later.batches == [20, 10, 1] and result.stats.trusted == 0


@pytest_twisted.ensureDeferred
async def test_a_server_keeping_items_for_seconds_gets_no_trust_at_all(served, tmp_path):
    with_expiry(served, 5)
    tree = make_tree(tmp_path / "t", 10)
    state = str(tmp_path / "digests.json")
    await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    again = client(served)
    result = await isolateclient.archive(again, [tree], digest_cache_path=state, reactor=LaterReactor(1))
    assert again.batches == [10, 1] and result.stats.trusted == 0


@pytest_twisted.ensureDeferred
async def test_a_server_keeping_items_for_days_gets_the_hour(served, tmp_path):
    with_expiry(served, 30 * 86400)
    assert await client(served).trust_window_s() == isolateclient.CONFIRMED_FRESH_S
    tree = make_tree(tmp_path / "t", 10)
    state = str(tmp_path / "digests.json")
    await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    again = client(served)
    shifted = LaterReactor(isolateclient.CONFIRMED_FRESH_S - 60)
    result = await isolateclient.archive(again, [tree], digest_cache_path=state, reactor=shifted)
    assert again.batches == [1] and result.stats.trusted == 10


class Answering(IsolateServer):
    def __init__(self, details):
        super().__init__("http://127.0.0.1:1", "default-gzip", reactor=reactor)
        self.details = details

    async def server_details(self):
        if isinstance(self.details, Exception):
            raise self.details
        return self.details


@pytest.mark.parametrize("details, window", [
    ({"server_version": "isolate-1234"}, isolateclient.CONFIRMED_FRESH_S),  # Isolate's own: the hour
    ({"expiry_secs": "not a number"}, isolateclient.CONFIRMED_FRESH_S),
    ({"expiry_secs": "-1"}, isolateclient.CONFIRMED_FRESH_S),
    ({"expiry_secs": 7200}, 720.0),  # JSON number or int64 string alike
    ({"expiry_secs": "2592000"}, isolateclient.CONFIRMED_FRESH_S),
    (IsolateServerError("server_details failed: HTTP 503"), 0.0),  # unsure: check every file
])
@pytest_twisted.ensureDeferred
async def test_the_trust_window_from_what_server_details_answers(details, window):
    assert await Answering(details).trust_window_s() == window


@pytest_twisted.ensureDeferred
async def test_a_confirmed_tree_whose_isolated_is_gone_is_checked_and_uploaded_again(served, tmp_path):
    tree = make_tree(tmp_path / "t", 10)
    state = str(tmp_path / "digests.json")
    first = await isolateclient.archive(client(served), [tree], digest_cache_path=state, reactor=reactor)
    for dirpath, _, names in os.walk(served.store_root):  # the store lost everything
        for name in names:
            os.remove(os.path.join(dirpath, name))
    again = client(served)
    result = await isolateclient.archive(again, [tree], digest_cache_path=state, reactor=reactor)
    assert again.batches == [1, 10, 1] and result.stats.uploaded == 11
    assert result.items == first.items and len(served.stored()) == 11


async def fresh_cache(tmp_path, name="cache", **policies):
    return cascache.DiskCache(str(tmp_path / name), cascache.CachePolicies(**policies), reactor)


@pytest_twisted.ensureDeferred
async def test_download_tree_through_an_empty_then_a_warm_cache(served, tmp_path):
    tree = make_tree(tmp_path / "tree", 120, files={"big": os.urandom(5000), "run.sh": b"#!/bin/sh\n"})
    os.chmod(os.path.join(tree, "run.sh"), 0o755)
    os.symlink("big", os.path.join(tree, "alias"))
    digest = (await isolateclient.archive(client(served), [tree], reactor=reactor)).items[0][0]
    cache = await fresh_cache(tmp_path)
    server = client(served)
    result = await isolateclient.download_tree(server, digest, str(tmp_path / "out1"), cache, reactor=reactor)
    assert (result.stats.checked, result.stats.misses, result.stats.downloaded) == (123, 123, 123)
    assert 1 < server.most["retrieve"] <= isolateclient.DOWNLOADS_IN_FLIGHT
    assert result.read_only == 1 and len(result.files) == 123
    out = tmp_path / "out1"
    for rel in ("big", "d3/f3.txt", "run.sh"):
        assert (out / rel).read_bytes() == open(os.path.join(tree, rel), "rb").read()
    assert os.readlink(out / "alias") == "big"
    assert stat.S_IMODE(os.stat(out / "run.sh").st_mode) == 0o555
    assert os.stat(out / "big").st_ino == os.stat(cache.path(hashlib.sha1((out / "big").read_bytes())
                                                             .hexdigest())).st_ino

    warm = client(served)
    again = await isolateclient.download_tree(warm, digest, str(tmp_path / "out2"), cache, reactor=reactor)
    assert (again.stats.hits, again.stats.misses, again.stats.downloaded) == (123, 0, 0)
    assert warm.most["retrieve"] == 0


@pytest_twisted.ensureDeferred
async def test_a_corrupt_cache_entry_is_fetched_again(served, tmp_path):
    tree = make_tree(tmp_path / "tree", files={"a": b"alpha" * 100, "b": b"beta"})
    digest = (await isolateclient.archive(client(served), [tree], reactor=reactor)).items[0][0]
    cache = await fresh_cache(tmp_path)
    await isolateclient.download_tree(client(served), digest, str(tmp_path / "o1"), cache, reactor=reactor)
    entry = cache.path(hashlib.sha1(b"alpha" * 100).hexdigest())
    os.chmod(entry, 0o644)
    with open(entry, "wb") as f:
        f.write(b"x" * 500)  # same size, other content, new mtime
    result = await isolateclient.download_tree(client(served), digest, str(tmp_path / "o2"), cache,
                                               reactor=reactor)
    assert (result.stats.misses, result.stats.downloaded) == (1, 1)
    assert (tmp_path / "o2" / "a").read_bytes() == b"alpha" * 100


@pytest_twisted.ensureDeferred
async def test_the_tree_being_mapped_is_protected_from_eviction(served, tmp_path):
    tree = make_tree(tmp_path / "tree", files={f"f{i}": bytes([i]) * 100 for i in range(5)})
    digest = (await isolateclient.archive(client(served), [tree], reactor=reactor)).items[0][0]
    # room for the tree's 5 files and its .isolated, but not for the 3 older items too
    cache = await fresh_cache(tmp_path, max_items=6, min_free_space=0)
    for i in range(3):
        content = f"old {i}".encode()
        cache.write(hashlib.sha1(content).hexdigest(), [content], len(content))
    result = await isolateclient.download_tree(client(served), digest, str(tmp_path / "o"), cache,
                                               reactor=reactor)
    assert len(cache.evicted) == 3 and result.stats.downloaded == 6
    assert sorted(os.listdir(tmp_path / "o")) == [f"f{i}" for i in range(5)]

    small = await fresh_cache(tmp_path, "small", max_items=3, min_free_space=0)
    numbers = r"not enough space.*\d+ items would exceed max_items 3; \d+ protected items hold"
    with pytest.raises(cascache.NoMoreSpace, match=numbers):
        await isolateclient.download_tree(client(served), digest, str(tmp_path / "o3"), small,
                                          reactor=reactor)


@pytest_twisted.ensureDeferred
async def test_download_files_copies_each_writable(served, tmp_path):
    f = tmp_path / "one"
    f.write_bytes(b"single" * 300)
    digest = (await isolateclient.archive(client(served), [str(f)], reactor=reactor)).items[0][0]
    cache = await fresh_cache(tmp_path)
    dests = [(digest, str(tmp_path / "out" / "copy1")), (digest, str(tmp_path / "out" / "sub" / "copy2"))]
    stats = await isolateclient.download_files(client(served), dests, cache, reactor=reactor)
    assert (stats.checked, stats.downloaded) == (1, 1)
    for _, dest in dests:
        assert open(dest, "rb").read() == b"single" * 300 and os.access(dest, os.W_OK)


@pytest_twisted.ensureDeferred
async def test_errors_say_what_failed(served, tmp_path):
    cache = await fresh_cache(tmp_path)
    with pytest.raises(IsolateServerError, match=f"{'0' * 40} is not on {served.url}") as e:
        await isolateclient.download_tree(client(served), "0" * 40, str(tmp_path / "o"), cache,
                                          reactor=reactor)
    assert e.value.status == 404
    anonymous = client(served, headers={})
    with pytest.raises(IsolateServerError, match=r"preupload failed: HTTP 401: .*preupload\)"):
        await isolateclient.archive(anonymous, [make_tree(tmp_path / "t", 1)], reactor=reactor)
    nobody = IsolateServer("http://127.0.0.1:1", "default-gzip", reactor=reactor)
    with pytest.raises(IsolateServerError, match="cannot connect to http://127.0.0.1:1"):
        await nobody.server_details()


@pytest_twisted.ensureDeferred
async def test_content_not_matching_its_digest_is_refused_and_reported(served, tmp_path):
    server = client(served)
    content = b"what was announced" * 10
    tickets = await server.preupload([(hashlib.sha1(content).hexdigest(), len(content), False)])
    with pytest.raises(IsolateServerError, match=r"upload failed: HTTP 400: .*refused"):
        await server.push(tickets[0], zlib.compress(b"something else" * 13))
    # and a file that changes between hashing and upload is caught by the client itself
    f = tmp_path / "moving"
    f.write_bytes(b"before")
    plan = isolateclient.plan_archive([str(f)], "sha-1")
    f.write_bytes(b"after!")
    with pytest.raises(IsolateServerError, match="changed while archiving"):
        isolateclient.prepare_upload(plan.loose[plan.results[0][0]], "sha-1", True)


@pytest_twisted.ensureDeferred
async def test_a_retrieve_by_url_resumes_from_an_offset(served, tmp_path):
    f = tmp_path / "large"
    f.write_bytes(os.urandom(4000))
    server = client(served)
    digest = (await isolateclient.archive(server, [str(f)], reactor=reactor)).items[0][0]
    whole = await server.retrieve(digest)
    assert await server.retrieve(digest, offset=1000) == whole[1000:]


class FlakyPuts(Resource):
    """The API, but its first ``failures`` PUTs answer 503 (a server restarting)."""

    isLeaf = True

    def __init__(self, api, failures):
        super().__init__()
        self.api = api
        self.failures = failures

    def render(self, request):
        if request.method == b"PUT" and self.failures:
            self.failures -= 1
            request.setResponseCode(503)
            return b'{"error": {"code": 503, "message": "try again"}}'
        return self.api.resource().render(request)


@pytest_twisted.ensureDeferred
async def test_an_upload_answered_503_is_sent_again_from_the_start(served, tmp_path, monkeypatch):
    monkeypatch.setattr(isolateclient, "IN_MEMORY_ITEM_BYTES", 1000)  # sent from a temporary file
    monkeypatch.setattr(isolateclient, "RETRY_DELAY_S", 0.01)
    flaky = FlakyPuts(served.api, failures=2)
    port = reactor.listenTCP(0, Site(flaky), interface="127.0.0.1")
    try:
        f = tmp_path / "big"
        f.write_bytes(os.urandom(20_000))
        server = IsolateServer(f"http://127.0.0.1:{port.getHost().port}", "default-gzip", reactor=reactor,
                               headers=ADMIN)
        result = await isolateclient.archive(server, [str(f)], reactor=reactor)
        assert flaky.failures == 0 and result.stats.uploaded == 1
        assert zlib.decompress(await server.retrieve(result.items[0][0])) == f.read_bytes()

        flaky.failures = isolateclient.RETRIES
        g = tmp_path / "other"
        g.write_bytes(os.urandom(20_000))
        with pytest.raises(IsolateServerError, match=r"upload failed: HTTP 503: try again \(http://"):
            await isolateclient.archive(server, [str(g)], reactor=reactor)
        await server.close()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_tree_with_includes_is_merged_root_first(served, tmp_path):
    base = make_tree(tmp_path / "base", files={"shared.txt": b"from the include", "only-base": b"b"})
    server = client(served)
    base_digest = (await isolateclient.archive(server, [base], reactor=reactor)).items[0][0]
    extra = tmp_path / "extra.txt"
    extra.write_bytes(b"from the root")
    extra_digest = (await isolateclient.archive(server, [str(extra)], reactor=reactor)).items[0][0]
    root = isolateclient.Isolated(files={"shared.txt": isolateclient.FileEntry(digest=extra_digest, size=13)},
                                  includes=(base_digest,), read_only=1)
    data = serialise(root)
    root_digest = hashlib.sha1(data).hexdigest()
    (ticket,) = await server.preupload([(root_digest, len(data), True)])
    await server.push(ticket, zlib.compress(data))

    cache = await fresh_cache(tmp_path)
    result = await isolateclient.download_tree(client(served), root_digest, str(tmp_path / "o"), cache,
                                               reactor=reactor)
    assert result.isolated.isolated_digests == (root_digest, base_digest)
    assert (tmp_path / "o" / "shared.txt").read_bytes() == b"from the root"
    assert (tmp_path / "o" / "only-base").read_bytes() == b"b"


@pytest_twisted.ensureDeferred
async def test_a_big_download_is_spooled_to_a_temporary_file_on_the_way(served, tmp_path, monkeypatch):
    monkeypatch.setattr(isolateclient, "SPILL_BYTES", 10_000)
    temporaries = tmp_path / "tmp"
    temporaries.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporaries))
    content = os.urandom(300_000)
    tree = make_tree(tmp_path / "t", files={"big": content})
    digest = (await isolateclient.archive(client(served), [tree], reactor=reactor)).items[0][0]
    cache = await fresh_cache(tmp_path)
    spilled = []
    real_append = isolateclient._Spool._append

    def append(self, chunks):
        spilled.append(sum(map(len, chunks)))
        return real_append(self, chunks)
    monkeypatch.setattr(isolateclient._Spool, "_append", append)
    await isolateclient.download_tree(client(served), digest, str(tmp_path / "o"), cache, reactor=reactor)
    assert (tmp_path / "o" / "big").read_bytes() == content
    assert sum(spilled) > 300_000 and os.listdir(temporaries) == []


class CutShort(Resource):
    """The API, but the first GET of a content URL sends half of the item and drops the
    connection; the ``Range`` headers of the GETs are kept."""

    isLeaf = True

    def __init__(self, api, store_root):
        super().__init__()
        self.api = api
        self.store_root = store_root
        self.ranges = []

    def render(self, request):
        if request.method == b"GET":
            self.ranges.append(request.getHeader(b"range"))
            if len(self.ranges) == 1:
                digest = request.path.decode().rsplit("/", 1)[1]
                stored = open(os.path.join(self.store_root, "default-gzip", digest[:2], digest), "rb").read()
                request.setHeader(b"content-length", str(len(stored)).encode())
                request.write(stored[:len(stored) // 2])
                request.channel.transport.loseConnection()
                return NOT_DONE_YET
        return self.api.resource().render(request)


@pytest_twisted.ensureDeferred
async def test_a_download_cut_short_is_resumed_with_a_range(served, tmp_path):
    content = os.urandom(50_000)
    f = tmp_path / "f"
    f.write_bytes(content)
    digest = (await isolateclient.archive(client(served), [str(f)], reactor=reactor)).items[0][0]
    cut = CutShort(served.api, served.store_root)
    port = reactor.listenTCP(0, Site(cut), interface="127.0.0.1")
    try:
        server = IsolateServer(f"http://127.0.0.1:{port.getHost().port}", "default-gzip", reactor=reactor,
                               headers=ADMIN)
        cache = await fresh_cache(tmp_path)
        await isolateclient.download_files(server, [(digest, str(tmp_path / "out"))], cache, reactor=reactor)
        assert (tmp_path / "out").read_bytes() == content
        assert cut.ranges[0] is None and cut.ranges[1].startswith(b"bytes=") and len(cut.ranges) == 2
        await server.close()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_the_download_result_gives_the_run_settings_and_read_only_can_be_overridden(served, tmp_path):
    server = client(served)
    f = tmp_path / "script"
    f.write_bytes(b"echo hi\n")
    digest = (await isolateclient.archive(server, [str(f)], reactor=reactor)).items[0][0]
    entry = isolateclient.FileEntry(digest=digest, size=8, mode=0o700)
    root = isolateclient.Isolated(files={"sub/script": entry}, command=("sh", "script"), relative_cwd="sub",
                                  read_only=2)
    data = serialise(root)
    (ticket,) = await server.preupload([(hashlib.sha1(data).hexdigest(), len(data), True)])
    await server.push(ticket, zlib.compress(data))
    cache = await fresh_cache(tmp_path)
    result = await isolateclient.download_tree(server, hashlib.sha1(data).hexdigest(), str(tmp_path / "o"),
                                               cache, reactor=reactor)
    assert (result.command, result.relative_cwd, result.read_only) == (("sh", "script"), "sub", 2)
    assert result.isolated.files["sub/script"].mode == 0o700 and result.isolated.root.version == "1.4"
    assert stat.S_IMODE(os.stat(tmp_path / "o" / "sub").st_mode) == 0o555  # read_only 2
    writable = await isolateclient.download_tree(server, hashlib.sha1(data).hexdigest(), str(tmp_path / "w"),
                                                 cache, reactor=reactor, read_only=0)
    assert writable.read_only == 0
    assert stat.S_IMODE(os.stat(tmp_path / "w" / "sub" / "script").st_mode) == 0o700
    cascache.remove_tree(str(tmp_path / "o"))
