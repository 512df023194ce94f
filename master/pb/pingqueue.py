"""When each attached slave is pinged next: one DelayedCall per clock for all of them.

A DelayedCall per idle slave costs the master about 650 bytes (the call, its bound methods
and its place in the reactor's queue); an entry here costs a tuple.  Slaves that stop
pinging (detached) simply ignore their entry when it comes due.
"""

import heapq
import itertools
import weakref

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()


class PingQueue:
    """Calls ``slave.ping_due(due)`` for each entry at its time, earliest first."""

    def __init__(self, clock: IReactorTime):
        self._clock = clock
        self._entries: list[tuple[float, int, object]] = []
        self._order = itertools.count()  # ties: first added, first called
        self._call = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, delay: float, slave) -> float:
        """Call ``slave.ping_due(due)`` in ``delay`` seconds; returns ``due``."""
        due = self._clock.seconds() + delay
        heapq.heappush(self._entries, (due, next(self._order), slave))
        self._arm()
        return due

    def _arm(self) -> None:
        if not self._entries:
            return
        due = self._entries[0][0]
        if self._call is not None and self._call.active():
            if self._call.getTime() <= due:
                return
            self._call.cancel()
        self._call = self._clock.callLater(max(0.0, due - self._clock.seconds()), self._fire)

    def _fire(self) -> None:
        self._call = None
        now = self._clock.seconds()
        while self._entries and self._entries[0][0] <= now:
            due, _, slave = heapq.heappop(self._entries)
            try:
                slave.ping_due(due)
            except Exception:
                log.failure("starting a ping failed")
        self._arm()


_queues: "weakref.WeakKeyDictionary[object, PingQueue]" = weakref.WeakKeyDictionary()


def ping_queue(clock: IReactorTime) -> PingQueue:
    """The one PingQueue of ``clock``."""
    queue = _queues.get(clock)
    if queue is None:
        queue = _queues[clock] = PingQueue(clock)
    return queue
