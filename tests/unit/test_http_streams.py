"""Long answers of the web port on a real master in memory: the whole-log downloads (pages
and JSON API, one shared code path) follow the client's pace, and live-log streams are capped.

Before, the pages' ``/raw`` download wrote every batch of a log at once: three clients that
did not read pinned 162 MiB of a 57 MB log in the master."""

import pytest
import pytest_twisted
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from buildfarm.master.db.testing import add_running_build
from buildfarm.master.www.api import DOWNLOAD_BATCH_LINES
from fixtures.channelhttp import PEER
from fixtures.inprocessmaster import make_basedir, start_master
from fixtures.rawhttp import wait_for

LINE = "%07d the quick brown fox jumps over the lazy dog\n"
LOG_LINES = 3 * DOWNLOAD_BATCH_LINES - 123  # three batches, the last one short
HIGH_WATER = 64 * 1024  # what a socket's buffers hold before the transport pauses its producer
MAX_STREAMS = 2


class SlowClientTransport(StringTransport):
    """A transport whose peer reads only when told: past ``HIGH_WATER`` unread bytes it
    pauses its producer (the HTTP channel), as a TCP transport does when the socket is full."""

    paused = False

    def write(self, data):
        super().write(data)
        if len(self.io.getvalue()) > HIGH_WATER and not self.paused:
            self.paused = True
            self.producer.pauseProducing()

    def writeSequence(self, data):  # noqa: N802
        self.write(b"".join(data))

    def read_all(self) -> bytes:
        """The client reads what is buffered; the transport resumes its producer."""
        data = self.value()
        self.clear()
        if self.paused:
            self.paused = False
            self.producer.resumeProducing()
        return data


@pytest.fixture(scope="module")
def basedir(tmp_path_factory):
    return make_basedir(str(tmp_path_factory.mktemp("master")),
                        {"port": None, "max_event_streams": MAX_STREAMS})


@pytest_twisted.async_yield_fixture
async def master(basedir):
    started = await start_master(basedir)
    yield started
    await started.stopService()


def open_request(site, path: str, transport: StringTransport | None = None):
    """A GET of ``path`` on a new connection of ``site``: (channel, transport)."""
    channel = site.buildProtocol(PEER)
    transport = transport or StringTransport(peerAddress=PEER)
    channel.makeConnection(transport)
    channel.dataReceived(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return channel, transport


async def big_log(master) -> tuple[int, int, str]:
    """(buildid, logid, text) of a log of ``LOG_LINES`` lines on step 0 of a new build."""
    build = await add_running_build(master.db, builder="linux")
    stepid = await master.db.steps.add(build.buildid, 0, "compile", 1000.0)
    logid = await master.db.logs.add(stepid, "stdio")
    text = "".join(LINE % n for n in range(LOG_LINES))
    await master.db.logs.append(logid, text)
    await master.db.logs.finish(logid)
    return build.buildid, logid, text


def counting_reads(master) -> list:
    reads = []
    original = master.db.logs.get_text_range

    def counting(logid, first, last):
        reads.append((first, last))
        return original(logid, first, last)

    master.db.logs.get_text_range = counting
    return reads


def body_of(raw: bytes) -> bytes:
    from fixtures.channelhttp import unchunk

    return unchunk(raw.partition(b"\r\n\r\n")[2])


@pytest.mark.parametrize("path", ["/builds/{buildid}/steps/0/logs/stdio/raw", "/api/v1/logs/{logid}/raw"])
@pytest_twisted.ensureDeferred
async def test_a_client_that_does_not_read_holds_one_batch_of_a_log_in_the_master(master, path):
    buildid, logid, text = await big_log(master)
    reads = counting_reads(master)
    transport = SlowClientTransport(peerAddress=PEER)
    channel, _ = open_request(master.www.make_site(), path.format(buildid=buildid, logid=logid), transport)

    await wait_for(lambda: transport.paused and len(reads) == 1, "the first batch sent and the client full")
    for _ in range(20):  # the download stays parked: no further batch is read or buffered
        await wait_for(lambda: True, "a turn of the reactor")
    assert len(reads) == 1
    batch_bytes = len(LINE % 0) * DOWNLOAD_BATCH_LINES
    assert len(transport.value()) < batch_bytes + 1024  # one batch (and the headers) at most

    received = transport.read_all()
    while not received.endswith(b"\r\n0\r\n\r\n"):  # the client reads at its pace: all of it arrives
        await wait_for(transport.value, "more of the log")
        received += transport.read_all()
    assert body_of(received).decode() == text and len(reads) == 3
    channel.connectionLost(Failure(ConnectionDone()))


@pytest_twisted.ensureDeferred
async def test_live_log_streams_past_the_cap_get_503_with_retry_after(master):
    build = await add_running_build(master.db, builder="linux")
    site = master.www.make_site()
    streams = [open_request(site, f"/builds/{build.buildid}/events") for _ in range(MAX_STREAMS)]
    for _, transport in streams:
        await wait_for(lambda t=transport: b"retry: 2000" in t.value(), "an open stream")

    _, refused = open_request(site, f"/builds/{build.buildid}/events")
    await wait_for(lambda: refused.value().startswith(b"HTTP/1.1 503"), "a refusal")
    assert b"\r\nRetry-After: 10\r\n" in refused.value() and b"text/html" in refused.value()

    first_channel, _ = streams.pop(0)
    first_channel.connectionLost(Failure(ConnectionDone()))  # one client leaves: a slot is free
    streams.append(open_request(site, f"/builds/{build.buildid}/events"))
    await wait_for(lambda: b"retry: 2000" in streams[-1][1].value(), "a stream in the freed slot")
    for channel, _ in streams:
        channel.connectionLost(Failure(ConnectionDone()))
