"""The ssh channel: its parsers and settings in memory, its commands against a real OpenSSH
sshd on loopback, and the actions that use it (shutdown confirmed from twistd.log, uptime,
last activity) with a scripted channel on a real master in memory (its clock the test's)."""

import os
import socket
from datetime import datetime

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric import ed25519
from twisted.conch.ssh.keys import Key
from twisted.internet import defer, error, reactor, task
from zope.interface import implementer
from zope.interface.verify import verifyObject

from buildfarm.master.auth.secret import Secret
from buildfarm.master.slaveapi.actions.base import ActionContext, ActionFailed
from buildfarm.master.slaveapi.actions.buildslave_last_activity import BuildslaveLastActivity
from buildfarm.master.slaveapi.actions.buildslave_uptime import BuildslaveUptime
from buildfarm.master.slaveapi.actions.shutdown_buildslave import graceful_shutdown
from buildfarm.master.slaveapi.channels import ssh
from buildfarm.master.slaveapi.channels.interfaces import (
    READ_LOG,
    REBOOT,
    SHUTDOWN_SLAVE,
    UPTIME,
    ChannelError,
    IChannel,
    IChannelHost,
)
from buildfarm.master.slaveapi.channels.ssh import (
    HostKeyCheck,
    HostKeyRefused,
    SSHChannel,
    fingerprint_matches,
    parse_unix_uptime,
    parse_windows_statistics,
    sha256_fingerprint,
    ssh_target,
)
from buildfarm.master.slaveapi.inventory import SlaveLocation
from buildfarm.master.slaveapi.settings import SlaveAPISettings
from buildfarm.master.slaveapi.slavelog import (
    READY,
    RUNNING_COMMAND,
    STOPPED,
    last_stop,
    log_state,
    parse_line,
)
from fixtures.channelhost import ChannelHost
from fixtures.memorymaster import attach_slave, start_memory_master
from fixtures.polling import wait_for
from fixtures.sshd import sshd  # noqa: F401  (the fixture)

# Real output of `net statistics server` on an en-US Windows Server 2019.
SSHD_DEADLINE_S = 30.0

NET_STATISTICS_SERVER = """\
Server Statistics for \\\\WIN-T-W2019-0042


Statistics since 11/20/2026 8:14:33 AM


Sessions accepted                  1
Sessions timed-out                 0
Sessions errored-out               0

Kilobytes sent                     0
Kilobytes received                 0

Mean response time (msec)          0

System errors                      0
Permission violations              0
Password violations                0

Files accessed                     0
Communication devices accessed     0
Print jobs spooled                 0

Times buffers exhausted

  Big buffers                      0
  Request buffers                  0

The command completed successfully.

"""

RUNNING_LOG = """\
2026-11-27T17:08:40+0000 [-] Loading buildbot.tac...
2026-11-27T17:08:40+0000 [twisted.scripts._twistd_unix.UnixAppLogger#info] twistd 26.10.0 starting up.
2026-11-27T17:08:41+0000 [buildfarm.slave.service#info] attached to master 127.0.0.1:9989 as bs1
"""
STOPPED_TAIL = """\
2026-11-27T17:10:40+0000 [buildfarm.slave.service#info] master requested shutdown; stopping
2026-11-27T17:10:40+0000 [twisted.internet.base#info] Main loop terminated.
2026-11-27T17:10:40+0000 [twisted.scripts._twistd_unix.UnixAppLogger#info] Server Shut Down.
"""
LOG_END = 1_795_799_440  # 2026-11-27T17:10:40Z, the last line of STOPPED_TAIL


# -- parsers ---------------------------------------------------------------------------------

def test_proc_uptime_is_its_first_number():
    assert parse_unix_uptime("350735.47 234388.90\n") == 350735.47


@pytest.mark.parametrize("text, seconds", [
    (" 10:14:03 up 4 days,  3:05,  2 users,  load average: 0.00, 0.01, 0.05", 4 * 86400 + 3 * 3600 + 5 * 60),
    (" 10:14:03 up 1 day, 20 min,  1 user,  load average: 0.1, 0.1, 0.1", 86400 + 20 * 60),
    (" 10:14:03 up 5 min,  1 user,  load average: 0.1, 0.1, 0.1", 300),
    ("10:14  up 2:01, 2 users, load averages: 1.32 1.40 1.44", 2 * 3600 + 60),
    ("10:14  up 14 secs, 1 user, load averages: 1.32 1.40 1.44", 14),
])
def test_uptime_output_is_read_when_there_is_no_proc(text, seconds):
    assert parse_unix_uptime(text) == seconds


def test_unreadable_uptime_is_a_value_error():
    with pytest.raises(ValueError, match="no uptime"):
        parse_unix_uptime("sh: uptime: not found")


def test_windows_uptime_is_the_time_since_statistics_since():
    now = datetime(2026, 11, 27, 9, 14, 33)
    assert parse_windows_statistics(NET_STATISTICS_SERVER, now) == 7 * 86400 + 3600


def test_windows_day_first_dates_and_a_given_format():
    text = NET_STATISTICS_SERVER.replace("11/20/2026 8:14:33 AM", "25/11/2026 08:14:33")
    assert parse_windows_statistics(text, datetime(2026, 11, 25, 9, 14, 33)) == 3600
    text = NET_STATISTICS_SERVER.replace("11/20/2026 8:14:33 AM", "25.11.2026 08:14")
    assert parse_windows_statistics(text, datetime(2026, 11, 25, 9, 14), "%d.%m.%Y %H:%M") == 3600


def test_windows_output_without_statistics_since_is_a_value_error():
    with pytest.raises(ValueError, match="no 'Statistics since' line"):
        parse_windows_statistics("System error 5 has occurred.\n\nAccess is denied.", datetime.now())
    with pytest.raises(ValueError, match="set the slave's ssh 'date_format'"):
        parse_windows_statistics("Statistics since yesterday-ish", datetime.now())


def test_twistd_log_lines_are_read_in_both_twistd_formats():
    assert parse_line("2026-11-27T17:10:40+0000 [-] x").when == LOG_END
    assert parse_line("2026-11-27 18:10:40+0100 [-] x").when == LOG_END
    assert parse_line("Traceback (most recent call last):").when is None


def test_log_state_stopped_running_and_ready():
    assert log_state(RUNNING_LOG + STOPPED_TAIL).state == STOPPED
    assert log_state(RUNNING_LOG + STOPPED_TAIL).last.when == LOG_END
    running = RUNNING_LOG + ("2026-11-27T17:09:02+0000 [buildfarm.slave.builder#info] runtests: "
                             "starting command 3 (shell)\n")
    assert log_state(running).state == RUNNING_COMMAND
    done = running + "2026-11-27T17:09:03+0000 [buildfarm.slave.builder#info] runtests: command 3 done\n"
    assert log_state(done).state == READY
    assert log_state("no timestamps here\n") is None


def test_a_stop_followed_by_a_start_is_not_a_stop():
    assert last_stop(STOPPED_TAIL + RUNNING_LOG) is None
    assert "Server Shut Down." in last_stop(RUNNING_LOG + STOPPED_TAIL).text


# -- settings and host keys ------------------------------------------------------------------

def location(ssh_settings: dict | None, **where) -> SlaveLocation:
    return SlaveLocation("bs1", channels={} if ssh_settings is None else {"ssh": ssh_settings}, **where)


def test_host_defaults_to_the_ip_then_the_fqdn_and_the_key_to_the_master_basedir():
    where = location({"username": "cltbld", "key": "keys/id"}, ip="10.0.0.11", fqdn="bs1.x")
    target = ssh_target(where, "/m")
    assert (target.host, target.port, target.key, target.os) == ("10.0.0.11", 22, "/m/keys/id", "unix")
    assert ssh_target(location({"username": "u", "key": "/k"}, fqdn="bs1.x"), "/m").host == "bs1.x"
    with_port = location({"username": "u", "key": "/k", "host": "h", "port": "2222"})
    assert ssh_target(with_port, "/m").port == 2222


@pytest.mark.parametrize("settings, message", [
    ({"username": "u", "key": "/k"}, "no host to ssh to"),
    ({"username": "u", "host": "h"}, "needs a 'key' file or a 'password'"),
    ({"username": "u", "key": "/k", "host": "h", "prot": 22}, "unknown ssh setting(s) 'prot'"),
    ({"username": "u", "key": "/k", "host": "h", "port": 70000}, "must be a TCP port number"),
    ({"username": "u", "key": "/k", "host": "h", "os": "vms"}, "must be 'unix' or 'windows'"),
])
def test_bad_settings_are_a_channel_error_naming_them(settings, message):
    with pytest.raises(ChannelError) as raised:
        ssh_target(location(settings), "/m")
    assert message in str(raised.value)


def test_configured_for_needs_a_username_and_a_key_or_password():
    channel = SSHChannel(ChannelHost(reactor))
    verifyObject(IChannel, channel)
    assert channel.configured_for(location({"username": "u", "key": "k"}))
    assert channel.configured_for(location({"username": "u", "password": Secret("pw")}))
    assert not channel.configured_for(location({"username": "u"}))
    assert not channel.configured_for(location(None))


def new_key() -> Key:
    return Key(ed25519.Ed25519PrivateKey.generate()).public()


def test_a_host_key_matches_its_public_line_and_its_fingerprints():
    key, other = new_key(), new_key()
    assert fingerprint_matches(key.toString("OPENSSH").decode(), key)
    assert fingerprint_matches(sha256_fingerprint(key), key)
    assert fingerprint_matches("MD5:" + key.fingerprint(), key)
    assert not fingerprint_matches(sha256_fingerprint(other), key)


def test_known_hosts_entries_for_host_and_port_are_used_and_a_changed_key_refused(tmp_path):
    key = new_key()
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:2222 {key.toString('OPENSSH').decode()}\n")
    target = ssh_target(location({"username": "u", "key": "/k", "host": "127.0.0.1", "port": 2222,
                                  "known_hosts": "known_hosts"}), str(tmp_path))
    check = HostKeyCheck(target, ssh._read_known_hosts(target.known_hosts), say=lambda line: None)
    check._verify(key)
    with pytest.raises(HostKeyRefused, match="changed"):
        check._verify(new_key())
    unknown = HostKeyCheck(target, [], say=lambda line: None)
    with pytest.raises(HostKeyRefused, match="is not in .*known_hosts; add it there"):
        unknown._verify(key)


def test_host_key_check_off_accepts_any_key_and_says_so():
    said = []
    target = ssh_target(location({"username": "u", "key": "/k", "host": "h", "host_key_check": False}), "/")
    HostKeyCheck(target, None, said.append)._verify(new_key())
    assert "not checked" in said[0]


@pytest_twisted.ensureDeferred
async def test_password_auth_hands_the_password_to_conch_and_never_shows_it(monkeypatch):
    seen = {}

    class Endpoint:
        @classmethod
        def newConnection(cls, *args, **kwargs):  # noqa: N802
            seen.update(kwargs)
            return cls()

        def connect(self, factory):
            return defer.fail(error.ConnectionRefusedError())

    monkeypatch.setattr(ssh, "SSHCommandClientEndpoint", Endpoint)
    channel = SSHChannel(ChannelHost(reactor))
    where = location({"username": "u", "password": Secret("hunter2"), "host": "h", "host_key_check": False})
    with pytest.raises(ChannelError) as raised:
        await channel.perform(UPTIME, where, lambda line: None, reactor, 10)
    assert seen["password"] == b"hunter2" and seen["keys"] is None
    assert str(raised.value) == "ssh u@h:22: connection refused"


# -- against a real sshd ---------------------------------------------------------------------

def real(sshd_server, **more) -> tuple[SSHChannel, SlaveLocation, list[str]]:
    channel = SSHChannel(ChannelHost(reactor, basedir="/"))
    return channel, location(sshd_server.settings(**more)), []


@pytest_twisted.ensureDeferred
async def test_uptime_over_ssh_is_the_machines(sshd):  # noqa: F811
    channel, where, said = real(sshd)
    uptime = await channel.perform(UPTIME, where, said.append, reactor, 20)
    with open("/proc/uptime") as f:
        assert abs(uptime - float(f.read().split()[0])) < 60


@pytest_twisted.ensureDeferred
async def test_read_log_is_the_tail_of_twistd_log(sshd, tmp_path):  # noqa: F811
    (tmp_path / "twistd.log").write_text(RUNNING_LOG + STOPPED_TAIL)
    channel, where, said = real(sshd, basedir=str(tmp_path))
    tail = await channel.perform(READ_LOG, where, said.append, reactor, 20, lines=2)
    assert tail == "".join(STOPPED_TAIL.splitlines(keepends=True)[-2:])


@pytest_twisted.ensureDeferred
async def test_reboot_runs_the_reboot_command(sshd, tmp_path):  # noqa: F811
    mark = tmp_path / "rebooted"
    channel, where, said = real(sshd, reboot_command=f"touch {mark}")
    assert await channel.perform(REBOOT, where, said.append, reactor, 20) is True
    assert mark.exists() and said[-1] == f"ssh: 'touch {mark}' exited with 0"


@pytest_twisted.ensureDeferred
async def test_a_reboot_that_drops_the_connection_counts_as_done(sshd):  # noqa: F811
    # Kill this session's sshd processes, as a machine going down does.
    channel, where, said = real(sshd, reboot_command="kill -9 $(ps -o ppid= -p $PPID) $PPID")
    assert await channel.perform(REBOOT, where, said.append, reactor, 20) is True
    assert "the connection dropped" in said[-1]


@pytest_twisted.ensureDeferred
async def test_a_failing_command_is_a_channel_error_with_its_stderr(sshd):  # noqa: F811
    channel, where, said = real(sshd, reboot_command="echo 'sudo: a password is required' >&2; exit 1")
    with pytest.raises(ChannelError, match="exited with 1: sudo: a password is required"):
        await channel.perform(REBOOT, where, said.append, reactor, 20)


@pytest_twisted.ensureDeferred
async def test_stop_runs_buildslave_stop_in_the_basedir_or_the_stop_command(sshd, tmp_path):  # noqa: F811
    channel, where, said = real(sshd, basedir="/nonexistent/slave dir")
    with pytest.raises(ChannelError, match="buildslave stop '/nonexistent/slave dir'"):
        await channel.perform(SHUTDOWN_SLAVE, where, said.append, reactor, 20)
    channel, where, said = real(sshd, stop_command="echo stopped")
    assert await channel.perform(SHUTDOWN_SLAVE, where, said.append, reactor, 20) == "stopped\n"


@pytest_twisted.ensureDeferred
async def test_refused_connection_wrong_key_and_wrong_host_key_say_what_was_seen(sshd, tmp_path):  # noqa: F811
    closed_port = sshd.port
    channel, where, said = real(sshd, port=closed_port)
    sshd.stop()
    with pytest.raises(ChannelError, match="connection refused"):
        await channel.perform(UPTIME, where, said.append, reactor, 20)
    server = type(sshd).start(str(tmp_path / "second"))
    try:
        channel, where, said = real(server, key=sshd.client_key)
        with pytest.raises(ChannelError, match=f"authentication as {server.username} failed"):
            await channel.perform(UPTIME, where, said.append, reactor, 20)
        channel, where, said = real(server, host_key=sshd.host_key_fingerprint)
        with pytest.raises(ChannelError, match="not the configured host_key"):
            await channel.perform(UPTIME, where, said.append, reactor, 20)
    finally:
        server.stop()


@pytest_twisted.ensureDeferred
async def test_a_known_hosts_file_recognises_the_server(sshd, tmp_path):  # noqa: F811
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {sshd.host_public_key}\n")
    channel, where, said = real(sshd, host_key=None, known_hosts=str(known))
    assert await channel.perform(UPTIME, where, said.append, reactor, 20) > 0


@pytest_twisted.ensureDeferred
async def test_a_command_that_hangs_ends_at_the_deadline_on_the_injected_clock(sshd):  # noqa: F811
    clock = task.Clock()
    # sshd logs the session a moment before the client has it: a connect timeout beyond the
    # deadline keeps the clock's jump below from ending the connect instead of the command.
    channel, where, said = real(sshd, reboot_command="sleep 60", connect_timeout=120)
    running = channel.perform(REBOOT, where, said.append, clock, 30)
    await _until(lambda: "Starting session" in sshd.log_text())
    assert not running.called
    clock.advance(30)
    with pytest.raises(ChannelError, match="no answer within 30 s"):
        await running


async def _until(predicate):
    # A real sshd on a loaded machine: generous, and still bounded.
    await wait_for(predicate, "sshd to log the session", deadline_s=SSHD_DEADLINE_S)


# -- the actions, with a scripted ssh channel --------------------------------------------------

@implementer(IChannel)
class ScriptedSSH:
    """An ssh channel whose log reads answer the texts the test gives, in turn."""

    name = "ssh"
    operations = frozenset({REBOOT, UPTIME, READ_LOG, SHUTDOWN_SLAVE})

    def __init__(self, logs: list, uptime=None):
        self.logs = logs
        self.uptime = uptime
        self.calls: list[str] = []

    def configured_for(self, location):
        return True

    def perform(self, operation, location, say, clock, deadline_s, **kwargs):
        self.calls.append(operation)
        if operation == READ_LOG:
            answer = self.logs.pop(0) if len(self.logs) > 1 else self.logs[0]
        elif operation == UPTIME:
            answer = self.uptime
        else:
            answer = "stopped\n"
        if isinstance(answer, Exception) or answer is None:
            return defer.fail(answer or ChannelError("uptime: no answer"))
        return defer.succeed(answer)


@pytest_twisted.async_yield_fixture
async def farm(tmp_path):
    """A real master in memory whose clock stands a minute after the log's last line."""
    master = await start_memory_master(tmp_path, now=LOG_END + 60)
    yield master
    await master.stopService()


async def context(master, channel, attached: bool = True, ssh_settings=None) -> ActionContext:
    """The context of an action on bs1 (attached to ``master`` when ``attached``, through a
    scripted connection that does not obey a shutdown) whose ssh channel is ``channel``."""
    if attached:
        await attach_slave(master, "bs1", obey_shutdown=False)
    master.slaveapi.channels = {"ssh": channel}
    where = location(ssh_settings or {"username": "u", "key": "/k", "host": "h", "basedir": "/b"})
    settings = SlaveAPISettings(shutdown_timeout=30)
    return ActionContext(1, "bs1", {}, "oncall", master, master.slaveapi, settings, where)


def test_the_channel_host_fake_and_the_runner_provide_ichannelhost(farm):
    assert verifyObject(IChannelHost, ChannelHost(reactor, basedir="/m"))
    assert SSHChannel(ChannelHost(reactor, basedir="/m")).master_basedir == "/m"
    assert verifyObject(IChannelHost, farm.slaveapi)
    assert SSHChannel(farm.slaveapi).master_basedir == farm.basedir
    assert SSHChannel(farm.slaveapi).reactor is farm.reactor


@pytest_twisted.ensureDeferred
async def test_shutdown_is_confirmed_from_the_new_lines_of_twistd_log(farm):
    channel = ScriptedSSH([RUNNING_LOG, RUNNING_LOG, RUNNING_LOG + STOPPED_TAIL])
    ctx = await context(farm, channel)
    done = defer.ensureDeferred(graceful_shutdown(ctx))
    ctx.clock.advance(2)
    assert not done.called
    ctx.clock.advance(2)
    assert await done is None
    assert ctx.master.botmaster.slaves["bs1"].shutting_down
    assert ctx.lines[-1].startswith("confirmed from its twistd.log over ssh: bs1 shut down "
                                    "('master requested shutdown; stopping') after 4 s")


@pytest_twisted.ensureDeferred
async def test_an_old_stop_in_the_log_does_not_confirm_a_new_shutdown(farm):
    old = STOPPED_TAIL + RUNNING_LOG
    channel = ScriptedSSH([old])
    ctx = await context(farm, channel)
    done = defer.ensureDeferred(graceful_shutdown(ctx))
    for _ in range(16):
        ctx.clock.advance(2)
    with pytest.raises(ActionFailed) as raised:
        await done
    assert str(raised.value) == (
        "bs1 did not shut down within 30 s: its twistd.log ends with '2026-11-27T17:08:41+0000 "
        "[buildfarm.slave.service#info] attached to master 127.0.0.1:9989 as bs1'; it is still attached, "
        "shutting down, with 0 builds running")


@pytest_twisted.ensureDeferred
async def test_a_detached_slave_is_stopped_over_ssh_and_confirmed(farm):
    channel = ScriptedSSH([RUNNING_LOG, RUNNING_LOG + STOPPED_TAIL])
    ctx = await context(farm, channel, attached=False)
    done = defer.ensureDeferred(graceful_shutdown(ctx))
    ctx.clock.advance(2)
    assert done.called and await done is None
    assert channel.calls == [READ_LOG, SHUTDOWN_SLAVE, READ_LOG]
    assert "stopping its buildslave over ssh" in ctx.text


@pytest_twisted.ensureDeferred
async def test_without_a_readable_log_the_disconnect_confirms(farm):
    channel = ScriptedSSH([ChannelError("ssh u@h:22: connection refused")])
    ctx = await context(farm, channel)
    slave = ctx.master.botmaster.slaves["bs1"]
    done = defer.ensureDeferred(graceful_shutdown(ctx))
    assert slave.shutting_down and not done.called
    slave.disconnect()  # the slave stops: its connection closes
    assert await done is None
    assert "bs1" not in ctx.master.botmaster.slaves
    assert "cannot read the twistd.log of bs1 over ssh (ssh u@h:22: connection refused)" in ctx.text
    assert ctx.lines[-1] == "bs1 disconnected after 0 s"


@pytest_twisted.ensureDeferred
async def test_uptime_goes_over_ssh_when_configured(farm):
    ctx = await context(farm, ScriptedSSH([RUNNING_LOG], uptime=4242.5), attached=False)
    assert await BuildslaveUptime().run(ctx) == {"uptime": 4242}


@pytest_twisted.ensureDeferred
async def test_uptime_over_a_failing_ssh_of_a_detached_slave_fails_with_the_reason(farm):
    refused = ChannelError("ssh u@h:22: connection refused")
    ctx = await context(farm, ScriptedSSH([RUNNING_LOG], uptime=refused), attached=False)
    with pytest.raises(ActionFailed) as raised:
        await BuildslaveUptime().run(ctx)
    assert str(raised.value) == "the uptime of bs1 over ssh failed: ssh u@h:22: connection refused"


@pytest_twisted.ensureDeferred
async def test_last_activity_of_a_detached_slave_comes_from_its_log(farm):
    ctx = await context(farm, ScriptedSSH([RUNNING_LOG + STOPPED_TAIL], uptime=99999), attached=False)
    assert await BuildslaveLastActivity().run(ctx) == {
        "last_state": "stopped", "last_activity_seconds": 60, "uptime": 99999}


@pytest_twisted.ensureDeferred
async def test_a_machine_up_for_less_than_the_age_of_the_last_log_line_is_booting(farm):
    ctx = await context(farm, ScriptedSSH([RUNNING_LOG + STOPPED_TAIL], uptime=20), attached=False)
    assert await BuildslaveLastActivity().run(ctx) == {
        "last_state": "booting", "last_activity_seconds": 60, "uptime": 20}


@pytest_twisted.ensureDeferred
async def test_last_activity_without_a_readable_log_answers_from_the_master_records(farm):
    await farm.db.slaves.attached("bs1", farm.masterid, {}, None, LOG_END - 100)
    await farm.db.slaves.detached("bs1", farm.masterid, LOG_END)  # the master saw it leave
    ctx = await context(farm, ScriptedSSH([ChannelError("ssh u@h:22: connection refused")]), attached=False)
    assert await BuildslaveLastActivity().run(ctx) == {
        "last_state": "stopped", "last_activity_seconds": 60, "uptime": None}
    assert "cannot read the twistd.log of bs1 over ssh" in ctx.text


def test_the_ssh_key_file_is_read_relative_to_the_master_basedir(tmp_path):
    key = Key(ed25519.Ed25519PrivateKey.generate())
    (tmp_path / "id").write_bytes(key.toString("OPENSSH"))
    assert ssh._read_key(os.path.join(str(tmp_path), "id"), None) == key
    with pytest.raises(ChannelError, match="cannot read the ssh key"):
        ssh._read_key(str(tmp_path / "missing"), None)
    (tmp_path / "not-a-key").write_text("password=hunter2\n")
    with pytest.raises(ChannelError) as raised:
        ssh._read_key(str(tmp_path / "not-a-key"), None)
    assert "not a private key" in str(raised.value) and "hunter2" not in str(raised.value)


@pytest_twisted.ensureDeferred
async def test_the_deadline_also_ends_a_connection_that_never_answers(tmp_path):
    key_file = tmp_path / "id"
    key_file.write_bytes(Key(ed25519.Ed25519PrivateKey.generate()).toString("OPENSSH"))
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts, never says a word
    try:
        clock = task.Clock()
        channel = SSHChannel(ChannelHost(reactor, basedir="/"))
        where = location({"username": "u", "key": str(key_file), "host": "127.0.0.1",
                          "port": silent.getsockname()[1], "host_key_check": False})
        running = channel.perform(UPTIME, where, lambda line: None, clock, 5)
        await task.deferLater(reactor, 0.2, lambda: None)  # the key read and connect are under way
        clock.advance(5)
        with pytest.raises(ChannelError, match="^ssh to bs1: no answer within 5 s$"):
            await running
    finally:
        silent.close()
