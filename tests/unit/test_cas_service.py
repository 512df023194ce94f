"""The content-addressed store as a service of a real in-memory master (master/cas/service.py):
the janitor on the master's clock, the store's metrics in the real /metrics text, c['cas']
applied by a reconfig without a restart, and upload bodies streamed to a spool file through a
real port (memory bound and cap)."""

import base64
import hashlib
import http.client
import json
import os
import tracemalloc
import zlib

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads

from buildfarm.master.cas.api import PREFIX
from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.cas.s3store import S3Store
from buildfarm.master.cas.settings import DAY_S
from buildfarm.master.www.api import JSONAPI
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, eventually, start_memory_master, with_fast_password_checks
from fixtures.moto_server import MotoServer
from tests.fixtures import docexamples

ADMIN = {"Authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
CAS = {"expiry_days": 1, "janitor_interval": 600, "upload_secret": "first-secret",
       "max_item_bytes": 64 * 1024 * 1024}
LIFETIME_S, GRACE_S = DAY_S, 3600.0


def config(**cas) -> str:
    """MASTER_CFG with c['cas'] = CAS updated by ``cas`` (a key given None is left out)."""
    settings = {key: value for key, value in dict(CAS, **cas).items() if value is not None}
    return MASTER_CFG + f"c['cas'] = {settings!r}\n"


@pytest.fixture
def start(tmp_path):
    masters = []

    async def start(**cas):
        master = await start_memory_master(tmp_path, config(**cas))
        with_fast_password_checks(master)
        masters.append(master)
        return master

    yield start
    for master in masters:
        if master.running:
            pytest_twisted.blockon(master.stopService())


async def reconfig(master, **cas) -> None:
    with open(master.configfile, "w") as f:
        f.write(config(**cas))
    await master.reconfig()


async def call(master, name: str, body: dict):
    response = await render(master.cas.api.resource(), "POST", f"{PREFIX}/{name}",
                            body=json.dumps(body).encode(), headers=ADMIN)
    return response.code, json.loads(response.body)


def item(content: bytes) -> dict:
    return {"digest": hashlib.sha1(content).hexdigest(), "size": len(content), "is_isolated": False}


async def store_inline(master, content: bytes) -> str:
    code, answer = await call(master, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    assert code == 200, answer
    ticket = answer["items"][0]["upload_ticket"]
    code, answer = await call(master, "store_inline", {
        "upload_ticket": ticket, "content": base64.b64encode(zlib.compress(content)).decode()})
    assert code == 200, answer
    return ticket


async def metrics(master) -> dict[str, float]:
    response = await render(JSONAPI(master).resource(), "GET", "/metrics", headers=ADMIN)
    assert response.code == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in response.body.decode().splitlines() if line.startswith("buildfarm_cas")}


@pytest_twisted.ensureDeferred
async def test_the_cas_service_sits_before_the_web_port_with_its_janitor(start):
    master = await start()
    names = [child.name for child in master]
    assert names.index("cas") < names.index("www")
    assert master.getServiceNamed("cas").getServiceNamed("janitor").running


# -- the janitor ----------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_the_janitor_runs_every_interval_on_the_master_clock_and_deletes_expired_items(start):
    master = await start()
    janitor = master.cas.janitor
    await janitor.run_pass()  # the one at start-up
    await store_inline(master, b"will expire")
    await store_inline(master, b"kept warm")
    master.reactor.advance(LIFETIME_S / 2)
    await janitor.run_pass()  # joins the pass that came due
    await call(master, "preupload", {"items": [item(b"kept warm")], "namespace": "default-gzip"})
    master.reactor.advance(LIFETIME_S / 2 + GRACE_S - 1)
    await janitor.run_pass()
    assert (await call(master, "retrieve", {"digest": item(b"will expire")["digest"],
                                            "namespace": "default-gzip"}))[0] == 200  # in its grace
    master.reactor.advance(600)  # the next pass, an interval later
    assert janitor._running is not None
    await janitor.run_pass()  # joins it
    code, _ = await call(master, "retrieve", {"digest": item(b"will expire")["digest"],
                                              "namespace": "default-gzip"})
    assert code == 404
    code, answer = await call(master, "retrieve", {"digest": item(b"kept warm")["digest"],
                                                   "namespace": "default-gzip"})
    assert code == 200 and zlib.decompress(base64.b64decode(answer["content"])) == b"kept warm"
    samples = await metrics(master)
    assert samples['buildfarm_cas_expired_items_total{namespace="default-gzip"}'] == 1
    assert samples['buildfarm_cas_items{namespace="default-gzip"}'] == 1


@pytest_twisted.ensureDeferred
async def test_a_pass_that_fails_is_counted_and_the_next_one_still_comes(start, monkeypatch):
    master = await start()
    janitor = master.cas.janitor
    await janitor.run_pass()

    def broken(batch):
        raise OSError("disk gone")

    monkeypatch.setattr(master.cas.store, "expire", broken)
    master.reactor.advance(600)
    monkeypatch.undo()
    master.reactor.advance(600)
    await janitor.run_pass()
    samples = await metrics(master)
    assert samples['buildfarm_cas_janitor_passes_total{outcome="failed"}'] == 1
    assert samples['buildfarm_cas_janitor_passes_total{outcome="ok"}'] >= 2


# -- metrics --------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_metrics_count_items_hits_misses_and_bytes_in_and_out(start):
    master = await start()
    await master.cas.janitor.run_pass()
    await store_inline(master, b"first item")
    items = [item(b"first item"), item(b"second item"), item(b"third item")]
    await call(master, "preupload", {"items": items, "namespace": "default-gzip"})
    await call(master, "retrieve", {"digest": items[0]["digest"], "namespace": "default-gzip", "offset": 2})
    samples = await metrics(master)
    stored = len(zlib.compress(b"first item"))
    assert samples['buildfarm_cas_hits_total{namespace="default-gzip"}'] == 1
    assert samples['buildfarm_cas_misses_total{namespace="default-gzip"}'] == 3  # 1 + 2
    assert samples['buildfarm_cas_bytes_in_total{namespace="default-gzip"}'] == stored
    assert samples['buildfarm_cas_bytes_out_total{namespace="default-gzip"}'] == stored - 2
    assert samples['buildfarm_cas_items{namespace="default-gzip"}'] == 1
    assert samples['buildfarm_cas_bytes{namespace="default-gzip"}'] == stored


@pytest_twisted.ensureDeferred
async def test_the_metrics_docs_cas_md_lists_are_the_ones_served(start):
    master = await start()
    await master.cas.janitor.run_pass()
    await store_inline(master, b"counted")
    await call(master, "retrieve", {"digest": item(b"counted")["digest"], "namespace": "default-gzip"})
    master.reactor.advance(LIFETIME_S + GRACE_S)
    await master.cas.janitor.run_pass()  # expires it
    served = {name.split("{", 1)[0] for name in await metrics(master) if "_created" not in name}
    documented = {line.split()[0] for line in docexamples.example("cas.md", "store-metrics").splitlines()}
    assert documented == served


@pytest_twisted.ensureDeferred
async def test_a_restarted_master_counts_what_is_stored_with_its_first_pass(start, tmp_path):
    first = await start()
    await store_inline(first, b"survives a restart")
    await first.stopService()
    second = await start()
    await second.cas.janitor.run_pass()
    samples = await metrics(second)
    assert samples['buildfarm_cas_items{namespace="default-gzip"}'] == 1


# -- reconfig -------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_new_upload_secret_refuses_the_tickets_of_the_old_one(start):
    master = await start()
    code, answer = await call(master, "preupload", {"items": [item(b"x")], "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    await reconfig(master, upload_secret="second-secret")
    code, answer = await call(master, "store_inline", {
        "upload_ticket": ticket, "content": base64.b64encode(zlib.compress(b"x")).decode()})
    assert code == 400 and "signature" in answer["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_an_unset_secret_is_kept_across_a_reconfig(start):
    master = await start(upload_secret=None)
    code, answer = await call(master, "preupload", {"items": [item(b"y")], "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    await reconfig(master, upload_secret=None, max_item_bytes=2048)
    assert master.cas.settings.max_item_bytes == 2048  # the reconfig did apply
    code, answer = await call(master, "store_inline", {
        "upload_ticket": ticket, "content": base64.b64encode(zlib.compress(b"y")).decode()})
    assert code == 200, answer


@pytest_twisted.ensureDeferred
async def test_limits_and_expiry_apply_at_reconfig(start):
    master = await start()
    big = {"digest": "a" * 40, "size": 5000, "is_isolated": False}
    code, _ = await call(master, "preupload", {"items": [big], "namespace": "default-gzip"})
    assert code == 200
    old_store = master.cas.store
    await reconfig(master, max_item_bytes=1000, expiry_days=2, janitor_interval=60)
    code, answer = await call(master, "preupload", {"items": [big], "namespace": "default-gzip"})
    assert code == 400 and "over the 1000 bytes" in answer["error"]["message"]
    assert master.cas.max_upload_bytes() == 1000
    assert master.cas.store is not old_store and master.cas.store.expiry.lifetime_s == 2 * DAY_S
    assert master.cas.api.store is master.cas.store
    passes = master.cas.metrics.janitor_passes.labels("ok")._value.get()
    await master.cas.janitor.run_pass()
    master.reactor.advance(60)  # the new interval
    await master.cas.janitor.run_pass()
    assert master.cas.metrics.janitor_passes.labels("ok")._value.get() == passes + 2


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    server = MotoServer.start(str(tmp_path_factory.mktemp("moto")))
    server.s3().create_bucket(Bucket="isolate")
    yield server
    server.stop()


def s3_settings(moto, bucket="isolate") -> dict:
    return {"backend": "s3", "bucket": bucket, "prefix": "cas/", "endpoint_url": moto.endpoint_url,
            "region": moto.region, "access_key_id": moto.access_key_id,
            "secret_access_key": moto.secret_access_key}


@pytest_twisted.ensureDeferred
async def test_a_reconfig_moves_the_store_to_s3(start, moto):
    master = await start()
    await store_inline(master, b"on disk")
    await reconfig(master, **s3_settings(moto))
    assert isinstance(master.cas.store, S3Store)
    await store_inline(master, b"in the bucket")
    listed = moto.s3().list_objects_v2(Bucket="isolate")["Contents"]
    assert [o["Key"] for o in listed] == [f"cas/default-gzip/{item(b'in the bucket')['digest']}"]
    code, answer = await call(master, "retrieve", {"digest": item(b"in the bucket")["digest"],
                                                   "namespace": "default-gzip"})
    assert code == 200 and zlib.decompress(base64.b64decode(answer["content"])) == b"in the bucket"


@pytest_twisted.ensureDeferred
async def test_a_failing_back_end_is_a_503_that_names_it_and_a_failed_janitor_pass(start, moto):
    master = await start(**s3_settings(moto, bucket="no-such-bucket"))
    code, answer = await call(master, "preupload", {"items": [item(b"z")], "namespace": "default-gzip"})
    assert code == 200  # a HEAD answers a missing bucket as a missing item: it is asked for
    code, answer = await call(master, "store_inline", {
        "upload_ticket": answer["items"][0]["upload_ticket"],
        "content": base64.b64encode(zlib.compress(b"z")).decode()})
    assert code == 503 and answer["error"]["errors"][0]["reason"] == "backendError"
    assert "no-such-bucket" in answer["error"]["message"] and "NoSuchBucket" in answer["error"]["message"]
    await master.cas.janitor.run_pass()
    assert (await metrics(master))['buildfarm_cas_janitor_passes_total{outcome="failed"}'] >= 1


# -- streamed uploads through a real port ---------------------------------------------------

def put(port: int, path: str, body_path: str, length: int):
    """A PUT of the file at ``body_path`` (sent in 64 KiB blocks) from a client thread."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, blocksize=64 * 1024)
    try:
        with open(body_path, "rb") as body:
            conn.request("PUT", path, body=body, headers={"Content-Length": str(length), **ADMIN})
            response = conn.getresponse()
            return response.status, response.read(), response.headers
    finally:
        conn.close()


@pytest.fixture
def site_port(start):
    ports = []

    async def listen(master) -> int:
        port = reactor.listenTCP(0, master.www.make_site(), interface="127.0.0.1")
        ports.append(port)
        return port.getHost().port

    yield listen
    for port in ports:
        pytest_twisted.blockon(port.stopListening())


@pytest_twisted.ensureDeferred
async def test_an_upload_streams_to_a_spool_file_and_not_into_memory(start, site_port, tmp_path):
    master = await start()
    port = await site_port(master)
    content = os.urandom(32 * 1024 * 1024)  # sha256-plain: stored as is
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / "body").write_bytes(content)
    code, answer = await call(master, "preupload", {"items": [{"digest": digest, "size": len(content)}],
                                                    "namespace": "sha256-plain"})
    url = answer["items"][0]["gs_upload_url"].split("8010", 1)[1]
    del content
    tracemalloc.start()
    try:
        status, body, headers = await threads.deferToThread(put, port, url, str(tmp_path / "body"),
                                                            32 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert status == 200, body
    assert headers["x-goog-hash"] == "md5=" + base64.b64encode(
        hashlib.md5((tmp_path / "body").read_bytes()).digest()).decode()
    assert peak < 8 * 1024 * 1024, f"the upload cost {peak} bytes of memory"
    assert os.listdir(master.cas.spool_dir) == []  # the spool file is anonymous and gone
    code, _ = await call(master, "finalize_gs_upload", {"upload_ticket": answer["items"][0]["upload_ticket"]})
    assert code == 200


def get_digest(port: int, path: str, offset: int) -> tuple[int, str, int]:
    """A GET from byte ``offset`` read in 64 KiB blocks: status, SHA-256 of the body, its size."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers={"Range": f"bytes={offset}-", **ADMIN})
        response = conn.getresponse()
        hasher, size = hashlib.sha256(), 0
        while chunk := response.read(64 * 1024):
            hasher.update(chunk)
            size += len(chunk)
        return response.status, hasher.hexdigest(), size
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_a_download_streams_from_the_store_and_not_through_memory(start, site_port):
    master = await start()
    port = await site_port(master)
    content = os.urandom(24 * 1024 * 1024)
    digest = hashlib.sha256(content).hexdigest()
    await master.cas.store.put(parse_namespace("sha256-plain"), digest, len(content), content)
    tail = hashlib.sha256(content[1000:]).hexdigest()
    del content
    tracemalloc.start()
    try:
        status, got, size = await threads.deferToThread(
            get_digest, port, f"{PREFIX}/content/sha256-plain/{digest}", 1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (status, got, size) == (206, tail, 24 * 1024 * 1024 - 1000)
    assert peak < 8 * 1024 * 1024, f"the download cost {peak} bytes of memory"


@pytest_twisted.ensureDeferred
async def test_an_upload_over_the_cap_is_refused_before_its_body_and_the_cap_follows_reconfig(
        start, site_port, tmp_path):
    master = await start()
    port = await site_port(master)
    (tmp_path / "body").write_bytes(b"z" * 4096)
    path = f"{PREFIX}/upload/not-even-a-ticket"
    status, body, _ = await threads.deferToThread(put, port, path, str(tmp_path / "body"), 4096)
    assert status == 400 and b"ticket" in body  # under the cap: the handler ran
    await reconfig(master, max_item_bytes=1000)
    status, body, _ = await threads.deferToThread(put, port, path, str(tmp_path / "body"), 4096)
    assert status == 413 and json.loads(body)["error"]["code"] == 413


@pytest_twisted.ensureDeferred
async def test_a_client_that_leaves_half_way_stops_the_download_and_the_item_is_closed(start, site_port):
    master = await start()
    port = await site_port(master)
    content = os.urandom(16 * 1024 * 1024)
    digest = hashlib.sha256(content).hexdigest()
    plain = parse_namespace("sha256-plain")
    await master.cas.store.put(plain, digest, len(content), content)
    closed = []
    real_open = master.cas.store.open

    async def recording_open(namespace, digest, offset=0):
        reader, total = await real_open(namespace, digest, offset)
        real_close = reader.close
        reader.close = lambda: (closed.append(True), real_close())[1]
        return reader, total

    master.cas.store.open = recording_open

    def read_a_little() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("GET", f"{PREFIX}/content/sha256-plain/{digest}", headers=ADMIN)
        response = conn.getresponse()
        assert response.status == 200 and len(response.read(64 * 1024)) == 64 * 1024
        conn.sock.close()  # the client goes away

    await threads.deferToThread(read_a_little)
    await eventually(lambda: defer.succeed(closed == [True]), "the item's reader to be closed")
    sent = master.cas.metrics.bytes_out.labels("sha256-plain")._value.get()
    assert 64 * 1024 <= sent < len(content)  # what was written before it left, not the item


@pytest_twisted.ensureDeferred
async def test_the_item_writes_audit_batch_is_written_when_the_service_stops(start):
    master = await start()
    await store_inline(master, b"audited at the stop")
    assert await master.db.audit.count(surface="cas") == 0  # its batch is still open
    await master.cas.stopService()  # the master stops it before its database
    (row,) = await master.db.audit.get_all(surface="cas")
    assert (row["user"], row["method"], row["outcome"]) == ("admin", "BATCH", "done")
    assert row["detail"].endswith(f"POST {PREFIX}/store_inline 1")
