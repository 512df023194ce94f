"""The Isolate v1 API (master/cas/api.py) rendered in memory on a real in-memory master's auth
service and a real file store: what each call answers, what it refuses and with which error."""

import base64
import hashlib
import json
import zlib

import pytest
import pytest_twisted
from twisted.python.threadpool import ThreadPool

from buildfarm.master.cas.api import PREFIX, IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.settings import CASSettings
from buildfarm.master.cas.tickets import TICKET_TTL_S
from buildfarm.master.http.routes import (
    AUDIT_BATCH_WINDOW_S,
    AUDIT_BATCHED,
    AUDIT_NONE,
    AUDIT_REFUSED,
    PUBLIC,
    RouteTable,
)
from buildfarm.master.http.routing import bounded_klein
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, eventually, memory_master_fixture, with_fast_password_checks

ADMIN = "Basic " + base64.b64encode(b"admin:adm1n").decode()
master = memory_master_fixture(MASTER_CFG)


@pytest.fixture
def api(master, tmp_path):
    with_fast_password_checks(master)
    pool = ThreadPool(minthreads=1, maxthreads=2, name="cas-api-test")
    pool.start()
    settings = CASSettings(inline_max_bytes=10, retrieve_inline_max_bytes=100, max_item_bytes=10_000,
                           upload_secret=b"k" * 32)
    yield IsolateAPI(master, FileStore(str(tmp_path / "cas"), master.reactor, pool), settings, master.reactor,
                     pool)
    pool.stop()


async def post(api, name: str, body, auth: str | None = ADMIN):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = await render(api.resource(), "POST", f"{PREFIX}/{name}", body=raw,
                            headers={"Authorization": auth} if auth else {})
    return response.code, json.loads(response.body)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def item(content: bytes, **extra) -> dict:
    return {"digest": hashlib.sha1(content).hexdigest(), "size": len(content), "is_isolated": False, **extra}


def test_every_route_needs_a_cas_scope_of_its_namespace_but_server_details():
    scopes = {r.endpoint: r.scope for r in IsolateAPI.routes.routes}
    assert scopes.pop(f"POST {PREFIX}/server_details") == PUBLIC
    assert scopes.pop("GET /auth/api/v1/server/oauth_config") == PUBLIC  # answered with a 404
    assert scopes.pop("GET /auth/api/v1/accounts/self") == PUBLIC
    assert set(scopes.values()) == {"cas:read:{namespace}", "cas:write:{namespace}"}


@pytest_twisted.ensureDeferred
async def test_preupload_offers_each_missing_digest_once_and_reads_int64_strings(api):
    content = b"0123456789abcdef"
    items = [item(content), item(content), item(b"x", size="1")]
    code, answer = await post(api, "preupload", {"items": items, "namespace": "default-gzip"})
    assert code == 200
    assert [e["index"] for e in answer["items"]] == ["0", "2"]
    assert "gs_upload_url" in answer["items"][0] and "gs_upload_url" not in answer["items"][1]
    assert answer["items"][0]["gs_upload_url"].startswith("http://localhost:8010/_ah/api/isolateservice/v1/upload/")


@pytest.mark.parametrize("body, message", [
    ({"items": "x", "namespace": "default-gzip"}, "items must be a list"),
    ({"items": [{"digest": "A" * 40, "size": 1}]}, "lower-case hex"),
    ({"items": [{"digest": "a" * 40, "size": -1}]}, "size must be a non-negative integer"),
    ({"items": [{"digest": "a" * 40, "size": 10_001}]}, "over the 10000 bytes"),
    ({"items": [{"digest": "a" * 40, "size": 1, "is_isolated": "yes"}]}, "is_isolated"),
    ({"items": [], "namespace": "a/b"}, "namespace must be"),
    (b"{not json", "not valid JSON"),
])
@pytest_twisted.ensureDeferred
async def test_a_bad_preupload_is_a_400_in_the_endpoints_shape(api, body, message):
    code, answer = await post(api, "preupload", body)
    assert code == 400 and answer["error"]["code"] == 400
    assert message in answer["error"]["message"] and answer["error"]["errors"][0]["message"]


@pytest_twisted.ensureDeferred
async def test_an_item_stored_inline_is_retrieved_from_an_offset(api):
    content = b"hello"
    _, answer = await post(api, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    stored = zlib.compress(content)
    body = {"upload_ticket": answer["items"][0]["upload_ticket"], "content": b64(stored)}
    assert await post(api, "store_inline", body) == (200, {"ok": True})
    code, got = await post(api, "retrieve", {"digest": item(content)["digest"], "namespace": "default-gzip",
                                             "offset": 3})
    assert code == 200 and base64.b64decode(got["content"]) == stored[3:]


@pytest_twisted.ensureDeferred
async def test_store_inline_refuses_bad_base64_a_wrong_size_and_an_expired_ticket(api, master):
    content = b"hello"
    _, answer = await post(api, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    code, got = await post(api, "store_inline", {"upload_ticket": ticket, "content": "***"})
    assert code == 400 and "base64" in got["error"]["message"]
    code, got = await post(api, "store_inline", {"upload_ticket": ticket,
                                                 "content": b64(zlib.compress(b"hello!"))})
    assert code == 400 and "refused" in got["error"]["message"]
    master.reactor.advance(TICKET_TTL_S + 1)
    code, got = await post(api, "store_inline", {"upload_ticket": ticket,
                                                 "content": b64(zlib.compress(content))})
    assert code == 400 and "expired" in got["error"]["message"]


@pytest_twisted.ensureDeferred
async def test_anonymous_callers_need_the_scope(api):
    code, got = await post(api, "retrieve", {"digest": "0" * 40, "namespace": "default-gzip"}, auth=None)
    assert code == 401 and got["error"]["code"] == 401


@pytest_twisted.ensureDeferred
async def test_a_bad_range_on_the_content_url_is_a_416(api):
    content = b"x" * 200
    _, answer = await post(api, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    url = answer["items"][0]["gs_upload_url"].split("8010", 1)[1]
    response = await render(api.resource(), "PUT", url, body=zlib.compress(content),
                            headers={"Authorization": ADMIN})
    assert response.code == 200 and response.header("x-goog-hash").startswith("md5=")
    path = f"{PREFIX}/content/default-gzip/{item(content)['digest']}"
    response = await render(api.resource(), "GET", path, headers={"Authorization": ADMIN,
                                                                        "Range": "items=1-"})
    assert response.code == 416
    response = await render(api.resource(), "GET", path, args={"offset": "2"},
                            headers={"Authorization": ADMIN})
    assert response.code == 206 and response.body == zlib.compress(content)[2:]


@pytest_twisted.ensureDeferred
async def test_server_details_and_an_unknown_call(api):
    code, details = await post(api, "server_details", {}, auth=None)  # public
    assert code == 200 and details["server_version"].startswith("buildfarm-")
    assert details["expiry_secs"] == str(30 * 86400)  # the store's expiry, an int64 string
    code, got = await post(api, "no_such_call", {})
    assert code == 404 and got["error"]["code"] == 404


@pytest.mark.parametrize("manifest, message", [
    (b"[1, 2]", "JSON object"),
    (b"not json", "JSON object"),
    (json.dumps({"algo": "sha-256", "files": {}}).encode(), "algo"),
    (json.dumps({"includes": ["../x"]}).encode(), "bad digest"),
    (json.dumps({"files": {"a": {"h": "XYZ", "s": 1}}}).encode(), "bad digest"),
    (json.dumps({"files": {"a": 3}}).encode(), "must be an object"),
])
@pytest_twisted.ensureDeferred
async def test_an_isolated_item_that_is_no_manifest_is_refused_and_not_stored(api, manifest, message):
    _, answer = await post(api, "preupload", {"items": [item(manifest, is_isolated=True)],
                                              "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    body = {"upload_ticket": ticket, "content": b64(zlib.compress(manifest))}
    code, got = await post(api, "store_inline", body)
    assert code == 400 and message in got["error"]["message"]
    code, _ = await post(api, "retrieve", {"digest": item(manifest)["digest"], "namespace": "default-gzip"})
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_an_isolated_manifest_is_stored(api):
    manifest = json.dumps({"algo": "sha-1", "version": "2.0", "includes": ["a" * 40],
                           "files": {"x": {"h": "b" * 40, "s": 1, "m": 0o644}, "l": {"l": "x"}}}).encode()
    _, answer = await post(api, "preupload", {"items": [item(manifest, is_isolated=True)],
                                              "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    body = {"upload_ticket": ticket, "content": b64(zlib.compress(manifest))}
    assert await post(api, "store_inline", body) == (200, {"ok": True})


# -- the audit rule (docs/security.md, "Audit"): checks and reads only when refused, item writes
# in one row per batch, their refusals and failures each at once

async def audit_rows(master) -> list[dict]:
    return list(reversed(await master.db.audit.get_all(surface="cas")))


async def stored_inline(api, contents: list[bytes]) -> None:
    items = [item(c) for c in contents]
    _, answer = await post(api, "preupload", {"items": items, "namespace": "default-gzip"})
    for entry in answer["items"]:
        content = contents[int(entry["index"])]
        body = {"upload_ticket": entry["upload_ticket"], "content": b64(zlib.compress(content))}
        assert await post(api, "store_inline", body) == (200, {"ok": True})


def test_the_routes_declare_how_they_are_audited():
    audits = {r.endpoint: r.audit for r in IsolateAPI.routes.routes}
    assert audits == {f"POST {PREFIX}/preupload": AUDIT_REFUSED, f"POST {PREFIX}/retrieve": AUDIT_REFUSED,
                      f"POST {PREFIX}/store_inline": AUDIT_BATCHED, f"PUT {PREFIX}/upload/<string:ticket>":
                      AUDIT_BATCHED, f"POST {PREFIX}/finalize_gs_upload": AUDIT_BATCHED,
                      f"GET {PREFIX}/content/<string:namespace>/<string:digest>": AUDIT_NONE,
                      f"POST {PREFIX}/server_details": AUDIT_NONE,
                      "GET /auth/api/v1/server/oauth_config": AUDIT_NONE,
                      "GET /auth/api/v1/accounts/self": AUDIT_NONE}


@pytest_twisted.ensureDeferred
async def test_checks_and_reads_leave_no_audit_row_but_their_refusals_do(api, master):
    await stored_inline(api, [b"abc"])
    await api.audit_batch.flush()
    before = len(await audit_rows(master))
    ns = "default-gzip"
    assert (await post(api, "preupload", {"items": [item(b"abc")], "namespace": ns}))[0] == 200
    assert (await post(api, "retrieve", {"digest": item(b"abc")["digest"], "namespace": ns}))[0] == 200
    assert (await post(api, "retrieve", {"digest": "0" * 40, "namespace": ns}))[0] == 404
    assert (await post(api, "preupload", {"items": "x"}))[0] == 400
    assert len(await audit_rows(master)) == before

    assert (await post(api, "retrieve", {"digest": "0" * 40, "namespace": ns}, auth=None))[0] == 401
    assert (await post(api, "preupload", {"items": [], "namespace": ns}, auth=None))[0] == 401
    rows = (await audit_rows(master))[before:]
    assert [(r["user"], r["path"], r["outcome"], r["status"], r["scope"]) for r in rows] == [
        ("anonymous", f"{PREFIX}/retrieve", "refused", 401, "cas:read:default-gzip"),
        ("anonymous", f"{PREFIX}/preupload", "refused", 401, "cas:write:default-gzip")]


@pytest_twisted.ensureDeferred
async def test_item_writes_are_audited_in_one_row_per_batch_written_after_its_window(api, master):
    await stored_inline(api, [b"one", b"two", b"three"])
    content = b"y" * 200  # over inline_max_bytes: a PUT and a finalize
    _, answer = await post(api, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    (entry,) = answer["items"]
    url = entry["gs_upload_url"].split("8010", 1)[1]
    response = await render(api.resource(), "PUT", url, body=zlib.compress(content),
                            headers={"Authorization": ADMIN})
    assert response.code == 200
    finalize = {"upload_ticket": entry["upload_ticket"]}
    assert await post(api, "finalize_gs_upload", finalize) == (200, {"ok": True})
    assert await audit_rows(master) == []  # not yet: the batch is open

    master.reactor.advance(AUDIT_BATCH_WINDOW_S)

    async def written():
        return len(await audit_rows(master)) == 1
    await eventually(written, "the batch's audit row")
    (row,) = await audit_rows(master)
    assert (row["user"], row["method"], row["path"], row["scope"], row["outcome"], row["status"]) == (
        "admin", "BATCH", PREFIX, "cas:write:default-gzip", "done", 200)
    assert row["detail"].startswith("5 calls from ")
    assert row["detail"].endswith(f"POST {PREFIX}/finalize_gs_upload 1, POST {PREFIX}/store_inline 3, "
                                  f"PUT {PREFIX}/upload/<string:ticket> 1")


@pytest_twisted.ensureDeferred
async def test_a_full_batch_is_written_at_once_and_a_refused_or_failed_item_write_each(api, master):
    api.audit_batch.max_calls = 2
    await stored_inline(api, [b"one", b"two"])
    rows = await audit_rows(master)
    assert len(rows) == 1 and rows[0]["detail"].startswith("2 calls")

    _, answer = await post(api, "preupload", {"items": [item(b"three")], "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    wrong = {"upload_ticket": ticket, "content": b64(zlib.compress(b"not three"))}
    assert (await post(api, "store_inline", wrong))[0] == 400
    assert (await post(api, "store_inline", wrong, auth=None))[0] == 401
    rows = (await audit_rows(master))[1:]
    assert [(r["user"], r["method"], r["path"], r["outcome"], r["status"]) for r in rows] == [
        ("admin", "POST", f"{PREFIX}/store_inline", "failed", 400),
        ("anonymous", "POST", f"{PREFIX}/store_inline", "refused", 401)]
    assert "refused" in rows[0]["detail"]


def test_only_the_writes_of_non_public_routes_declare_an_audit():
    table = RouteTable(bounded_klein(), "test")
    for path, method, scope in [("/a", "GET", "x:read"), ("/b", "POST", PUBLIC)]:
        with pytest.raises(ValueError, match="audit="):
            table.route(path, method, scope=scope, audit=AUDIT_REFUSED)
    with pytest.raises(ValueError, match="audit="):
        table.route("/c", "POST", scope="x:write", audit="sometimes")


@pytest_twisted.ensureDeferred
async def test_the_namespace_may_be_the_api_s_namespace_object_as_isolate_s_client_sends_it(api):
    ns = {"namespace": "sha256-deflate", "digest_hash": "sha-256", "compression": "flate"}
    content = b"sent by isolateserver.py"
    digest = hashlib.sha256(content).hexdigest()
    code, answer = await post(api, "preupload", {"items": [{"digest": digest, "is_isolated": False,
                                                            "size": str(len(content))}], "namespace": ns})
    assert code == 200
    body = {"upload_ticket": answer["items"][0]["upload_ticket"], "content": b64(zlib.compress(content))}
    assert await post(api, "store_inline", body) == (200, {"ok": True})
    code, got = await post(api, "retrieve", {"digest": digest, "namespace": ns, "offset": "0"})
    assert code == 200 and zlib.decompress(base64.b64decode(got["content"])) == content
    code, got = await post(api, "retrieve", {"digest": hashlib.sha1(content).hexdigest(),
                                             "namespace": {"digest_hash": "sha-1", "compression": "flate"}})
    assert code == 404  # the object's namespace defaults to default-gzip


@pytest.mark.parametrize("ns, message", [
    ({"namespace": "sha256-deflate", "digest_hash": "sha-1"}, "has digest_hash 'sha-256', not 'sha-1'"),
    ({"namespace": "default-gzip", "compression": ""}, "has compression 'flate', not ''"),
    ({"namespace": "plain", "compression": "flate"}, "has compression '', not 'flate'"),
    ({"namespace": ["x"]}, "namespace must be"),
])
@pytest_twisted.ensureDeferred
async def test_a_namespace_object_contradicting_its_name_is_a_400(api, ns, message):
    code, got = await post(api, "preupload", {"items": [], "namespace": ns})
    assert code == 400 and message in got["error"]["message"]
