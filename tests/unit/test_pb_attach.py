"""The master's half of the PB conversation, in memory: login, the attach sequence,
liveness deadlines, and what happens when a slave logs in twice."""

import pytest
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.logger import capturedLogs, formatEvent
from twisted.spread import pb
from zope.interface.verify import verifyObject

from buildfarm.master.pb.buildslave import BuildSlave
from buildfarm.master.pb.interfaces import IPBMaster, ISlaveRoster
from buildfarm.master.process.botmaster import DUPLICATE_PING_TIMEOUT_S
from buildfarm.master.process.interfaces import IEnabledSlaves
from fixtures import pbclient
from fixtures.pbclient import PING_INTERVAL_S, PING_TIMEOUT_S, RecordingBot, log_in

clock, master = pbclient.clock, pbclient.master  # the pytest fixtures of the slave port's tests


class OldBot(RecordingBot):
    """A 0.8-era slave: no getWorkerInfo."""

    remote_getWorkerInfo = None


def test_the_slave_port_master_is_the_master_as_the_pb_layer_sees_it(master):
    assert verifyObject(IPBMaster, master)
    assert verifyObject(ISlaveRoster, master.botmaster)  # the real BotMaster
    assert verifyObject(IEnabledSlaves, master.slaveapi)


def test_attach_sequence_greets_reads_info_and_sends_builder_list(master):
    bot = RecordingBot()
    conn = log_in(master, bot)
    assert isinstance(conn.result[0], pb.RemoteReference)
    assert bot.calls[:3] == [("print", "attached"), "getWorkerInfo",
                             ("setBuilderList", [("docs", "docs"), ("linux", "linux")])]
    for slavebuilder in bot.builders.values():
        assert slavebuilder.calls == ["setMaster", ("print", "attached")]
    slave = master.botmaster.slaves["bs1"]
    assert slave.version == "4.3.0"
    assert slave.commands == {"shell": "3.3"}
    assert sorted(master.botmaster.builders["linux"].slavebuilders) == ["bs1"]
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]


def test_old_slave_without_getWorkerInfo_is_asked_the_old_questions(master):
    bot = OldBot()
    log_in(master, bot)
    slave = master.botmaster.slaves["bs1"]
    assert "getSlaveInfo" in bot.calls
    assert slave.version == "0.8.12"
    assert slave.commands == {"shell": "2.16"}
    assert slave.info["admin"] == "old"


def test_wrong_password_is_refused(master):
    conn = log_in(master, RecordingBot(), password="wrong")
    assert conn.result[0].check(UnauthorizedLogin)
    assert master.botmaster.slaves == {}


def test_unknown_slave_gets_the_answer_a_wrong_password_gets(master):
    with capturedLogs() as events:
        unknown = log_in(master, RecordingBot(), name="intruder").result[0]
        wrong = log_in(master, RecordingBot(), password="wrong").result[0]
    assert unknown.check(UnauthorizedLogin) and wrong.check(UnauthorizedLogin)
    assert (unknown.type, unknown.getErrorMessage()) == (wrong.type, wrong.getErrorMessage())
    assert unknown.value == wrong.value
    assert "intruder" not in unknown.getErrorMessage()
    assert master.botmaster.slaves == {}
    logged = [formatEvent(e) for e in events]  # the master's log still tells them apart
    assert "login refused for unknown slave 'intruder'" in logged
    assert "login refused for slave 'bs1': wrong password" in logged


def test_two_logins_of_one_slave_at_the_same_instant_attach_it_once(master, clock):
    first, second = (log_in(master, RecordingBot(), flush=False) for _ in range(2))
    for _ in range(20):  # interleaved, as two sockets are read by one reactor
        first.pump.pump()
        second.pump.pump()
    winners = [c for c in (first, second) if c.result and isinstance(c.result[0], pb.RemoteReference)]
    losers = [c for c in (first, second) if c.result and c not in winners]
    assert len(winners) == 1 and len(losers) == 1
    assert "already attached" in losers[0].result[0].getErrorMessage()
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]
    current = master.botmaster.slaves["bs1"]
    losers[0].client.transport.loseConnection()  # the loser goes away
    losers[0].pump.flush()
    assert master.botmaster.slaves["bs1"] is current and current.attached
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]


class SilentDuringAttach(RecordingBot):
    """A slave whose connection went dead in the middle of its attach sequence."""

    def remote_getWorkerInfo(self):  # noqa: N802
        self.silent = True
        return defer.Deferred()  # never answers


def test_a_login_replaces_a_connection_that_went_silent_while_attaching(master, clock):
    first = log_in(master, SilentDuringAttach())
    second = log_in(master, RecordingBot())
    assert second.result == [] and "bs1" not in master.botmaster.slaves
    clock.advance(DUPLICATE_PING_TIMEOUT_S)  # the first does not answer the arbitration ping
    first.pump.flush()
    second.pump.flush()
    assert isinstance(second.result[0], pb.RemoteReference)
    assert not isinstance(first.result[0], pb.RemoteReference)
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]
    assert master.botmaster.slaves["bs1"].attached


def test_the_detach_of_a_connection_that_is_not_the_current_one_changes_nothing(master):
    log_in(master, RecordingBot())
    current = master.botmaster.slaves["bs1"]
    stale = BuildSlave("bs1", master.botmaster, master.reactor, PING_INTERVAL_S, PING_TIMEOUT_S)
    stale.attached, stale.mind = True, object()
    stale.detached(stale.mind)
    assert master.botmaster.slaves["bs1"] is current
    assert sorted(master.botmaster.builders["linux"].slavebuilders) == ["bs1"]
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]


def test_silent_slave_is_dropped_after_the_ping_deadline(master, clock):
    bot = RecordingBot()
    conn = log_in(master, bot)
    bot.silent = True
    clock.advance(PING_INTERVAL_S)
    conn.pump.flush()
    assert "bs1" in master.botmaster.slaves  # pinged, waiting for the answer
    clock.advance(PING_TIMEOUT_S)
    conn.pump.flush()
    assert master.botmaster.slaves == {}
    assert master.db.slaves.events[-1] == ("detached", "bs1")
    assert master.botmaster.builders["linux"].slavebuilders == {}


def test_answering_slave_stays_attached_through_pings(master, clock):
    conn = log_in(master, RecordingBot())
    for _ in range(3):
        clock.advance(PING_INTERVAL_S)
        conn.pump.flush()
    assert "bs1" in master.botmaster.slaves


def test_second_login_is_refused_while_the_first_connection_answers(master, clock):
    first = log_in(master, RecordingBot())
    original = master.botmaster.slaves["bs1"]
    second = log_in(master, RecordingBot())
    first.pump.flush()  # the old connection answers the arbitration ping
    second.pump.flush()
    assert second.result and not isinstance(second.result[0], pb.RemoteReference)
    assert "already attached" in str(second.result[0].value)
    assert master.botmaster.slaves["bs1"] is original


def test_second_login_replaces_a_silent_first_connection(master, clock):
    first_bot = RecordingBot()
    first = log_in(master, first_bot)
    original = master.botmaster.slaves["bs1"]
    first_bot.silent = True
    second = log_in(master, RecordingBot())
    first.pump.flush()
    assert second.result == []  # still arbitrating
    clock.advance(DUPLICATE_PING_TIMEOUT_S)
    first.pump.flush()  # the master tears the old connection down completely
    second.pump.flush()
    assert isinstance(second.result[0], pb.RemoteReference)
    replacement = master.botmaster.slaves["bs1"]
    assert replacement is not original and not original.attached
    assert [e[0] for e in master.db.slaves.events] == ["attached", "detached", "attached"]


@pytest.mark.parametrize("builders, expected", [
    ([("linux", "linux")], ["linux"]),
    ([("linux", "linux"), ("docs", "docs"), ("win", "win")], ["docs", "linux", "win"]),
])
def test_changed_builder_list_replaces_the_remote_builders(master, builders, expected):
    bot = RecordingBot()
    conn = log_in(master, bot)
    slave = master.botmaster.slaves["bs1"]
    d = defer.ensureDeferred(slave.set_builder_list(builders))
    conn.pump.flush()
    assert d.called
    assert sorted(slave.remote_builders) == expected
    assert ("setBuilderList", sorted(builders)) in bot.calls


def test_an_attached_slave_costs_its_connection_one_disconnect_callback(master):
    conn = log_in(master, RecordingBot())
    slave = master.botmaster.slaves["bs1"]
    assert slave._connection_lost not in conn.server.disconnects  # PB's logout took over
    conn.client.transport.loseConnection()
    conn.pump.flush()
    assert not slave.attached and master.db.slaves.events[-1] == ("detached", "bs1")


def test_a_connection_lost_in_the_middle_of_the_attach_frees_the_name(master, clock):
    first = log_in(master, SilentDuringAttach())
    first.client.transport.loseConnection()
    first.pump.flush()
    assert first.result and not isinstance(first.result[0], pb.RemoteReference)
    second = log_in(master, RecordingBot())
    assert isinstance(second.result[0], pb.RemoteReference)
    assert master.db.slaves.events == [("attached", "bs1", "4.3.0")]
