"""The Queue service (``/api/queue/v1/``) of a real master, driven by the official ``taskcluster``
client's ``taskcluster.Queue`` signing with Hawk as a ``c['clients']`` client, its tasks run by
real ``buildslave`` processes through the task engine (``c['queue']`` maps the task queue to
the slaves' pool): createTask idempotent and 409 on a changed definition, a task group of 20
with dependencies resolved completed in dependency order, a failing command, listTaskGroup
paging, cancel of a running task, and a task created with temporary credentials made from a
client that the Auth API created."""

import pytest
import taskcluster
from taskcluster.exceptions import TaskclusterFailure

from fixtures.daemons import Fleet, wait_for

pytestmark = pytest.mark.integration

ADMIN = {"clientId": "ci-admin", "accessToken": "ci-admin-token-0123456789"}
TASK_QUEUE = "proj-ci/linux"
CONFIG = """\
from buildfarm.master.plugins import slaves, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(name, 'pass', dimensions={{'pool': 'ci'}}) for name in ('bs1', 'bs2')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['builders'] = []
c['clients'] = [{{'clientId': 'ci-admin', 'accessToken': 'ci-admin-token-0123456789',
                  'scopes': ['queue:*', 'auth:create-client:ci-maker-*']}}]
c['queue'] = {{'task_queues': {{'proj-ci/linux': {{'pool': 'ci'}}}}}}
"""
GROUP_SIZE = 20
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("queue-e2e")))
    master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www))
    try:
        for name in ("bs1", "bs2"):
            fleet.slave(master, name, "pass")
        for name in ("bs1", "bs2"):
            master.wait_attached(name)
        yield master
    finally:
        fleet.stop_all()


@pytest.fixture
def queue(farm) -> taskcluster.Queue:
    return taskcluster.Queue({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})


def definition(command, group=None, dependencies=(), requires="all-completed", **payload) -> dict:
    body = {"taskQueueId": TASK_QUEUE, "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
            "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
            "dependencies": list(dependencies), "requires": requires,
            "payload": {"command": command, "maxRunTime": 60, **payload},
            "metadata": {"name": "e2e", "description": "queue e2e", "owner": "ci@example.com",
                         "source": "https://example.com/e2e"}}
    if group is not None:
        body["taskGroupId"] = group
    return body


def resolved(queue, task_id: str) -> dict:
    return wait_for(lambda: (s := queue.status(task_id)["status"])["state"] in
                    ("completed", "failed", "exception") and s, f"task {task_id} to resolve", DEADLINE_S)


def test_create_task_is_idempotent_and_a_changed_definition_is_a_conflict(queue):
    task_id = taskcluster.slugId()
    body = definition([["true"]])
    first = queue.createTask(task_id, body)
    assert first["status"]["taskId"] == task_id
    assert first["status"]["state"] in ("pending", "running", "completed")
    again = queue.createTask(task_id, body)
    assert again["status"]["taskId"] == task_id
    assert queue.task(task_id)["payload"] == body["payload"]
    with pytest.raises(TaskclusterFailure) as caught:
        queue.createTask(task_id, {**body, "priority": "high"})
    assert caught.value.status_code == 409 and caught.value.body["code"] == "RequestConflict"
    assert resolved(queue, task_id)["state"] == "completed"


def test_a_task_group_of_20_runs_on_the_slaves_in_dependency_order(queue):
    group = taskcluster.slugId()
    ids = [taskcluster.slugId() for _ in range(GROUP_SIZE)]
    for index, task_id in enumerate(ids):
        dependencies = sorted({ids[index - 1], ids[(index - 1) // 2]}) if index else []
        queue.createTask(task_id, definition([["sh", "-c", 'test "$STEP" = "$0"', str(index)], ["true"]],
                                             group, dependencies, env={"STEP": str(index)}))
    statuses = {task_id: resolved(queue, task_id) for task_id in ids}
    assert {s["state"] for s in statuses.values()} == {"completed"}
    for index, task_id in enumerate(ids):
        run = statuses[task_id]["runs"][-1]
        assert run["workerId"] in ("bs1", "bs2") and run["reasonResolved"] == "completed"
        for dependency in queue.task(task_id)["dependencies"]:
            assert run["started"] >= statuses[dependency]["runs"][-1]["resolved"], (index, dependency)
    # listTaskGroup, paged by 7 with the client's continuationToken
    pages, query = [], {"limit": 7}
    while True:
        page = queue.listTaskGroup(group, query=query)
        pages.append([t["status"]["taskId"] for t in page["tasks"]])
        if "continuationToken" not in page:
            break
        query = {"limit": 7, "continuationToken": page["continuationToken"]}
    assert [len(p) for p in pages] == [7, 7, 6]
    assert sum(pages, []) == sorted(ids)
    dependents = queue.listDependentTasks(ids[0])["tasks"]
    assert sorted(t["status"]["taskId"] for t in dependents) == sorted([ids[1], ids[2]])


def test_a_failing_command_fails_the_task_and_its_dependent_waits(queue):
    failing, dependent = taskcluster.slugId(), taskcluster.slugId()
    queue.createTask(failing, definition([["true"], ["sh", "-c", "exit 3"], ["touch", "never"]]))
    queue.createTask(dependent, definition([["true"]], dependencies=[failing]))
    status = resolved(queue, failing)
    assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("failed", "failed")
    assert queue.status(dependent)["status"]["state"] == "unscheduled"


def test_cancel_a_running_task_kills_it_and_resolves_it_canceled(queue):
    task_id = taskcluster.slugId()
    queue.createTask(task_id, definition([["sleep", "60"]]))
    wait_for(lambda: queue.status(task_id)["status"]["state"] == "running", "the task to run", DEADLINE_S)
    status = queue.cancelTask(task_id)["status"]
    assert (status["state"], status["runs"][-1]["reasonResolved"]) == ("exception", "canceled")
    # the slave is freed: both slaves run the next two tasks
    after = [taskcluster.slugId(), taskcluster.slugId()]
    for other in after:
        queue.createTask(other, definition([["sleep", "1"]]))
    assert {resolved(queue, other)["state"] for other in after} == {"completed"}
    assert queue.status(task_id)["status"]["state"] == "exception"


def test_a_new_client_makes_temporary_credentials_that_create_a_task(farm):
    # The first "done when": a client created through the Auth API, temporary
    # credentials made from it by the official client, a task created with those.
    auth = taskcluster.Auth({"rootUrl": farm.url, "credentials": ADMIN, "maxRetries": 0})
    client_id = f"ci-maker-{taskcluster.slugId()}"
    scopes = [f"queue:create-task:lowest:{TASK_QUEUE}", "queue:scheduler-id:-"]
    created = auth.createClient(client_id, {
        "expires": taskcluster.stringDate(taskcluster.fromNow("1 hour")),
        "description": "makes temporary credentials", "scopes": scopes})
    temporary = taskcluster.createTemporaryCredentials(
        client_id, created["accessToken"], taskcluster.fromNow("-1 minute"),
        taskcluster.fromNow("10 minutes"), scopes)
    queue = taskcluster.Queue({"rootUrl": farm.url, "credentials": temporary, "maxRetries": 0})

    task_id = taskcluster.slugId()
    queue.createTask(task_id, definition([["true"]]))

    assert resolved(queue, task_id)["state"] == "completed"
    # the certificate holds no more than its issuer: a higher priority is refused, naming the scope
    with pytest.raises(TaskclusterFailure) as caught:
        queue.createTask(taskcluster.slugId(), {**definition([["true"]]), "priority": "high"})
    assert caught.value.status_code == 403
    assert f"queue:create-task:high:{TASK_QUEUE}" in str(caught.value.body)
