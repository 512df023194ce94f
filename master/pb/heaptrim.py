"""Giving the C heap's free memory back to the system after a burst of slave logins.

A fleet logging in at once leaves the master's heap full of holes (the attach sequences'
messages, Deferreds and coroutines, freed once the slaves are attached); glibc keeps those
pages.  ``malloc_trim(0)`` returns the free ones to the kernel.  This is an addition to
keeping per-slave state small, not a replacement: it releases memory no slave holds.
Where glibc is absent (or ctypes cannot load it) trimming is a no-op.
"""

import ctypes
import ctypes.util

from twisted.internet import defer, threads
from twisted.logger import Logger

log = Logger()

# At most one trim per this many seconds; a trim runs in a thread (it may take milliseconds).
TRIM_MIN_INTERVAL_S = 1.0


def _load_malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def release_free_heap() -> bool:
    """Return the C heap's free pages to the system; whether it could (glibc only)."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


class HeapTrimmer:
    """Trims the heap once a burst has settled: ``settled()`` asks for a trim, which runs
    on the next reactor turn, or ``TRIM_MIN_INTERVAL_S`` after the previous one."""

    def __init__(self, clock, trim=None, min_interval: float = TRIM_MIN_INTERVAL_S):
        """``trim`` (default: ``release_free_heap`` in a thread, off the reactor) may return a
        Deferred."""
        self._clock = clock
        self._trim = trim or (lambda: threads.deferToThread(release_free_heap))
        self._min_interval = min_interval
        self._last: float | None = None
        self._call = None

    def settled(self) -> None:
        if self._call is not None and self._call.active():
            return
        now = self._clock.seconds()
        delay = 0.0 if self._last is None else max(0.0, self._last + self._min_interval - now)
        self._call = self._clock.callLater(delay, self._run)

    def _run(self) -> None:
        self._call = None
        self._last = self._clock.seconds()
        d = defer.maybeDeferred(self._trim)
        d.addErrback(lambda f: log.failure("trimming the heap failed", f))

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
