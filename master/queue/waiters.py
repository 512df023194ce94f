"""``PendingWaiters``: claimWork's callers waiting for a task of their taskQueueId.

``wait(task_queue_id, timeout_s)`` fires True when ``wake(task_queue_id)`` is called (the store
made a task of that queue pending: create, schedule, rerun, a retry) and False after
``timeout_s`` on the master's clock (the caller then claims again: what other masters made
pending is found that way).  Every waiter of the queue is woken; each then tries its claim, and
the conditional UPDATE gives each run to one of them (master/queue/claims.py).
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime


class PendingWaiters:
    """The claimWork calls waiting, per taskQueueId (see the module)."""

    def __init__(self, clock: IReactorTime):
        self.clock = clock
        self._waiting: dict[str, dict[defer.Deferred, object]] = {}

    def waiting(self, task_queue_id: str) -> int:
        return len(self._waiting.get(task_queue_id, ()))

    def wait(self, task_queue_id: str, timeout_s: float) -> defer.Deferred:
        """Fires True when woken, False after ``timeout_s``; cancelling it stops the wait."""
        waiters = self._waiting.setdefault(task_queue_id, {})
        d = defer.Deferred(lambda d: self._end(task_queue_id, d))
        waiters[d] = self.clock.callLater(max(timeout_s, 0.0), self._fire, task_queue_id, d, False)
        return d

    def wake(self, task_queue_id: str) -> None:
        """Wake every caller waiting for ``task_queue_id``."""
        for d in list(self._waiting.get(task_queue_id, ())):
            self._fire(task_queue_id, d, True)

    def _fire(self, task_queue_id: str, d: defer.Deferred, woken: bool) -> None:
        if self._end(task_queue_id, d):
            d.callback(woken)

    def _end(self, task_queue_id: str, d: defer.Deferred) -> bool:
        waiters = self._waiting.get(task_queue_id, {})
        timer = waiters.pop(d, None)
        if not waiters:
            self._waiting.pop(task_queue_id, None)
        if timer is None:
            return False
        if timer.active():
            timer.cancel()
        return True
