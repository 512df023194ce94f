"""Riding out database outages: which errors mean the server cannot be reached, and the
backoff on which a whole transaction is re-run until it can (or a deadline passes).

Only connection-level errors are retried: SQLAlchemy ``OperationalError``/``InterfaceError``
that invalidated the connection, or that the driver raised without a SQLSTATE (connection
refused, server closed the connection) or with a connection-class SQLSTATE (08xxx
connection exception, 57P0x shutdown / not yet accepting connections).  Integrity and
programming errors, authentication failures and unknown databases fail at once; so does
everything SQLite raises, since it reports plain SQL errors as ``OperationalError`` too.

A transaction that lost its connection while committing may have committed anyway; the
re-run then runs it a second time, as any client of a database server must accept.
"""

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

import sqlalchemy as sa
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

T = TypeVar("T")

RETRY_FIRST_DELAY_S = 0.5
RETRY_MAX_DELAY_S = 10.0
RETRY_TOTAL_S = 300.0
# SQLSTATE prefixes meaning the connection failed or the server is shutting down/starting.
CONNECTION_SQLSTATE_PREFIXES = ("08", "57P")


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached (worth retrying)."""
    if not isinstance(error, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return False
    if error.connection_invalidated:
        return True
    if isinstance(error.orig, sqlite3.Error):
        return False
    sqlstate = getattr(error.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith(CONNECTION_SQLSTATE_PREFIXES)


def backoff_delays(
    first_s: float = RETRY_FIRST_DELAY_S, max_s: float = RETRY_MAX_DELAY_S
) -> Iterator[float]:
    """``first_s``, doubling each time, capped at ``max_s``: 0.5, 1, 2, 4, 8, 10, 10, ..."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, max_s)


class OutageRetrier:
    """Runs attempts, re-running one that failed on a connection error after a backoff.

    An attempt is re-run until it succeeds, fails otherwise, or the next wait would end
    more than ``total_s`` after its first try; then its last error is raised.  An outage is
    logged once however many queries wait it out: "database unavailable" when the first
    one fails, "database available again" when one next succeeds.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        total_s: float = RETRY_TOTAL_S,
        first_delay_s: float = RETRY_FIRST_DELAY_S,
        max_delay_s: float = RETRY_MAX_DELAY_S,
    ) -> None:
        self.clock = clock
        self.total_s = total_s
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.unavailable = False
        self._waits: set[defer.Deferred] = set()

    async def run(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """The result of ``attempt()``, re-running it while the database is unreachable."""
        started = self.clock.seconds()
        delays = backoff_delays(self.first_delay_s, self.max_delay_s)
        while True:
            try:
                result = await attempt()
            except Exception as error:
                if not is_connection_error(error):
                    raise
                delay = next(delays)
                if self.clock.seconds() + delay - started > self.total_s:
                    self.log.error(
                        "database unavailable for {elapsed:.1f} s; giving up: {error}",
                        elapsed=self.clock.seconds() - started, error=_reason(error),
                    )
                    raise
                self._went_down(error)
                await self._wait(delay)
                continue
            self._came_back()
            return result

    def cancel_waits(self) -> None:
        """Fail every attempt now waiting to be re-run with ``CancelledError`` (at shutdown)."""
        for waiting in list(self._waits):
            waiting.cancel()

    def _went_down(self, error: Exception) -> None:
        if not self.unavailable:
            self.unavailable = True
            self.log.warn("database unavailable: {error}; retrying", error=_reason(error))

    def _came_back(self) -> None:
        if self.unavailable:
            self.unavailable = False
            self.log.info("database available again")

    async def _wait(self, delay: float) -> None:
        waiting = task.deferLater(self.clock, delay, lambda: None)
        self._waits.add(waiting)
        try:
            await waiting
        finally:
            self._waits.discard(waiting)


def _reason(error: Exception) -> str:
    """The driver's own message (SQLAlchemy's wrapper adds the statement and a link)."""
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).strip()
