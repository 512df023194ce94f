"""One engine, three faces, end to end: a real master with a builder and a real ``buildslave``
(pool ``ci``), driven by the official ``taskcluster.Queue`` (Hawk, a ``c['clients']`` client)
and buildfarm.common.client: a forced build and a Swarming task made through the tasks API show
up as Queue tasks under the ``queue_task_id`` their own APIs give, resolved ``completed`` on
the slave; they are read-only; ``pendingTasks``, ``listTaskQueues``, ``listProvisioners``,
``listWorkerTypes``, ``listWorkers`` and ``getWorker`` answer in Taskcluster's shapes."""

import pytest
import taskcluster
from taskcluster.exceptions import TaskclusterRestFailure

from buildfarm.common import client
from buildfarm.common.faceids import BUILD_REQUEST, face_id
from fixtures.daemons import Fleet, wait_for

pytestmark = pytest.mark.integration

ADMIN = {"clientId": "faces-admin", "accessToken": "faces-admin-token-0123456789"}
CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}, 'anonymous_scopes': []}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['linux'])]
c['clients'] = [{{'clientId': 'faces-admin', 'accessToken': 'faces-admin-token-0123456789', 'scopes': ['*']}}]
"""
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("faces-e2e")))
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www))
    try:
        fleet.slave(master, "bs1", "pass")
        master.wait_attached("bs1")
        yield master
    finally:
        fleet.stop_all()


def options(farm) -> dict:
    return {"rootUrl": farm.url, "credentials": dict(ADMIN), "maxRetries": 0}


def resolved(queue, task_id: str) -> dict:
    return wait_for(lambda: (s := queue.status(task_id)["status"])["state"] in
                    ("completed", "failed", "exception") and s, f"task {task_id} to resolve", DEADLINE_S)


def test_a_forced_build_is_a_completed_queue_task_run_by_the_slave(farm):
    queue, buildfarm = taskcluster.Queue(options(farm)), client.Buildfarm(options(farm))
    brid = buildfarm.forceBuild("linux", {"reason": "faces e2e"})["buildrequestid"]
    task_id = face_id(BUILD_REQUEST, brid)
    status = resolved(queue, task_id)
    assert (status["state"], status["taskQueueId"], status["schedulerId"]) == (
        "completed", "buildfarm/linux", "buildfarm")
    run = status["runs"][-1]
    assert (run["workerGroup"], run["workerId"], run["reasonResolved"]) == ("buildfarm", "bs1", "completed")
    builds = buildfarm.listBuilds(query={"builder": "linux"})["builds"]
    (build,) = [b for b in builds if b["buildrequestid"] == brid]
    assert buildfarm.build(build["buildid"])["queue_task_id"] == task_id
    task = queue.task(task_id)
    assert task["metadata"]["description"] == "faces e2e"
    assert task["extra"]["buildfarm"]["buildrequestid"] == brid
    group = queue.listTaskGroup(task["taskGroupId"])
    assert [t["status"]["taskId"] for t in group["tasks"]] == [task_id]
    with pytest.raises(TaskclusterRestFailure) as caught:
        queue.cancelTask(task_id)
    assert caught.value.status_code == 409 and f"/api/v1/buildrequests/{brid}/cancel" in str(caught.value)


def test_a_swarming_task_is_a_completed_queue_task_too(farm):
    queue, tasks = taskcluster.Queue(options(farm)), client.Tasks(options(farm))
    created = tasks.newTask({"name": "faces", "priority": 100, "task_slices": [{
        "expiration_secs": 600, "properties": {"command": ["echo", "hi"], "execution_timeout_secs": 60,
                                               "dimensions": [{"key": "pool", "value": "ci"}]}}]})
    task_id = created["task_result"]["queue_task_id"]
    status = resolved(queue, task_id)
    assert (status["state"], status["taskQueueId"], status["schedulerId"]) == ("completed", "swarming/ci",
                                                                               "swarming")
    assert status["runs"][-1]["workerId"] == "bs1"
    assert tasks.taskResult(created["task_id"])["queue_task_id"] == task_id
    assert queue.task(task_id)["extra"]["swarming"]["task_id"] == created["task_id"]


def test_task_queues_pending_counts_and_workers_with_the_official_client(farm):
    queue, buildfarm = taskcluster.Queue(options(farm)), client.Buildfarm(options(farm))
    resolved(queue, face_id(BUILD_REQUEST, buildfarm.forceBuild("linux", {})["buildrequestid"]))
    queues = [q["taskQueueId"] for q in queue.listTaskQueues()["taskQueues"]]
    assert "buildfarm/linux" in queues and "swarming/ci" in queues
    assert queue.getTaskQueue("buildfarm/linux")["taskQueueId"] == "buildfarm/linux"
    assert queue.pendingTasks("buildfarm/linux") == {
        "taskQueueId": "buildfarm/linux", "provisionerId": "buildfarm", "workerType": "linux",
        "pendingTasks": 0}
    assert {p["provisionerId"] for p in queue.listProvisioners()["provisioners"]} >= {"buildfarm", "swarming"}
    assert [t["workerType"] for t in queue.listWorkerTypes("buildfarm")["workerTypes"]] == ["linux"]
    (worker,) = queue.listWorkers("buildfarm", "linux")["workers"]
    assert (worker["workerGroup"], worker["workerId"]) == ("buildfarm", "bs1")
    assert worker["latestTask"]["taskId"].startswith("buildreq")
    detail = queue.getWorker("buildfarm", "linux", "buildfarm", "bs1")
    assert detail["recentTasks"][0] == worker["latestTask"]
    (bot,) = queue.listWorkers("swarming", "ci")["workers"]
    assert bot["workerId"] == "bs1"
