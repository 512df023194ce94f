"""Every HTTP port times out idle connections, slow headers and slow bodies: a real socket on
127.0.0.1 to a ``BoundedSite`` whose timeouts run on an injected clock.  Also, in memory: what
the channel does after a refusal (lingering, bounded in bytes and time), keep-alive rules.

Before http/site.py a client sending one header byte every few seconds held its connection
(and the request's memory) for ever: Twisted's idle timeout restarts at every byte."""

import pytest
import pytest_twisted
from twisted.internet import reactor, task
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.http.limits import LINGER_MAX_BYTES, LINGER_S, HTTPLimits
from buildfarm.master.http.site import BodyRule, BoundedChannel, BoundedSite, html_error_body
from fixtures.rawhttp import connect, until_closed, wait_for

LIMITS = HTTPLimits(idle_timeout_s=60, header_timeout_s=30, body_timeout_s=40)


class Hello(Resource):
    isLeaf = True

    def render(self, request):
        return b"hello"


class CountingChannel(BoundedChannel):
    received = 0

    def dataReceived(self, data):  # noqa: N802
        self.received += len(data)
        super().dataReceived(data)


class RecordingSite(BoundedSite):
    """A site that keeps its channels, so that the test knows what the server received."""

    protocol = CountingChannel

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.channels: list[CountingChannel] = []

    def buildProtocol(self, addr):  # noqa: N802
        channel = super().buildProtocol(addr)
        self.channels.append(channel)
        return channel


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def server(clock):
    site = RecordingSite(Hello(), [], BodyRule("/", 1024), LIMITS, clock)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    yield site, port.getHost().port
    port.stopListening()


async def received(site, total: int) -> None:
    await wait_for(lambda: site.channels and site.channels[-1].received >= total, f"{total} bytes received")


@pytest_twisted.ensureDeferred
async def test_headers_that_trickle_in_are_cut_off_at_the_header_timeout(server, clock):
    site, port = server
    client = await connect(port)
    sent = 0
    for line in (b"GET / HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"X-Slow: 1\r\n"):
        client.send(line)
        sent += len(line)
        await received(site, sent)
        clock.advance(LIMITS.header_timeout_s / 3 - 1)  # each byte restarts the idle timeout...
        assert not client.lost

    clock.advance(3)  # ...but the headers had header_timeout_s in all

    await until_closed(client)
    assert client.status == 408 and b"headers" in client.body


@pytest_twisted.ensureDeferred
async def test_a_body_that_trickles_in_is_cut_off_at_the_body_timeout(server, clock):
    site, port = server
    client = await connect(port)
    request = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789"
    client.send(request)
    await received(site, len(request))
    clock.advance(LIMITS.body_timeout_s - 1)
    assert not client.lost

    client.send(b"0123456789")
    await received(site, len(request) + 10)
    clock.advance(1)

    await until_closed(client)
    assert client.status == 408 and b"body" in client.body


@pytest_twisted.ensureDeferred
async def test_a_connection_that_sends_nothing_is_closed_at_the_idle_timeout(server, clock):
    site, port = server
    client = await connect(port)
    await wait_for(lambda: site.channels, "the connection at the server")
    clock.advance(LIMITS.idle_timeout_s - 1)
    assert not client.lost

    clock.advance(1)

    assert await until_closed(client) == b""


@pytest_twisted.ensureDeferred
async def test_a_kept_alive_connection_is_closed_at_the_idle_timeout_after_its_request(server, clock):
    site, port = server
    client = await connect(port)
    client.send(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await wait_for(lambda: client.data.endswith(b"hello") or client.data.endswith(b"0\r\n\r\n"), "the answer")
    assert client.status == 200
    clock.advance(LIMITS.header_timeout_s + 1)  # no request under way: only the idle timeout counts
    assert not client.lost

    clock.advance(LIMITS.idle_timeout_s)

    await until_closed(client)


@pytest_twisted.ensureDeferred
async def test_a_request_in_time_is_answered_and_no_timeout_stays_armed(server, clock):
    site, port = server
    client = await connect(port)
    client.send(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")

    await until_closed(client)

    assert client.status == 200 and client.body == b"hello"
    assert not [call for call in clock.getDelayedCalls() if "_too_slow" in repr(call.func)]


def test_the_timeouts_and_the_stream_cap_come_from_c_www(tmp_path):
    path = tmp_path / "master.cfg"
    path.write_text("c = BuildmasterConfig = {'www': {'port': 8010, 'idle_timeout': 5, 'header_timeout': 2.5,"
                    " 'body_timeout': 7, 'max_event_streams': 3}}\n")
    assert load_config(str(path)).www_limits == HTTPLimits(5, 2.5, 7, 3)
    path.write_text("c = BuildmasterConfig = {'www': {'port': 8010}}\n")
    assert load_config(str(path)).www_limits == HTTPLimits()


@pytest.mark.parametrize(("key", "value"), [("idle_timeout", 0), ("header_timeout", "30"),
                                            ("body_timeout", float("inf")), ("max_event_streams", 2.5),
                                            ("max_event_streams", True)])
def test_bad_limits_are_config_errors_naming_the_key(tmp_path, key, value):
    path = tmp_path / "master.cfg"
    path.write_text(f"c = BuildmasterConfig = {{'www': {{'port': 8010, {key!r}: {value!r}}}}}\n"
                    .replace("inf", "float('inf')"))
    with pytest.raises(ConfigErrors) as caught:
        load_config(str(path))
    assert any(f"c['www']['{key}']" in str(error) for error in caught.value.errors)


class HalfClosingTransport(StringTransport):
    """A memory transport that can half-close, as TCP does."""

    write_closed = aborted = False

    def loseWriteConnection(self):  # noqa: N802
        self.write_closed = True

    def abortConnection(self):  # noqa: N802
        self.aborted = True


def memory_channel(clock):
    site = BoundedSite(Hello(), [BodyRule("/api/", 100)], BodyRule("/", 10, html_error_body), LIMITS, clock)
    channel = site.buildProtocol(None)
    transport = HalfClosingTransport()
    channel.makeConnection(transport)
    return channel, transport


def test_after_a_refusal_the_master_drops_what_follows_then_cuts_at_the_byte_or_time_limit(clock):
    channel, transport = memory_channel(clock)
    channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ") and transport.write_closed
    channel.dataReceived(b"x" * LINGER_MAX_BYTES)  # read and dropped: the client reads its answer
    assert not transport.aborted
    channel.dataReceived(b"x")
    assert transport.aborted

    channel, transport = memory_channel(clock)
    channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 101\r\n\r\n")
    clock.advance(LINGER_S)
    assert transport.aborted


def test_each_request_of_a_kept_alive_connection_gets_the_rule_of_its_own_path(clock):
    channel, transport = memory_channel(clock)
    channel.dataReceived(b"POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n" + b"y" * 50)
    assert transport.value().startswith(b"HTTP/1.1 200 ")
    transport.clear()
    channel.dataReceived(b"POST /page HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 413 ") and b"text/html" in transport.value()
