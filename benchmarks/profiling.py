"""py-spy profiles of a running master: recorded while a workload runs, written as collapsed
stacks (``--format raw``, which speedscope and flamegraph.pl open), and summarised as the
functions with the most samples on top of the stack ("self") and anywhere on it ("total")."""

import collections
import contextlib
import os
import re
import signal
import subprocess
import sys

PY_SPY = os.path.join(os.path.dirname(sys.executable), "py-spy")
SAMPLE_RATE_HZ = 250
STOP_TIMEOUT_S = 30.0
OUR_PACKAGES = ("master/", "slave/", "common/")  # as frame_name shows buildfarm's files
# leaf frames of a thread that waits (the reactor's poll, an idle pool thread): py-spy samples
# them as active, but they are not work to optimise
# (psycopg's ``Connection.wait``: a database thread waiting for PostgreSQL's answer, or a
# LISTEN thread for a notification: the server's time, not the master's)
IDLE_LEAVES = ("Condition.wait (threading.py)", "EPollReactor.doPoll (twisted/internet/epollreactor.py)",
               "Event.wait (threading.py)", "Thread.join (threading.py)",
               "Connection.wait (psycopg/connection.py)")
FRAME_LINE = re.compile(r"\s*\((?P<file>[^():]*)(?::\d+)?\)$")


@contextlib.contextmanager
def recording(pid: int, raw_path: str):
    """Record ``pid`` with py-spy while the block runs (stopped with SIGINT, which makes it
    write its output)."""
    if not os.access(PY_SPY, os.X_OK):
        raise AssertionError(f"{PY_SPY} is missing: .venv/bin/pip install py-spy")
    os.makedirs(os.path.dirname(raw_path), exist_ok=True)
    process = subprocess.Popen(
        [PY_SPY, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE_HZ), "--format", "raw",
         "--output", raw_path], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        if not os.path.exists(raw_path):
            raise AssertionError(f"py-spy wrote no profile:\n{output}")


def frame_name(frame: str) -> str:
    """``handle (twisted/spread/pb.py:123)`` -> ``handle (twisted/spread/pb.py)``, with the
    site-packages prefix dropped, so samples add up per function rather than per line."""
    match = FRAME_LINE.search(frame)
    if not match:
        return frame
    path = match["file"]
    for marker in ("site-packages/", "/work/main/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{frame[:match.start()].strip()} ({path})"


def is_ours(name: str) -> bool:
    """Whether a ``frame_name`` is a function of buildfarm's own packages."""
    return any(f"({package}" in name for package in OUR_PACKAGES)


def summarise(raw_lines, top: int = 10) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """From collapsed stacks (``a;b;c COUNT`` lines): the count of busy samples (those whose
    leaf is not an idle wait, ``IDLE_LEAVES``), the ``top`` functions by self busy samples,
    and the ``top`` buildfarm functions by total (inclusive) busy samples (Twisted's and the
    thread pool's frames are on every stack, so they are left out of that list)."""
    self_samples: collections.Counter = collections.Counter()
    total_samples: collections.Counter = collections.Counter()
    samples = 0
    for line in raw_lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        n = int(count)
        if frames[-1] in IDLE_LEAVES:
            continue
        samples += n
        self_samples[frames[-1]] += n
        for name in set(frames):
            if is_ours(name):
                total_samples[name] += n
    return samples, self_samples.most_common(top), total_samples.most_common(top)


def write_summary(raw_path: str, summary_path: str, top: int = 10) -> str:
    """Write and return a text summary of the profile at ``raw_path``."""
    with open(raw_path) as f:
        samples, by_self, by_total = summarise(f, top)
    lines = [f"{os.path.basename(raw_path)}: {samples} busy samples at {SAMPLE_RATE_HZ} Hz "
             "(idle waits left out; percentages of the busy samples)", "", f"top {top} by self samples:"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in by_self]
    lines += ["", f"top {top} buildfarm functions by total samples (anywhere on the stack):"]
    lines += [f"  {n / samples:6.1%}  {name}" for name, n in by_total]
    text = "\n".join(lines) + "\n"
    with open(summary_path, "w") as f:
        f.write(text)
    return text
