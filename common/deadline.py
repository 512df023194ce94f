"""Deadlines: nothing that waits on the network or on a tool may wait forever.

``with_deadline`` is the one way the master bounds a piece of work (PB remote calls in
master/pb/deadline.py, the SlaveAPI's channels): the work is cancelled when the deadline
passes, and its Deferred then fails with the error the caller names.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime


def with_deadline(work: Coroutine | defer.Deferred, seconds: float, clock: IReactorTime,
                  timed_out: Callable[[], Exception]) -> defer.Deferred:
    """A Deferred of ``work`` (a coroutine or a Deferred) that, ``seconds`` after now on
    ``clock``, cancels it and fails with ``timed_out()``.  A ``defer.TimeoutError`` of the work
    itself fails the same way: for its caller, the work did not finish in time."""
    d: defer.Deferred[Any] = work if isinstance(work, defer.Deferred) else defer.ensureDeferred(work)
    d.addTimeout(seconds, clock)

    def deadline_passed(failure):
        if not failure.check(defer.TimeoutError):
            return failure  # not trap(): it cannot re-raise PB's CopiedFailure (its value is a str)
        raise timed_out()

    return d.addErrback(deadline_passed)
