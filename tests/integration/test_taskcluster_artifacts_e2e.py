"""The Queue's artifacts and the Object service of a real master, driven by the official
``taskcluster`` client, sync and aio: a Queue task runs on a real ``buildslave`` (its command
waits for a file this test makes, so its run stays running while artifacts are created), object
artifacts go up with ``taskcluster.upload.uploadFromBuf`` and the credentials createArtifact
answered, and come back with ``taskcluster.download.downloadArtifactToBuf`` (hashes checked by
the client); a public artifact is read by plain HTTP without credentials, a private one is
refused; reference, link and error artifacts; listArtifacts paged."""

import json
import os
import urllib.error
import urllib.request

import pytest
import taskcluster
import taskcluster.aio
import taskcluster.aio.download
import taskcluster.aio.upload
import taskcluster.download
import taskcluster.upload
from taskcluster.exceptions import TaskclusterArtifactError, TaskclusterRestFailure

from fixtures.asyncrun import in_own_thread, run_coroutine
from fixtures.daemons import Fleet, wait_for

pytestmark = pytest.mark.integration

# the sync helpers run an event loop of their own: not in a thread that runs one (asyncrun.py)
upload_from_buf = in_own_thread(taskcluster.upload.uploadFromBuf)
download_artifact_to_buf = in_own_thread(taskcluster.download.downloadArtifactToBuf)

ADMIN = {"clientId": "ci-admin", "accessToken": "ci-admin-token-0123456789"}
READER = {"clientId": "ci-reader", "accessToken": "ci-reader-token-0123456789"}
TASK_QUEUE = "proj-ci/linux"
CONFIG = """\
from buildfarm.master.plugins import slaves, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['builders'] = []
c['clients'] = [{{'clientId': 'ci-admin', 'accessToken': 'ci-admin-token-0123456789',
                  'scopes': ['queue:*', 'object:*']}},
                {{'clientId': 'ci-reader', 'accessToken': 'ci-reader-token-0123456789',
                  'scopes': ['queue:get-artifact:private/shared/*']}}]
c['queue'] = {{'task_queues': {{'proj-ci/linux': {{'pool': 'ci'}}}}}}
"""
DEADLINE_S = 60.0
WAIT_TICKS = 600  # the task's command waits at most this many tenths of a second for its file


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("artifacts-e2e")))
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www))
    try:
        fleet.slave(master, "bs1", "pass")
        master.wait_attached("bs1")
        yield master
    finally:
        fleet.stop_all()


@pytest.fixture
def queue(farm) -> taskcluster.Queue:
    return taskcluster.Queue({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})


@pytest.fixture
def running(farm, queue, tmp_path):
    """A task whose run 0 runs on bs1 until the test ends (its command waits for a file)."""
    release = str(tmp_path / "release")
    script = f'i=0; while [ ! -e "$0" ] && [ $i -lt {WAIT_TICKS} ]; do sleep 0.1; i=$((i+1)); done'
    task_id = taskcluster.slugId()
    queue.createTask(task_id, {
        "taskQueueId": TASK_QUEUE, "projectId": "proj",
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "payload": {"command": [["sh", "-c", script, release]], "maxRunTime": 120},
        "metadata": {"name": "artifacts", "description": "artifacts e2e", "owner": "ci@example.com",
                     "source": "https://example.com/e2e"}})
    wait_for(lambda: queue.status(task_id)["status"]["state"] == "running", f"task {task_id} to run",
             DEADLINE_S)
    yield task_id
    with open(release, "w"):
        pass
    wait_for(lambda: queue.status(task_id)["status"]["state"] == "completed", f"task {task_id} to end",
             DEADLINE_S)


def expires() -> str:
    return taskcluster.stringDate(taskcluster.fromNow("1 day"))


def upload(farm, queue, task_id: str, name: str, data: bytes, content_type: str = "text/plain") -> None:
    created = queue.createArtifact(task_id, 0, name, {"storageType": "object", "expires": expires(),
                                                      "contentType": content_type})
    assert created["storageType"] == "object" and created["name"] == f"t/{task_id}/0/{name}"
    objects = taskcluster.Object({"rootUrl": farm.url, "credentials": created["credentials"],
                                  "maxRetries": 0})
    upload_from_buf(projectId=created["projectId"], name=created["name"],
                                     contentType=content_type, contentLength=len(data),
                                     expires=created["expires"], uploadId=created["uploadId"],
                                     objectService=objects, data=data)
    queue.finishArtifact(task_id, 0, name, {"uploadId": created["uploadId"]})


def plain_get(url: str) -> tuple[int, bytes, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_object_artifacts_round_trip_through_the_official_upload_and_download_helpers(farm, queue, running):
    small, large = b"a small log\n" * 10, os.urandom(3 * 1024 * 1024 + 17)  # inline, then putUrl
    upload(farm, queue, running, "public/small.log", small)
    upload(farm, queue, running, "private/large.bin", large, "application/octet-stream")
    buffer, content_type = download_artifact_to_buf(
        taskId=running, runId=0, name="public/small.log", queueService=queue)
    assert (bytes(buffer), content_type) == (small, "text/plain")
    buffer, _ = download_artifact_to_buf(taskId=running, name="private/large.bin",
                                                           queueService=queue)  # the latest run
    assert bytes(buffer) == large


def test_the_aio_helpers_upload_and_download_too(farm, queue, running):
    data = b"written by the aio client\n" * 1000

    async def round_trip():
        aio_queue = taskcluster.aio.Queue({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})
        created = await aio_queue.createArtifact(running, 0, "public/aio.txt", {
            "storageType": "object", "expires": expires(), "contentType": "text/plain"})
        objects = taskcluster.aio.Object({"rootUrl": farm.url, "credentials": created["credentials"],
                                          "maxRetries": 0})
        await taskcluster.aio.upload.uploadFromBuf(
            projectId=created["projectId"], name=created["name"], contentType="text/plain",
            contentLength=len(data), expires=created["expires"], uploadId=created["uploadId"],
            objectService=objects, data=data)
        await aio_queue.finishArtifact(running, 0, "public/aio.txt", {"uploadId": created["uploadId"]})
        return await taskcluster.aio.download.downloadArtifactToBuf(
            taskId=running, runId=0, name="public/aio.txt", queueService=aio_queue)

    buffer, content_type = run_coroutine(round_trip)
    assert (bytes(buffer), content_type) == (data, "text/plain")


def test_a_public_artifact_is_read_by_plain_http_and_a_private_one_is_refused(farm, queue, running):
    upload(farm, queue, running, "public/readme.txt", b"read me\n")
    upload(farm, queue, running, "private/secret.txt", b"secret\n")
    base = f"{farm.url}/api/queue/v1/task/{running}"
    assert plain_get(f"{base}/runs/0/artifacts/public/readme.txt")[:2] == (200, b"read me\n")  # 303 followed
    code, body, _ = plain_get(f"{base}/runs/0/artifacts/private/secret.txt")
    assert code == 401 and "queue:get-artifact:private/secret.txt" in json.loads(body)["message"]
    reader = taskcluster.Queue({"rootUrl": farm.url, "credentials": READER, "maxRetries": 0})
    with pytest.raises(TaskclusterRestFailure) as caught:
        reader.artifact(running, 0, "private/secret.txt")
    assert caught.value.status_code == 403
    assert "queue:get-artifact:private/secret.txt" in json.dumps(caught.value.body["unsatisfied"])
    # the download credentials are for that one object: another object of the task is refused
    content = queue.artifact(running, 0, "public/readme.txt")
    objects = taskcluster.Object({"rootUrl": farm.url, "credentials": content["credentials"],
                                  "maxRetries": 0})
    with pytest.raises(TaskclusterRestFailure) as caught:
        objects.startDownload(f"t/{running}/0/private/secret.txt",
                              {"acceptDownloadMethods": {"getUrl": True}})
    assert caught.value.status_code == 403


def test_reference_link_and_error_artifacts(farm, queue, running):
    queue.createArtifact(running, 0, "public/docs", {"storageType": "reference", "expires": expires(),
                                                     "url": f"{farm.url}/api/queue/v1/ping"})
    queue.createArtifact(running, 0, "public/latest-docs", {"storageType": "link", "expires": expires(),
                                                            "artifact": "public/docs"})
    queue.createArtifact(running, 0, "public/missing.tar", {
        "storageType": "error", "expires": expires(), "reason": "file-missing-on-worker",
        "message": "out.tar was not made"})
    base = f"{farm.url}/api/queue/v1/task/{running}/runs/0/artifacts"
    for name in ("public/docs", "public/latest-docs"):
        code, body, _ = plain_get(f"{base}/{name}")  # 303 to the reference, followed
        assert code == 200 and json.loads(body)["alive"] is True
    code, body, _ = plain_get(f"{base}/public/missing.tar")
    assert code == 424 and json.loads(body) == {"reason": "file-missing-on-worker",
                                                "message": "out.tar was not made"}
    with pytest.raises(TaskclusterArtifactError):
        download_artifact_to_buf(taskId=running, runId=0, name="public/missing.tar",
                                                   queueService=queue)


def test_list_artifacts_pages_with_the_continuation_token(queue, running):
    names = sorted(f"public/list/{i}" for i in range(7))
    for name in names:
        queue.createArtifact(running, 0, name, {"storageType": "reference", "expires": expires(),
                                                "url": "https://example.com/"})
    pages, query = [], {"limit": 3}
    while True:
        page = queue.listArtifacts(running, 0, query=query)
        pages.append([a["name"] for a in page["artifacts"]])
        if "continuationToken" not in page:
            break
        query = {"limit": 3, "continuationToken": page["continuationToken"]}
    assert [len(p) for p in pages] == [3, 3, 1] and sum(pages, []) == names
    assert [a["name"] for a in queue.listLatestArtifacts(running)["artifacts"]] == names


def test_a_pb_payload_mounts_from_the_cas_and_its_artifacts_are_collected_after_the_run(farm, queue):
    # the mount's content: an object uploaded to the Object service directly (a CAS item by its sha256)
    objects = taskcluster.Object({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})
    data = b"mounted input\n"
    upload_from_buf(projectId="proj", name="inputs/input.txt", contentType="text/plain",
                                     contentLength=len(data), expires=expires(), objectService=objects,
                                     data=data)
    sha256 = objects.object("inputs/input.txt")["hashes"]["sha256"]
    task_id = taskcluster.slugId()
    script = ("mkdir -p out/logs && tr a-z A-Z < in/input.txt > out/upper.txt && "
              "echo one > out/logs/a.log && echo two > out/logs/b.log")
    queue.createTask(task_id, {
        "taskQueueId": TASK_QUEUE, "projectId": "proj",
        "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
        "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "payload": {"command": [["sh", "-c", script]], "maxRunTime": 60,
                    "mounts": [{"content": {"sha256": sha256}, "file": "in/input.txt"}],
                    "artifacts": [{"type": "file", "path": "out/upper.txt", "name": "public/upper.txt"},
                                  {"type": "directory", "path": "out/logs", "name": "public/logs"},
                                  {"type": "file", "path": "out/never.txt", "name": "public/never.txt"}]},
        "metadata": {"name": "files", "description": "mounts and artifacts", "owner": "ci@example.com",
                     "source": "https://example.com/e2e"}})
    status = wait_for(lambda: (s := queue.status(task_id)["status"])["state"] in
                      ("completed", "failed", "exception") and s, f"task {task_id} to resolve", DEADLINE_S)
    assert status["state"] == "completed", status
    listed = {a["name"]: a for a in queue.listArtifacts(task_id, 0)["artifacts"]}
    assert sorted(listed) == ["public/logs/a.log", "public/logs/b.log", "public/never.txt",
                              "public/upper.txt"]
    assert listed["public/never.txt"]["storageType"] == "error"
    buffer, _ = download_artifact_to_buf(taskId=task_id, runId=0, name="public/upper.txt",
                                                           queueService=queue)
    assert bytes(buffer) == b"MOUNTED INPUT\n"
    latest = f"{farm.url}/api/queue/v1/task/{task_id}/artifacts"
    assert plain_get(f"{latest}/public/logs/b.log")[:2] == (200, b"two\n")
    with pytest.raises(TaskclusterArtifactError):
        download_artifact_to_buf(taskId=task_id, name="public/never.txt",
                                                   queueService=queue)


def test_the_object_services_download_url_signed_with_a_bewit_serves_a_plain_http_client(farm):
    objects = taskcluster.Object({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})
    data = b"for curl\n"
    upload_from_buf(projectId="proj", name="signed/x.txt", contentType="text/plain",
                                     contentLength=len(data), expires=expires(), objectService=objects,
                                     data=data)
    assert plain_get(objects.buildSignedUrl("download", "signed/x.txt"))[:2] == (200, data)
    code, body, _ = plain_get(f"{farm.url}/api/object/v1/download/signed/x.txt")  # unsigned
    assert code == 401 and "object:download:signed/x.txt" in json.loads(body)["message"]
