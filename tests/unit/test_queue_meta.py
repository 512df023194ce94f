"""The Queue's task-queue metadata (master/queue/metaapi.py): task queues from the builders,
c['queue'], the bots' pools and the Queue's own tasks; pendingTasks counting each kind; the
provisioners and worker types they make; the PB slaves as workers, from the database; paging
with continuationToken; Taskcluster's scopes.  On a real in-memory master, SQLite and PostgreSQL."""

import json

import jsonschema
import pytest_twisted
import taskcluster

from buildfarm.common.faceids import BUILD_REQUEST, SWARMING, face_id
from buildfarm.common.results import SUCCESS
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.store import QueueStore
from buildfarm.master.tasks import records
from buildfarm.master.tasks.model import request_from_json
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, on_database, start_memory_master, with_fast_password_checks

NOW = 1_800_000_000.0
QUEUE = "/api/queue/v1"



ADMIN = basic("admin", "adm1n")
READER = basic("reader", "r3ad")
NO_ANONYMOUS = "c['www'] = {'port': 8010, 'anonymous_scopes': []}"
CFG = MASTER_CFG.replace("c['www'] = {'port': 8010}", NO_ANONYMOUS) + """\
c['queue'] = {'task_queues': {'proj-ci/linux': {'pool': 'ci'}}}
c['users'] += [util.User('reader', password='r3ad', scopes=['builds:read'])]
"""
ALL_QUEUES = ["buildfarm/linux", "other/thing", "proj-ci/linux", "swarming/ci"]


@pytest_twisted.async_yield_fixture
async def queue(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW)
    with_fast_password_checks(master)
    resource = master.www.make_site().resource

    async def call(method: str, path: str, body: dict | None = None, headers=ADMIN, **args):
        response = await render(resource, method, QUEUE + path, args=args,
                                body=b"" if body is None else json.dumps(body).encode(),
                                headers={**headers, "content-type": "application/json"})
        return response.code, json.loads(response.body)

    call.master = master
    await populate(call)
    yield call
    await master.stopService()


def definition(task_queue_id: str) -> dict:
    return {"taskQueueId": task_queue_id, "created": iso(NOW), "deadline": iso(NOW + 3600),
            "payload": {"command": [["true"]], "maxRunTime": 60},
            "metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://x/"}}


async def populate(call) -> None:
    """Two build requests of ``linux`` (the second built on bs1 twice, then waiting), one Queue
    task in ``proj-ci/linux`` (running on bs2) and one in ``other/thing`` (pending), a bot bs1 of
    pool ``ci`` that ran one try of a Swarming task, and a second, pending, Swarming task."""
    master = call.master
    linux = master.botmaster.builders["linux"].builderid
    call.brids = [(await master.db.buildsets.add("force", "r", {}, [linux], NOW))[1][linux] for _ in range(2)]
    bs1 = await master.db.slaves.find_or_create("bs1")
    for start in (NOW + 10, NOW + 20):
        buildid, _ = await master.db.builds.add(linux, call.brids[1], bs1, master.masterid, start)
        await master.db.builds.finish(buildid, SUCCESS, start + 5, "done")
    call.queue_task, other = taskcluster.slugId(), taskcluster.slugId()
    assert (await call("PUT", f"/task/{call.queue_task}", definition("proj-ci/linux")))[0] == 200
    assert (await call("PUT", f"/task/{other}", definition("other/thing")))[0] == 200
    await QueueStore(master.db).started(call.queue_task, 0, "buildfarm", "bs2", NOW + 30)
    await master.db.tasks.set_bot("bs1", {"pool": ["ci"]}, NOW - 100)
    request = request_from_json({"name": "s", "priority": 100, "task_slices": [{"expiration_secs": 600,
                                 "properties": {"command": ["true"], "execution_timeout_secs": 60,
                                                "dimensions": [{"key": "pool", "value": "ci"}]}}]}, 1)
    for request_id in (0x111111, 0x222221):
        await master.db.tasks.create(records.new_task(request, request_id, NOW))
    try_number = await master.db.tasks.start_run(0x111111, "bs1", NOW + 40)
    await master.db.tasks.finish_run(0x111111, try_number, "COMPLETED", NOW + 41, exit_code=0)


@pytest_twisted.ensureDeferred
async def test_task_queues_come_from_builders_config_pools_and_tasks_in_pages(queue):
    code, listed = await queue("GET", "/task-queues")
    assert code == 200 and [q["taskQueueId"] for q in listed["taskQueues"]] == ALL_QUEUES
    assert "continuationToken" not in listed
    other = listed["taskQueues"][1]
    assert other == {"taskQueueId": "other/thing", "stability": "experimental",
                     "description": "Queue tasks (no c['queue'] entry runs them)",
                     "expires": iso(NOW + 5 * 86400), "lastDateActive": iso(NOW)}
    seen, query = [], {"limit": "3"}
    while True:
        _, page = await queue("GET", "/task-queues", **query)
        seen += [q["taskQueueId"] for q in page["taskQueues"]]
        if "continuationToken" not in page:
            break
        query = {"limit": "3", "continuationToken": page["continuationToken"]}
    assert seen == ALL_QUEUES
    code, one = await queue("GET", "/task-queues/swarming%2Fci")
    assert code == 200 and (one["taskQueueId"], one["lastDateActive"]) == ("swarming/ci", iso(NOW - 100))
    assert (await queue("GET", "/task-queues/no%2Fsuch"))[0] == 404
    assert (await queue("GET", "/task-queues/no-slash"))[0] == 400


@pytest_twisted.ensureDeferred
async def test_pending_tasks_counts_queue_tasks_build_requests_and_swarming_tasks(queue):
    expected = {"buildfarm/linux": 2, "proj-ci/linux": 0, "other/thing": 1, "swarming/ci": 1,
                "unused/queue": 0}
    for task_queue_id, count in expected.items():
        code, answer = await queue("GET", f"/pending/{task_queue_id.replace('/', '%2F')}")
        provisioner, worker_type = task_queue_id.split("/")
        assert code == 200 and answer == {"taskQueueId": task_queue_id, "provisionerId": provisioner,
                                          "workerType": worker_type, "pendingTasks": count}, task_queue_id
    code, body = await queue("GET", "/pending/nope")
    assert code == 400 and "taskQueueId" in body["message"]


@pytest_twisted.ensureDeferred
async def test_provisioners_and_worker_types_are_the_halves_of_the_task_queues(queue):
    code, listed = await queue("GET", "/provisioners")
    assert code == 200
    provisioners = [p["provisionerId"] for p in listed["provisioners"]]
    assert provisioners == ["buildfarm", "other", "proj-ci", "swarming"]
    code, one = await queue("GET", "/provisioners/buildfarm")
    assert code == 200 and one["actions"] == [] and "builder" in one["description"]
    assert (await queue("GET", "/provisioners/nobody"))[0] == 404
    code, types = await queue("GET", "/provisioners/buildfarm/worker-types")
    assert [t["workerType"] for t in types["workerTypes"]] == ["linux"]
    code, one = await queue("GET", "/provisioners/swarming/worker-types/ci")
    assert code == 200 and (one["provisionerId"], one["workerType"], one["actions"]) == ("swarming", "ci", [])
    assert (await queue("GET", "/provisioners/swarming/worker-types/gpu"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_the_workers_of_a_builder_are_the_slaves_that_built_for_it(queue):
    code, listed = await queue("GET", "/provisioners/buildfarm/worker-types/linux/workers")
    assert code == 200
    latest = {"taskId": face_id(BUILD_REQUEST, queue.brids[1]), "runId": 1}
    assert listed["workers"] == [{"workerGroup": "buildfarm", "workerId": "bs1", "firstClaim": iso(NOW + 10),
                                  "lastDateActive": iso(NOW + 25), "latestTask": latest}]
    code, worker = await queue("GET", "/provisioners/buildfarm/worker-types/linux/workers/buildfarm/bs1")
    assert code == 200 and worker["recentTasks"] == [
        {"taskId": face_id(BUILD_REQUEST, queue.brids[1]), "runId": 1},
        {"taskId": face_id(BUILD_REQUEST, queue.brids[1]), "runId": 0}]
    assert (worker["expires"], worker["actions"], worker["taskQueueId"]) == (iso(NOW + 25 + 5 * 86400), [],
                                                                             "buildfarm/linux")
    assert (await queue("GET", "/provisioners/buildfarm/worker-types/linux/workers/buildfarm/bs2"))[0] == 404
    assert (await queue("GET", "/provisioners/buildfarm/worker-types/linux/workers/other/bs1"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_the_workers_of_a_queue_and_of_a_pool(queue):
    _, listed = await queue("GET", "/provisioners/proj-ci/worker-types/linux/workers")
    assert listed["workers"] == [{"workerGroup": "buildfarm", "workerId": "bs2", "firstClaim": iso(NOW + 30),
                                  "lastDateActive": iso(NOW + 30),
                                  "latestTask": {"taskId": queue.queue_task, "runId": 0}}]
    _, listed = await queue("GET", "/provisioners/swarming/worker-types/ci/workers")
    assert listed["workers"] == [{"workerGroup": "buildfarm", "workerId": "bs1", "firstClaim": iso(NOW - 100),
                                  "lastDateActive": iso(NOW - 100),
                                  "latestTask": {"taskId": face_id(SWARMING, 0x111111), "runId": 0}}]
    _, listed = await queue("GET", "/provisioners/other/worker-types/thing/workers")
    assert listed == {"workers": []}


@pytest_twisted.ensureDeferred
async def test_the_metadata_calls_need_taskclusters_scopes(queue):
    code, body = await queue("GET", "/task-queues", headers=READER)
    assert code == 403 and body["unsatisfied"] == "queue:list-task-queues"
    code, body = await queue("GET", "/provisioners/buildfarm/worker-types/linux/workers", headers=READER)
    assert code == 403 and body["unsatisfied"] == "queue:list-workers:buildfarm/linux"
    code, body = await queue("GET", "/pending/buildfarm%2Flinux", headers={})
    assert code == 401 and "queue:pending-count:buildfarm/linux" in body["message"]


@pytest_twisted.ensureDeferred
async def test_each_answer_validates_against_its_output_schema_and_taskclusters_required_fields(queue):
    face = face_id(BUILD_REQUEST, queue.brids[1])
    calls = [("/pending/buildfarm%2Flinux", ref.PENDING_TASKS), ("/task-queues", ref.LIST_TASK_QUEUES),
             ("/task-queues/proj-ci%2Flinux", ref.TASK_QUEUE), ("/provisioners", ref.LIST_PROVISIONERS),
             ("/provisioners/swarming", ref.PROVISIONER),
             ("/provisioners/buildfarm/worker-types", ref.LIST_WORKER_TYPES),
             ("/provisioners/buildfarm/worker-types/linux", ref.WORKER_TYPE),
             ("/provisioners/buildfarm/worker-types/linux/workers", ref.LIST_WORKERS),
             ("/provisioners/buildfarm/worker-types/linux/workers/buildfarm/bs1", ref.WORKER),
             (f"/task/{face}", ref.TASK), (f"/task/{face}/status", ref.STATUS),
             (f"/task/{face_id(SWARMING, 0x111111)}/status", ref.STATUS)]
    for path, schema in calls:
        code, answer = await queue("GET", path)
        assert code == 200, path
        jsonschema.validate(answer, ref.schemas.schemas[schema])
