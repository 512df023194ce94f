"""The test fixtures' own process plumbing: the port shares of pytest-xdist workers, the lock of
the tests on fixed ports, and stopping the daemons a test started (all at once, killing those
that ignore SIGTERM)."""

import os
import subprocess
import sys
import time

import pytest

from fixtures import ports
from fixtures.daemons import has_exited, pid_alive, read_pid, stop_daemons, wait_for
from fixtures.fixedports import hold_fixed_ports

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IGNORES_TERM = "trap '' TERM; echo $$ > twistd.pid.new; mv twistd.pid.new twistd.pid; exec sleep 60"
OBEYS_TERM = "echo $$ > twistd.pid.new; mv twistd.pid.new twistd.pid; exec sleep 60"


def test_without_xdist_a_process_may_use_the_whole_range(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert ports._worker_slice(10000, 32768) == (10000, 32768)


def test_xdist_workers_get_disjoint_shares_of_the_range(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    shares = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        shares.append(ports._worker_slice(10000, 32768))
    assert shares == [(10000, 21384), (21384, 32768)]


def test_an_xdist_worker_hands_out_ports_only_from_its_share(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    low, top = ports._worker_slice(ports.LOWEST_PORT, ports._ephemeral_start())
    candidates = ports._candidates()
    handed = [ports._next_port(candidates, ports.socket.SOCK_STREAM) for _ in range(20)]
    assert all(low <= port < top for port in handed), (low, top, handed)
    assert len(set(handed)) == 20


def _daemon(tmp_path, name: str, script: str) -> tuple[str, subprocess.Popen]:
    basedir = tmp_path / name
    basedir.mkdir()
    process = subprocess.Popen(["sh", "-c", script], cwd=basedir, stdin=subprocess.DEVNULL)
    wait_for(lambda: read_pid(str(basedir)), f"{name} to write its pid file", 10.0)
    return str(basedir), process


def test_stop_daemons_ends_each_daemon_and_waits_for_its_exit_not_its_reaping(tmp_path):
    started = [_daemon(tmp_path, f"d{i}", OBEYS_TERM) for i in range(3)]
    stop_daemons([basedir for basedir, _ in started] + [str(tmp_path / "never-started")],
                 deadline_s=10.0)
    for basedir, process in started:
        # Our own children linger as zombies until waited for: exited, yet still a process.
        pid = read_pid(basedir)
        assert has_exited(pid) and pid_alive(pid)
        assert process.wait(5) == -15  # SIGTERM
        assert has_exited(pid) and not pid_alive(pid)


def test_stop_daemons_kills_those_ignoring_sigterm_after_one_shared_deadline(tmp_path):
    deadline_s = 1.5
    started = [_daemon(tmp_path, f"stubborn{i}", IGNORES_TERM) for i in range(3)]
    began = time.monotonic()
    stop_daemons([basedir for basedir, _ in started], deadline_s=deadline_s)
    took = time.monotonic() - began
    assert [process.wait(5) for _, process in started] == [-9, -9, -9]  # SIGKILL
    # One deadline for all three, not one each (that would be 4.5 s).
    assert deadline_s <= took < 2 * deadline_s, took


HOLD_LOCK = """
import sys, time
sys.path.insert(0, {tests!r})
from fixtures.fixedports import hold_fixed_ports
with hold_fixed_ports({path!r}, deadline_s=5):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes our stdin
"""


def test_fixed_ports_are_held_by_one_process_at_a_time(tmp_path):
    path = str(tmp_path / "fixed-ports.lock")
    other = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK.format(tests=TESTS_DIR, path=path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "held\n"
        with pytest.raises(AssertionError, match="held the fixed ports"):
            with hold_fixed_ports(path, deadline_s=0.3):
                pass
    finally:
        other.stdin.close()
        other.wait(10)
    with hold_fixed_ports(path, deadline_s=5):  # free once the other let go
        with pytest.raises(AssertionError, match="held the fixed ports"):
            with hold_fixed_ports(path, deadline_s=0.2):  # not even this process may take it twice
                pass
