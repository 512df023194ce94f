"""The Object service (master/objectservice/) on a real master in memory, through its web site:
uploads inline and by the signed putUrl, the hashes checked at finishUpload, downloads from the
signed URL, the conflicts and refusals of Taskcluster's Object service, its scopes; and its
reference against the official client's ``taskcluster.Object``; on SQLite and PostgreSQL."""

import base64
import hashlib
import json
import os
from urllib.parse import urlsplit

import jsonschema
import pytest_twisted
import taskcluster
from taskcluster.generated.object import Object as OfficialObject

from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.objectservice.content import NAMESPACE
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, on_database, start_memory_master, with_fast_password_checks

NOW = 1_800_000_000.0
OBJECT = "/api/object/v1"
DATA = b"hello, objects\n" * 3
CFG = MASTER_CFG + """\
c['users'] += [util.User('uploader', password='up', scopes=['object:upload:proj:a/*', 'object:download:a/*'])]
"""



ADMIN = basic("admin", "adm1n")
UPLOADER = basic("uploader", "up")


@pytest_twisted.async_yield_fixture
async def obj(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW)
    with_fast_password_checks(master)
    resource = master.www.make_site().resource

    async def call(method: str, path: str, body=None, headers=ADMIN, raw: bytes | None = None):
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        response = await render(resource, method, path if path.startswith("/api/") else OBJECT + path,
                                body=data, headers={**headers, "content-type": "application/json"})
        return response

    async def json_call(method: str, path: str, body=None, headers=ADMIN):
        response = await call(method, path, body, headers)
        return response.code, json.loads(response.body) if response.body else None

    json_call.raw = call
    json_call.master = master
    yield json_call
    await master.stopService()


def hashes(data: bytes) -> dict:
    return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}


def upload_body(upload_id: str, methods: dict, **changes) -> dict:
    body = {"projectId": "proj", "uploadId": upload_id, "expires": iso(NOW + 86400),
            "proposedUploadMethods": methods}
    body.update(changes)
    return body


def inline(data: bytes = DATA) -> dict:
    return {"dataInline": {"contentType": "text/plain", "objectData": base64.b64encode(data).decode()}}


def local(url: str) -> str:
    return urlsplit(url).path


async def upload_inline(obj, name: str, data: bytes = DATA) -> str:
    upload_id = taskcluster.slugId()
    code, answer = await obj("PUT", f"/upload/{name}", upload_body(upload_id, inline(data)))
    assert code == 200 and answer["uploadMethod"] == {"dataInline": True}, answer
    code, _ = await obj("POST", f"/finish-upload/{name}",
                        {"projectId": "proj", "uploadId": upload_id, "hashes": hashes(data)})
    assert code == 200
    return upload_id


@pytest_twisted.ensureDeferred
async def test_an_inline_upload_is_finished_then_downloaded_from_its_signed_url_with_its_hashes(obj):
    await upload_inline(obj, "a/b/one.txt")
    code, answer = await obj("PUT", "/start-download/a/b/one.txt",
                             {"acceptDownloadMethods": {"getUrl": True}})
    assert code == 200 and answer["method"] == "getUrl" and answer["hashes"] == hashes(DATA)
    assert answer["url"].startswith("http://localhost:8010/api/object/v1/data/")
    fetched = await obj.raw("GET", local(answer["url"]), headers={})  # signed: no credentials
    assert (fetched.code, fetched.body, fetched.header("content-type")) == (200, DATA, "text/plain")
    code, meta = await obj("GET", "/metadata/a/b/one.txt")
    assert code == 200 and meta == {"projectId": "proj", "expires": iso(NOW + 86400), "hashes": hashes(DATA)}


@pytest_twisted.ensureDeferred
async def test_a_put_url_upload_stores_the_bytes_put_and_download_redirects_to_them(obj):
    upload_id = taskcluster.slugId()
    data = bytes(range(256)) * 100
    code, answer = await obj("PUT", "/upload/a/big.bin", upload_body(
        upload_id, {"putUrl": {"contentType": "application/x-big", "contentLength": len(data)}}))
    method = answer["uploadMethod"]["putUrl"]
    assert code == 200 and method["headers"] == {"Content-Type": "application/x-big",
                                                 "Content-Length": str(len(data))}
    put = await obj.raw("PUT", local(method["url"]), headers={}, raw=data)
    assert put.code == 200
    code, _ = await obj("POST", "/finish-upload/a/big.bin", {"projectId": "proj", "uploadId": upload_id,
                                                            "hashes": hashes(data)})
    assert code == 200
    redirect = await obj.raw("GET", "/download/a/big.bin")
    assert redirect.code == 303
    fetched = await obj.raw("GET", local(redirect.header("location")), headers={})
    assert (fetched.code, fetched.body, fetched.header("content-type")) == (200, data, "application/x-big")


@pytest_twisted.ensureDeferred
async def test_finish_upload_refuses_hashes_that_are_not_the_datas_and_the_object_stays_unreadable(obj):
    upload_id = taskcluster.slugId()
    await obj("PUT", "/upload/a/bad.txt", upload_body(upload_id, inline()))
    wrong = hashes(b"something else")
    code, refused = await obj("POST", "/finish-upload/a/bad.txt",
                              {"projectId": "proj", "uploadId": upload_id,
                               "hashes": {"sha512": wrong["sha512"]}})
    assert code == 400 and "sha512" in refused["message"] and refused["code"] == "InputError"
    code, _ = await obj("GET", "/metadata/a/bad.txt")
    assert code == 404
    code, refused = await obj("POST", "/finish-upload/a/nothing.txt",
                              {"projectId": "proj", "uploadId": upload_id, "hashes": {}})
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_finishing_without_data_is_refused_and_finishing_twice_is_idempotent(obj):
    upload_id = taskcluster.slugId()
    await obj("PUT", "/upload/a/empty.txt", upload_body(upload_id, {}))
    code, refused = await obj("POST", "/finish-upload/a/empty.txt",
                              {"projectId": "proj", "uploadId": upload_id})
    assert code == 400 and "no data was uploaded" in refused["message"]
    upload_id = await upload_inline(obj, "a/twice.txt")
    again = {"projectId": "proj", "uploadId": upload_id, "hashes": hashes(DATA)}
    assert (await obj("POST", "/finish-upload/a/twice.txt", again))[0] == 200
    code, refused = await obj("POST", "/finish-upload/a/twice.txt",
                              {**again, "hashes": {"sha256": hashes(b"x")["sha256"]}})
    assert code == 409 and refused["code"] == "RequestConflict"


@pytest_twisted.ensureDeferred
async def test_create_upload_again_needs_the_same_upload_id_project_and_expiry(obj):
    upload_id = taskcluster.slugId()
    assert (await obj("PUT", "/upload/a/x", upload_body(upload_id, {})))[0] == 200
    # the same call again is allowed
    assert (await obj("PUT", "/upload/a/x", upload_body(upload_id, inline())))[0] == 200
    for changed in (upload_body(taskcluster.slugId(), {}),
                    upload_body(upload_id, {}, expires=iso(NOW + 99999))):
        code, refused = await obj("PUT", "/upload/a/x", changed)
        assert code == 409 and "already exists" in refused["message"]
    code, refused = await obj("PUT", "/upload/a/y", upload_body("not-a-slug", {}))
    assert code == 400 and "uploadId" in refused["message"]
    code, refused = await obj("PUT", "/upload/a/y",
                              upload_body(taskcluster.slugId(), {}, expires=iso(NOW - 1)))
    assert code == 400 and "future" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_a_put_of_another_length_a_forged_token_and_an_expired_url_are_refused(obj):
    upload_id = taskcluster.slugId()
    code, answer = await obj("PUT", "/upload/a/len.bin", upload_body(
        upload_id, {"putUrl": {"contentType": "application/octet-stream", "contentLength": 10}}))
    url = local(answer["uploadMethod"]["putUrl"]["url"])
    put = await obj.raw("PUT", url, headers={}, raw=b"12345")
    assert put.code == 400
    assert "5 bytes were sent where the upload declared 10" in json.loads(put.body)["message"]
    body, mac = url.rsplit("/", 1)[1].split(".")
    forged = await obj.raw("PUT", url.replace(mac, mac[::-1]), headers={}, raw=b"0123456789")
    assert forged.code == 403 and "signature" in json.loads(forged.body)["message"]
    as_get = await obj.raw("GET", url, headers={})
    assert as_get.code == 403 and "is for a PUT" in json.loads(as_get.body)["message"]
    obj.master.reactor.advance(3601)
    late = await obj.raw("PUT", url, headers={}, raw=b"0123456789")
    assert late.code == 403 and "expired" in json.loads(late.body)["message"]


@pytest_twisted.ensureDeferred
async def test_uploads_need_object_upload_of_the_project_and_name_and_downloads_object_download(obj):
    code, refused = await obj("PUT", "/upload/b/other", upload_body(taskcluster.slugId(), {}), UPLOADER)
    assert code == 403 and "object:upload:proj:b/other" in json.dumps(refused["unsatisfied"])
    code, refused = await obj("PUT", "/upload/a/mine",
                              upload_body(taskcluster.slugId(), {}, projectId="other"), UPLOADER)
    assert code == 403 and "object:upload:other:a/mine" in json.dumps(refused)
    await upload_inline(obj, "b/admins")
    code, refused = await obj("PUT", "/start-download/b/admins", {"acceptDownloadMethods": {"getUrl": True}},
                              UPLOADER)
    assert code == 403 and "object:download:b/admins" in json.dumps(refused["unsatisfied"])
    code, _ = await obj("GET", "/metadata/b/admins", headers={})
    assert code in (401, 403)


@pytest_twisted.ensureDeferred
async def test_start_download_picks_get_url_before_simple_and_406_when_neither_is_accepted(obj):
    await upload_inline(obj, "a/m")
    code, answer = await obj("PUT", "/start-download/a/m", {"acceptDownloadMethods": {"simple": True}})
    assert code == 200 and set(answer) == {"method", "url"} and answer["method"] == "simple"
    code, answer = await obj("PUT", "/start-download/a/m",
                             {"acceptDownloadMethods": {"simple": True, "getUrl": True}})
    assert answer["method"] == "getUrl"
    code, refused = await obj("PUT", "/start-download/a/m", {"acceptDownloadMethods": {}})
    assert code == 406 and refused["code"] == "NoMatchingMethod"


@pytest_twisted.ensureDeferred
async def test_an_object_past_its_expiry_is_not_found(obj):
    await upload_inline(obj, "a/old")
    obj.master.reactor.advance(86401)
    assert (await obj("GET", "/metadata/a/old"))[0] == 404


def test_the_object_reference_has_taskclusters_calls_and_two_data_urls_of_its_own():
    served = {e["name"]: e for e in CATALOG.reference("object")["entries"]}
    official = OfficialObject.funcinfo
    for name in set(served) & set(official):
        assert (served[name]["method"], served[name]["route"], served[name]["args"]) == \
            (official[name]["method"], official[name]["route"], official[name]["args"]), name
        assert served[name].get("input") == official[name].get("input"), name
    assert set(served) - set(official) == {"uploadData", "downloadData"}
    assert set(official) - set(served) == {"heartbeat", "lbheartbeat", "version"}


@pytest_twisted.ensureDeferred
async def test_an_object_whose_bytes_the_store_expired_is_not_found_with_the_reason(obj):
    await upload_inline(obj, "a/gone")
    cas = obj.master.cas
    os.remove(cas.store.path_of(NAMESPACE, hashlib.sha256(DATA).hexdigest()))
    code, refused = await obj("PUT", "/start-download/a/gone", {"acceptDownloadMethods": {"getUrl": True}})
    assert code == 404 and "no longer in the store" in refused["message"]
    assert "expiry_days" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_the_answers_validate_against_the_object_references_schemas(obj):
    schemas = CATALOG.service("object").schemas

    def check(name: str, answer: dict) -> None:
        jsonschema.Draft6Validator(schemas.document(name)).validate(answer)

    upload_id = taskcluster.slugId()
    code, answer = await obj("PUT", "/upload/a/s", upload_body(
        upload_id, {"putUrl": {"contentType": "text/plain", "contentLength": 3}}))
    check("create-upload-response", answer)
    await upload_inline(obj, "a/t")
    check("download-object-response", (await obj("PUT", "/start-download/a/t",
                                                 {"acceptDownloadMethods": {"getUrl": True}}))[1])
    check("get-object-response", (await obj("GET", "/metadata/a/t"))[1])
    check("ping-response", (await obj("GET", "/ping"))[1])
