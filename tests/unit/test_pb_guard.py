"""The slave port before and after login, in memory: message limits, the login deadline, the
cap on connections that have not logged in, and garbage dropped with one line in the log."""

import dataclasses

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.spread import banana

from buildfarm.master.pb.limits import PRE_LOGIN_MAX_MESSAGES, PRE_LOGIN_MESSAGE_LIMITS, PBLimits
from buildfarm.master.pb.manager import PBManager
from fixtures import pbclient
from fixtures.pbclient import log_in

clock, master = pbclient.clock, pbclient.master  # the pytest fixtures of the slave port's tests

PEER = IPv4Address("TCP", "127.0.0.1", 4321)
LOGIN_TIMEOUT_S = 30.0


def b128(number: int) -> bytes:
    parts = []
    banana.int2b128(number, parts.append)
    return b"".join(parts)


def encode(obj) -> bytes:
    """What Twisted's Banana sends for ``obj`` (dialect pb)."""
    sent = []
    encoder = banana.Banana()
    encoder.currentDialect = b"pb"
    encoder.setPrefixLimit(64)
    encoder.transport = type("T", (), {"write": lambda self, data: sent.append(data)})()
    encoder.sendEncoded(obj)
    return b"".join(sent)


DIALECT = encode(b"pb")


@pytest.fixture
def factory(master):
    return PBManager(master).make_factory()


def connect(factory):
    """A server broker on a recording transport, as the port makes one for each peer."""
    broker = factory.buildProtocol(PEER)
    if broker is None:
        return None
    broker.makeConnection(StringTransport(peerAddress=PEER, lenient=True))
    return broker


def dropped(broker) -> bool:
    return broker.transport.disconnecting


def warnings(events) -> list[str]:
    return [formatEvent(e) for e in events if e.get("log_level") in (LogLevel.warn, LogLevel.error,
                                                                       LogLevel.critical)
            or e.get("isError") or "log_failure" in e]


def tracebacks(events) -> list[dict]:
    return [e for e in events if "log_failure" in e or e.get("isError")]


# -- message limits ------------------------------------------------------------------------

def test_an_over_limit_message_before_login_drops_the_connection_naming_peer_and_limit(factory):
    broker = connect(factory)
    hostile = DIALECT + b128(banana.SIZE_LIMIT) + banana.LIST + b128(banana.SIZE_LIMIT) + banana.STRING
    with capturedLogs() as events:
        broker.dataReceived(hostile + b"x" * 65536)
        broker.dataReceived(b"x" * 65536)  # what was already on its way is not read
    assert dropped(broker)
    [line] = warnings(events)
    assert "127.0.0.1:4321" in line and "before login" in line
    assert f"{PRE_LOGIN_MESSAGE_LIMITS.max_bytes} bytes" in line
    assert broker._parts is None and len(broker.buffer) < 100  # nothing of the string kept
    assert not tracebacks(events)


def test_an_endless_run_of_tiny_items_before_login_is_cut_at_the_item_limit(factory):
    broker = connect(factory)
    run = DIALECT + (b128(2) + banana.LIST + b128(2) + banana.STRING + b"ab") * 10_000  # nested
    with capturedLogs() as events:
        broker.dataReceived(run)
    assert dropped(broker)
    assert f"{PRE_LOGIN_MESSAGE_LIMITS.max_items} items" in warnings(events)[0]
    held = sum(1 + len(items) for _, items in broker.listStack)
    assert 0 < held <= PRE_LOGIN_MESSAGE_LIMITS.max_items


def block_message(size: int) -> bytes:
    """An upload block as a slave sends it (to an object the master has not: answered
    nowhere, since no answer is required)."""
    return encode([b"message", 7, 99, b"write", 0, [b"tuple", b"b" * size], [b"dictionary"]])


def test_after_login_a_transfer_block_passes_and_a_message_over_the_larger_limit_does_not(
        factory, master):
    master.config.pb_limits = dataclasses.replace(master.config.pb_limits, max_message_bytes=2**20)
    broker = connect(factory)
    broker.dataReceived(DIALECT)
    broker.authenticated()
    with capturedLogs() as events:
        broker.dataReceived(block_message(512 * 1024))
        assert not dropped(broker) and not warnings(events)
        broker.dataReceived(block_message(600 * 1024) + block_message(600 * 1024))  # each fits
        assert not dropped(broker)
        broker.dataReceived(encode([b"message", 8, 99, b"write", 0,
                                    [b"tuple", b"c" * 600_000, b"d" * 600_000], [b"dictionary"]]))
    assert dropped(broker)
    [line] = warnings(events)
    assert "1048576 bytes" in line and "before login" not in line and not tracebacks(events)


# -- garbage before login ------------------------------------------------------------------

GARBAGE = {
    "an HTTP request": b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n",
    "an unknown type byte": DIALECT + b"\x01\xff",
    "an unknown vocabulary word": DIALECT + b128(1) + banana.LIST + b128(99) + banana.VOCAB,
    "a dialect not offered": encode(b"xyz"),
    "a bare number": DIALECT + encode(5),
    "an unknown PB command": DIALECT + encode([b"shutdown"]),
    "a call before login": DIALECT + encode([b"message", 1, b"root", b"shutdown", 1, [b"tuple"],
                                             [b"dictionary"]]),
    "a login with two names": DIALECT + encode([b"message", 1, b"root", b"login", 1,
                                                [b"tuple", b"a", b"b"], [b"dictionary"]]),
    "a login with an instance": DIALECT + encode([b"message", 1, b"root", b"login", 1,
                                                  [b"tuple", [b"instance", b"os.system"]],
                                                  [b"dictionary"]]),
    "an anonymous login": DIALECT + encode([b"message", 1, b"root", b"loginAnonymous", 1,
                                            [b"tuple", [b"None"]], [b"dictionary"]]),
    "a decref of nothing": DIALECT + encode([b"decref", 12345]),
    "an answer never asked for": DIALECT + encode([b"answer", 1, 2]),
    "too many versions": DIALECT + encode([b"version", 6]) * (PRE_LOGIN_MAX_MESSAGES + 1),
}


@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_garbage_before_login_drops_the_connection_with_one_line_and_no_traceback(factory, garbage):
    broker = connect(factory)
    with capturedLogs() as events:
        broker.dataReceived(GARBAGE[garbage])
    assert dropped(broker)
    assert not tracebacks(events)
    [line] = warnings(events)
    assert line.startswith("slave port: dropping 127.0.0.1:4321 before login: ")
    assert len(line) < 300


def test_a_login_by_twisteds_client_is_accepted_and_lifts_the_limits(master, clock):
    conn = log_in(master)
    assert master.botmaster.slaves["bs1"].attached
    assert conn.server.logged_in and conn.server.messageLimits.max_bytes == 16 * 1024 * 1024
    assert conn.server.factory.gate.pending == 0
    clock.advance(LOGIN_TIMEOUT_S * 2)  # the login deadline no longer applies
    assert not conn.server.transport.disconnecting


# -- the login deadline and the cap on pending logins ---------------------------------------

def test_a_connection_that_does_not_log_in_in_time_is_dropped(factory, clock):
    broker = connect(factory)
    broker.dataReceived(DIALECT + encode([b"version", 6]))
    clock.advance(LOGIN_TIMEOUT_S - 1)
    assert not dropped(broker)
    with capturedLogs() as events:
        clock.advance(1)
    assert dropped(broker)
    assert warnings(events) == ["slave port: 127.0.0.1:4321 did not log in within 30.0 s; dropping it"]


def test_the_login_deadline_comes_from_the_configuration(factory, master, clock):
    master.config.pb_limits = dataclasses.replace(master.config.pb_limits, login_timeout=5.0)
    broker = connect(factory)
    clock.advance(5)
    assert dropped(broker)


def test_past_the_cap_new_connections_are_closed_at_once_until_one_logs_in(master, clock):
    master.config.pb_limits = PBLimits(max_pending_logins=2)
    first = log_in(master)  # logged in: never counts
    factory = first.server.factory
    waiting = [connect(factory), connect(factory)]
    with capturedLogs() as events:
        assert connect(factory) is None and connect(factory) is None
    assert len(warnings(events)) == 1  # one line however many are refused
    with capturedLogs() as events:
        waiting[0].connectionLost(None)
        assert connect(factory) is not None
    assert "2 closed while full" in formatEvent(events[0])
    assert master.botmaster.slaves["bs1"].attached
