"""The task engine (master/tasks/engine.py) on a real in-memory master with scripted slaves:
dimensions recorded at attach, reaping, each end state, retries and both kinds of dedup."""

import hashlib
import zlib

import pytest_twisted
from twisted.internet import defer
from zope.interface.verify import verifyObject

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


async def attach(master, name):
    from tests.fixtures.memorymaster import FakeSlaveConnection

    connection = FakeSlaveConnection(name)
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
    gate = defer.Deferred()  # holds the try between start_run and its command
    get_run = master.db.tasks.get_run

    async def held_get_run(*args):
        await gate
        return await get_run(*args)

    master.db.tasks.get_run = held_get_run
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
