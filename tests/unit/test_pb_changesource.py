"""PBChangeSource on the slave port, in memory (``iosim``): a ``buildbot sendchange`` login
gets a change perspective, never a slave's, and its ``addChange`` reaches the scheduler."""

import pytest
import pytest_twisted
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import task
from twisted.spread import pb
from twisted.test import iosim

from buildfarm.master.changes.pb import PBChangeSource, change_from_sendchange
from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.pb.manager import PBManager
from fixtures.daemons import free_port
from fixtures.pbclient import SlavePortMaster, log_in

# What Buildbot 4.3's buildbot/clients/sendchange.py sends for
# `buildbot sendchange --who alice --branch main --revision abc -p flavour:debug src/a.c doc/b.txt`.
SENDCHANGE = {
    "project": "", "repository": "file:///repo", "who": "alice", "files": ["src/a.c", "doc/b.txt"],
    "comments": "a fix", "branch": "main", "revision": "abc", "category": None, "when": None,
    "properties": {"flavour": "debug"}, "revlink": "", "src": "git",
}


@pytest.fixture
def master():
    master = SlavePortMaster(task.Clock())
    master.reactor.advance(500)
    master.config.change_sources = [PBChangeSource("change", "changepw", prefix="src/")]
    return master


class SendChange:
    """A sendchange client in memory: logs in without a mind, as Buildbot's does."""

    def __init__(self, master, user="change", password="changepw"):
        factory = pb.PBClientFactory()
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: PBManager(master).make_factory().buildProtocol(None), lambda: factory.buildProtocol(None),
            clock=master.reactor)
        self.result = []
        factory.login(UsernamePassword(user.encode(), password.encode())).addBoth(self.result.append)
        self.pump.flush()

    def call(self, *args):
        answer = []
        self.result[0].callRemote(*args).addBoth(answer.append)
        self.pump.flush()
        return answer[0]


def test_sendchange_login_adds_the_change_with_buildbots_field_names(master):
    client = SendChange(master)
    assert isinstance(client.result[0], pb.RemoteReference)
    assert client.call("addChange", SENDCHANGE) == 1
    [change] = master.scheduler.changes
    assert change["author"] == "alice"
    assert (change["branch"], change["revision"], change["repository"]) == ("main", "abc", "file:///repo")
    assert change["files"] == ["a.c"]  # the prefix kept src/ and took it off
    assert change["properties"] == {"flavour": "debug"}
    assert change["when_timestamp"] == change["created_at"] == 500.0
    assert "category" not in change and "project" not in change


def test_sendchange_login_with_a_wrong_password_is_refused(master):
    client = SendChange(master, password="guess")
    assert client.result[0].check(UnauthorizedLogin)
    assert master.scheduler.changes == []


def test_change_login_gets_no_slave_perspective(master):
    client = SendChange(master)
    failure = client.call("print", "hello")
    assert "print" in str(failure.value)  # no such remote method on a change perspective
    assert master.botmaster.slaves == {}


def test_a_slave_password_does_not_open_the_change_login(master):
    assert SendChange(master, user="change", password="pass").result[0].check(UnauthorizedLogin)


def test_slaves_still_log_in_next_to_a_change_source(master):
    assert log_in(master).attached


def test_malformed_change_is_refused_with_a_reason(master):
    client = SendChange(master)
    failure = client.call("addChange", {"who": "alice", "files": "not-a-list"})
    assert "files must be a list" in str(failure.value)
    failure = client.call("addChange", {"who": "alice", "bogus": 1})
    assert "unknown field 'bogus'" in str(failure.value)
    assert master.scheduler.changes == []


def test_bytes_from_old_clients_are_decoded():
    change = change_from_sendchange({b"who": b"bob", "files": [b"x.c"], "when": 12}, None, 99.0)
    assert (change["author"], change["files"], change["when_timestamp"]) == ("bob", ["x.c"], 12.0)


CFG = """\
from buildfarm.master.plugins import changes, slaves, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': 9989}}}}
c['change_source'] = [{source}]
"""


def test_pb_change_source_in_master_cfg_is_read(tmp_path):
    path = tmp_path / "master.cfg"
    path.write_text(CFG.format(source="changes.PBChangeSource(user='ci', passwd='s3cret', port=9989)"))
    [source] = load_config(str(path)).change_sources
    assert (source.user, source.passwd) == ("ci", "s3cret")


@pytest.mark.parametrize(("source", "error"), [
    ("changes.PBChangeSource(port='http:80')", "bad port 'http:80'"),
    ("changes.PBChangeSource(port=8010)", "port 8010 is also the www or SlaveAPI port"),
    ("changes.PBChangeSource(user='bs1')", "user 'bs1' is also a slave's name"),
    ("changes.PBChangeSource(passwd='')", "user and passwd must be non-empty strings"),
])
def test_pb_change_source_problems_are_config_errors(tmp_path, source, error):
    path = tmp_path / "master.cfg"
    path.write_text(CFG.format(source=source))
    with pytest.raises(ConfigErrors) as e:
        load_config(str(path))
    assert any(error in str(problem) for problem in e.value.errors), e.value.errors


def test_change_the_database_cannot_hold_is_refused_before_it_is_stored(master):
    client = SendChange(master)
    failure = client.call("addChange", {**SENDCHANGE, "branch": "b" * 300})
    assert "branch is longer than 255 characters" in str(failure.value)
    failure = client.call("addChange", {**SENDCHANGE, "when": -5})
    assert "when_timestamp must be epoch seconds" in str(failure.value)
    assert master.scheduler.changes == []


@pytest.mark.parametrize("port", ["9989", "'tcp:9989'", "'tcp:port=9989:interface=127.0.0.1'"])
def test_pb_change_source_port_may_name_the_pb_port_in_any_form(tmp_path, port):
    path = tmp_path / "master.cfg"
    cfg = CFG.format(source=f"changes.PBChangeSource(port={port})")
    path.write_text(cfg.replace("{'port': 9989}", "{'port': 'tcp:9989:interface=127.0.0.1'}"))
    [source] = load_config(str(path)).change_sources
    assert source.user == "change"


@pytest_twisted.ensureDeferred
async def test_change_source_on_its_own_port_takes_change_logins_only():
    from twisted.internet import reactor

    master = SlavePortMaster(reactor)
    pb_port, own_port = free_port(), free_port()
    master.config.pb_port = f"tcp:{pb_port}:interface=127.0.0.1"
    master.config.change_sources = [PBChangeSource("ci", "ci-pw", port=f"tcp:{own_port}:interface=127.0.0.1"),
                                    PBChangeSource("change", "changepw")]
    manager = PBManager(master)
    await manager.startService()
    try:
        assert await add_change_over_tcp(own_port, "ci", "ci-pw") == 1
        assert await add_change_over_tcp(pb_port, "change", "changepw") == 2
        # a slave on the change port, and each source on the other's port
        for port, user, password in ((own_port, "bs1", "pass"), (own_port, "change", "changepw"),
                                     (pb_port, "ci", "ci-pw")):
            with pytest.raises((pb.RemoteError, UnauthorizedLogin), match="login refused"):
                await add_change_over_tcp(port, user, password)
        master.config.change_sources = master.config.change_sources[1:]
        await manager.reconfigService(master.config)
        assert manager.change_ports.ports == {}
        with pytest.raises(ConnectionRefusedError):
            await add_change_over_tcp(own_port, "ci", "ci-pw")
    finally:
        await manager.stopService()
        master.botmaster.stopService()


async def add_change_over_tcp(port: int, user: str, password: str):
    from twisted.internet import error, reactor

    factory = pb.PBClientFactory()
    connector = reactor.connectTCP("127.0.0.1", port, factory, timeout=5)
    try:
        perspective = await factory.login(UsernamePassword(user.encode(), password.encode()))
        return await perspective.callRemote("addChange", dict(SENDCHANGE))
    except error.ConnectionRefusedError:
        raise ConnectionRefusedError(port) from None
    finally:
        connector.disconnect()
