"""One engine, three faces (master/queue/faces.py): build requests and Swarming tasks answer the
Queue's ``task``, ``status``, ``listTaskGroup`` and ``getTaskGroup`` in Taskcluster's shapes, under
taskIds made from their ids (buildfarm.common.faceids), read-only, behind their own surface's
read scope; the build JSON and the Swarming result carry that taskId.  On a real in-memory master,
SQLite and PostgreSQL."""

import json

import pytest
import pytest_twisted
import taskcluster

from buildfarm.common.faceids import BUILD_REQUEST, BUILDSET, SWARMING, face_id, parse_face_id
from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.queue.faces import builder_queue_id, pool_queue_id, queue_name
from buildfarm.master.queue.model import SLUGID, TASK_QUEUE_ID
from buildfarm.master.tasks import records
from buildfarm.master.tasks.model import request_from_json
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, on_database, start_memory_master, with_fast_password_checks

NOW = 1_800_000_000.0
QUEUE = "/api/queue/v1"



ADMIN = basic("admin", "adm1n")
QUEUER = basic("queuer", "qu3ue")
NO_ANONYMOUS = "c['www'] = {'port': 8010, 'anonymous_scopes': []}"
CFG = MASTER_CFG.replace("c['www'] = {'port': 8010}", NO_ANONYMOUS) + """\
c['builders'] += [util.BuilderConfig(name=n, slavenames=['bs1'], factory=util.BuildFactory())
                  for n in ('mac', 'win')]
c['users'] += [util.User('queuer', password='qu3ue', scopes=['queue:*'])]
"""


@pytest_twisted.async_yield_fixture
async def site(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url, CFG), now=NOW)
    with_fast_password_checks(master)
    resource = master.www.make_site().resource

    async def call(method: str, path: str, body: dict | None = None, headers=ADMIN, **args):
        response = await render(resource, method, path, args=args,
                                body=b"" if body is None else json.dumps(body).encode(),
                                headers={**headers, "content-type": "application/json"})
        return response.code, json.loads(response.body)

    call.master = master
    yield call
    await master.stopService()


async def build_request(master, builders=("linux",), reason="because", properties=None) -> list[int]:
    """A buildset with one request per builder: their ids."""
    ids = [master.botmaster.builders[b].builderid for b in builders]
    _, brids = await master.db.buildsets.add("force", reason, properties or {}, ids, NOW)
    return [brids[i] for i in ids]


async def build(master, brid: int, slave: str, start: float, results: int | None = None,
                end: float | None = None) -> int:
    """A build of request ``brid`` on ``slave`` from ``start``; finished with ``results`` at ``end``."""
    row = await master.db.buildrequests.get(brid)
    slaveid = await master.db.slaves.find_or_create(slave)
    buildid, _ = await master.db.builds.add(row["builderid"], brid, slaveid, master.masterid, start)
    if results is not None:
        await master.db.builds.finish(buildid, results, end, "done")
    return buildid


async def swarming_task(master, request_id: int, pool: str = "ci", **fields) -> None:
    request = request_from_json({"name": "hello", "user": "ann", "priority": 100, "tags": ["purpose:t"],
                                 "task_slices": [{"expiration_secs": 600, "properties": {
                                     "command": ["echo", "hi"], "execution_timeout_secs": 60,
                                     "dimensions": [{"key": "pool", "value": pool}]}}]}, 1)
    await master.db.tasks.create(records.new_task(request, request_id, NOW, fields))


# -- the ids ---------------------------------------------------------------------------------


def test_face_ids_are_slugids_that_read_back_and_say_their_kind():
    for kind in (BUILD_REQUEST, BUILDSET, SWARMING):
        for number in (0, 1, 42, 2**63 - 1, 2**70 - 1):
            slug = face_id(kind, number)
            assert SLUGID.match(slug) and slug.startswith(kind)
            assert parse_face_id(slug) == (kind, number)
    assert face_id(BUILD_REQUEST, 42) == "buildreqQACAAAAAAAAAKg"  # the format docs/taskcluster.md shows
    assert [parse_face_id(taskcluster.slugId()) for _ in range(200)] == [None] * 200
    assert parse_face_id("buildreq") is None and parse_face_id(face_id(SWARMING, 5)[:-1] + "R") is None
    with pytest.raises(ValueError):
        face_id(BUILD_REQUEST, -1)


def test_builder_and_pool_names_become_task_queue_ids():
    assert builder_queue_id("linux") == "buildfarm/linux" and pool_queue_id("ci") == "swarming/ci"
    assert pool_queue_id("") == "swarming/none"
    odd = queue_name("Linux x86 (release) tests on the big machines")
    assert len(odd) <= 38 and TASK_QUEUE_ID.match(f"buildfarm/{odd}")
    assert odd != queue_name("Linux x86 (release) tests on the big machines 2")


# -- build requests --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_build_request_is_a_task_with_a_run_per_build_and_the_builds_json_names_it(site):
    master = site.master
    [brid] = await build_request(master, properties={"owner": ["ann", "Force"]})
    first = await build(master, brid, "bs1", NOW + 5, RETRY, NOW + 9)
    second = await build(master, brid, "bs2", NOW + 10, SUCCESS, NOW + 20)
    await master.db.buildrequests.complete(brid, SUCCESS, NOW + 20)
    task_id = face_id(BUILD_REQUEST, brid)

    code, answer = await site("GET", f"{QUEUE}/task/{task_id}/status")
    assert code == 200
    status = answer["status"]
    assert (status["taskId"], status["state"], status["taskQueueId"], status["schedulerId"]) == (
        task_id, "completed", "buildfarm/linux", "buildfarm")
    assert status["taskGroupId"] == (await site("GET", f"{QUEUE}/task/{task_id}"))[1]["taskGroupId"]
    assert parse_face_id(status["taskGroupId"])[0] == BUILDSET
    assert status["runs"] == [
        {"runId": 0, "state": "exception", "reasonCreated": "scheduled", "reasonResolved": "worker-shutdown",
         "scheduled": iso(NOW), "started": iso(NOW + 5), "resolved": iso(NOW + 9), "workerGroup": "buildfarm",
         "workerId": "bs1"},
        {"runId": 1, "state": "completed", "reasonCreated": "retry", "reasonResolved": "completed",
         "scheduled": iso(NOW + 9), "started": iso(NOW + 10), "resolved": iso(NOW + 20),
         "workerGroup": "buildfarm", "workerId": "bs2"}]

    code, task = await site("GET", f"{QUEUE}/task/{task_id}")
    assert code == 200
    assert (task["provisionerId"], task["workerType"], task["created"]) == ("buildfarm", "linux", iso(NOW))
    assert task["metadata"] == {"name": f"linux build request {brid}", "description": "because",
                                "owner": "ann", "source": f"/api/v1/buildrequests/{brid}"}
    assert task["extra"]["buildfarm"]["buildids"] == [first, second]

    for buildid in (first, second):
        code, shown = await site("GET", f"/api/v1/builds/{buildid}")
        assert code == 200 and shown["queue_task_id"] == task_id
    code, listed = await site("GET", "/api/v1/builds")
    assert {b["queue_task_id"] for b in listed["builds"]} == {task_id}


@pytest_twisted.ensureDeferred
async def test_a_waiting_request_is_pending_and_a_running_build_is_a_running_run(site):
    master = site.master
    [brid] = await build_request(master)
    task_id = face_id(BUILD_REQUEST, brid)
    _, answer = await site("GET", f"{QUEUE}/task/{task_id}/status")
    assert answer["status"]["state"] == "pending"
    assert answer["status"]["runs"] == [{"runId": 0, "state": "pending", "reasonCreated": "scheduled",
                                         "scheduled": iso(NOW)}]
    await build(master, brid, "bs1", NOW + 3)
    _, answer = await site("GET", f"{QUEUE}/task/{task_id}/status")
    run = answer["status"]["runs"][0]
    assert (answer["status"]["state"], run["state"], run["workerId"], run["started"]) == (
        "running", "running", "bs1", iso(NOW + 3))


@pytest.mark.parametrize("results, state, reason", [
    (FAILURE, "failed", "failed"), (WARNINGS, "completed", "completed"),
    (EXCEPTION, "exception", "internal-error"), (CANCELLED, "exception", "canceled")])
@pytest_twisted.ensureDeferred
async def test_build_results_are_taskcluster_resolutions(site, results, state, reason):
    master = site.master
    [brid] = await build_request(master)
    await build(master, brid, "bs1", NOW + 1, results, NOW + 2)
    await master.db.buildrequests.complete(brid, results, NOW + 2)
    _, answer = await site("GET", f"{QUEUE}/task/{face_id(BUILD_REQUEST, brid)}/status")
    assert (answer["status"]["state"], answer["status"]["runs"][-1]["reasonResolved"]) == (state, reason)


@pytest_twisted.ensureDeferred
async def test_a_request_canceled_before_any_build_resolves_canceled(site):
    master = site.master
    [brid] = await build_request(master)
    assert await master.db.buildrequests.cancel(brid, NOW + 4)
    _, answer = await site("GET", f"{QUEUE}/task/{face_id(BUILD_REQUEST, brid)}/status")
    assert answer["status"]["runs"] == [{"runId": 0, "state": "exception", "reasonCreated": "scheduled",
                                         "reasonResolved": "canceled", "scheduled": iso(NOW),
                                         "resolved": iso(NOW + 4)}]


@pytest_twisted.ensureDeferred
async def test_a_buildset_is_a_task_group_listed_in_pages(site):
    brids = await build_request(site.master, ("linux", "mac", "win"))
    group = face_id(BUILDSET, (await site.master.db.buildrequests.get(brids[0]))["buildsetid"])
    code, page = await site("GET", f"{QUEUE}/task-group/{group}/list", limit="2")
    assert code == 200 and page["taskGroupId"] == group
    assert [t["status"]["taskId"] for t in page["tasks"]] == [face_id(BUILD_REQUEST, b) for b in brids[:2]]
    assert [t["task"]["workerType"] for t in page["tasks"]] == ["linux", "mac"]
    code, rest = await site("GET", f"{QUEUE}/task-group/{group}/list", limit="2",
                            continuationToken=page["continuationToken"])
    assert [t["status"]["taskId"] for t in rest["tasks"]] == [face_id(BUILD_REQUEST, brids[2])]
    assert "continuationToken" not in rest
    code, info = await site("GET", f"{QUEUE}/task-group/{group}")
    assert code == 200 and (info["taskGroupId"], info["schedulerId"]) == (group, "buildfarm")
    code, body = await site("GET", f"{QUEUE}/task-group/{face_id(BUILDSET, 999)}/list")
    assert code == 404 and body["code"] == "ResourceNotFound"


# -- Swarming tasks --------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_swarming_task_is_a_task_with_a_run_per_try_and_its_result_names_it(site):
    master, request_id = site.master, 0x123451
    await swarming_task(master, request_id)
    task_id = face_id(SWARMING, request_id)
    _, answer = await site("GET", f"{QUEUE}/task/{task_id}/status")
    assert (answer["status"]["state"], answer["status"]["taskQueueId"], answer["status"]["taskGroupId"]) == (
        "pending", "swarming/ci", task_id)
    first = await master.db.tasks.start_run(request_id, "bs1", NOW + 2)
    await master.db.tasks.finish_run(request_id, first, "BOT_DIED", NOW + 3, retry=True)  # Swarming's retry
    second = await master.db.tasks.start_run(request_id, "bs2", NOW + 4)
    await master.db.tasks.finish_run(request_id, second, "COMPLETED", NOW + 6, exit_code=0, duration=2.0)

    code, answer = await site("GET", f"{QUEUE}/task/{task_id}/status")
    status = answer["status"]
    assert code == 200 and (status["state"], status["schedulerId"]) == ("completed", "swarming")
    runs = [(r["state"], r["reasonCreated"], r.get("reasonResolved"), r["workerId"]) for r in status["runs"]]
    assert runs == [
        ("exception", "scheduled", "worker-shutdown", "bs1"), ("completed", "retry", "completed", "bs2")]
    code, task = await site("GET", f"{QUEUE}/task/{task_id}")
    assert (task["metadata"]["name"], task["metadata"]["owner"], task["priority"]) == ("hello", "ann", "low")
    assert task["extra"]["swarming"]["task_id"] == "1234510"
    code, listed = await site("GET", f"{QUEUE}/task-group/{task_id}/list")
    assert [t["status"]["taskId"] for t in listed["tasks"]] == [task_id]
    code, dependents = await site("GET", f"{QUEUE}/task/{task_id}/dependents")
    assert (code, dependents) == (200, {"taskId": task_id, "tasks": []})
    code, _ = await site("GET", f"{QUEUE}/task/{face_id(SWARMING, 0x999991)}/dependents")
    assert code == 404

    code, result = await site("GET", "/api/tasks/v1/task/1234510/result")
    assert code == 200 and result["queue_task_id"] == task_id


def test_the_result_of_an_engine_task_that_runs_a_queue_task_names_that_queue_task():
    queue_task = taskcluster.slugId()
    stored = {"request_id": 0x4441, "name": "t", "user": "queue", "tags": [f"queue_task_id:{queue_task}",
                                                                           "queue_run_id:0"]}
    result = {"state": "PENDING", "created_at": NOW}
    assert records.result_to_json(stored, result)["queue_task_id"] == queue_task
    untagged = records.result_to_json({**stored, "tags": []}, result)
    assert untagged["queue_task_id"] == face_id(SWARMING, 0x4441)


@pytest_twisted.ensureDeferred
async def test_an_expired_swarming_task_resolves_deadline_exceeded(site):
    await swarming_task(site.master, 0x777771)
    await site.master.db.tasks.end_pending(0x777771, "EXPIRED", NOW + 600, abandoned_at=NOW + 600)
    _, answer = await site("GET", f"{QUEUE}/task/{face_id(SWARMING, 0x777771)}/status")
    assert answer["status"]["runs"] == [{"runId": 0, "state": "exception", "reasonCreated": "scheduled",
                                         "reasonResolved": "deadline-exceeded", "scheduled": iso(NOW),
                                         "resolved": iso(NOW + 600)}]


# -- read-only, and who may read -------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_faces_are_read_only_and_say_where_to_act(site):
    [brid] = await build_request(site.master)
    await swarming_task(site.master, 0x555551)
    build_task, swarming = face_id(BUILD_REQUEST, brid), face_id(SWARMING, 0x555551)
    for action in ("cancel", "rerun", "schedule"):
        code, body = await site("POST", f"{QUEUE}/task/{build_task}/{action}")
        assert code == 409 and body["code"] == "RequestConflict"
        assert f"/api/v1/buildrequests/{brid}/cancel" in body["message"]
    code, body = await site("POST", f"{QUEUE}/task/{swarming}/cancel")
    assert code == 409 and "/api/tasks/v1/task/5555510/cancel" in body["message"]
    definition = {"taskQueueId": "proj/linux", "created": iso(NOW), "deadline": iso(NOW + 60),
                  "metadata": {"name": "t", "description": "d", "owner": "o", "source": "https://x/"}}
    code, body = await site("PUT", f"{QUEUE}/task/{face_id(BUILD_REQUEST, 10**6)}", definition)
    assert code == 409 and "read-only" in body["message"]
    group = face_id(BUILDSET, (await site.master.db.buildrequests.get(brid))["buildsetid"])
    code, body = await site("POST", f"{QUEUE}/task-group/{group}/seal")
    assert code == 409 and "buildset" in body["message"]
    joining = {**definition, "taskGroupId": group}
    code, body = await site("PUT", f"{QUEUE}/task/{taskcluster.slugId()}", joining)
    assert code == 409 and "buildset" in body["message"]


@pytest_twisted.ensureDeferred
async def test_reading_a_face_needs_its_surfaces_read_scope(site):
    [brid] = await build_request(site.master)
    await swarming_task(site.master, 0x555551)
    code, body = await site("GET", f"{QUEUE}/task/{face_id(BUILD_REQUEST, brid)}/status", headers=QUEUER)
    assert code == 403 and body["unsatisfied"] == "builds:read"
    code, body = await site("GET", f"{QUEUE}/task/{face_id(SWARMING, 0x555551)}", headers={})
    assert code == 401 and "tasks:read" in body["message"]
    for unknown in (face_id(BUILD_REQUEST, 10**6), face_id(SWARMING, 0x999991), taskcluster.slugId()):
        code, body = await site("GET", f"{QUEUE}/task/{unknown}/status")
        assert code == 404 and body["code"] == "ResourceNotFound"
