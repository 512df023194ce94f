"""The content-addressed store's Isolate v1 API on a real master over HTTP, as Isolate's
client uses it: preupload, store_inline or PUT + finalize_gs_upload, retrieve (inline and by
URL, with an offset), a mismatched upload refused, and the cas:read/cas:write scopes; on the
file back-end and on the S3 back-end (moto's real S3 server on loopback), with what the
store's /metrics counted; a `buildmaster reconfig` that moves the store to S3; and expiry (a
few seconds of it) with the janitor of a real master."""

import base64
import hashlib
import json
import os
import time
import urllib.request
import zlib

import pytest

from fixtures.daemons import TEST_PASSWORD, TEST_USER, run_cli, wait_for
from fixtures.moto_server import MotoServer

V1 = "/_ah/api/isolateservice/v1"
CONFIG = """\
from buildfarm.master.auth.users import User
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {cas!r}
c['users'] = [User('reader', password='rpw', scopes=['cas:read:default-gzip'])]
"""
FILE_CAS = {"backend": "file", "expiry_days": 7, "upload_secret": "cas-secret",
            "retrieve_inline_max_bytes": 1024}
BUCKET = "isolate"


def s3_cas(moto: MotoServer) -> dict:
    return dict(FILE_CAS, backend="s3", bucket=BUCKET, prefix="cas/", endpoint_url=moto.endpoint_url,
                region=moto.region, access_key_id=moto.access_key_id,
                secret_access_key=moto.secret_access_key)


@pytest.fixture
def moto(tmp_path):
    server = MotoServer.start(str(tmp_path))
    server.s3().create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


def start_master(fleet, cas: dict):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(pb_port=pb_port, www_port=www_port,
                                                                        cas=cas))
    wait_for(lambda: master.request("POST", f"{V1}/server_details", {})[0] == 200, "the master's web port")
    return master


def cas_metrics(master) -> dict[str, float]:
    status, body = master.request("GET", "/metrics")
    assert status == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines() if line.startswith("buildfarm_cas")}


def item(content: bytes) -> dict:
    return {"digest": hashlib.sha1(content).hexdigest(), "size": len(content), "is_isolated": False}


def call(master, name: str, body: dict, user="admin", password=None):
    kwargs = {} if user == "admin" else {"user": user, "password": password}
    status, data = master.request("POST", f"{V1}/{name}", body,
                                  {"Content-Type": "application/json; charset=UTF-8"}, **kwargs)
    return status, json.loads(data)


def raw(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    token = base64.b64encode(f"{TEST_USER}:{TEST_PASSWORD}".encode()).decode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Authorization": f"Basic {token}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_archive_and_download_through_the_isolate_api(fleet):
    archive_and_download(start_master(fleet, FILE_CAS))


def test_archive_and_download_on_the_s3_back_end(fleet, moto):
    master = start_master(fleet, s3_cas(moto))
    stored = archive_and_download(master)
    keys = sorted(o["Key"] for o in moto.s3().list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == sorted(f"cas/default-gzip/{digest}" for digest in stored)
    assert not os.path.exists(os.path.join(master.basedir, "cas"))  # nothing on the master's disk


def test_a_reconfig_moves_the_store_to_s3_without_a_restart(fleet, moto):
    master = start_master(fleet, FILE_CAS)
    pid = open(os.path.join(master.basedir, "twistd.pid")).read()
    cfg = os.path.join(master.basedir, "master.cfg")
    with open(cfg) as f:
        text = f.read().replace(repr(FILE_CAS), repr(s3_cas(moto)))
    with open(cfg, "w") as f:
        f.write(text)
    run_cli("buildmaster", "reconfig", master.basedir, check=True)
    stored = archive_and_download(master)
    assert len(moto.s3().list_objects_v2(Bucket=BUCKET)["Contents"]) == len(stored)
    assert open(os.path.join(master.basedir, "twistd.pid")).read() == pid


def test_items_expire_and_the_janitor_of_a_real_master_deletes_them(fleet):
    lifetime_s = 2.0
    master = start_master(fleet, dict(FILE_CAS, expiry_days=lifetime_s / 86400, janitor_interval=0.2))
    content = b"short-lived"
    status, answer = call(master, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    body = {"upload_ticket": answer["items"][0]["upload_ticket"],
            "content": base64.b64encode(zlib.compress(content, 7)).decode()}
    assert call(master, "store_inline", body) == (200, {"ok": True})
    digest = item(content)["digest"]
    path = os.path.join(master.basedir, "cas", "default-gzip", digest[:2], digest)
    assert os.path.exists(path)
    stored_at = time.time()
    retrieve = {"digest": item(content)["digest"], "namespace": "default-gzip"}
    wait_for(lambda: call(master, "retrieve", retrieve)[0] == 404, "the janitor to delete the item", 15)
    assert time.time() - stored_at >= lifetime_s  # not before its time
    assert not os.path.exists(path)
    expired = 'buildfarm_cas_expired_items_total{namespace="default-gzip"}'
    wait_for(lambda: cas_metrics(master).get(expired) == 1, "the deletion to be counted")
    assert cas_metrics(master)['buildfarm_cas_items{namespace="default-gzip"}'] == 0


def archive_and_download(master) -> list[str]:
    """The Isolate client's calls for three items; the digests stored."""
    small, large = b"small file\n", os.urandom(3000) + b"x" * 100_000
    isolated = json.dumps({"algo": "sha-1", "files": {}, "version": "2.0"}).encode()
    items = [item(small), item(large), dict(item(isolated), is_isolated=True)]

    status, answer = call(master, "preupload", {"items": items, "namespace": "default-gzip"})
    assert status == 200
    tickets = {int(e["index"]): e for e in answer["items"]}
    assert sorted(tickets) == [0, 1, 2]
    assert "gs_upload_url" not in tickets[0] and "gs_upload_url" not in tickets[2]
    assert tickets[1]["gs_upload_url"].startswith(master.url + V1 + "/upload/")

    for index, content in ((0, small), (2, isolated)):
        body = {"upload_ticket": tickets[index]["upload_ticket"],
                "content": base64.b64encode(zlib.compress(content, 7)).decode()}
        assert call(master, "store_inline", body) == (200, {"ok": True})

    # the large one: a PUT whose content does not match is refused, then the right one
    status, _, body = raw("PUT", tickets[1]["gs_upload_url"], zlib.compress(b"not it" * 500),
                          {"Content-Type": "application/octet-stream"})
    assert status == 400 and "refused" in json.loads(body)["error"]["message"]
    status, answer = call(master, "finalize_gs_upload", {"upload_ticket": tickets[1]["upload_ticket"]})
    assert status == 400
    status, answer = call(master, "retrieve", {"digest": items[1]["digest"], "namespace": "default-gzip"})
    assert status == 404  # the refused bytes were never stored, so never served
    stored = zlib.compress(large, 7)
    status, headers, _ = raw("PUT", tickets[1]["gs_upload_url"], stored,
                             {"Content-Type": "application/octet-stream",
                              "Cache-Control": "public, max-age=31536000"})
    assert status == 200
    assert headers["x-goog-hash"] == "md5=" + base64.b64encode(hashlib.md5(stored).digest()).decode()
    assert call(master, "finalize_gs_upload", {"upload_ticket": tickets[1]["upload_ticket"]}) == \
        (200, {"ok": True})

    # all present now: preupload answers {}
    assert call(master, "preupload", {"items": items, "namespace": "default-gzip"}) == (200, {})

    # retrieve: inline for the small one (by the read-only user), a URL for the large one
    status, answer = call(master, "retrieve", {"digest": items[0]["digest"], "namespace": "default-gzip",
                                               "offset": 0}, user="reader", password="rpw")
    assert status == 200 and zlib.decompress(base64.b64decode(answer["content"])) == small
    status, answer = call(master, "retrieve", {"digest": items[1]["digest"], "namespace": "default-gzip",
                                               "offset": "0"})
    status, headers, body = raw("GET", answer["url"])
    assert status == 200 and zlib.decompress(body) == large
    status, headers, body = raw("GET", answer["url"], headers={"Range": "bytes=100-"})
    assert status == 206 and body == stored[100:]
    assert headers["Content-Range"] == f"bytes 100-{len(stored) - 1}/{len(stored)}"

    # the mismatched content was never stored; an unknown digest is a JSON 404
    status, answer = call(master, "retrieve", {"digest": "0" * 40, "namespace": "default-gzip"})
    assert status == 404 and answer["error"]["code"] == 404

    # what /metrics counted: 3 misses then 3 hits, the bytes stored, in and out
    samples = cas_metrics(master)
    stored_bytes = len(zlib.compress(small, 7)) + len(stored) + len(zlib.compress(isolated, 7))
    assert samples['buildfarm_cas_misses_total{namespace="default-gzip"}'] == 3
    assert samples['buildfarm_cas_hits_total{namespace="default-gzip"}'] == 3
    assert samples['buildfarm_cas_items{namespace="default-gzip"}'] == 3
    assert samples['buildfarm_cas_bytes{namespace="default-gzip"}'] == stored_bytes
    assert samples['buildfarm_cas_bytes_in_total{namespace="default-gzip"}'] == stored_bytes
    assert samples['buildfarm_cas_bytes_out_total{namespace="default-gzip"}'] == \
        len(zlib.compress(small, 7)) + 2 * len(stored) - 100
    return [entry["digest"] for entry in items]


def test_tickets_and_scopes_are_enforced(fleet):
    master = start_master(fleet, FILE_CAS)
    content = b"payload"
    _, answer = call(master, "preupload", {"items": [item(content)], "namespace": "default-gzip"})
    ticket = answer["items"][0]["upload_ticket"]
    other = zlib.compress(b"other!!", 7)

    # a ticket for one digest does not store another item, nor does a forged one
    status, answer = call(master, "store_inline", {"upload_ticket": ticket,
                                                   "content": base64.b64encode(other).decode()})
    assert status == 400 and "refused" in answer["error"]["message"]
    status, answer = call(master, "store_inline", {"upload_ticket": "eyJ9.AAAA",
                                                   "content": base64.b64encode(other).decode()})
    assert status == 400 and "ticket" in answer["error"]["message"]

    # the reader may read default-gzip, not write it nor read another namespace; anonymous neither
    status, answer = call(master, "preupload", {"items": [item(content)], "namespace": "default-gzip"},
                          user="reader", password="rpw")
    assert status == 403
    status, _ = call(master, "retrieve", {"digest": item(content)["digest"], "namespace": "sha256-gzip"},
                     user="reader", password="rpw")
    assert status == 403
    status, data = master.request("POST", f"{V1}/retrieve", {"digest": "0" * 40, "namespace": "default-gzip"},
                                  user=None)
    assert status == 401 and "error" in json.loads(data)
    # a bad namespace or digest is a clear 400
    status, answer = call(master, "preupload", {"items": [{"digest": "xyz", "size": 1}],
                                                "namespace": "default-gzip"})
    assert status == 400 and "digest" in answer["error"]["message"]
    status, answer = call(master, "retrieve", {"digest": "0" * 40, "namespace": "../etc"})
    assert status == 400
