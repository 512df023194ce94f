"""HTTP workers on the Queue of a real master, driven by the official ``taskcluster`` client, sync
and aio: a worker loop that creates tasks, claimWork's them, reclaimTask's once and reports
completed, failed and exception (``worker-shutdown``, then the retry run), each call after the
claim signed with the claim's own temporary credentials; a report of a run that is no longer the
current one is a 409; two workers racing for one task get it once; and the issue's worker loop
whole: claimWork, reclaimTask, an artifact uploaded with the claim's credentials through the
official upload helper, reportCompleted, then the artifact downloaded by a reader."""

import threading

import pytest
import taskcluster
import taskcluster.aio
import taskcluster.download
import taskcluster.upload
from taskcluster.exceptions import TaskclusterRestFailure

from fixtures.asyncrun import in_own_thread, run_coroutine
from fixtures.daemons import Fleet

pytestmark = pytest.mark.integration

# the sync helpers run an event loop of their own: not in a thread that runs one (asyncrun.py)
upload_from_buf = in_own_thread(taskcluster.upload.uploadFromBuf)
download_artifact_to_buf = in_own_thread(taskcluster.download.downloadArtifactToBuf)

ADMIN = {"clientId": "ci-admin", "accessToken": "ci-admin-token-0123456789"}
WORKER = {"clientId": "ci-worker", "accessToken": "ci-worker-token-0123456789"}
TASK_QUEUE = "proj-http/docker"
CONFIG = """\
from buildfarm.master.plugins import slaves, util
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['builders'] = []
c['clients'] = [
    {{'clientId': 'ci-admin', 'accessToken': 'ci-admin-token-0123456789', 'scopes': ['queue:*']}},
    {{'clientId': 'ci-worker', 'accessToken': 'ci-worker-token-0123456789',
      'scopes': ['queue:claim-work:proj-http/*', 'queue:worker-id:e2e/*']}},
]
c['queue'] = {{'claim_timeout_secs': 60}}
"""


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("workers-e2e")))
    try:
        yield fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www))
    finally:
        fleet.stop_all()


def client(farm, credentials: dict) -> taskcluster.Queue:
    return taskcluster.Queue({"rootUrl": farm.url, "credentials": credentials, "maxRetries": 0})


def definition(**changes) -> dict:
    body = {"taskQueueId": TASK_QUEUE, "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
            "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")), "retries": 1,
            "payload": {"image": "alpine", "command": ["true"]},
            "metadata": {"name": "e2e", "description": "workers e2e", "owner": "ci@example.com",
                         "source": "https://example.com/e2e"}}
    body.update(changes)
    return body


def claim(farm, worker_id: str = "w1") -> dict:
    (claimed,) = client(farm, WORKER).claimWork(TASK_QUEUE, {"workerGroup": "e2e", "workerId": worker_id,
                                                             "tasks": 1})["tasks"]
    return claimed


def test_a_worker_loop_claims_reclaims_and_reports_with_each_claims_credentials(farm):
    admin = client(farm, ADMIN)
    completed, failed, shutdown = (taskcluster.slugId() for _ in range(3))
    for task_id, priority in ((completed, "high"), (failed, "medium"), (shutdown, "low")):
        admin.createTask(task_id, definition(priority=priority))

    first = claim(farm)
    assert (first["status"]["taskId"], first["runId"], first["workerId"]) == (completed, 0, "w1")
    own = client(farm, first["credentials"])
    reclaimed = own.reclaimTask(completed, "0")
    assert reclaimed["takenUntil"] >= first["takenUntil"]
    status = client(farm, reclaimed["credentials"]).reportCompleted(completed, "0")["status"]
    assert (status["state"], status["runs"][0]["reasonResolved"]) == ("completed", "completed")

    second = claim(farm)
    assert second["status"]["taskId"] == failed
    status = client(farm, second["credentials"]).reportFailed(failed, "0")["status"]
    assert status["state"] == "failed"

    third = claim(farm)
    assert third["status"]["taskId"] == shutdown
    status = client(farm, third["credentials"]).reportException(shutdown, "0", {"reason": "worker-shutdown"})
    runs = status["status"]["runs"]
    assert [(r["state"], r.get("reasonCreated")) for r in runs] == [("exception", "scheduled"),
                                                                    ("pending", "retry")]
    retry = claim(farm, "w2")
    assert (retry["status"]["taskId"], retry["runId"], retry["workerId"]) == (shutdown, 1, "w2")
    # run 0's credentials still sign, but run 0 is no longer the current running run
    with pytest.raises(TaskclusterRestFailure) as caught:
        client(farm, third["credentials"]).reportCompleted(shutdown, "0")
    assert caught.value.status_code == 409 and caught.value.body["code"] == "RequestConflict"
    # and they hold no scope on run 1
    with pytest.raises(TaskclusterRestFailure) as caught:
        client(farm, third["credentials"]).reportCompleted(shutdown, "1")
    assert caught.value.status_code == 403
    assert client(farm, retry["credentials"]).reportCompleted(shutdown, "1")["status"]["state"] == "completed"


def test_two_workers_racing_for_one_task_get_it_once(farm):
    admin = client(farm, ADMIN)
    first = taskcluster.slugId()
    admin.createTask(first, definition())
    claims: dict[str, dict] = {}

    def work(worker_id: str) -> None:
        claims[worker_id] = claim(farm, worker_id)

    racers = [threading.Thread(target=work, args=(f"racer{i}",)) for i in range(2)]
    for racer in racers:
        racer.start()
    # one of them got the task; the other waits in its long poll until there is another
    second = taskcluster.slugId()
    admin.createTask(second, definition())
    for racer in racers:
        racer.join(30)
    assert sorted(c["status"]["taskId"] for c in claims.values()) == sorted([first, second])
    for claimed in claims.values():
        client(farm, claimed["credentials"]).reportCompleted(claimed["status"]["taskId"], "0")


def test_the_aio_client_claims_reclaims_and_completes(farm):
    task_id = taskcluster.slugId()
    client(farm, ADMIN).createTask(task_id, definition(priority="highest"))

    async def work() -> dict:
        options = {"rootUrl": farm.url, "maxRetries": 0}
        async with taskcluster.aio.createSession() as session:
            worker = taskcluster.aio.Queue({**options, "credentials": WORKER}, session=session)
            found = await worker.claimWork(TASK_QUEUE, {"workerGroup": "e2e", "workerId": "aio", "tasks": 1})
            (claimed,) = found["tasks"]
            own = taskcluster.aio.Queue({**options, "credentials": claimed["credentials"]}, session=session)
            reclaimed = await own.reclaimTask(task_id, str(claimed["runId"]))
            mine = taskcluster.aio.Queue({**options, "credentials": reclaimed["credentials"]},
                                         session=session)
            return await mine.reportCompleted(task_id, str(claimed["runId"]))

    status = run_coroutine(work)["status"]
    assert (status["taskId"], status["state"], status["runs"][0]["workerId"]) == (task_id, "completed", "aio")


def test_a_worker_loop_uploads_an_artifact_that_a_reader_then_downloads(farm):
    task_id = taskcluster.slugId()
    client(farm, ADMIN).createTask(task_id, definition(priority="very-high"))
    claimed = claim(farm, "uploader")
    run_id = str(claimed["runId"])
    assert claimed["status"]["taskId"] == task_id
    worker = client(farm, client(farm, claimed["credentials"]).reclaimTask(task_id, run_id)["credentials"])
    log = b"".join(b"line %d of the build log\n" % n for n in range(2000))
    expires = taskcluster.stringDate(taskcluster.fromNow("1 day"))

    created = worker.createArtifact(task_id, run_id, "public/logs/live.log", {
        "storageType": "object", "expires": expires, "contentType": "text/plain"})
    upload_from_buf(
        projectId=created["projectId"], name=created["name"], contentType="text/plain",
        contentLength=len(log), expires=created["expires"], uploadId=created["uploadId"],
        objectService=taskcluster.Object({"rootUrl": farm.url, "credentials": created["credentials"],
                                          "maxRetries": 0}),
        data=log)
    worker.finishArtifact(task_id, run_id, "public/logs/live.log", {"uploadId": created["uploadId"]})
    assert worker.reportCompleted(task_id, run_id)["status"]["state"] == "completed"

    reader = taskcluster.Queue({"rootUrl": farm.url, "maxRetries": 0})  # public/: no credentials
    data, content_type = download_artifact_to_buf(
        taskId=task_id, name="public/logs/live.log", queueService=reader)
    assert (data, content_type) == (log, "text/plain")
    listed = client(farm, ADMIN).listLatestArtifacts(task_id)["artifacts"]  # listing needs a scope
    assert [(a["name"], a["storageType"]) for a in listed] == [("public/logs/live.log", "object")]
