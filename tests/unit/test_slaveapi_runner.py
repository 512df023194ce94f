"""The ActionRunner: bounded concurrency, one action per slave, recovery after a restart,
the uptime command through a PB SlaveBuilder reference, and reboot escalation through
``IChannel`` providers.  A real master in memory (both database backends) with scripted slave
connections attached to its real BotMaster (test_slaveapi_http.Harness)."""

import pytest_twisted
from test_slaveapi_http import Harness, _until
from twisted.internet import defer, reactor
from zope.interface import implementer
from zope.interface.verify import verifyObject

from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.actions.base import Action
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, ChannelError, IChannel
from fixtures.memorymaster import attach_slave


class Hold(Action):
    """A test action that runs until the test releases its slave."""

    name = "hold"

    def __init__(self):
        self.gates: dict[str, defer.Deferred] = {}
        self.running: list[str] = []
        self.opened = False

    async def run(self, ctx):
        if self.opened:
            return
        self.running.append(ctx.slave)
        gate = self.gates.setdefault(ctx.slave, defer.Deferred())
        try:
            await gate
        finally:
            self.running.remove(ctx.slave)
            if self.gates.get(ctx.slave) is gate:
                del self.gates[ctx.slave]
        ctx.say(f"held {ctx.slave}")

    def open(self) -> None:
        """Let every action through, now and later (test teardown)."""
        self.opened = True
        for slave in list(self.gates):
            self.release(slave)

    def release(self, slave: str) -> None:
        """Let the slave's action through, also when it has not reached its gate yet (on a
        slow database the release can come first: it must not be lost)."""
        gate = self.gates.setdefault(slave, defer.Deferred())
        if not gate.called:
            gate.callback(None)


class Other(Hold):
    name = "other"


async def submit(harness, slave: str, action: str, user: str = "oncall"):
    return await harness.runner.submit(slave, harness.runner.actions[action], {}, user, "127.0.0.1")


@pytest_twisted.async_yield_fixture
async def held(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path, {"max_concurrency": 2}, slaves=("s0", "s1", "s2", "s3")).start()
    hold, other = Hold(), Other()
    harness.runner.actions.update(hold=hold, other=other)
    yield harness, hold, other
    hold.open()
    other.open()
    await _until(lambda: not harness.runner._live)
    await harness.stop()


@pytest_twisted.ensureDeferred
async def test_no_more_actions_run_at_once_than_max_concurrency(held):
    harness, hold, _ = held
    for slave in ("s0", "s1", "s2"):
        await submit(harness, slave, "hold")
    await _until(lambda: len(hold.running) == 2)
    assert sorted(hold.running) == ["s0", "s1"]  # both started; their order is the database's
    hold.release("s0")
    await _until(lambda: "s2" in hold.running)


@pytest_twisted.ensureDeferred
async def test_one_action_at_a_time_per_slave(held):
    harness, hold, other = held
    await submit(harness, "s0", "hold")
    second = await submit(harness, "s0", "other")
    await submit(harness, "s1", "other")
    await _until(lambda: other.running == ["s1"])
    assert hold.running == ["s0"]
    assert (await harness.runner.get(second.requestid)).state == ActionState.PENDING
    hold.release("s0")
    await _until(lambda: "s0" in other.running)


@pytest_twisted.ensureDeferred
async def test_the_same_action_twice_is_one_request(held):
    harness, hold, _ = held
    first = await submit(harness, "s0", "hold")
    again = await submit(harness, "s0", "hold", user="viewer")
    assert again.requestid == first.requestid
    hold.release("s0")
    await harness.runner.wait_idle()
    later = await submit(harness, "s0", "hold")
    assert later.requestid != first.requestid


@pytest_twisted.ensureDeferred
async def test_wait_gives_up_at_the_waittime_on_the_injected_clock(held):
    harness, hold, _ = held
    result = await submit(harness, "s0", "hold")
    waiting = harness.runner.wait(result.requestid, 30)
    harness.clock.advance(29)
    assert not waiting.called
    harness.clock.advance(1)
    assert waiting.called and (await harness.runner.get(result.requestid)).state == ActionState.RUNNING


@pytest_twisted.ensureDeferred
async def test_after_a_restart_pending_actions_run_and_running_ones_fail(db_url, tmp_path):
    first = await Harness(db_url, tmp_path, {"max_concurrency": 1}).start()
    hold = Hold()
    first.runner.actions["hold"] = hold
    running = await submit(first, "bs1", "hold")
    pending = await submit(first, "bs2", "reboot")
    await _until(lambda: hold.running)
    await first.stop()  # the master dies with one running, one pending

    second = await Harness(db_url, tmp_path).start()
    try:
        await _until(lambda: not second.runner._live)
        await second.runner.wait_idle()
        cut = await second.runner.get(running.requestid)
        assert cut.state == ActionState.FAILURE and "master restarted" in cut.text
        ran = await second.runner.get(pending.requestid)
        assert ran.state == ActionState.FAILURE and "no reboot method worked" in ran.text
        assert ran.start_timestamp > 0
        audit = {row["requestid"]: row["outcome"] for row in await second.master.db.slaveapi.get_audit()}
        assert audit == {running.requestid: "failure", pending.requestid: "failure"}
    finally:
        hold.open()
        await second.stop()


@pytest_twisted.ensureDeferred
async def test_disabled_slaves_survive_a_restart(db_url, tmp_path):
    first = await Harness(db_url, tmp_path).start()
    await first.request("POST", "/slaves/bs1/actions/disable", args={"waittime": 5})
    await first.stop()
    second = await Harness(db_url, tmp_path).start()
    try:
        assert not second.runner.is_enabled("bs1") and second.runner.is_enabled("bs2")
    finally:
        await second.stop()


# -- uptime through a SlaveBuilder reference ------------------------------------------------

class FakeBuilderRef:
    """A slave's SlaveBuilder reference: answers startCommand like a slave would."""

    def __init__(self, stdout: str | None = "123456.78 99999.00\n", busy: bool = False):
        self.stdout = stdout
        self.busy = busy
        self.started: list[tuple] = []

    def notifyOnDisconnect(self, callback):  # noqa: N802
        pass

    def dontNotifyOnDisconnect(self, callback):  # noqa: N802
        pass

    def callRemote(self, method, *args):  # noqa: N802
        if method != "startCommand":
            return defer.succeed(None)
        command, command_id, name, cmd_args = args
        if self.busy:
            return defer.fail(Exception("builder is already running command '3'"))
        self.started.append((command_id, name, cmd_args["command"]))
        if self.stdout is not None:
            def answer():
                command.remote_update([[{"stdout": self.stdout}, 0], [{"rc": 0}, 0]])
                command.remote_complete(None)

            reactor.callLater(0, answer)
        return defer.succeed(None)


@pytest_twisted.ensureDeferred
async def test_uptime_runs_cat_proc_uptime_on_an_idle_builder(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path).start()
    busy, idle = FakeBuilderRef(busy=True), FakeBuilderRef()
    await harness.attach("bs1", builders={"a-busy": busy, "b-idle": idle})
    try:
        status, body, _ = await harness.request("POST", "/slaves/bs1/actions/buildslave_uptime",
                                                args={"waittime": 5})
        assert status == 200 and body["state"] == ActionState.SUCCESS, body
        assert body["data"] == {"uptime": 123456}
        assert idle.started == [(f"slaveapi-{body['requestid']}", "shell", ["cat", "/proc/uptime"])]
        assert "a-busy could not run it" in body["story"]
        assert body["text"] == 123456  # the original SlaveAPI's text: the uptime, an integer
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_uptime_through_the_master_reads_proc_uptime_with_the_ssh_channels_parser(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path).start()
    await harness.attach("bs1", builders={"b": FakeBuilderRef(stdout="not an uptime\n")})
    try:
        status, body, _ = await harness.request("POST", "/slaves/bs1/actions/buildslave_uptime",
                                                args={"waittime": 5})
        assert status == 200 and body["state"] == ActionState.FAILURE, body
        assert "cannot read an uptime from 'not an uptime\\n'" in body["story"], body["story"]
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_uptime_fails_when_the_slave_does_not_answer_in_time(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path).start()
    silent = FakeBuilderRef(stdout=None)
    await harness.attach("bs1", builders={"b": silent})
    try:
        result = await harness.runner.submit("bs1", harness.runner.actions["get_uptime"], {}, "oncall", "x")
        await _until(lambda: silent.started)
        harness.clock.advance(harness.runner.settings.command_timeout)
        await harness.runner.wait_idle()
        done = await harness.runner.get(result.requestid)
        assert done.state == ActionState.FAILURE and "no answer from bs1 within 30 s" in done.text
    finally:
        await harness.stop()


# -- reboot escalation through channels -------------------------------------------------------

@implementer(IChannel)
class ScriptedChannel:
    """An IChannel whose reboot succeeds or fails as the test says."""

    operations = frozenset({REBOOT})

    def __init__(self, name: str, works: bool, master=None):
        self.name = name
        self.works = works
        self.master = master
        self.reattaching: defer.Deferred | None = None
        self.calls = 0

    def configured_for(self, location):
        return self.name in location.channels

    def perform(self, operation, location, say, clock, deadline_s, **kwargs):
        if operation != REBOOT:
            return defer.fail(ChannelError(f"{operation} is not scripted"))
        self.calls += 1
        if not self.works:
            return defer.fail(ChannelError("no route to host"))
        say(f"{self.name} reboot of {location.name} issued")
        if self.master is not None:  # the machine comes back: its slave attaches again
            self.reattaching = defer.ensureDeferred(
                attach_slave(self.master, location.name, peer=("127.0.0.1", 50002)))
        return defer.succeed(True)


@pytest_twisted.ensureDeferred
async def test_reboot_escalates_past_a_failing_channel_and_skips_missing_ones(db_url, tmp_path):
    inventory = {"slaves": {"bs1": {"ssh": {"host": "bs1", "username": "u", "password": "p"},
                                    "pdu": {"fqdn": "pdu1", "outlet": 12}}}}
    harness = await Harness(db_url, tmp_path, inventory).start()
    ssh, pdu = ScriptedChannel("ssh", works=False), ScriptedChannel("pdu", works=True, master=harness.master)
    verifyObject(IChannel, ssh)
    harness.runner.channels = {"ssh": ssh, "pdu": pdu}
    try:
        _, body, _ = await harness.request("POST", "/slaves/bs1/actions/reboot", args={"waittime": 5})
        assert body["state"] == ActionState.SUCCESS, body
        lines = body["text"].split("\n")
        assert lines[0:2] == ["reboot command over ssh: trying",
                              "reboot command over ssh: failed: no route to host"]
        assert lines[2] == "power cycle through Mozpool: skipped (the slave has no mozpool channel)"
        assert lines[3] == "chassis power cycle through the IPMI BMC: skipped (the slave has no bmc channel)"
        assert lines[-1].startswith("verified: bs1 attached again from 127.0.0.1:50002 after")
        assert ssh.calls == pdu.calls == 1
    finally:
        await harness.stop()

