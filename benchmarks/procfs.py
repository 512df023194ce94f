"""What a process costs, read from /proc: resident memory, its peak, CPU seconds; and a
sampler that records the peak RSS of a process while a workload runs."""

import os
import threading

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
RSS_SAMPLE_INTERVAL_S = 0.02


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"/proc/{pid}/status has no {field}")


def rss_kib(pid: int) -> int:
    """The resident set size of ``pid`` now (VmRSS), in KiB."""
    return _status_kib(pid, "VmRSS")


def peak_rss_kib(pid: int) -> int:
    """The highest resident set size ``pid`` ever had (VmHWM), in KiB."""
    return _status_kib(pid, "VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` used so far, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        # the command name (field 2) may hold spaces: split after its closing parenthesis
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S


class RssSampler:
    """Samples a process's RSS on a thread while a ``with`` block runs; ``peak_kib`` is the
    highest value seen (VmHWM cannot be reset, so a peak within a window needs sampling)."""

    def __init__(self, pid: int, interval_s: float = RSS_SAMPLE_INTERVAL_S):
        self.pid = pid
        self.interval_s = interval_s
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            try:
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            except (OSError, LookupError):
                return
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> "RssSampler":
        self.peak_kib = rss_kib(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
