"""The slave's half of the PB conversation, in memory.

A tiny master (a Portal whose realm hands out a recording perspective) talks to the slave's
Bot over iosim, calling it the way the buildfarm master does.  The SlaveService is
driven on a MemoryReactorClock: login, keepalive deadlines, refused logins, reconnection
backoff, master-requested shutdown.
"""

import os
import shutil

import pytest
import pytest_twisted
from twisted.cred import portal
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import UsernamePassword
from twisted.internet import defer, reactor, task
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.spread import pb
from twisted.test import iosim
from zope.interface import implementer

from buildfarm.common.redaction import redact_environ
from buildfarm.common.version import VERSION
from buildfarm.slave.bot import Bot
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from buildfarm.slave.service import (
    KEEPALIVE_DEADLINE_S,
    LOGIN_TIMEOUT_S,
    SHUTDOWN_DELAY_S,
    SHUTDOWN_STAMP_POLL_S,
    SlaveService,
)
from fixtures.polling import wait_for
from fixtures.slavecommand import RecordingRemoteCommand

MASTER_PORT = 9989
SLAVE_NAME = "bs1"
PASSWORD = "pass"
WAIT_DEADLINE_S = 10.0
POLL_S = 0.02
OS_RELEASE = 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'


class MasterPerspective(pb.Avatar):
    """The master-side BuildSlave perspective, reduced to what the slave calls."""

    def __init__(self, mind):
        self.mind = mind
        self.keepalives = 0
        self.answerKeepalives = True
        self.shutdownRequests = 0

    def perspective_keepalive(self):
        self.keepalives += 1
        return None if self.answerKeepalives else defer.Deferred()

    def perspective_shutdown(self):
        self.shutdownRequests += 1


@implementer(portal.IRealm)
class MasterRealm:
    """Hands each login a MasterPerspective and remembers them."""

    def __init__(self):
        self.avatars = []

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802 - the cred name
        avatar = MasterPerspective(mind)
        self.avatars.append(avatar)
        return pb.IPerspective, avatar, lambda: None


def masterFactory(realm):
    checker = InMemoryUsernamePasswordDatabaseDontUse(**{SLAVE_NAME: PASSWORD.encode()})
    return pb.PBServerFactory(portal.Portal(realm, [checker]))


def pumped(pump, d):
    """Pump the connection and return what ``d`` fired with (a Failure fails the test)."""
    result = pumpedOutcome(pump, d)
    assert not isinstance(result, Failure), f"remote call failed: {result.getErrorMessage()}"
    return result


def pumpedOutcome(pump, d):
    """Pump the connection and return what ``d`` fired with, result or Failure."""
    results = []
    d.addBoth(results.append)
    pump.flush()
    assert results, "no answer after pumping"
    return results[0]


class Conversation:
    """A Bot logged in to the tiny master over an in-memory connection."""

    def __init__(self, basedir):
        self.clock = task.Clock()
        self.shutdowns = 0
        osRelease = os.path.join(basedir, "os-release")
        with open(osRelease, "w") as f:
            f.write(OS_RELEASE)
        runtime = SlaveRuntime(basedir, defaultRegistry(), reactor, self.clock, self._shutdown)
        self.bot = Bot(runtime, osReleasePath=osRelease)
        self.realm = MasterRealm()
        server, client = masterFactory(self.realm), pb.PBClientFactory()
        _, _, self.pump = iosim.connectedServerAndClient(
            lambda: server.buildProtocol(None), lambda: client.buildProtocol(None))
        credentials = UsernamePassword(SLAVE_NAME.encode(), PASSWORD.encode())
        pumped(self.pump, client.login(credentials, client=self.bot))
        self.mind = self.realm.avatars[-1].mind

    def _shutdown(self):
        self.shutdowns += 1

    def call(self, ref, method, *args):
        return pumped(self.pump, ref.callRemote(method, *args))

    async def waitFor(self, predicate, what):
        """Pump while the real reactor runs the child processes, until ``predicate()``."""
        await wait_for(predicate, what, WAIT_DEADLINE_S, POLL_S, between=self.pump.flush)


@pytest.fixture
def conversation(tmp_path):
    info = tmp_path / "info"
    info.mkdir()
    (info / "admin").write_text("Jo Admin <jo@example.org>\n")
    (info / "host").write_text("  a build host  \n")
    return Conversation(str(tmp_path))


@pytest.fixture
def logs():
    with capturedLogs() as events:
        yield events


def logText(events):
    return "\n".join(formatEvent(e) for e in events)


# The Bot, as the master calls it


def test_print_is_logged(conversation, logs):
    assert conversation.call(conversation.mind, "print", "attached") is None

    assert "message from master: attached" in logText(logs)


def test_worker_info_has_info_files_environment_and_os_release(conversation, tmp_path):
    info = conversation.call(conversation.mind, "getWorkerInfo")

    assert info["admin"] == "Jo Admin <jo@example.org>" and info["host"] == "a build host"
    assert info["environ"] == redact_environ(os.environ)
    assert info["system"] == os.name and info["basedir"] == str(tmp_path)
    assert info["version"] == VERSION and info["worker_commands"] == defaultRegistry().versions()
    assert info["numcpus"] >= 1
    assert info["os_id"] == "debian" and info["os_version_id"] == "12"


def test_old_style_info_calls_answer_too(conversation):
    info = conversation.call(conversation.mind, "getSlaveInfo")

    assert info["admin"] == "Jo Admin <jo@example.org>" and "version" not in info
    # the master quarantines a slave short of disk (docs/tasks.md): what is free, give or take
    assert abs(info["disk_free_mb"] - shutil.disk_usage(info["basedir"]).free // 2**20) <= 64
    assert conversation.call(conversation.mind, "getCommands")["uploadFile"] == "3.3"
    assert conversation.call(conversation.mind, "getVersion") == VERSION


def test_set_builder_list_creates_directories_and_returns_references(conversation, tmp_path):
    builders = conversation.call(conversation.mind, "setBuilderList",
                                 [("linux", "linux-dir"), (b"docs", b"docs-dir")])

    assert sorted(builders) == ["docs", "linux"]
    assert all(isinstance(ref, pb.RemoteReference) for ref in builders.values())
    assert (tmp_path / "linux-dir").is_dir() and (tmp_path / "docs-dir").is_dir()


def test_set_builder_list_keeps_listed_builders_and_drops_the_others(conversation, tmp_path):
    conversation.call(conversation.mind, "setBuilderList",
                      [("linux", "linux-dir"), ("docs", "docs-dir")])
    linux = conversation.bot.builders["linux"]

    builders = conversation.call(conversation.mind, "setBuilderList",
                                 [("linux", "linux-dir"), ("win", "win-dir")])

    assert sorted(builders) == ["linux", "win"]
    assert conversation.bot.builders["linux"] is linux
    assert "docs" not in conversation.bot.builders
    assert (tmp_path / "docs-dir").is_dir()  # never deleted


def test_builder_accepts_set_master_and_print(conversation, logs):
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]

    conversation.call(builder, "setMaster", RecordingRemoteCommand())
    conversation.call(builder, "print", "attached")
    conversation.call(builder, "startBuild")

    assert "message from master to linux: attached" in logText(logs)


@pytest_twisted.ensureDeferred
async def test_start_command_runs_echo_and_streams_updates(conversation):
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]
    remote = RecordingRemoteCommand()
    args = {"workdir": "build", "command": ["echo", "hello"], "env": {}, "want_stdout": True,
            "want_stderr": True, "logEnviron": True, "timeout": 1200, "maxTime": None,
            "sigtermTime": None, "interruptSignal": "KILL", "usePTY": False, "logfiles": {},
            "initial_stdin": None}

    assert conversation.call(builder, "startCommand", remote, "1", "shell", args) is None
    conversation.clock.advance(0)
    await conversation.waitFor(lambda: remote.completions, "complete")

    assert remote.updates[0] == {"header": "echo hello\n"}
    assert remote.text("stdout") == "hello\n"
    assert remote.updates[-1] == {"rc": 0}
    assert remote.completions == [None]


def test_unknown_command_fails_the_start_command_call(conversation):
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]

    failure = pumpedOutcome(conversation.pump, builder.callRemote(
        "startCommand", RecordingRemoteCommand(), "1", "teleport", {}))

    assert "UnknownCommand" in str(failure.type)
    assert "unknown command 'teleport'" in failure.getErrorMessage()


def test_bad_arguments_arrive_as_a_remote_failure_in_complete(conversation):
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]
    remote = RecordingRemoteCommand()

    conversation.call(builder, "startCommand", remote, "1", "shell", {"workdir": "build"})
    conversation.clock.advance(0)
    conversation.pump.flush()

    [failure] = remote.completions
    assert "missing required argument 'command'" in failure.getErrorMessage()


def test_shutdown_answers_then_asks_the_slave_to_stop(conversation):
    assert conversation.call(conversation.mind, "shutdown") is None

    assert conversation.shutdowns == 1


def test_old_style_builder_shutdown_stops_the_slave_too(conversation):
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]

    conversation.call(builder, "shutdown")

    assert conversation.shutdowns == 1


# The SlaveService: connecting, liveness, backoff


class SlaveOnMemoryReactor:
    """A SlaveService and the tiny master, both on one MemoryReactorClock."""

    def __init__(self, basedir, password=PASSWORD, serverFactory=None, **options):
        self.reactor = MemoryReactorClock()
        self.realm = MasterRealm()
        self.reactor.listenTCP(MASTER_PORT, serverFactory or masterFactory(self.realm))
        self.slave = SlaveService("127.0.0.1", MASTER_PORT, SLAVE_NAME, password, basedir,
                                  reactor=self.reactor, clock=self.reactor, **options)
        self.completer = iosim.ConnectionCompleter(self.reactor)
        self.pump = None

    def connect(self):
        """Complete the pending TCP connection and let PB talk."""
        self.pump = self.completer.succeedOnce()
        assert self.pump is not None, "no connection attempt pending"
        self.pump.flush()

    def retryDelays(self):
        now = self.reactor.seconds()
        return [call.getTime() - now for call in self.reactor.getDelayedCalls()]


@pytest.fixture
def memorySlave(tmp_path):
    created = []

    def make(**options):
        harness = SlaveOnMemoryReactor(str(tmp_path), **options)
        harness.slave.startService()
        created.append(harness)
        return harness

    yield make
    for harness in created:
        harness.slave.stopService()


def test_slave_logs_attached_after_login(memorySlave, logs):
    harness = memorySlave()

    harness.connect()

    assert harness.slave.perspective is not None
    assert "attached to master 127.0.0.1:9989 as bs1" in logText(logs)
    assert harness.realm.avatars[-1].mind is not None


def test_tcp_keepalive_is_enabled_on_the_connection(memorySlave, monkeypatch):
    enabled = []
    monkeypatch.setattr(iosim.FakeTransport, "setTcpKeepAlive",
                        lambda transport, on: enabled.append((transport.isServer, on)))
    harness = memorySlave()

    harness.connect()

    assert enabled == [(False, 1)]


def test_keepalive_is_sent_every_interval(memorySlave):
    harness = memorySlave(keepalive=600)
    harness.connect()

    for _ in range(2):
        harness.reactor.advance(600)
        harness.pump.flush()

    assert harness.realm.avatars[-1].keepalives == 2
    assert harness.slave.perspective is not None


def test_keepalive_deadline_drops_a_silent_master_and_reconnects(memorySlave, logs):
    harness = memorySlave(keepalive=600)
    harness.connect()
    harness.realm.avatars[-1].answerKeepalives = False

    harness.reactor.advance(600)
    harness.pump.flush()
    harness.reactor.advance(KEEPALIVE_DEADLINE_S)
    harness.pump.flush()

    assert harness.slave.perspective is None
    assert "did not answer a keepalive within 60 s" in logText(logs)
    assert "lost connection to master" in logText(logs)
    [delay] = harness.retryDelays()
    harness.reactor.advance(delay)
    harness.connect()
    assert harness.slave.perspective is not None


def test_refused_login_is_logged_dropped_and_retried_with_growing_delays(memorySlave, logs):
    harness = memorySlave(password="wrong")
    delays = []

    for _ in range(3):
        harness.connect()
        [delay] = harness.retryDelays()
        delays.append(delay)
        harness.reactor.advance(delay)

    assert "login refused by master 127.0.0.1:9989" in logText(logs)
    assert "; will retry" in logText(logs)
    assert harness.slave.perspective is None
    assert [int(d) for d in delays] == [1, 2, 4]


def test_connection_without_a_perspective_is_dropped_after_120_s(memorySlave, logs):
    silent = Factory.forProtocol(Protocol)  # accepts TCP, never speaks PB
    harness = memorySlave(serverFactory=silent)
    harness.connect()

    harness.reactor.advance(LOGIN_TIMEOUT_S)
    harness.pump.flush()

    assert "no login answer from master 127.0.0.1:9989 within 120 s" in logText(logs)
    assert len(harness.retryDelays()) == 1  # the next attempt is scheduled


def test_lost_connection_is_logged(memorySlave, logs):
    harness = memorySlave()
    harness.connect()

    harness.pump.serverIO.loseConnection()
    harness.pump.flush()

    assert "lost connection to master" in logText(logs)
    assert harness.slave.perspective is None


def test_delay_resets_after_a_successful_login(memorySlave):
    harness = memorySlave()
    for _ in range(3):
        harness.completer.failOnce()
        harness.reactor.advance(harness.retryDelays()[0])
    harness.connect()

    harness.pump.serverIO.loseConnection()
    harness.pump.flush()

    [delay] = harness.retryDelays()
    assert 1 <= delay < 2


def test_master_requested_shutdown_stops_the_reactor_shortly_after(memorySlave, logs):
    harness = memorySlave()
    harness.connect()
    harness.reactor.running = True

    pumped(harness.pump, harness.realm.avatars[-1].mind.callRemote("shutdown"))
    assert "master requested shutdown; stopping" in logText(logs)
    assert not harness.reactor.hasStopped

    harness.reactor.advance(SHUTDOWN_DELAY_S)
    assert harness.reactor.hasStopped


def test_graceful_shutdown_asks_the_master(memorySlave):
    harness = memorySlave()
    harness.connect()

    harness.slave.gracefulShutdown()
    harness.pump.flush()

    assert harness.realm.avatars[-1].shutdownRequests == 1


def test_touching_the_shutdown_stamp_asks_the_master_to_shut_down(memorySlave, tmp_path):
    harness = memorySlave(allow_shutdown="file")
    harness.connect()

    (tmp_path / "shutdown.stamp").touch()
    harness.reactor.advance(SHUTDOWN_STAMP_POLL_S)
    harness.pump.flush()

    assert harness.realm.avatars[-1].shutdownRequests == 1


def test_shutdown_request_while_detached_stops_at_once(memorySlave):
    harness = memorySlave()
    harness.reactor.running = True

    harness.slave.gracefulShutdown()

    assert harness.reactor.hasStopped


def test_maxretries_stops_the_slave_after_that_many_failures(memorySlave):
    harness = memorySlave(maxretries=2)
    harness.reactor.running = True

    for _ in range(3):
        harness.completer.failOnce()
        harness.reactor.advance(0)
        if harness.reactor.hasStopped:
            break
        harness.reactor.advance(harness.retryDelays()[0])

    assert harness.reactor.hasStopped


@pytest_twisted.ensureDeferred
async def test_closed_port_is_retried_with_growing_delays_capped_by_maxdelay(tmp_path, logs):
    port = _closedPort()
    clock = task.Clock()
    slave = SlaveService("127.0.0.1", port, SLAVE_NAME, PASSWORD, str(tmp_path), maxdelay=5,
                         clock=clock)
    slave.startService()
    try:
        delays = []
        for attempt in range(1, 6):
            await _waitForLog(logs, "connection to master 127.0.0.1", attempt)
            [call] = clock.getDelayedCalls()
            delays.append(call.getTime() - clock.seconds())
            clock.advance(delays[-1])
    finally:
        await slave.stopService()

    assert f"connection to master 127.0.0.1:{port} failed:" in logText(logs)
    assert [int(d) for d in delays] == [1, 2, 4, 5, 5]
    assert all(d < 6 for d in delays)


def _closedPort():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _waitForLog(events, text, count):
    for _ in range(int(WAIT_DEADLINE_S / POLL_S)):
        if sum(text in formatEvent(e) for e in events) >= count:
            return
        await task.deferLater(reactor, POLL_S, lambda: None)
    pytest.fail(f"timed out waiting for {count} log lines with {text!r}")


@pytest_twisted.ensureDeferred
async def test_an_update_too_large_for_pb_is_replaced_and_the_command_still_ends(
        conversation, monkeypatch):
    from buildfarm.slave.commands import fs
    tooMany = ["x"] * (640 * 1024 + 1)  # more list items than Banana sends
    monkeypatch.setattr(fs, "_globSorted", lambda pattern: tooMany)
    builder = conversation.call(conversation.mind, "setBuilderList", [("linux", "l")])["linux"]
    remote = RecordingRemoteCommand()

    conversation.call(builder, "startCommand", remote, "1", "glob", {"path": "*"})
    conversation.clock.advance(0)
    await conversation.waitFor(lambda: remote.completions, "complete")

    assert "slave could not send an update (files)" in remote.text("header")
    assert remote.updates[-1] == {"rc": 0} and remote.completions == [None]
    assert conversation.call(conversation.mind, "print", "still connected") is None


def test_sighup_asks_the_master_and_logs_each_stage(memorySlave, logs):
    import signal
    harness = memorySlave(allow_shutdown="signal")
    # MemoryReactorClock has no callFromThread: run the handler's call on the fake clock.
    harness.reactor.callFromThread = lambda f, *args: harness.reactor.callLater(0, f, *args)
    harness.connect()

    os.kill(os.getpid(), signal.SIGHUP)
    harness.reactor.advance(0)
    harness.pump.flush()

    assert harness.realm.avatars[-1].shutdownRequests == 1
    text = logText(logs)
    assert "SIGHUP received: shutting down" in text
    assert "asking master 127.0.0.1:9989 for a graceful shutdown" in text
    assert "master 127.0.0.1:9989 accepted the shutdown request; waiting" in text
    assert not harness.reactor.hasStopped


def test_stopping_the_slave_restores_the_previous_sighup_handler(memorySlave):
    import signal
    before = signal.getsignal(signal.SIGHUP)
    harness = memorySlave(allow_shutdown="signal")
    assert signal.getsignal(signal.SIGHUP) != before

    harness.slave.stopService()

    assert signal.getsignal(signal.SIGHUP) == before


def test_graceful_shutdown_refused_by_the_master_stops_at_once(memorySlave, logs):
    harness = memorySlave()
    harness.connect()
    harness.reactor.running = True

    def refuse():
        raise pb.Error("no shutdowns today")

    harness.realm.avatars[-1].perspective_shutdown = refuse
    harness.slave.gracefulShutdown()
    harness.pump.flush()

    assert "master could not take the shutdown request" in logText(logs)
    assert harness.reactor.hasStopped


def test_connection_closed_before_login_is_logged_with_its_reason(memorySlave, logs):
    class Hangup(Protocol):
        def connectionMade(self):  # noqa: N802 - the Twisted name
            self.transport.loseConnection()

    harness = memorySlave(serverFactory=Factory.forProtocol(Hangup))
    harness.connect()

    assert "connection to master 127.0.0.1:9989 failed: closed before login" in logText(logs)
    assert len(harness.retryDelays()) == 1  # and it tries again


def test_refused_login_is_not_also_reported_as_closed_before_login(memorySlave, logs):
    harness = memorySlave(password="wrong")

    harness.connect()

    assert "login refused" in logText(logs) and "closed before login" not in logText(logs)
