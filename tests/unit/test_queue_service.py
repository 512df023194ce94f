"""The Queue's tasks on the task engine (master/queue/service.py, payload.py, settings.py): a
pending task becomes an engine task asking for its queue's dimensions; the engine's end resolves
the run with Taskcluster's reasons and schedules the dependents in the same pass; a malformed
payload, a lost slave (retry) and a cancel while the engine holds the task."""

import dataclasses

import pytest
import pytest_twisted
import taskcluster

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.queue.model import check_definition
from buildfarm.master.queue.payload import MalformedPayload, engine_request
from buildfarm.master.queue.service import outcome
from buildfarm.master.queue.settings import QueueSettings, validate_queue_config
from buildfarm.master.queue.store import StoredTask
from buildfarm.master.tasks.model import State
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture

NOW = 1_800_000_000.0
CFG = MASTER_CFG + """\
c['queue'] = {'task_queues': {'proj-ci/linux': {'pool': 'ci', 'os': ['Linux']}}}
"""
master = memory_master_fixture(CFG, now=NOW)


def body(**changes) -> dict:
    given = {"taskQueueId": "proj-ci/linux", "created": iso(NOW), "deadline": iso(NOW + 3600),
             "payload": {"command": [["echo", "a b"], ["true"]], "env": {"X": "1"}, "maxRunTime": 90},
             "metadata": {"name": "t", "description": "d", "owner": "o", "source": "s"}}
    given.update(changes)
    return given


def stored(**changes) -> StoredTask:
    task_id = taskcluster.slugId()
    definition = check_definition(task_id, body(**changes), NOW)
    return StoredTask(task_id, definition.body, "pending", [{"runId": 0, "state": "pending"}], 5, NOW + 3600)


@pytest.mark.parametrize(("state", "exit_code", "expected"), [
    (State.COMPLETED, 0, ("completed", "completed", False)),
    (State.COMPLETED, 3, ("failed", "failed", False)),
    (State.TIMED_OUT, None, ("failed", "failed", False)),
    (State.KILLED, None, ("exception", "canceled", False)),
    (State.CANCELED, None, ("exception", "canceled", False)),
    (State.EXPIRED, None, ("exception", "deadline-exceeded", False)),
    (State.BOT_DIED, None, ("exception", "worker-shutdown", True)),
    (State.NO_RESOURCE, None, ("exception", "internal-error", False)),
])
def test_an_engine_outcome_is_a_taskcluster_resolution(state, exit_code, expected):
    assert outcome(state, exit_code) == expected


def test_the_payload_becomes_one_shell_running_each_command_in_turn():
    task = stored(priority="high")
    request = engine_request(task, {"pool": ["ci"]}, NOW, 30)
    props = request.task_slices[0].properties
    assert props.command == ("/bin/sh", "-c", "set -e\necho 'a b'\ntrue")
    assert props.env == (("X", "1"),) and props.execution_timeout_secs == 90
    assert props.dimensions == (("pool", ("ci",)),)
    assert request.task_slices[0].wait_for_capacity and request.task_slices[0].expiration_secs == 3600
    assert f"queue_task_id:{task.task_id}" in request.tags and "queue_run_id:0" in request.tags
    assert request.request_uuid == f"{task.task_id}/0" and request.priority == 60


MALFORMED = [{}, {"command": [], "maxRunTime": 5}, {"command": ["echo"], "maxRunTime": 5},
             {"command": [["echo"]]}, {"command": [["echo"]], "maxRunTime": 0},
             {"command": [["echo"]], "maxRunTime": 5, "env": {"A": 1}}]


@pytest.mark.parametrize("payload", MALFORMED)
def test_a_payload_the_slaves_cannot_run_is_malformed(payload):
    with pytest.raises(MalformedPayload):
        engine_request(stored(payload=payload), {"pool": ["ci"]}, NOW, 30)


def test_the_queue_config_maps_task_queues_to_dimensions():
    settings, problems = validate_queue_config({"queue": {"task_queues": {"a/b": {"pool": "ci"}}}})
    assert problems == [] and settings.task_queues == {"a/b": {"pool": ["ci"]}}
    for bad in ({"queue": []}, {"queue": {"nope": 1}},
                {"queue": {"task_queues": {"no-slash": {"pool": "ci"}}}},
                {"queue": {"task_queues": {"a/b": {}}}},
                {"queue": {"task_queues": {"a/b": {"pool": 3}}}}):
        assert validate_queue_config(bad)[1], bad


async def create(master, **changes) -> str:
    task_id = taskcluster.slugId()
    await master.queue.store.create(check_definition(task_id, body(**changes), master.reactor.seconds()),
                                    master.reactor.seconds())
    return task_id


async def engine_result(master, task_id: str) -> dict:
    task = await master.queue.store.get(task_id)
    assert task.engine_task_id is not None, task
    return await master.db.tasks.get_result(task.engine_task_id)


@pytest_twisted.ensureDeferred
async def test_a_pending_task_becomes_an_engine_task_and_its_end_resolves_it(master):
    first = await create(master)
    second = await create(master, dependencies=[first])
    elsewhere = await create(master, taskQueueId="other/queue")
    await master.queue.poke()
    request = await master.db.tasks.get_request((await master.queue.store.get(first)).engine_task_id)
    assert f"queue_task_id:{first}" in request["tags"]
    assert (await master.queue.store.get(second)).engine_task_id is None  # unscheduled
    assert (await master.queue.store.get(elsewhere)).engine_task_id is None  # no slaves serve it
    engine_id = (await master.queue.store.get(first)).engine_task_id
    master.reactor.advance(2)
    await master.db.tasks.end_pending(engine_id, "COMPLETED", NOW + 2, exit_code=0, slave="bs1",
                                      started_at=NOW + 1)
    await master.queue.poke()
    done = await master.queue.store.get(first)
    assert done.state == "completed" and done.engine_task_id is None
    assert (done.runs[0]["workerId"], done.runs[0]["reasonResolved"]) == ("bs1", "completed")
    # its dependent became pending and was submitted in that same pass
    assert (await engine_result(master, second))["state"] == "PENDING"


@pytest_twisted.ensureDeferred
async def test_a_malformed_payload_resolves_the_run_as_an_exception(master):
    task_id = await create(master, payload={"command": "echo hi"})
    await master.queue.poke()
    task = await master.queue.store.get(task_id)
    assert (task.state, task.runs[0]["reasonResolved"]) == ("exception", "malformed-payload")


@pytest_twisted.ensureDeferred
async def test_a_lost_slave_gives_the_task_a_new_run_while_retries_are_left(master):
    task_id = await create(master, retries=1)
    for _ in range(2):  # lost once (a retry), then again (no retry left)
        await master.queue.poke()
        engine_id = (await master.queue.store.get(task_id)).engine_task_id
        if engine_id is None:
            break
        await master.db.tasks.end_pending(engine_id, "BOT_DIED", NOW, slave="bs1", started_at=NOW)
        await master.queue.poke()
    task = await master.queue.store.get(task_id)
    assert [r["reasonCreated"] for r in task.runs] == ["scheduled", "retry"]
    assert [r["reasonResolved"] for r in task.runs] == ["worker-shutdown", "worker-shutdown"]
    assert task.state == "exception" and task.retries_left == 0


@pytest_twisted.ensureDeferred
async def test_canceling_a_submitted_task_cancels_its_engine_task(master):
    task_id = await create(master)
    await master.queue.poke()
    engine_id = (await master.queue.store.get(task_id)).engine_task_id
    await master.queue.store.cancel(task_id, NOW)
    await master.queue.poke()
    assert (await master.db.tasks.get_result(engine_id))["state"] == "CANCELED"
    task = await master.queue.store.get(task_id)
    assert task.engine_task_id is None and task.runs[0]["reasonResolved"] == "canceled"


@pytest_twisted.ensureDeferred
async def test_the_reconciler_runs_only_while_c_queue_names_a_task_queue(master):
    assert master.queue._loop is not None and master.queue._loop.running
    without = dataclasses.replace(master.config, queue=QueueSettings())
    master.queue.reconfigService(without)
    assert master.queue._loop is None
    master.queue.reconfigService(master.config)
    assert master.queue._loop.running
