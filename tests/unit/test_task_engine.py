"""The task engine (master/tasks/engine.py) on a real in-memory master with scripted slaves:
dimensions recorded at attach, reaping, each end state, retries and both kinds of dedup."""

import base64
import hashlib
import json
import zlib
from dataclasses import replace

import pytest_twisted
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from zope.interface.verify import verifyObject

from buildfarm.master.cas.interfaces import StoreUnavailable
from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.pb.buildslave import TASKS_BUILDER
from buildfarm.master.tasks import engine as engine_module
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.interfaces import ITaskEngine
from buildfarm.master.tasks.model import request_from_json
from buildfarm.master.tasks.records import new_task
from tests.fixtures.memorymaster import eventually, memory_master_fixture

CFG = """\
from buildfarm.master.plugins import slaves, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={'pool': 'ci', 'gpu': ['nvidia']}),
               slaves.BuildSlave('bs2', 'pass', dimensions={'pool': 'ci'}),
               slaves.BuildSlave('bs3', 'pass'),
               slaves.BuildSlave('bs4', 'pass', max_builds=2, dimensions={'pool': 'wide'})]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = []
c['schedulers'] = []
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
"""
NOW = 1_800_000_000.0

master = memory_master_fixture(CFG, now=NOW)
QUARANTINE_CFG = CFG + """\
c['tasks'] = {'quarantine_below_free_mb': 1000, 'quarantined': {'bs2': 'fan broken'}}
"""
quarantining_master = memory_master_fixture(QUARANTINE_CFG, now=NOW)


class ScriptedCommands:
    """A slave's task builder: records each ``startCommand`` (the master's RemoteCommand and
    its arguments) and each ``interruptCommand``; the test plays the slave's updates."""

    def __init__(self, connection):
        self.connection = connection
        self.started: list = []  # (remote command, name, args)
        self.interrupted: list = []
        self.refusal: Exception | None = None  # startCommand fails with it

    def callRemote(self, method, *args):  # noqa: N802 - PB's name
        if self.connection.broker.disconnected:
            from twisted.spread import pb
            return defer.fail(pb.PBConnectionLost("gone"))
        if method == "startCommand" and self.refusal is not None:
            return defer.fail(self.refusal)
        if method == "startCommand":
            remote, _command_id, name, cmd_args = args
            self.started.append((remote, name, cmd_args))
        elif method == "interruptCommand":
            self.interrupted.append(args)
        return defer.succeed(None)

    def notifyOnDisconnect(self, callback):  # noqa: N802
        self.connection.broker.notifyOnDisconnect(callback)

    def dontNotifyOnDisconnect(self, callback):  # noqa: N802
        self.connection.broker.dontNotifyOnDisconnect(callback)


async def attach(master, name, info=None):
    from tests.fixtures.memorymaster import FakeSlaveConnection

    connection = FakeSlaveConnection(name, info)
    commands = ScriptedCommands(connection)
    connection.builders = {TASKS_BUILDER: commands}
    connection.perspective = await master.botmaster.slave_attaching(name, connection)
    await eventually(lambda: defer.succeed(name in master.tasks.dimensions), f"{name}'s dimensions")
    return connection, commands


def finish(remote, rc=0, stdout="", **updates):
    if stdout:
        remote.remote_update([[{"stdout": stdout}, 0]])
    remote.remote_update([[{**updates, "rc": rc}, 0]])
    remote.remote_complete()


def request(dimensions=None, command=("echo", "hello"), idempotent=False, expiration=300, slices=None,
            wait_for_capacity=False, hard=60, grace=10, uuid=None):
    dims = dimensions or {"pool": "ci"}
    props = {"command": list(command), "dimensions": [{"key": k, "value": v} for k, v in dims.items()],
             "execution_timeout_secs": hard, "io_timeout_secs": 0, "grace_period_secs": grace,
             "idempotent": idempotent}
    body = {"name": "t", "user": "alice", "priority": 100, "request_uuid": uuid,
            "task_slices": slices or [{"expiration_secs": expiration, "properties": props,
                                       "wait_for_capacity": wait_for_capacity}]}
    return request_from_json(body)


_counter = [0]


async def create(master, req, submit=True):
    _counter[0] += 1
    now = master.reactor.seconds()
    request_id = ids.new_request_id(master.reactor, lambda bits: _counter[0] % (1 << bits))
    request_id, _ = await master.db.tasks.create(new_task(req, request_id, now))
    if submit:
        await master.tasks.submitted(request_id)
    return request_id


async def state_of(master, task_id):
    return (await master.db.tasks.get_result(task_id))["state"]


async def until_state(master, task_id, state):
    async def check():
        return await state_of(master, task_id) == state

    await eventually(check, f"task {task_id} {state}")
    return await master.db.tasks.get_result(task_id)


async def until_started(commands, n=1):
    await eventually(lambda: defer.succeed(len(commands.started) >= n), f"{n} command(s) started")
    return commands.started[n - 1]


def test_the_engine_provides_its_interface(master):
    assert verifyObject(ITaskEngine, master.tasks)
    assert master.getServiceNamed("tasks") is master.tasks


@pytest_twisted.ensureDeferred
async def test_an_attached_slave_has_its_dimensions_recorded_and_its_detach_marked(master):
    connection, _ = await attach(master, "bs1")
    bot = await master.db.tasks.get_bot("bs1")
    assert bot["dimensions"]["pool"] == ["ci"] and bot["dimensions"]["gpu"] == ["nvidia"]
    assert bot["dimensions"]["id"] == ["bs1"] and bot["first_seen_at"] == NOW and bot["state"]["attached"]
    connection.drop()

    async def marked():
        return (await master.db.tasks.get_bot("bs1"))["state"] == {"attached": False}

    await eventually(marked, "bs1 marked gone")
    assert "bs1" not in master.tasks.dimensions


@pytest_twisted.ensureDeferred
async def test_an_attached_slave_is_seen_every_minute_and_a_detached_one_is_not(master):
    connection, _ = await attach(master, "bs1")
    other, _ = await attach(master, "bs2")
    other.drop()
    await eventually(lambda: defer.succeed("bs2" not in master.tasks.dimensions), "bs2 gone")
    for _ in range(11):  # eleven minutes attached: more than the API's 10 minutes to death
        master.reactor.advance(engine_module.BOT_SEEN_INTERVAL_S)

    async def seen():
        bot = await master.db.tasks.get_bot("bs1")
        return bot["last_seen_at"] == NOW + 11 * engine_module.BOT_SEEN_INTERVAL_S

    await eventually(seen, "bs1 seen again")
    assert (await master.db.tasks.get_bot("bs2"))["last_seen_at"] == NOW  # gone: not seen since
    assert [bot["name"] for bot in await master.db.tasks.get_bots(seen_since=NOW + 600)] == ["bs1"]
    connection.drop()


@pytest_twisted.ensureDeferred
async def test_only_a_slave_with_a_pool_gets_the_task_builder(master):
    assert (TASKS_BUILDER, "_tasks") in master.botmaster.builder_list_for("bs1")
    assert master.botmaster.builder_list_for("bs3") == []


@pytest_twisted.ensureDeferred
async def test_a_shell_task_completes_with_its_exit_code_and_output(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request(command=("echo", "hello")))
    remote, name, args = await until_started(commands)
    assert name == "shell" and args["command"] == ["echo", "hello"] and args["maxTime"] == 60
    assert args["sigtermTime"] == 10 and args["timeout"] is None
    # SIGTERM, then after the grace period a signal a command cannot ignore
    assert args["interruptSignal"] == "KILL"
    assert await state_of(master, task_id) == "RUNNING"
    finish(remote, rc=0, stdout="hello\n")
    result = await until_state(master, task_id, "COMPLETED")
    assert result["exit_code"] == 0 and result["slave"] == "bs1" and result["try_number"] == 1
    assert await master.db.tasks.get_output(task_id, 1) == b"hello\n"


@pytest_twisted.ensureDeferred
async def test_a_task_goes_to_a_slave_matching_one_of_its_alternatives(master):
    _, on_bs2 = await attach(master, "bs2")
    _, on_bs1 = await attach(master, "bs1")
    task_id = await create(master, request({"pool": "ci", "gpu": "amd|nvidia"}))
    remote, _, _ = await until_started(on_bs1)
    assert on_bs2.started == []
    finish(remote, rc=3)
    result = await until_state(master, task_id, "COMPLETED")
    assert result["exit_code"] == 3 and result["slave"] == "bs1"


@pytest_twisted.ensureDeferred
async def test_a_task_no_recent_slave_could_run_ends_no_resource_naming_the_nearest(master):
    await attach(master, "bs1")
    task_id = await create(master, request({"pool": "ci", "gpu": "tpu"}))
    result = await master.db.tasks.get_result(task_id)
    assert result["state"] == "NO_RESOURCE"
    assert "bs1 lacks gpu:tpu" in result["error"]


@pytest_twisted.ensureDeferred
async def test_a_task_waiting_for_capacity_expires_on_the_masters_clock(master):
    await attach(master, "bs1")
    waiting = request({"pool": "ci", "gpu": "tpu"}, wait_for_capacity=True, expiration=60)
    task_id = await create(master, waiting)
    assert await state_of(master, task_id) == "PENDING"
    master.reactor.advance(61)  # the poll sees the deadline
    await until_state(master, task_id, "EXPIRED")


@pytest_twisted.ensureDeferred
async def test_a_pending_task_expires_at_its_deadline_not_at_the_next_poll(master):
    await attach(master, "bs1")
    expiration = 32  # not a multiple of the poll's interval
    created = master.reactor.seconds()
    task_id = await create(master, request({"pool": "ci", "gpu": "tpu"}, wait_for_capacity=True,
                                           expiration=expiration))
    master.reactor.advance(expiration - 0.5)
    assert await state_of(master, task_id) == "PENDING"
    master.reactor.advance(0.5)
    result = await until_state(master, task_id, "EXPIRED")
    assert result["abandoned_at"] == created + expiration


@pytest_twisted.ensureDeferred
async def test_a_slice_falls_back_at_its_deadline_not_at_the_next_poll(master):
    _, commands = await attach(master, "bs2")
    props = {"command": ["true"], "execution_timeout_secs": 60, "grace_period_secs": 0}
    slices = [{"expiration_secs": 32, "wait_for_capacity": True,
               "properties": {**props, "dimensions": [{"key": "pool", "value": "ci"},
                                                      {"key": "gpu", "value": "tpu"}]}},
              {"expiration_secs": 60,
               "properties": {**props, "dimensions": [{"key": "pool", "value": "ci"}]}}]
    task_id = await create(master, request(slices=slices))
    master.reactor.advance(31.5)  # the poll runs here; the next one would be 3.5 s later
    assert commands.started == []
    master.reactor.advance(0.5)
    remote, _, _ = await until_started(commands)
    assert (await master.db.tasks.get_result(task_id))["current_slice"] == 1
    finish(remote)
    await until_state(master, task_id, "COMPLETED")


@pytest_twisted.ensureDeferred
async def test_slices_fall_back_in_order_each_with_its_own_expiration(master):
    _, commands = await attach(master, "bs2")
    props = {"command": ["true"], "execution_timeout_secs": 60, "grace_period_secs": 0}
    slices = [{"expiration_secs": 60, "wait_for_capacity": True,
               "properties": {**props, "dimensions": [{"key": "pool", "value": "ci"},
                                                      {"key": "gpu", "value": "tpu"}]}},
              {"expiration_secs": 60,
               "properties": {**props, "dimensions": [{"key": "pool", "value": "ci"}]}}]
    task_id = await create(master, request(slices=slices))
    assert commands.started == []
    master.reactor.advance(61)
    remote, _, args = await until_started(commands)
    assert args["command"] == ["true"]
    assert (await master.db.tasks.get_result(task_id))["current_slice"] == 1
    finish(remote)
    await until_state(master, task_id, "COMPLETED")


@pytest_twisted.ensureDeferred
async def test_a_slave_timeout_ends_the_try_timed_out(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request())
    remote, _, _ = await until_started(commands)
    finish(remote, rc=-1, failure_reason="timeout")
    result = await until_state(master, task_id, "TIMED_OUT")
    assert result["exit_code"] == -1


@pytest_twisted.ensureDeferred
async def test_a_slave_io_timeout_ends_the_try_timed_out(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request())
    remote, _, _ = await until_started(commands)
    finish(remote, rc=-1, failure_reason="timeout_without_output")  # runprocess.py's silence timeout
    assert (await until_state(master, task_id, "TIMED_OUT"))["exit_code"] == -1


@pytest_twisted.ensureDeferred
async def test_the_master_backs_the_hard_timeout_when_the_slave_does_not_end_the_try(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request(hard=60, grace=10))
    await until_started(commands)
    master.reactor.advance(60 + 10 + engine_module.MASTER_TIMEOUT_MARGIN_S)
    assert commands.interrupted, "the master asked the slave to kill it"
    master.reactor.advance(engine_module.KILL_DEADLINE_S)  # the slave never confirms
    await until_state(master, task_id, "TIMED_OUT")


@pytest_twisted.ensureDeferred
async def test_a_slave_lost_mid_task_ends_the_try_bot_died(master):
    connection, commands = await attach(master, "bs1")
    task_id = await create(master, request())
    await until_started(commands)
    connection.drop()
    result = await until_state(master, task_id, "BOT_DIED")
    assert result["internal_failure"]


@pytest_twisted.ensureDeferred
async def test_an_idempotent_task_that_loses_its_slave_is_tried_once_more_on_another(master):
    first, on_bs1 = await attach(master, "bs1")
    task_id = await create(master, request(idempotent=True))
    await until_started(on_bs1)
    first.drop()
    _, on_bs2 = await attach(master, "bs2")
    remote, _, _ = await until_started(on_bs2)
    finish(remote)
    result = await until_state(master, task_id, "COMPLETED")
    assert result["try_number"] == 2 and result["slave"] == "bs2"
    assert (await master.db.tasks.get_run(task_id, 1))["state"] == "BOT_DIED"


@pytest_twisted.ensureDeferred
async def test_a_try_the_slave_ran_for_a_lost_master_ends_bot_died_when_it_attaches(master):
    # what a master killed mid-task leaves: a try RUNNING on bs1 that no engine runs
    once = await create(master, request(wait_for_capacity=True), submit=False)
    assert await master.db.tasks.start_run(once, "bs1", master.reactor.seconds()) == 1
    _, commands = await attach(master, "bs1")
    result = await until_state(master, once, "BOT_DIED")
    assert result["internal_failure"] and commands.started == []


@pytest_twisted.ensureDeferred
async def test_a_try_whose_master_and_slave_are_gone_ends_bot_died_after_its_timeouts(master):
    started = master.reactor.seconds()
    task_id = await create(master, request(wait_for_capacity=True, hard=60, grace=10), submit=False)
    assert await master.db.tasks.start_run(task_id, "bs1", started) == 1  # bs1 never attaches here
    master.reactor.advance(60 + 10 + engine_module.LOST_TRY_AFTER_S - 1)
    await master.tasks.poll()
    assert await state_of(master, task_id) == "RUNNING"  # its master may still end it
    master.reactor.advance(1)
    await master.tasks.poll()
    result = await master.db.tasks.get_result(task_id)
    assert (result["state"], result["internal_failure"]) == ("BOT_DIED", True)


@pytest_twisted.ensureDeferred
async def test_an_idempotent_try_lost_with_its_master_is_tried_once_more(master):
    task_id = await create(master, request(idempotent=True, wait_for_capacity=True), submit=False)
    assert await master.db.tasks.start_run(task_id, "bs1", master.reactor.seconds()) == 1
    _, commands = await attach(master, "bs1")
    remote, _, _ = await until_started(commands)
    finish(remote)
    result = await until_state(master, task_id, "COMPLETED")
    assert result["try_number"] == 2 and (await master.db.tasks.get_run(task_id, 1))["state"] == "BOT_DIED"


@pytest_twisted.ensureDeferred
async def test_a_task_tried_once_more_is_never_seen_bot_died(master):
    # collect stops at the first final state it reads: a retried task must go from RUNNING
    # back to PENDING at once, not through BOT_DIED
    seen = []
    finish_run = master.db.tasks.finish_run

    async def finish_run_and_look(request_id, *args, **kwargs):
        ended = await finish_run(request_id, *args, **kwargs)
        seen.append((await master.db.tasks.get_result(request_id))["state"])
        return ended

    master.db.tasks.finish_run = finish_run_and_look
    first, on_bs1 = await attach(master, "bs1")
    task_id = await create(master, request(idempotent=True))
    await until_started(on_bs1)
    first.drop()
    await until_state(master, task_id, "PENDING")
    assert seen == ["PENDING"]
    assert (await master.db.tasks.get_run(task_id, 1))["state"] == "BOT_DIED"


@pytest_twisted.ensureDeferred
async def test_an_idempotent_try_lost_after_its_slice_expired_ends_bot_died(master):
    twins_ended = []  # the engine's last step for a try that is not tried again
    get_twins = master.db.tasks.get_twins
    master.db.tasks.get_twins = lambda task_id: (twins_ended.append(task_id), get_twins(task_id))[1]
    connection, commands = await attach(master, "bs1")
    task_id = await create(master, request(idempotent=True, expiration=60, hard=600))
    await until_started(commands)
    master.reactor.advance(61)
    connection.drop()
    await eventually(lambda: defer.succeed(task_id in twins_ended), "the try ended for good")
    result = await master.db.tasks.get_result(task_id)
    assert (result["state"], result["try_number"], result["internal_failure"]) == ("BOT_DIED", 1, True)


@pytest_twisted.ensureDeferred
async def test_kill_running_just_after_a_task_is_taken_keeps_its_command_from_starting(master):
    gate = defer.Deferred()  # holds the try between start_run's commit and its command
    start_run = master.db.tasks.start_run

    async def held_start_run(*args, **kwargs):
        try_number = await start_run(*args, **kwargs)
        await gate
        return try_number

    master.db.tasks.start_run = held_start_run
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request())
    await until_state(master, task_id, "RUNNING")
    assert await master.tasks.cancel(task_id, True) == (True, True)
    gate.callback(None)
    result = await until_state(master, task_id, "KILLED")
    assert result["exit_code"] is None and commands.started == []


@pytest_twisted.ensureDeferred
async def test_a_slave_with_two_slots_runs_one_task_at_a_time(master):
    # its one task builder runs one command at a time (a second startCommand is refused)
    _, commands = await attach(master, "bs4")
    first = await create(master, request({"pool": "wide"}))
    remote, _, _ = await until_started(commands)
    second = await create(master, request({"pool": "wide"}))
    await eventually(lambda: defer.succeed("bs4" not in master.tasks._reaping), "bs4 reaped")
    assert len(commands.started) == 1 and await state_of(master, second) == "PENDING"
    finish(remote)
    await until_state(master, first, "COMPLETED")
    remote, _, _ = await until_started(commands, 2)
    finish(remote)
    await until_state(master, second, "COMPLETED")


@pytest_twisted.ensureDeferred
async def test_a_task_the_slave_refuses_to_start_ends_bot_died(master):
    from twisted.spread import pb

    _, commands = await attach(master, "bs1")
    commands.refusal = pb.RemoteError("RuntimeError", "builder '_tasks' is already running a command", None)
    task_id = await create(master, request())
    result = await until_state(master, task_id, "BOT_DIED")
    assert result["internal_failure"]
    slave = master.botmaster.slaves["bs1"]
    await eventually(lambda: defer.succeed(master.botmaster.slave_accepts_task(slave)), "bs1's slot freed")


@pytest_twisted.ensureDeferred
async def test_cancel_ends_a_pending_task_and_kill_running_kills_a_running_one(master):
    pending = await create(master, request(wait_for_capacity=True))  # no slave yet
    assert await master.tasks.cancel(pending, False) == (True, False)
    assert await state_of(master, pending) == "CANCELED"
    _, commands = await attach(master, "bs1")
    running = await create(master, request())
    remote, _, _ = await until_started(commands)
    assert await master.tasks.cancel(running, False) == (False, True)
    assert await master.tasks.cancel(running, True) == (True, True)
    assert commands.interrupted
    finish(remote, rc=-1)
    await until_state(master, running, "KILLED")


@pytest_twisted.ensureDeferred
async def test_a_running_task_takes_the_slaves_slot_from_builds(master):
    _, commands = await attach(master, "bs1")
    await create(master, request())
    remote, _, _ = await until_started(commands)
    slave = master.botmaster.slaves["bs1"]
    assert not master.botmaster.slave_accepts_build(slave)
    assert not master.botmaster.slave_accepts_task(slave)
    finish(remote)
    await eventually(lambda: defer.succeed(master.botmaster.slave_accepts_build(slave)), "the slot freed")


@pytest_twisted.ensureDeferred
async def test_an_idempotent_task_is_answered_from_a_finished_twin(master):
    _, commands = await attach(master, "bs1")
    first = await create(master, request(idempotent=True))
    remote, _, _ = await until_started(commands)
    finish(remote, stdout="out\n")
    await until_state(master, first, "COMPLETED")
    second = await create(master, request(idempotent=True))
    result = await master.db.tasks.get_result(second)
    assert result["state"] == "COMPLETED" and result["deduped_from"] == ids.summary_id(first)
    assert result["exit_code"] == 0 and len(commands.started) == 1


@pytest_twisted.ensureDeferred
async def test_a_failed_task_is_not_reused(master):
    _, commands = await attach(master, "bs1")
    first = await create(master, request(idempotent=True))
    remote, _, _ = await until_started(commands)
    finish(remote, rc=1)
    await until_state(master, first, "COMPLETED")
    await create(master, request(idempotent=True))
    await until_started(commands, 2)


@pytest_twisted.ensureDeferred
async def test_fifty_identical_idempotent_tasks_at_once_run_once(master):
    _, commands = await attach(master, "bs1")
    task_ids = [await create(master, request(idempotent=True), submit=False) for _ in range(50)]
    await defer.gatherResults([master.tasks.submitted(t) for t in task_ids])
    remote, _, _ = await until_started(commands)
    finish(remote, stdout="once\n")
    results = []
    for task_id in task_ids:
        results.append(await until_state(master, task_id, "COMPLETED"))
    assert len(commands.started) == 1
    ran = [r for r in results if r["deduped_from"] is None]
    assert len(ran) == 1
    assert {r["deduped_from"] for r in results if r["deduped_from"]} == {ids.summary_id(ran[0]["request_id"])}
    assert all(r["exit_code"] == 0 for r in results)


@pytest_twisted.ensureDeferred
async def test_killing_a_twin_in_flight_lets_its_attached_tasks_run_on_their_own(master):
    _, commands = await attach(master, "bs1")
    first = await create(master, request(idempotent=True))
    remote, _, _ = await until_started(commands)
    second = await create(master, request(idempotent=True))
    assert (await master.db.tasks.get_result(second))["twin_of"] == first
    assert await master.tasks.cancel(first, True) == (True, True)
    finish(remote, rc=-1)
    await until_state(master, first, "KILLED")
    remote, _, _ = await until_started(commands, 2)  # the second, on its own
    finish(remote)
    result = await until_state(master, second, "COMPLETED")
    assert (result["deduped_from"], result["try_number"]) == (None, 1)


@pytest_twisted.ensureDeferred
async def test_the_poll_runs_a_task_it_was_not_told_about(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, request(), submit=False)
    master.reactor.advance(engine_module.POLL_INTERVAL_S)
    remote, _, _ = await until_started(commands)
    finish(remote)
    await until_state(master, task_id, "COMPLETED")


@pytest_twisted.ensureDeferred
async def test_the_poll_leaves_a_task_being_decided_alone(master):
    gate = defer.Deferred()  # holds the decision of the submitted task
    get_request, decisions = master.db.tasks.get_request, []

    async def held_get_request(request_id):
        decisions.append(request_id)
        if len(decisions) == 1:
            await gate
        return await get_request(request_id)

    await attach(master, "bs1")
    task_id = await create(master, request(idempotent=True, wait_for_capacity=True), submit=False)
    master.db.tasks.get_request = held_get_request
    submitted = master.tasks.submitted(task_id)
    await master.tasks.poll()
    gate.callback(None)
    await submitted
    assert decisions == [task_id]


async def finished_with_outputs(master, isolated: str) -> int:
    """A task COMPLETED with exit 0 whose outputs are the .isolated ``isolated``, as a slave's
    run_isolated try leaves it."""
    first = await create(master, request(idempotent=True), submit=False)
    try_number = await master.db.tasks.start_run(first, "bs1", master.reactor.seconds())
    outputs = {"isolated": isolated, "namespace": "default-gzip", "isolatedserver": "http://127.0.0.1:8010"}
    await master.db.tasks.finish_run(first, try_number, "COMPLETED", master.reactor.seconds(), exit_code=0,
                                     duration=1.0, outputs_ref=outputs)
    return first


@pytest_twisted.ensureDeferred
async def test_a_finished_twin_is_reused_only_while_its_outputs_are_in_the_store(master):
    content = b'{"algo":"sha-1","files":{},"version":"1.4"}'
    digest = hashlib.sha1(content).hexdigest()
    first = await finished_with_outputs(master, digest)
    missing = await create(master, request(idempotent=True))
    assert (await master.db.tasks.get_result(missing))["deduped_from"] is None  # outputs gone: run again

    await master.cas.store.put(parse_namespace("default-gzip"), digest, len(content), zlib.compress(content))
    second = await create(master, request(idempotent=True))
    result = await master.db.tasks.get_result(second)
    assert result["state"] == "COMPLETED" and result["deduped_from"] == ids.summary_id(first)
    assert result["outputs_ref"]["isolated"] == digest


@pytest_twisted.ensureDeferred
async def test_a_slave_freed_before_a_new_task_is_decided_does_not_run_it(master):
    # the race CI once lost: the API stores a task, a slave's slot frees and it reaps before
    # the engine has answered the task from its finished twin
    _, commands = await attach(master, "bs1")
    first = await create(master, request(idempotent=True))
    remote, _, _ = await until_started(commands)
    finish(remote, stdout="out\n")
    await until_state(master, first, "COMPLETED")
    second = await create(master, request(idempotent=True), submit=False)
    master.tasks.reap(master.botmaster.slaves["bs1"])
    await eventually(lambda: defer.succeed("bs1" not in master.tasks._reaping), "the reap to end")
    assert await state_of(master, second) == "PENDING" and len(commands.started) == 1
    await master.tasks.submitted(second)
    result = await master.db.tasks.get_result(second)
    assert result["state"] == "COMPLETED" and result["deduped_from"] == ids.summary_id(first)


def task_with(**props):
    """A request whose one slice has ``props`` (Swarming's v1 names) besides the defaults."""
    base = {"command": ["echo", "hi"], "dimensions": [{"key": "pool", "value": "ci"}],
            "execution_timeout_secs": 60, "io_timeout_secs": 0, "grace_period_secs": 10, **props}
    return request_from_json({"name": "t", "user": "alice", "priority": 100,
                              "task_slices": [{"expiration_secs": 300, "properties": base}]})


SECRET = b"s3cr3t-for-the-task"


@pytest_twisted.ensureDeferred
async def test_a_task_with_caches_outputs_or_secret_bytes_runs_as_run_isolated_without_inputs(master):
    _, commands = await attach(master, "bs1")
    task_id = await create(master, task_with(
        caches=[{"name": "pip", "path": "cache/pip"}], outputs=["out/report.txt"], relative_cwd="src",
        secret_bytes=base64.b64encode(SECRET).decode()))
    remote, name, args = await until_started(commands)
    assert name == "run_isolated" and args["isolated"] is None and args["command"] == ["echo", "hi"]
    assert args["caches"] == [{"name": "pip", "path": "cache/pip"}] and args["outputs"] == ["out/report.txt"]
    assert args["relative_cwd"] == "src" and args["secret_bytes"] == SECRET
    assert args["namespace"] == "default-gzip" and args["server"].startswith("http://")
    assert args["auth_header"].startswith("Bearer ")
    finish(remote, isolated_output="a" * 40)
    result = await until_state(master, task_id, "COMPLETED")
    assert result["outputs_ref"] == {"isolated": "a" * 40, "isolatedserver": args["server"],
                                     "namespace": "default-gzip"}


@pytest_twisted.ensureDeferred
async def test_each_of_caches_outputs_and_secret_bytes_alone_needs_run_isolated(master):
    for props in ({"caches": [{"name": "c", "path": "c"}]}, {"outputs": ["o"]},
                  {"secret_bytes": base64.b64encode(b"x").decode()}):
        name, _ = master.tasks._command_for(task_with(**props).task_slices[0].properties)
        assert name == "run_isolated", props
    name, args = master.tasks._command_for(task_with(relative_cwd="src").task_slices[0].properties)
    assert name == "shell" and args["workdir"] == "build/src"


@pytest_twisted.ensureDeferred
async def test_the_secret_bytes_of_a_task_are_never_logged_by_the_master(master):
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        _, commands = await attach(master, "bs1")
        task_id = await create(master, task_with(secret_bytes=base64.b64encode(SECRET).decode()))
        remote, _, _ = await until_started(commands)
        remote.remote_complete(Failure(RuntimeError("run_isolated: argument 'secret_bytes' refused")))
        await until_state(master, task_id, "BOT_DIED")
    finally:
        globalLogPublisher.removeObserver(events.append)
    logged = "\n".join(repr(event) + (formatEvent(event) or "") for event in events)
    assert "could not run" in logged  # the failure was logged...
    assert SECRET.decode() not in logged  # ...not the secret
    assert base64.b64encode(SECRET).decode() not in logged


def isolated_bytes(files=None, includes=None) -> bytes:
    doc = {"algo": "sha-1", "version": "1.4", "files": files or {}}
    if includes:
        doc["includes"] = includes
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


async def put(master, content: bytes) -> str:
    digest = hashlib.sha1(content).hexdigest()
    await master.cas.store.put(parse_namespace("default-gzip"), digest, len(content), zlib.compress(content))
    return digest


@pytest_twisted.ensureDeferred
async def test_a_finished_twin_is_reused_only_while_every_file_of_its_outputs_is_in_the_store(master):
    kept = await put(master, b"kept file")
    lost = hashlib.sha1(b"a file the store expired").hexdigest()
    include = await put(master, isolated_bytes({"deep/lost.txt": {"h": lost, "s": 24}}))
    root = await put(master, isolated_bytes({"kept.txt": {"h": kept, "s": 9}}, includes=[include]))
    first = await finished_with_outputs(master, root)
    again = await create(master, request(idempotent=True))
    assert (await master.db.tasks.get_result(again))["deduped_from"] is None  # a file is gone: run again

    await master.cas.store.put(parse_namespace("default-gzip"), lost, 24,
                               zlib.compress(b"a file the store expired"))
    reused = await create(master, request(idempotent=True), submit=False)
    await master.tasks.submitted(reused)
    result = await master.db.tasks.get_result(reused)
    assert result["state"] == "COMPLETED" and result["deduped_from"] == ids.summary_id(first)


@pytest_twisted.ensureDeferred
async def test_outputs_whose_isolated_is_not_an_isolated_are_not_reused(master):
    root = await put(master, b"not json at all")
    assert not await master.tasks._outputs_stored({"isolated": root, "namespace": "default-gzip"})
    assert await master.tasks._outputs_stored(None)


@pytest_twisted.ensureDeferred
async def test_a_store_that_cannot_answer_makes_the_task_run_again_not_hang(master, monkeypatch):
    _, commands = await attach(master, "bs1")
    root = await put(master, isolated_bytes())
    await finished_with_outputs(master, root)

    def unavailable(namespace, digests):
        return defer.fail(StoreUnavailable("disk on fire"))

    monkeypatch.setattr(master.cas.store, "contains", unavailable)
    again = await create(master, request(idempotent=True))
    await until_started(commands)  # it runs, rather than staying undecided
    assert (await master.db.tasks.get_result(again))["deduped_from"] is None


@pytest_twisted.ensureDeferred
async def test_terminate_is_a_recorded_task_that_completes_once_the_slave_has_gone(master):
    connection, commands = await attach(master, "bs1")
    running = await create(master, request())
    remote, _, _ = await until_started(commands)
    task_id = await master.tasks.terminate_bot("bs1")
    request_id = ids.parse_task_id(task_id)[0]
    stored = await master.db.tasks.get_request(request_id)
    assert stored["name"] == "Terminate bs1" and "swarming.terminate:1" in stored["tags"]
    assert await state_of(master, request_id) == "RUNNING"
    assert await master.tasks.terminate_bot("bs1") == task_id  # asked again: the same task
    assert [r["name"] for r in await master.db.tasks.runs_of_bot("bs1", 10)][0] == "Terminate bs1"
    assert not connection.broker.disconnected  # its task runs on
    finish(remote)
    await until_state(master, running, "COMPLETED")
    result = await until_state(master, request_id, "COMPLETED")  # then it shut down
    assert result["exit_code"] == 0 and result["slave"] == "bs1"
    assert connection.broker.disconnected


@pytest_twisted.ensureDeferred
async def test_terminating_a_bot_that_is_not_attached_ends_expired_at_once(master):
    connection, _ = await attach(master, "bs1")
    connection.drop()
    await eventually(lambda: defer.succeed("bs1" not in master.botmaster.slaves), "bs1 gone")
    task_id = await master.tasks.terminate_bot("bs1")
    result = await master.db.tasks.get_result(ids.parse_task_id(task_id)[0])
    assert result["state"] == "EXPIRED" and "not attached" in result["error"]


@pytest_twisted.ensureDeferred
async def test_a_bot_lost_with_its_task_still_running_ends_its_termination_bot_died(master):
    connection, commands = await attach(master, "bs1")
    running = await create(master, request())
    await until_started(commands)
    terminate = ids.parse_task_id(await master.tasks.terminate_bot("bs1"))[0]
    connection.drop()
    await until_state(master, running, "BOT_DIED")
    result = await until_state(master, terminate, "BOT_DIED")
    assert result["internal_failure"]


def count_calls(monkeypatch, component, name):
    """The calls of ``component.name`` (which still runs) from now on."""
    calls = []
    real = getattr(component, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(component, name, counted)
    return calls


@pytest_twisted.ensureDeferred
async def test_a_task_an_attached_slave_can_run_is_decided_without_reading_the_bots(master, monkeypatch):
    _, commands = await attach(master, "bs1")
    # the Sampler's sample at the start counts the bots by state (a read of its own)
    await eventually(lambda: defer.succeed(master.sampler.last_at is not None), "the start's sample")
    bots_read = count_calls(monkeypatch, master.db.tasks, "get_bots")
    task_id = await create(master, request({"pool": "ci", "gpu": "nvidia"}))
    remote, _, _ = await until_started(commands)
    assert bots_read == []
    finish(remote)
    await until_state(master, task_id, "COMPLETED")


@pytest_twisted.ensureDeferred
async def test_a_try_reads_neither_its_request_nor_its_slice_back(master, monkeypatch):
    _, commands = await attach(master, "bs1")
    requests_read = count_calls(monkeypatch, master.db.tasks, "get_request")
    runs_read = count_calls(monkeypatch, master.db.tasks, "get_run")
    task_id = await create(master, request(command=("echo", "once")))
    remote, _, args = await until_started(commands)
    assert args["command"] == ["echo", "once"]
    bot = await master.db.tasks.get_bot("bs1")
    assert bot["task_id"] == ids.run_id(task_id, 1)  # the bot shows its task while it runs
    finish(remote)
    await until_state(master, task_id, "COMPLETED")
    assert len(requests_read) == 1  # the decision's read; the try uses what it parsed
    assert runs_read == []
    await eventually(lambda: defer.maybeDeferred(
        lambda: master.db.tasks.get_bot("bs1")).addCallback(lambda b: b["task_id"] is None), "bs1 idle")


@pytest_twisted.ensureDeferred
async def test_a_task_that_is_not_idempotent_ends_without_looking_for_twins(master, monkeypatch):
    _, commands = await attach(master, "bs1")
    twins_read = count_calls(monkeypatch, master.db.tasks, "get_twins")
    task_id = await create(master, request())
    remote, _, _ = await until_started(commands)
    finish(remote)
    await until_state(master, task_id, "COMPLETED")
    await eventually(lambda: defer.succeed(not master.tasks.runs), "the try to end")
    assert twins_read == []


@pytest_twisted.ensureDeferred
async def test_a_slave_takes_its_next_task_while_the_twins_of_its_last_are_being_ended(master, monkeypatch):
    _, commands = await attach(master, "bs1")
    first = await create(master, request(idempotent=True))
    remote, _, _ = await until_started(commands)
    twin = await create(master, request(idempotent=True))  # attached to the first, in flight
    other = await create(master, request(command=("echo", "other")))
    twins_asked, release = [], defer.Deferred()
    real_get_twins = master.db.tasks.get_twins

    async def slow_get_twins(task_id):
        twins_asked.append(task_id)
        await release
        return await real_get_twins(task_id)

    monkeypatch.setattr(master.db.tasks, "get_twins", slow_get_twins)
    finish(remote)
    _, _, args = await until_started(commands, 2)  # while the first's twins wait
    assert args["command"] == ["echo", "other"] and twins_asked == [first]
    assert await state_of(master, twin) == "PENDING"
    release.callback(None)
    result = await until_state(master, twin, "COMPLETED")
    assert result["deduped_from"] == ids.summary_id(first)
    assert await state_of(master, other) == "RUNNING"


@pytest_twisted.ensureDeferred
async def test_a_slave_short_of_disk_or_quarantined_by_an_admin_takes_no_task(quarantining_master):
    master = quarantining_master
    _, low = await attach(master, "bs1", {"basedir": "/builds/bs1", "disk_free_mb": 999})
    _, broken = await attach(master, "bs2", {"basedir": "/builds/bs2", "disk_free_mb": 50_000})
    bots = {name: await master.db.tasks.get_bot(name) for name in ("bs1", "bs2")}
    assert bots["bs1"]["quarantined"].startswith("low disk: 999 MB free")
    assert bots["bs2"]["quarantined"].startswith("fan broken")
    task_id = await create(master, request())
    master.reactor.advance(engine_module.POLL_INTERVAL_S)  # a poll lets every idle slave reap
    await master.tasks.poll()
    assert (low.started, broken.started) == ([], [])
    assert await state_of(master, task_id) == "PENDING"
    # the admin lifts bs2's quarantine: a reconfig, and bs2 takes the task at once
    master.config = replace(master.config, tasks=replace(master.config.tasks, quarantined=()))
    master.tasks.reconfigService(master.config)
    await until_started(broken)
    assert (await master.db.tasks.get_bot("bs2"))["quarantined"] is None
    assert low.started == []


def test_c_tasks_quarantine_keys_are_checked_one_line_each():
    from buildfarm.master.tasks.settings import validate_tasks_config

    settings, problems = validate_tasks_config({"tasks": {"quarantine_below_free_mb": 2048,
                                                          "quarantined": {"bs1": "disk errors"}}})
    assert (settings.quarantine_below_free_mb, settings.quarantined, problems) == (
        2048, (("bs1", "disk errors"),), [])
    _, problems = validate_tasks_config({"tasks": {"quarantine_below_free_mb": -1, "quarantined": ["bs1"]}})
    assert [message.split(" must ")[0] for _, message in problems] == [
        "c['tasks']['quarantine_below_free_mb']", "c['tasks']['quarantined']"]
