"""The Queue's artifacts (master/queue/artifactapi.py, artifacts.py) on a real master in memory,
through its web site: object artifacts stored through the Object service, reference, link and
error artifacts, who may create and read them (``public/`` without credentials), Taskcluster's
rules for creating one again, and the paged lists; runs set running through the store; on
SQLite and PostgreSQL."""

import base64
import hashlib
import json
from urllib.parse import urlsplit

import jsonschema
import pytest_twisted
import taskcluster

from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.objectservice.issuer import ISSUER_ID
from buildfarm.master.queue.artifactapi import _slugid
from buildfarm.master.queue.model import SLUGID
from buildfarm.master.queue.store import QueueStore
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, on_database, start_memory_master, with_fast_password_checks

NOW = 1_800_000_000.0
QUEUE = "/api/queue/v1"
OBJECT = "/api/object/v1"
DATA = b"the build's log\n" * 4
CFG = MASTER_CFG + """\
c['users'] += [util.User('reader', password='rd', scopes=['queue:get-artifact:private/mine/*'])]
"""



ADMIN = basic("admin", "adm1n")
READER = basic("reader", "rd")


@pytest_twisted.async_yield_fixture
async def queue(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW)
    with_fast_password_checks(master)
    resource = master.www.make_site().resource

    async def raw(method: str, path: str, body=None, headers=ADMIN, args=None):
        data = b"" if body is None else json.dumps(body).encode()
        return await render(resource, method, path if path.startswith("/api/") else QUEUE + path, body=data,
                            headers={**headers, "content-type": "application/json"}, args=args)

    async def call(method: str, path: str, body=None, headers=ADMIN):
        response = await raw(method, path, body, headers)
        return response.code, json.loads(response.body) if response.body else None

    call.raw = raw
    call.master = master
    yield call
    await master.stopService()


async def running_task(queue, **changes) -> str:
    """A task whose run 0 runs on worker ``wg/w1``."""
    task_id = taskcluster.slugId()
    body = {"taskQueueId": "proj-ci/linux", "created": iso(NOW), "deadline": iso(NOW + 3600),
            "payload": {}, "metadata": {"name": "t", "description": "d", "owner": "me@example.com",
                                        "source": "https://x/"}, "projectId": "proj"}
    body.update(changes)
    code, _ = await queue("PUT", f"/task/{task_id}", body)
    assert code == 200
    await QueueStore(queue.master.db).started(task_id, 0, "wg", "w1", NOW)
    return task_id


def artifact(storage_type: str, **fields) -> dict:
    return {"storageType": storage_type, "expires": iso(NOW + 86400), **fields}


async def upload_object(queue, task_id: str, name: str, data: bytes = DATA) -> dict:
    """createArtifact (object), the bytes through the Object service, finishArtifact."""
    code, created = await queue("POST", f"/task/{task_id}/runs/0/artifacts/{name}",
                                artifact("object", contentType="text/plain"))
    assert code == 200, created
    code, _ = await queue("PUT", f"{OBJECT}/upload/{created['name']}", {
        "projectId": created["projectId"], "uploadId": created["uploadId"], "expires": created["expires"],
        "proposedUploadMethods": {"dataInline": {"contentType": "text/plain",
                                                 "objectData": base64.b64encode(data).decode()}}})
    assert code == 200
    code, _ = await queue("POST", f"{OBJECT}/finish-upload/{created['name']}", {
        "projectId": created["projectId"], "uploadId": created["uploadId"],
        "hashes": {"sha256": hashlib.sha256(data).hexdigest()}})
    assert code == 200
    code, _ = await queue("PUT", f"/task/{task_id}/runs/0/artifacts/{name}",
                          {"uploadId": created["uploadId"]})
    assert code == 204
    return created


@pytest_twisted.ensureDeferred
async def test_an_object_artifact_answers_the_object_to_upload_and_credentials_for_it_alone(queue):
    task_id = await running_task(queue)
    code, created = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/logs/live.log",
                                artifact("object", contentType="text/plain"))
    assert code == 200
    assert (created["storageType"], created["name"], created["projectId"]) == \
        ("object", f"t/{task_id}/0/public/logs/live.log", "proj")
    assert created["expires"] == iso(NOW + 86400) and len(created["uploadId"]) == 22
    credentials = created["credentials"]
    assert credentials["clientId"] == f"artifact-upload/{task_id}/0/on/wg/w1"
    certificate = json.loads(credentials["certificate"])
    assert certificate["issuer"] == ISSUER_ID
    assert certificate["scopes"] == [f"object:upload:proj:t/{task_id}/0/public/logs/live.log"]
    assert certificate["expiry"] == int((NOW + 86400) * 1000)
    issuer = await queue.master.auth.clients.get(ISSUER_ID)  # made on first use, in the database
    assert "object:upload:*" in issuer.scopes
    # listed only once finished
    code, listed = await queue("GET", f"/task/{task_id}/runs/0/artifacts")
    assert code == 200 and listed == {"artifacts": []}


@pytest_twisted.ensureDeferred
async def test_finish_artifact_needs_the_object_finished_then_a_public_one_is_read_without_credentials(queue):
    task_id = await running_task(queue)
    code, created = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/a.txt", artifact("object"))
    code, refused = await queue("PUT", f"/task/{task_id}/runs/0/artifacts/public/a.txt",
                                {"uploadId": created["uploadId"]})
    assert code == 400 and "not uploaded and finished" in refused["message"]
    code, refused = await queue("PUT", f"/task/{task_id}/runs/0/artifacts/public/a.txt",
                                {"uploadId": taskcluster.slugId()})
    assert code == 400 and "uploadId" in refused["message"]
    task_id = await running_task(queue)
    await upload_object(queue, task_id, "public/b.txt")
    response = await queue.raw("GET", f"/task/{task_id}/runs/0/artifacts/public/b.txt", headers={})
    assert response.code == 303 and response.header("x-taskcluster-artifact-storage-type") == "object"
    location = response.header("location")
    assert json.loads(response.body) == {"storageType": "object", "url": location}
    fetched = await queue.raw("GET", urlsplit(location).path, headers={})
    assert (fetched.code, fetched.body, fetched.header("content-type")) == (200, DATA, "text/plain")
    latest = await queue.raw("GET", f"/task/{task_id}/artifacts/public/b.txt", headers={})
    assert latest.code == 303
    # finishing again is idempotent
    assert (await queue("PUT", f"/task/{task_id}/runs/0/artifacts/public/b.txt", {"uploadId": "x"}))[0] == 204


@pytest_twisted.ensureDeferred
async def test_artifact_answers_the_object_and_download_credentials_the_download_helper_uses(queue):
    task_id = await running_task(queue)
    await upload_object(queue, task_id, "private/mine/c.txt")
    code, content = await queue("GET", f"/task/{task_id}/runs/0/artifact-content/private/mine/c.txt")
    assert code == 200 and content["storageType"] == "object"
    assert content["name"] == f"t/{task_id}/0/private/mine/c.txt"
    certificate = json.loads(content["credentials"]["certificate"])
    assert certificate["scopes"] == [f"object:download:t/{task_id}/0/private/mine/c.txt"]
    assert content["credentials"]["clientId"] == f"artifact-download/{task_id}/0"
    code, latest = await queue("GET", f"/task/{task_id}/artifact-content/private/mine/c.txt")
    assert code == 200 and latest["name"] == content["name"]


@pytest_twisted.ensureDeferred
async def test_a_private_artifact_needs_queue_get_artifact_of_its_name(queue):
    task_id = await running_task(queue)
    await upload_object(queue, task_id, "private/secret.txt")
    await upload_object(queue, task_id, "private/mine/ok.txt")
    code, refused = await queue("GET", f"/task/{task_id}/runs/0/artifacts/private/secret.txt", headers={})
    assert code == 401 and "queue:get-artifact:private/secret.txt" in refused["message"]
    code, refused = await queue("GET", f"/task/{task_id}/runs/0/artifacts/private/secret.txt", headers=READER)
    assert code == 403 and refused["code"] == "InsufficientScopes"
    assert "queue:get-artifact:private/secret.txt" in json.dumps(refused["unsatisfied"])
    code, refused = await queue("GET", f"/task/{task_id}/artifact-content/private/secret.txt", headers=READER)
    assert code == 403
    assert (await queue.raw("GET", f"/task/{task_id}/runs/0/artifacts/private/mine/ok.txt",
                            headers=READER)).code == 303


@pytest_twisted.ensureDeferred
async def test_reference_link_and_error_artifacts_redirect_follow_and_answer_424(queue):
    task_id = await running_task(queue)
    run = f"/task/{task_id}/runs/0/artifacts"
    assert await queue("POST", f"{run}/public/ref", artifact("reference", url="https://example.com/x")) == \
        (200, {"storageType": "reference"})
    assert (await queue("POST", f"{run}/public/link", artifact("link", artifact="public/ref")))[0] == 200
    assert (await queue("POST", f"{run}/public/err", artifact(
        "error", reason="file-missing-on-worker", message="no such file: out.tar")))[0] == 200
    for name in ("public/ref", "public/link"):
        response = await queue.raw("GET", f"{run}/{name}", headers={})
        assert (response.code, response.header("location")) == (303, "https://example.com/x")
    response = await queue.raw("GET", f"{run}/public/err", headers={})
    assert response.code == 424
    assert json.loads(response.body) == {"reason": "file-missing-on-worker",
                                         "message": "no such file: out.tar"}
    code, content = await queue("GET", f"/task/{task_id}/runs/0/artifact-content/public/link", headers={})
    assert (code, content) == (200, {"storageType": "reference", "url": "https://example.com/x"})
    # a link to a private artifact needs the scope of the name it leads to
    await queue("POST", f"{run}/private/target", artifact("reference", url="https://example.com/y"))
    await queue("POST", f"{run}/public/to-private", artifact("link", artifact="private/target"))
    code, refused = await queue("GET", f"{run}/public/to-private", headers={})
    assert code == 401 and "private/target" in refused["message"]
    # a cycle is a 400
    await queue("POST", f"{run}/public/l1", artifact("link", artifact="public/l2"))
    await queue("POST", f"{run}/public/l2", artifact("link", artifact="public/l1"))
    code, refused = await queue("GET", f"{run}/public/l1", headers={})
    assert code == 400 and "cycle" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_artifacts_are_taken_only_from_a_running_run_or_shortly_after_an_exception(queue):
    task_id = taskcluster.slugId()
    await queue("PUT", f"/task/{task_id}", {
        "taskQueueId": "proj-ci/linux", "created": iso(NOW), "deadline": iso(NOW + 3600), "payload": {},
        "metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://x/"}})
    ref = artifact("reference", url="https://example.com/")
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/x", ref)
    assert code == 400 and "not claimed by a worker" in refused["message"]
    code, refused = await queue("POST", f"/task/{task_id}/runs/3/artifacts/public/x", ref)
    assert code == 400 and "no run 3" in refused["message"]
    store = QueueStore(queue.master.db)
    await store.started(task_id, 0, "wg", "w1", NOW)
    await store.resolve(task_id, 0, "completed", "completed", NOW + 10)
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/x", ref)
    assert code == 409 and refused["status"]["state"] == "completed"
    task_id = await running_task(queue)
    await store.resolve(task_id, 0, "exception", "worker-shutdown", NOW)
    queue.master.reactor.advance(20 * 60)
    assert (await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/x", ref))[0] == 200
    queue.master.reactor.advance(6 * 60)
    assert (await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/y", ref))[0] == 409


@pytest_twisted.ensureDeferred
async def test_create_artifact_needs_its_scope_and_a_sane_body(queue):
    task_id = await running_task(queue)
    path = f"/task/{task_id}/runs/0/artifacts/public/x"
    code, refused = await queue("POST", path, artifact("reference", url="https://e/"), READER)
    assert code == 403 and f"queue:create-artifact:{task_id}/0" in json.dumps(refused["unsatisfied"])
    for body, words in ((artifact("s3"), "s3 is not served"), (artifact("reference", url="ftp://x"), "http"),
                        (artifact("error", reason="bored", message="m"), "reason"),
                        ({"storageType": "link", "artifact": "a"}, "expires"),
                        (artifact("link"), "artifact"),
                        (artifact("reference", url="https://e/", expires=iso(NOW + 3 * 365 * 86400)),
                         "task's")):
        code, refused = await queue("POST", path, body)
        assert code == 400 and words in refused["message"], (body, refused)


@pytest_twisted.ensureDeferred
async def test_creating_again_follows_taskclusters_rules(queue):
    task_id = await running_task(queue)
    path = f"/task/{task_id}/runs/0/artifacts/public/r"
    assert (await queue("POST", path, artifact("reference", url="https://e/1")))[0] == 200
    assert (await queue("POST", path, artifact("reference", url="https://e/2")))[0] == 200  # a new URL
    code, refused = await queue("POST", path, artifact("reference", url="https://e/2", contentType="text/x"))
    assert code == 409 and refused["originalArtifact"]["storageType"] == "reference"
    code, _ = await queue("POST", path, artifact("reference", url="https://e/2", expires=iso(NOW + 60)))
    assert code == 409  # an expiry is extended, never shortened
    assert (await queue("POST", path, artifact("link", artifact="public/other")))[0] == 200
    assert (await queue("POST", path, artifact("reference", url="https://e/3")))[0] == 409  # not back
    await upload_object(queue, task_id, "public/o")
    code, refused = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/o", artifact("object"))
    assert code == 409


@pytest_twisted.ensureDeferred
async def test_list_artifacts_pages_the_present_artifacts_by_name(queue):
    task_id = await running_task(queue)
    names = [f"public/{i:02d}" for i in range(5)]
    for name in reversed(names):
        await queue("POST", f"/task/{task_id}/runs/0/artifacts/{name}",
                    artifact("reference", url="https://e/", contentType="text/plain"))
    await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/unfinished", artifact("object"))
    seen, token = [], None
    while True:
        query = {"limit": 2, "continuationToken": token} if token else {"limit": 2}
        response = await queue.raw("GET", f"/task/{task_id}/runs/0/artifacts", args=query)
        page = json.loads(response.body)
        seen += page["artifacts"]
        token = page.get("continuationToken")
        if token is None:
            break
    assert [a["name"] for a in seen] == names
    assert seen[0] == {"storageType": "reference", "name": "public/00", "expires": iso(NOW + 86400),
                       "contentType": "text/plain"}
    code, latest = await queue("GET", f"/task/{task_id}/artifacts")
    assert code == 200 and [a["name"] for a in latest["artifacts"]] == names
    code, info = await queue("GET", f"/task/{task_id}/artifact-info/public/03")
    assert code == 200 and info == seen[3]
    code, refused = await queue("GET", f"/task/{task_id}/runs/0/artifacts", headers={})
    assert code == 401 and f"queue:list-artifacts:{task_id}:0" in refused["message"]
    assert (await queue("GET", f"/task/{task_id}/runs/1/artifacts"))[0] == 404
    response = await queue.raw("GET", f"/task/{task_id}/runs/0/artifacts", args={"continuationToken": "%%%"})
    assert response.code == 400


def test_an_upload_id_is_a_slugid_as_the_client_makes_them():
    assert all(SLUGID.match(_slugid()) for _ in range(2000))


@pytest_twisted.ensureDeferred
async def test_the_answers_validate_against_the_queue_references_schemas(queue):
    task_id = await running_task(queue)
    schemas = CATALOG.service("queue").schemas

    def check(name: str, answer: dict) -> None:
        jsonschema.Draft6Validator(schemas.document(name)).validate(answer)

    code, created = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/o", artifact("object"))
    check("post-artifact-response", created)
    await upload_object(queue, task_id, "public/p")
    run = f"/task/{task_id}/runs/0"
    check("artifact-content-response", (await queue("GET", f"{run}/artifact-content/public/p"))[1])
    check("list-artifacts-response", (await queue("GET", f"/task/{task_id}/runs/0/artifacts"))[1])
    check("artifact-response", (await queue("GET", f"/task/{task_id}/artifact-info/public/p"))[1])
    redirect = await queue.raw("GET", f"/task/{task_id}/artifacts/public/p")
    check("get-artifact-response", json.loads(redirect.body))


@pytest_twisted.ensureDeferred
async def test_a_disabled_issuer_gives_no_artifact_credentials_and_says_so(queue):
    task_id = await running_task(queue)
    code, _ = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/a.txt", artifact("object"))
    assert code == 200  # the issuer client is made on first use
    await queue.master.auth.clients.disable(ISSUER_ID)

    code, body = await queue("POST", f"/task/{task_id}/runs/0/artifacts/public/b.txt", artifact("object"))

    assert code == 503 and ISSUER_ID in body["message"] and "disabled" in body["message"]
