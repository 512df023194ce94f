"""A real master whose slave port is fed hostile, unauthenticated Banana from a raw socket on
127.0.0.1: it closes each such connection with its memory bounded, logs one line for each
(no traceback), and a real slave still attaches afterwards."""

import os
import socket
import time

import pytest
import pytest_twisted

from buildfarm.master.service import READY_MESSAGE
from fixtures.daemons import MASTER_CFG, read_pid, wait_for

MiB = 1024 * 1024
RSS_GROWTH_LIMIT = 20 * MiB  # what the master may grow by while refusing a hostile stream
RSS_GIVE_UP = 64 * MiB  # stop feeding a master that grows past this (it failed already)
STREAM_DEADLINE_S = 30.0
SEND_PIECE = 256 * 1024
LIST, STRING = b"\x80", b"\x82"  # Banana's type bytes
SIZE_LIMIT = 640 * 1024  # Banana's largest string and list


def b128(number: int) -> bytes:
    """A Banana length prefix (base 128, least significant first)."""
    out = bytearray()
    while True:
        out.append(number & 0x7F)
        number >>= 7
        if not number:
            return bytes(out)


def banana_string(data: bytes) -> bytes:
    return b128(len(data)) + STRING + data


def endless_big_strings():
    """A list claiming the most items Banana allows, each a string of the largest size."""
    yield banana_string(b"pb")  # choose the dialect, as a client does
    yield b128(SIZE_LIMIT) + LIST
    block = banana_string(b"x" * SIZE_LIMIT)
    while True:
        yield block


def endless_tiny_items():
    """Lists of the most items, nested without end, each item a 2-byte string."""
    yield banana_string(b"pb")
    run = banana_string(b"ab") * (SIZE_LIMIT - 1)
    while True:
        yield b128(SIZE_LIMIT) + LIST + run


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def feed(port: int, pid: int, stream) -> tuple[bool, int, int]:
    """Send ``stream`` until the master closes the connection (or grows too much, or the
    deadline passes); (closed by the master, bytes sent, the master's peak RSS)."""
    peak = rss(pid)
    start, sent = peak, 0
    deadline = time.monotonic() + STREAM_DEADLINE_S
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for chunk in stream:
            view = memoryview(chunk)
            for offset in range(0, len(view), SEND_PIECE):
                try:
                    sock.sendall(view[offset:offset + SEND_PIECE])
                except OSError:  # reset, broken pipe or timeout: the master stopped reading
                    return True, sent, max(peak, rss(pid))
                sent += min(SEND_PIECE, len(view) - offset)
                peak = max(peak, rss(pid))
                if peak - start > RSS_GIVE_UP or time.monotonic() > deadline:
                    return False, sent, peak
    raise AssertionError("the stream ended")


@pytest.fixture
def master(fleet):
    master = fleet.master()
    pid = wait_for(lambda: read_pid(master.basedir), "the master's pid file")
    wait_for(lambda: READY_MESSAGE in master.log_text(), "the master to listen")
    master.pid = pid
    return master


@pytest.mark.parametrize("stream", [endless_big_strings, endless_tiny_items])
def test_hostile_unauthenticated_stream_is_cut_off_with_bounded_memory(fleet, master, stream):
    before = rss(master.pid)

    closed, sent, peak = feed(master.pb_port, master.pid, stream())

    print(f"{stream.__name__}: RSS before {before / MiB:.1f} MiB, peak {peak / MiB:.1f} MiB,"
          f" growth {(peak - before) / MiB:.1f} MiB, sent {sent / MiB:.1f} MiB, closed {closed}")
    assert closed, f"the master kept reading after {sent / MiB:.0f} MiB"
    assert peak - before < RSS_GROWTH_LIMIT
    wait_for(lambda: "before login" in master.log_text(), "the refusal in the master's log")
    assert "over its limit of 16384 bytes or 256 items" in master.log_text()
    assert "Traceback" not in master.log_text()
    fleet.slave(master)
    master.wait_attached("bs1")


def test_pb_limits_in_master_cfg_are_obeyed(fleet):
    """A master whose c['protocols']['pb'] sets a short login deadline drops a silent client."""
    config = MASTER_CFG.replace("'ping_timeout': 5", "'ping_timeout': 5, 'login_timeout': 1")
    master = fleet.master(config=lambda pb, www: config.format(
        slavenames=["bs1"], command=["echo", "hi"], pb_port=pb, www_port=www))
    wait_for(lambda: READY_MESSAGE in master.log_text(), "the master to listen")
    with socket.create_connection(("127.0.0.1", master.pb_port), timeout=10) as sock:
        started = time.monotonic()
        try:
            while sock.recv(65536):  # the master's dialect offer, then the end of the stream
                pass
        except ConnectionResetError:  # dropped at once (aborted)
            pass
        assert time.monotonic() - started < 8
    wait_for(lambda: "did not log in within 1 s" in master.log_text(), "the deadline in the log")
    fleet.slave(master)
    master.wait_attached("bs1")


async def poll(predicate, what: str, deadline_s: float = 30.0):
    """Poll without blocking the reactor the in-process slaves run on."""
    from twisted.internet import reactor, task

    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {deadline_s:.0f} s waiting for {what}")
        await task.deferLater(reactor, 0.05, lambda: None)


@pytest_twisted.ensureDeferred
async def test_two_slaves_logging_in_under_one_name_at_once_attach_once(fleet, master, tmp_path):
    """Two slave services in this process log in as bs1 in the same reactor turn: the master
    attaches one and refuses the other, and the refused one leaving changes nothing."""
    from buildfarm.slave.service import SlaveService

    twins = [SlaveService("127.0.0.1", master.pb_port, "bs1", "pass", str(tmp_path / f"twin{i}"),
                          keepalive=0) for i in range(2)]
    for twin in twins:
        os.makedirs(twin.basedir)
    for twin in twins:
        twin.startService()
    try:
        await poll(lambda: "refusing a second connection for slave bs1" in master.log_text()
                   and any(t.perspective for t in twins), "one login attached, one refused")
        attached = [t for t in twins if t.perspective is not None]
        assert len(attached) == 1
        [loser] = [t for t in twins if t not in attached]
        await loser.stopService()
        await task_sleep(1.0)  # time for a wrong detach to reach the database, had there been one
        assert master.slave("bs1")["connected"]
        assert attached[0].perspective is not None
        assert master.log_text().count("slave bs1 attached from") == 1
    finally:
        for twin in twins:
            if twin.running:
                await twin.stopService()


async def task_sleep(seconds: float):
    from twisted.internet import reactor, task

    await task.deferLater(reactor, seconds, lambda: None)
