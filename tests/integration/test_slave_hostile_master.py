"""A real SlaveService service, connected over loopback TCP to a hostile master in this process
that sends unknown commands, missing and wrongly typed arguments and paths escaping the
basedir: each bad command completes with a failure naming the problem, and the slave keeps
its connection and keeps running good commands."""

import os

import pytest
import pytest_twisted
from twisted.cred import portal
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.internet import reactor
from twisted.spread import pb
from zope.interface import implementer

from buildfarm.slave.service import SlaveService
from fixtures.polling import wait_for
from fixtures.slavecommand import RecordingRemoteCommand

NAME, PASSWORD = "bs1", "pass"
WAIT_DEADLINE_S = 20.0
POLL_S = 0.02
GOOD_SHELL = {"workdir": "build", "command": ["echo", "still alive"], "env": {},
              "want_stdout": True, "want_stderr": True, "logEnviron": False, "timeout": 60,
              "maxTime": None, "sigtermTime": None, "interruptSignal": "KILL",
              "usePTY": False, "logfiles": {}, "initial_stdin": None}


class Avatar(pb.Avatar):
    def __init__(self, mind):
        self.mind = mind

    def perspective_keepalive(self):
        return None


@implementer(portal.IRealm)
class Realm:
    def __init__(self):
        self.avatars = []

    def requestAvatar(self, avatarId, mind, *interfaces):  # noqa: N802 - the cred name
        self.avatars.append(Avatar(mind))
        return pb.IPerspective, self.avatars[-1], lambda: None


async def waitFor(predicate, what):
    await wait_for(predicate, what, WAIT_DEADLINE_S, POLL_S)


@pytest.fixture
def hostile(tmp_path):
    realm = Realm()
    checker = InMemoryUsernamePasswordDatabaseDontUse(**{NAME: PASSWORD.encode()})
    port = reactor.listenTCP(0, pb.PBServerFactory(portal.Portal(realm, [checker])),
                             interface="127.0.0.1")
    slave = SlaveService("127.0.0.1", port.getHost().port, NAME, PASSWORD,
                         str(tmp_path / "slave"), keepalive=0)
    os.makedirs(slave.basedir)
    slave.startService()
    yield realm, slave
    slave.stopService()
    port.stopListening()


async def runCommand(builder, name, args):
    """Start a command; returns (the startCommand failure or None, the RemoteCommand)."""
    remote = RecordingRemoteCommand()
    try:
        await builder.callRemote("startCommand", remote, "1", name, args)
    except Exception as e:  # the remote error, as the master would see it
        return e, remote
    await waitFor(lambda: remote.completions, f"{name} to complete")
    return None, remote


BAD_COMMANDS = [
    ("shell", {"workdir": "build"}, "missing required argument 'command'"),
    ("shell", {**GOOD_SHELL, "env": {"JOBS": 4}}, "argument 'env'"),
    ("shell", {**GOOD_SHELL, "timeout": "soon"}, "argument 'timeout'"),
    ("shell", {**GOOD_SHELL, "workdir": "../../../../etc"}, "outside the slave's basedir"),
    ("shell", "not a dict", "arguments must be a dict"),
    ("uploadFile", {"workdir": "build", "workersrc": "f", "writer": "a string",
                    "maxsize": None, "blocksize": 1024}, "argument 'writer'"),
    ("uploadFile", {"workdir": "build", "writer": None}, "missing required argument"),
    ("downloadFile", {"workdir": "build", "workerdest": "../../../../tmp/evil",
                      "reader": RecordingRemoteCommand(), "maxsize": None, "blocksize": 1024,
                      "mode": None}, "outside the slave's basedir"),
    ("downloadFile", {"workdir": "build", "workerdest": "x", "reader": RecordingRemoteCommand(),
                      "maxsize": None, "blocksize": 1024, "mode": "rwx"}, "argument 'mode'"),
    ("uploadDirectory", {"workdir": "build", "workersrc": "d", "writer": RecordingRemoteCommand(),
                         "maxsize": None, "blocksize": 1024, "compress": "zip"},
     "argument 'compress'"),
    ("mkdir", {"dir": 42}, "argument 'dir'"),
    ("rmdir", {"dir": "/"}, "outside the slave's basedir"),
    ("cpdir", {"fromdir": "/etc", "todir": "copy"}, "outside the slave's basedir"),
    ("stat", {"file": "../../../../etc/passwd"}, "outside the slave's basedir"),
    ("glob", {"path": ["not", "a", "string"]}, "argument 'path'"),
    ("listdir", {}, "missing required argument 'dir'"),
    ("rmfile", {"path": "/etc/hostname"}, "outside the slave's basedir"),
]


@pytest_twisted.ensureDeferred
async def test_slave_survives_a_hostile_master(hostile):
    realm, slave = hostile
    await waitFor(lambda: realm.avatars and slave.perspective is not None, "the slave to attach")
    mind = realm.avatars[-1].mind
    builders = await mind.callRemote("setBuilderList", [("linux", "linux")])
    builder = builders["linux"]

    unknown, _ = await runCommand(builder, "teleport", {})
    assert "unknown command 'teleport'" in str(unknown)

    for name, args, problem in BAD_COMMANDS:
        error, remote = await runCommand(builder, name, args)
        assert error is None, f"{name}: startCommand itself failed: {error}"
        [failure] = remote.completions
        assert problem in failure.getErrorMessage(), (name, failure.getErrorMessage())

    _, good = await runCommand(builder, "shell", GOOD_SHELL)
    assert good.completions == [None] and {"rc": 0} in good.updates
    assert "still alive" in "".join(u.get("stdout", "") for u in good.updates)
    assert realm.avatars[-1].mind is mind and len(realm.avatars) == 1


@pytest.mark.parametrize("wanted", [[("escape", "../../outside")], [("root", ".")],
                                    [("bad",)], "nonsense", 42])
@pytest_twisted.ensureDeferred
async def test_bad_builder_lists_are_refused_and_change_nothing(hostile, wanted):
    realm, slave = hostile
    await waitFor(lambda: realm.avatars and slave.perspective is not None, "the slave to attach")
    mind = realm.avatars[-1].mind
    await mind.callRemote("setBuilderList", [("linux", "linux")])

    with pytest.raises(Exception):  # noqa: B017 - any remote error will do
        await mind.callRemote("setBuilderList", wanted)

    assert list(slave.bot.builders) == ["linux"]
    assert not os.path.exists(os.path.join(os.path.dirname(slave.basedir), "outside"))
    assert await mind.callRemote("print", "still there") is None
