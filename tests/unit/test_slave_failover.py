"""A slave given several masters (``create-slave BASEDIR host1:port1,host2:port2 NAME PW``):
the buildbot.tac lists them, and the slave tries them in order, moving to the next one after
a failed attempt or a lost connection, at once while the round lasts, with the backoff
growing once per round.  The connections are made on a MemoryReactorClock."""

import pytest
from twisted.application import service
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure

from buildfarm.common.cli import CLIError
from buildfarm.slave import service as slave_service
from buildfarm.slave.scripts.runner import MasterAddress, main, parseMasterAddresses
from buildfarm.slave.service import NEXT_MASTER_DELAY_S, SlaveService
from buildfarm.slave.tap import loadApplication


def test_a_master_list_is_parsed_in_order():
    assert parseMasterAddresses("m1.example.org:9989,[::1]:9990,m3") == [
        MasterAddress("m1.example.org", 9989), MasterAddress("::1", 9990), MasterAddress("m3", 9989)]


@pytest.mark.parametrize("text, message", [
    ("m1:9989,,m2:9989", "malformed master list 'm1:9989,,m2:9989': an empty address between commas"),
    ("m1:9989,m1:9989", "malformed master list 'm1:9989,m1:9989': m1:9989 is named twice"),
    ("m1:9989,m2:99999", "malformed master address 'm2:99999': the port must be 1-65535"),
])
def test_a_bad_master_list_is_one_clear_error(text, message):
    with pytest.raises(CLIError) as raised:
        parseMasterAddresses(text)
    assert str(raised.value) == message


def test_create_slave_with_two_masters_writes_both_into_the_tac(tmp_path, capsys):
    basedir = tmp_path / "slave"
    assert main(["create-slave", str(basedir), "127.0.0.1:9001,127.0.0.1:9002", "bs1", "pw"]) == 0
    assert "for masters 127.0.0.1:9001, 127.0.0.1:9002" in capsys.readouterr().out

    [slave] = list(service.IServiceCollection(loadApplication(str(basedir))))

    assert slave.masters == ["127.0.0.1:9001", "127.0.0.1:9002"]
    assert slave.endpointDescriptions == ["tcp:host=127.0.0.1:port=9001", "tcp:host=127.0.0.1:port=9002"]


def test_a_tac_without_masters_keeps_its_one_master(tmp_path):
    slave = SlaveService("m.example.org", 9989, "bs1", "pw", str(tmp_path), reactor=MemoryReactorClock())
    assert slave.masters == ["m.example.org:9989"] and slave.master == "m.example.org:9989"


class Attempts:
    """A slave on a MemoryReactorClock: each connection attempt it makes, and a way to refuse it."""

    def __init__(self, tmp_path, masters, monkeypatch):
        monkeypatch.setattr(slave_service.random, "random", lambda: 0.0)  # no jitter
        self.reactor = MemoryReactorClock()
        self.slave = SlaveService(masters[0][0], masters[0][1], "bs1", "pw", str(tmp_path), masters=masters,
                                  reactor=self.reactor)
        self.slave.startService()

    def ports(self) -> list[int]:
        return [port for _host, port, *_ in self.reactor.tcpClients]

    def refuse_last(self) -> None:
        _host, _port, factory, *_ = self.reactor.tcpClients[-1]
        factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))


def test_a_refused_master_is_followed_at_once_by_the_next_one(tmp_path, monkeypatch):
    masters = [("127.0.0.1", 9001), ("127.0.0.1", 9002), ("127.0.0.1", 9003)]
    attempts = Attempts(tmp_path, masters, monkeypatch)
    assert attempts.ports() == [9001]
    attempts.refuse_last()
    attempts.reactor.advance(NEXT_MASTER_DELAY_S)
    assert attempts.ports() == [9001, 9002]
    attempts.refuse_last()
    attempts.reactor.advance(NEXT_MASTER_DELAY_S)
    assert attempts.ports() == [9001, 9002, 9003]
    assert attempts.slave.master == "127.0.0.1:9003"


def test_the_backoff_grows_once_per_round_through_the_list(tmp_path, monkeypatch):
    attempts = Attempts(tmp_path, [("127.0.0.1", 9001), ("127.0.0.1", 9002)], monkeypatch)
    for _ in range(2):
        attempts.refuse_last()
        attempts.reactor.advance(NEXT_MASTER_DELAY_S)
    # the round failed: the first master again, after the first backoff step, not at once
    assert attempts.ports() == [9001, 9002]
    attempts.reactor.advance(slave_service.INITIAL_RETRY_DELAY_S - NEXT_MASTER_DELAY_S)
    assert attempts.ports() == [9001, 9002, 9001]
    attempts.refuse_last()
    attempts.reactor.advance(NEXT_MASTER_DELAY_S)
    assert attempts.ports() == [9001, 9002, 9001, 9002]
    attempts.refuse_last()
    attempts.reactor.advance(slave_service.INITIAL_RETRY_DELAY_S * slave_service.RETRY_BACKOFF_FACTOR - 0.01)
    assert attempts.ports() == [9001, 9002, 9001, 9002]  # the second round doubled the wait
    attempts.reactor.advance(0.01)
    assert attempts.ports() == [9001, 9002, 9001, 9002, 9001]


def test_one_master_keeps_its_backoff_from_the_first_retry(tmp_path, monkeypatch):
    attempts = Attempts(tmp_path, [("127.0.0.1", 9001)], monkeypatch)
    attempts.refuse_last()
    attempts.reactor.advance(NEXT_MASTER_DELAY_S)
    assert attempts.ports() == [9001]
    attempts.reactor.advance(slave_service.INITIAL_RETRY_DELAY_S)
    assert attempts.ports() == [9001, 9001]
