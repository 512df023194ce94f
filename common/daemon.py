"""Starting and stopping a twistd daemon from its basedir, for the CLIs.

``start_daemon`` launches ``twistd -y buildbot.tac`` in the basedir and returns only once
the daemon says it is up (a line matching one of ``ready_patterns`` appears in the new part
of ``twistd.log``); if the daemon dies or the deadline passes first, it prints the tail of
the log and reports failure.  ``stop_daemon`` sends SIGTERM and waits for the process to go.
"""

import errno
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass

from buildfarm.common.cli import CLIError

TAC_FILE = "buildbot.tac"
PID_FILE = "twistd.pid"
LOG_FILE = "twistd.log"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 20


@dataclass
class StartOutcome:
    """What happened when a daemon was started: the log line that said so, or why not."""

    ok: bool
    line: str = ""
    pid: int | None = None


def read_pid(basedir: str) -> int | None:
    """The pid in the basedir's pid file, if there is one and the process is alive."""
    try:
        with open(os.path.join(basedir, PID_FILE)) as f:
            pid = int(f.read().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid > 0 and process_alive(pid) else None


def process_alive(pid: int) -> bool:
    """Whether a process with this pid exists (zombies of ours are reaped first)."""
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except OSError as e:
        return e.errno == errno.EPERM
    return True


def log_tail(basedir: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the basedir's twistd.log, for error reports."""
    try:
        with open(os.path.join(basedir, LOG_FILE), errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no twistd.log)\n"


def _log_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _new_log_lines(path: str, offset: int) -> tuple[list[str], int]:
    """Complete lines appended to the log since ``offset``, and the new offset."""
    try:
        with open(path, "rb") as f:
            if _log_size(path) < offset:  # rotated: read the new file from its start
                offset = 0
            f.seek(offset)
            data = f.read()
    except OSError:
        return [], offset
    end = data.rfind(b"\n") + 1
    text = data[:end].decode("utf-8", "replace")
    return text.splitlines(), offset + end


def start_daemon(
    basedir: str,
    ready_patterns: Iterable[str],
    failure_patterns: Iterable[str] = (),
    timeout: float = START_TIMEOUT_S,
    extra_env: dict[str, str] | None = None,
) -> StartOutcome:
    """Start ``twistd -y buildbot.tac`` in ``basedir`` and wait until it reports it is up."""
    basedir = os.path.abspath(basedir)
    if not os.path.exists(os.path.join(basedir, TAC_FILE)):
        raise CLIError(f"{basedir} has no {TAC_FILE}: is it a basedir made by create-*?")
    running = read_pid(basedir)
    if running:
        raise CLIError(f"already running (pid {running}) in {basedir}")
    log_path = os.path.join(basedir, LOG_FILE)
    offset = _log_size(log_path)
    ready = [re.compile(p) for p in ready_patterns]
    failed = [re.compile(p) for p in failure_patterns]
    env = dict(os.environ, **(extra_env or {}))
    argv = [
        sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
        "--pidfile", PID_FILE, "--logfile", LOG_FILE, "--python", TAC_FILE, "--no_save",
    ]
    launcher = subprocess.Popen(
        argv, cwd=basedir, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    launcher_output = b""
    while time.monotonic() < deadline:
        lines, offset = _new_log_lines(log_path, offset)
        for line in lines:
            if any(p.search(line) for p in failed):
                return StartOutcome(False, line, read_pid(basedir))
            if any(p.search(line) for p in ready):
                return StartOutcome(True, line, read_pid(basedir))
        if launcher.poll() is not None:
            launcher_output += launcher.stdout.read() if launcher.stdout else b""
            if launcher.returncode != 0:
                text = launcher_output.decode("utf-8", "replace").strip()
                return StartOutcome(False, text.splitlines()[-1] if text else "twistd failed")
            # twistd's launcher exits 0 once the daemon has started its services.
            if read_pid(basedir) is None:
                return StartOutcome(False, "the daemon exited during start-up")
        time.sleep(POLL_INTERVAL_S)
    return StartOutcome(False, f"not up after {timeout:.0f} s", read_pid(basedir))


def log_offset(basedir: str) -> int:
    """Where the basedir's twistd.log ends now (follow it from there)."""
    return _log_size(os.path.join(os.path.abspath(basedir), LOG_FILE))


def follow_log(basedir: str, offset: int, ok_patterns: Iterable[str], failure_patterns: Iterable[str],
               timeout: float) -> StartOutcome:
    """Wait for a line matching one of the patterns to be appended to twistd.log after ``offset``."""
    log_path = os.path.join(os.path.abspath(basedir), LOG_FILE)
    ok = [re.compile(p) for p in ok_patterns]
    failed = [re.compile(p) for p in failure_patterns]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines, offset = _new_log_lines(log_path, offset)
        for line in lines:
            if any(p.search(line) for p in failed):
                return StartOutcome(False, line)
            if any(p.search(line) for p in ok):
                return StartOutcome(True, line)
        time.sleep(POLL_INTERVAL_S)
    return StartOutcome(False, f"no answer in twistd.log within {timeout:.0f} s")


def stop_daemon(basedir: str, timeout: float = STOP_TIMEOUT_S) -> bool:
    """Stop the daemon running in ``basedir``; False if none was running."""
    basedir = os.path.abspath(basedir)
    pid = read_pid(basedir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process_alive(pid):
            return True
        time.sleep(POLL_INTERVAL_S)
    raise CLIError(f"pid {pid} did not stop within {timeout:.0f} s after SIGTERM")
