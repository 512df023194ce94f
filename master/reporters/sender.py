"""``ReportSender``: sends a reporter's recorded reports, oldest first, retrying with backoff.

Each report is a row of the ``reports`` table (master/db/reports.py) before it is sent; the
sender of the master that recorded it sends it, marks it sent, and goes on.  A report that
fails (an endpoint refusing the connection, answering 5xx, timing out) is tried again after
``BACKOFF_BASE_S * 2 ** (attempts - 1)`` seconds, at most ``BACKOFF_MAX_S``, each failure
logged; the reports recorded after it wait behind it, so an endpoint gets them in order.
``ReportRejected`` (a 4xx answer: the same report would be refused again) gives the report
up at once, as does the ``max_attempts``-th failure; both are logged and kept, with why.
Builds never wait for any of this: the build events only record rows and wake the sender.
"""

from collections.abc import Awaitable, Callable

from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
MAX_ATTEMPTS = 100  # about eight hours at the cap
BATCH = 50  # reports read per query


class ReportRejected(Exception):
    """The endpoint refused the report for good (sending it again would not help)."""


def backoff_delay(attempts: int, base_s: float = BACKOFF_BASE_S, cap_s: float = BACKOFF_MAX_S) -> float:
    """The wait after the ``attempts``-th failure in a row (1, 2, 4, ... capped)."""
    return min(cap_s, base_s * 2 ** max(0, attempts - 1))


class ReportSender:
    """Sends the pending reports of ``reporter`` recorded by ``masterid`` through ``send``."""

    def __init__(self, db, clock, reporter: str, masterid: int,
                 send: Callable[[list], Awaitable[object]], base_s: float = BACKOFF_BASE_S,
                 cap_s: float = BACKOFF_MAX_S, max_attempts: int = MAX_ATTEMPTS):
        self.db = db
        self.clock = clock
        self.reporter = reporter
        self.masterid = masterid
        self.send = send
        self.base_s = base_s
        self.cap_s = cap_s
        self.max_attempts = max_attempts
        self._running: defer.Deferred | None = None
        self._again = False
        self._timer = None
        self._stopped = False
        self._sending: defer.Deferred | None = None

    def wake(self) -> None:
        """Look for reports to send now (a new one was recorded, or a retry is due)."""
        if self._stopped:
            return
        if self._running is not None:
            self._again = True
            return
        self._cancel_timer()
        self._running = defer.ensureDeferred(self._loop())
        self._running.addErrback(lambda f: log.failure("reporter {name}: sender failed", f,
                                                       name=self.reporter))
        self._running.addBoth(self._done)

    async def stop(self) -> None:
        """Send nothing more: a report being sent is cancelled (it stays pending, to be sent
        by the next start); wait for the sender to record that."""
        self._stopped = True
        self._cancel_timer()
        if self._sending is not None:
            self._sending.cancel()
        if self._running is not None:
            await self._running

    def _done(self, _) -> None:
        self._running = None
        if self._again and not self._stopped:
            self._again = False
            self.wake()

    def _cancel_timer(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None

    def _wake_at(self, when: float) -> None:
        self._cancel_timer()
        if self._stopped:
            return
        self._timer = self.clock.callLater(max(0.0, when - self.clock.seconds()), self.wake)

    async def _loop(self) -> None:
        while not self._stopped:
            self._again = False
            rows = await self.db.reports.get_pending(self.reporter, self.masterid, BATCH)
            if not rows:
                return
            for row in rows:
                if self._stopped:
                    return
                if row["next_attempt_at"] > self.clock.seconds():
                    self._wake_at(row["next_attempt_at"])
                    return
                if not await self._send_one(row):
                    return  # the ones after it wait behind it

    async def _send_one(self, row: dict) -> bool:
        """Send one report; whether the sender may go on to the next."""
        attempt = row["attempts"] + 1
        self._sending = defer.ensureDeferred(self.send(row["reports"]))
        try:
            await self._sending
        except ReportRejected as e:
            await self.db.reports.mark_failed(row["reportid"], self.clock.seconds(), str(e))
            log.error("reporter {name}: report {id} ({event}) rejected, given up: {why}",
                      name=self.reporter, id=row["reportid"], event=row["event"], why=str(e))
            return True
        except Exception as e:
            if self._stopped:  # the stop cancelled the send: not an attempt
                log.info("reporter {name}: sending report {id} cut short by the master stopping; "
                         "it stays pending", name=self.reporter, id=row["reportid"])
                return False
            if isinstance(e, defer.CancelledError):  # a send's own timeout
                return await self._failed(row, attempt, "no answer in time")
            return await self._failed(row, attempt, str(e) or type(e).__name__)
        finally:
            self._sending = None
        await self.db.reports.mark_sent(row["reportid"], self.clock.seconds())
        log.info("reporter {name}: sent report {id} ({event})", name=self.reporter,
                 id=row["reportid"], event=row["event"])
        return True

    async def _failed(self, row: dict, attempt: int, why: str) -> bool:
        """Attempt ``attempt`` failed: retry later (False: the next reports wait) or, out of
        attempts, give the report up (True)."""
        if attempt >= self.max_attempts:
            await self.db.reports.mark_failed(row["reportid"], self.clock.seconds(), why)
            log.error("reporter {name}: report {id} ({event}) failed {n} times, given up: {why}",
                      name=self.reporter, id=row["reportid"], event=row["event"], n=attempt, why=why)
            return True
        delay = backoff_delay(attempt, self.base_s, self.cap_s)
        when = self.clock.seconds() + delay
        await self.db.reports.retry_later(row["reportid"], when, why)
        log.warn("reporter {name}: sending report {id} ({event}) failed (attempt {n}): {why}; "
                 "next attempt in {delay:g}s", name=self.reporter, id=row["reportid"],
                 event=row["event"], n=attempt, why=why, delay=delay)
        self._wake_at(when)
        return False

