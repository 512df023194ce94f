"""The Queue service (master/queue/) on a real master in memory, through its web site: createTask
(defaults, idempotence, 409, Taskcluster's scopes, refusals), dependencies (unscheduled until the
last one resolves, in the same transaction; a missing or expiring one refused), the paged lists,
cancel, schedule, rerun and deadlines (only the wait is bounded); on SQLite and PostgreSQL."""

import json

import pytest_twisted
import sqlalchemy as sa
import taskcluster

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.db.model import queue_tasks
from buildfarm.master.queue.store import QueueStore
from fixtures.memoryhttp import basic, render
from fixtures.memorymaster import MASTER_CFG, on_database, start_memory_master, with_fast_password_checks

NOW = 1_800_000_000.0
QUEUE = "/api/queue/v1"
TASK_QUEUE = "proj-ci/linux"



ADMIN = basic("admin", "adm1n")
CREATOR = basic("creator", "cr3ate")
CFG = MASTER_CFG + """\
c['users'] += [util.User('creator', password='cr3ate',
                         scopes=['queue:create-task:lowest:proj-ci/*', 'queue:scheduler-id:-'])]
"""


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
    yield call
    await master.stopService()


def definition(**changes) -> dict:
    body = {"taskQueueId": TASK_QUEUE, "created": iso(NOW), "deadline": iso(NOW + 3600),
            "payload": {"command": [["echo", "hi"]], "maxRunTime": 60},
            "metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://x/"}}
    body.update(changes)
    return body


@pytest_twisted.ensureDeferred
async def test_create_task_fills_taskclusters_defaults_and_answers_a_pending_status(queue):
    task_id = taskcluster.slugId()
    code, answer = await queue("PUT", f"/task/{task_id}", definition())
    assert code == 200
    status = answer["status"]
    assert (status["taskId"], status["state"], status["taskGroupId"]) == (task_id, "pending", task_id)
    assert (status["provisionerId"], status["workerType"], status["schedulerId"]) == ("proj-ci", "linux", "-")
    assert status["runs"] == [{"runId": 0, "state": "pending", "reasonCreated": "scheduled",
                               "scheduled": iso(NOW)}]
    assert status["retriesLeft"] == 5 and status["expires"] == iso(NOW + 3600 + 365 * 24 * 3600)
    code, task = await queue("GET", f"/task/{task_id}")
    assert code == 200
    assert (task["priority"], task["requires"], task["dependencies"], task["projectId"]) == \
        ("lowest", "all-completed", [], "none")
    assert (await queue("GET", f"/task/{task_id}/status")) == (200, answer)


@pytest_twisted.ensureDeferred
async def test_create_task_is_idempotent_and_a_changed_definition_gets_409(queue):
    task_id = taskcluster.slugId()
    first = await queue("PUT", f"/task/{task_id}", definition())
    queue.master.reactor.advance(30)  # the same definition later still answers the stored status
    assert await queue("PUT", f"/task/{task_id}", definition()) == first
    code, refused = await queue("PUT", f"/task/{task_id}", definition(priority="lowest", retries=2))
    assert code == 409 and refused["code"] == "RequestConflict"
    assert "different definition" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_create_task_needs_the_queue_scopes_and_the_tasks_own(queue):
    task_id = taskcluster.slugId()
    code, refused = await queue("PUT", f"/task/{task_id}", definition(scopes=["secrets:get:x"]), CREATOR)
    assert code == 403 and refused["code"] == "InsufficientScopes"
    assert "secrets:get:x" in json.dumps(refused["unsatisfied"])
    code, refused = await queue("PUT", f"/task/{task_id}", definition(priority="high"), CREATOR)
    assert code == 403 and "queue:create-task:high:proj-ci/linux" in json.dumps(refused)
    code, refused = await queue("PUT", f"/task/{task_id}", definition(schedulerId="other"), CREATOR)
    assert code == 403 and "queue:scheduler-id:other" in json.dumps(refused["unsatisfied"])
    code, _ = await queue("PUT", f"/task/{task_id}", definition(), CREATOR)
    assert code == 200
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}", definition(), {})
    assert code == 401 and refused["code"] == "AuthenticationFailed"


@pytest_twisted.ensureDeferred
async def test_a_bad_definition_gets_400_with_every_problem(queue):
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}",
                                {"taskQueueId": "no-slash", "created": "yesterday", "priority": "urgent"})
    assert code == 400 and refused["code"] == "InputError"
    problems = " ".join(refused["problems"])
    for part in ("taskQueueId", "created must be a date", "priority", "metadata is required"):
        assert part in problems
    code, refused = await queue("PUT", "/task/not-a-slug", definition())
    assert code == 400 and "not a slugid" in refused["message"]
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}", definition(created=iso(NOW + 3600),
                                                                                  deadline=iso(NOW + 7200)))
    assert code == 400 and "15 minutes ahead" in refused["message"]
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}",
                                definition(deadline=iso(NOW + 6 * 24 * 3600)))
    assert code == 400 and "5 days" in refused["message"]


@pytest_twisted.ensureDeferred
async def test_the_same_definition_sent_days_later_still_answers_the_task(queue):
    task_id = taskcluster.slugId()
    body = definition(deadline=iso(NOW + 60))
    await queue("PUT", f"/task/{task_id}", body)
    queue.master.reactor.advance(3 * 24 * 3600)
    code, answer = await queue("PUT", f"/task/{task_id}", body)
    assert code == 200 and answer["status"]["taskId"] == task_id


@pytest_twisted.ensureDeferred
async def test_unknown_tasks_get_404_in_taskclusters_shape(queue):
    for path in (f"/task/{taskcluster.slugId()}", f"/task/{taskcluster.slugId()}/status"):
        code, body = await queue("GET", path)
        assert code == 404 and body["code"] == "ResourceNotFound" and body["requestInfo"]["method"] == "GET"
    code, body = await queue("POST", f"/task/{taskcluster.slugId()}/cancel")
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_a_task_waits_unscheduled_until_its_last_dependency_resolves(queue):
    first, second, waiting, strict = (taskcluster.slugId() for _ in range(4))
    await queue("PUT", f"/task/{first}", definition())
    await queue("PUT", f"/task/{second}", definition())
    _, answer = await queue("PUT", f"/task/{waiting}", definition(dependencies=[first, second],
                                                                  requires="all-resolved"))
    assert answer["status"]["state"] == "unscheduled" and answer["status"]["runs"] == []
    _, answer = await queue("PUT", f"/task/{strict}", definition(dependencies=[first]))
    assert answer["status"]["state"] == "unscheduled"
    await queue("POST", f"/task/{first}/cancel")
    assert (await queue("GET", f"/task/{waiting}/status"))[1]["status"]["state"] == "unscheduled"
    queue.master.reactor.advance(5)
    await queue("POST", f"/task/{second}/cancel")  # the last one: pending in that same call
    status = (await queue("GET", f"/task/{waiting}/status"))[1]["status"]
    assert status["state"] == "pending" and status["runs"][0]["scheduled"] == iso(NOW + 5)
    # all-completed: a canceled dependency never satisfies it
    assert (await queue("GET", f"/task/{strict}/status"))[1]["status"]["state"] == "unscheduled"


@pytest_twisted.ensureDeferred
async def test_resolving_a_dependency_completed_schedules_its_dependents(queue):
    store = QueueStore(queue.master.db)
    dependency, dependent = taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{dependency}", definition())
    await queue("PUT", f"/task/{dependent}", definition(dependencies=[dependency]))
    await store.resolve(dependency, 0, "completed", "completed", NOW + 1)
    status = (await queue("GET", f"/task/{dependent}/status"))[1]["status"]
    assert status["state"] == "pending"


@pytest_twisted.ensureDeferred
async def test_a_dependency_missing_or_expiring_before_the_deadline_is_refused(queue):
    short = taskcluster.slugId()
    await queue("PUT", f"/task/{short}", definition(deadline=iso(NOW + 60), expires=iso(NOW + 120)))
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}", definition(dependencies=[short]))
    assert code == 400 and "expire before this task's deadline" in refused["message"]
    assert short in refused["message"]
    missing = taskcluster.slugId()
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}", definition(dependencies=[missing]))
    assert code == 400 and missing in refused["message"]


@pytest_twisted.ensureDeferred
async def test_list_task_group_and_dependents_page_with_a_continuation_token(queue):
    group, root = taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{root}", definition(taskGroupId=group))
    children = {taskcluster.slugId() for _ in range(4)}
    for child in children:
        await queue("PUT", f"/task/{child}", definition(taskGroupId=group, dependencies=[root]))
    for path, key, expected in ((f"/task-group/{group}/list", "taskGroupId", children | {root}),
                                (f"/task/{root}/dependents", "taskId", children)):
        seen, args = [], {"limit": 2}
        while True:
            code, page = await queue("GET", path, **args)
            assert code == 200 and page[key] in (group, root) and len(page["tasks"]) <= 2
            seen += [t["status"]["taskId"] for t in page["tasks"]]
            assert all(t["task"]["taskGroupId"] == group for t in page["tasks"])
            if "continuationToken" not in page:
                break
            args = {"limit": 2, "continuationToken": page["continuationToken"]}
        assert seen == sorted(expected)
    code, refused = await queue("GET", f"/task-group/{group}/list", continuationToken="bogus")
    assert code == 400
    code, refused = await queue("GET", f"/task-group/{group}/list", limit="0")
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_cancel_schedule_and_rerun(queue):
    dependency, task_id = taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{dependency}", definition())
    await queue("PUT", f"/task/{task_id}", definition(dependencies=[dependency]))
    code, refused = await queue("POST", f"/task/{task_id}/rerun")
    assert code == 409  # unscheduled: schedule it instead
    _, answer = await queue("POST", f"/task/{task_id}/schedule")
    assert answer["status"]["state"] == "pending"
    _, answer = await queue("POST", f"/task/{task_id}/cancel")
    run = answer["status"]["runs"][0]
    assert (answer["status"]["state"], run["state"]) == ("exception", "exception")
    assert run["reasonResolved"] == "canceled"
    assert (await queue("POST", f"/task/{task_id}/cancel"))[1] == answer  # resolved: left as it is
    _, answer = await queue("POST", f"/task/{task_id}/rerun")
    assert answer["status"]["state"] == "pending"
    assert answer["status"]["runs"][1] == {"runId": 1, "state": "pending", "reasonCreated": "rerun",
                                           "scheduled": iso(NOW)}
    code, refused = await queue("POST", f"/task/{task_id}/cancel", headers=CREATOR)
    assert code == 403 and f"queue:cancel-task:-/{task_id}/{task_id}" in json.dumps(refused)


@pytest_twisted.ensureDeferred
async def test_a_deadline_ends_the_wait_but_not_a_running_task(queue):
    store = QueueStore(queue.master.db)
    waiting, running = taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{waiting}", definition(deadline=iso(NOW + 60)))
    await queue("PUT", f"/task/{running}", definition(deadline=iso(NOW + 60)))
    await queue.master.db.run(lambda conn: conn.execute(
        sa.update(queue_tasks).where(queue_tasks.c.task_id == running).values(state="running")))
    assert await store.expire_deadlines(NOW + 59) == []
    assert await store.expire_deadlines(NOW + 60) == [waiting]
    status = (await store.get(waiting)).status()
    assert (status["state"], status["runs"][0]["reasonResolved"]) == ("exception", "deadline-exceeded")
    assert (await store.get(running)).state == "running"


@pytest_twisted.ensureDeferred
async def test_a_group_has_one_scheduler_id_and_a_sealed_group_takes_no_new_task(queue):
    group, first = taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{first}", definition(taskGroupId=group, schedulerId="ci"))
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}", definition(taskGroupId=group))
    assert code == 409 and "schedulerId 'ci'" in refused["message"]
    code, info = await queue("GET", f"/task-group/{group}")
    assert (code, info["schedulerId"], "sealed" in info) == (200, "ci", False)
    code, refused = await queue("POST", f"/task-group/{group}/seal", headers=CREATOR)
    assert code == 403 and f"queue:seal-task-group:ci/{group}" in json.dumps(refused)
    code, sealed = await queue("POST", f"/task-group/{group}/seal")
    assert code == 200 and sealed["sealed"] == iso(NOW)
    code, refused = await queue("PUT", f"/task/{taskcluster.slugId()}",
                                definition(taskGroupId=group, schedulerId="ci"))
    assert code == 409 and "sealed" in refused["message"]
    # the task already in it is still answered
    assert (await queue("PUT", f"/task/{first}", definition(taskGroupId=group, schedulerId="ci")))[0] == 200
    assert (await queue("GET", f"/task-group/{taskcluster.slugId()}"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_cancel_task_group_cancels_every_unresolved_task(queue):
    group, done, waiting = taskcluster.slugId(), taskcluster.slugId(), taskcluster.slugId()
    await queue("PUT", f"/task/{done}", definition(taskGroupId=group))
    await queue("POST", f"/task/{done}/cancel")
    pending = [taskcluster.slugId() for _ in range(3)]
    for task_id in pending:
        await queue("PUT", f"/task/{task_id}", definition(taskGroupId=group))
    await queue("PUT", f"/task/{waiting}", definition(taskGroupId=group, dependencies=[pending[0]]))
    code, answer = await queue("POST", f"/task-group/{group}/cancel")
    assert code == 200
    assert answer == {"taskGroupId": group, "taskGroupSize": 5, "cancelledCount": 4,
                      "taskIds": sorted([*pending, waiting])}
    for task_id in [*pending, waiting]:
        status = (await queue("GET", f"/task/{task_id}/status"))[1]["status"]
        assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("exception", "canceled")
