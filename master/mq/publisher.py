"""``OutboxPublisher``: sends the outbox's messages to the broker, oldest first, and deletes
each only once the broker confirmed it (publisher confirms), so delivery is at least once.

It reads the outbox through ``claim`` (master/db/outbox.py: on PostgreSQL the rows it sends
are locked from the other masters' publishers until the broker answered).  It drains when
woken (``wake``: the event bus does after each message it wrote or was handed), every
``POLL_INTERVAL_S`` (messages an earlier run left), and after a failure: a broker that
cannot be reached, refuses a message or does not confirm it within ``CONFIRM_TIMEOUT_S``
closes the channel, and the next attempt comes after a backoff that doubles from
``MIN_BACKOFF_S`` to ``MAX_BACKOFF_S``.  Nothing leaves the outbox unconfirmed.
"""

import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from buildfarm.master.mq.backoff import MAX_BACKOFF_S, MIN_BACKOFF_S, Backoff, BrokerLink, error_text

log = Logger()

BATCH_SIZE = 100  # messages published before their confirms are awaited
POLL_INTERVAL_S = 5.0
CONFIRM_TIMEOUT_S = 30.0
ORIGIN_HEADER = "buildfarm-origin"  # the id of the master whose event it is (a consumer skips its own)
__all__ = ["MAX_BACKOFF_S", "MIN_BACKOFF_S", "OutboxPublisher"]


class Channel(Protocol):
    """A confirmed channel to the broker (master/mq/amqp.py has the real one)."""

    def declare(self, exchange: str) -> defer.Deferred:
        """Declare a durable topic exchange."""

    def publish(self, exchange: str, routing_key: str, body: bytes, message_id: str | None,
                headers: dict | None = None) -> defer.Deferred:
        """Publish a persistent message; fires once the broker confirmed it, fails if it refused."""

    def close(self) -> None:
        """Close the channel and its connection (pending publishes fail)."""


ChannelOpener = Callable[[], Awaitable[Channel]]


class OutboxPublisher(BrokerLink, service.Service):
    """Drains ``outbox`` (``db.outbox``) into the channels ``open_channel`` makes."""

    name = "mq-publisher"

    def __init__(self, clock: IReactorTime, outbox, open_channel: ChannelOpener) -> None:
        self.clock = clock
        self.outbox = outbox
        self.open_channel = open_channel
        self.published = 0  # messages the broker confirmed, since the start
        self.failures = 0  # failed attempts, since the start
        self._channel: Channel | None = None
        self._declared: set[str] = set()
        self._draining: defer.Deferred | None = None
        self._again = False
        self._backoff = Backoff()
        self._timer = None

    def startService(self):  # noqa: N802
        super().startService()
        self.wake()

    def stopService(self):  # noqa: N802
        super().stopService()
        self._cancel_timer()
        self._drop_channel()
        draining = self._draining
        if draining is None:
            return None
        draining.cancel()  # a connection attempt or a confirm still awaited: its rows stay
        return draining.addErrback(lambda _: None)

    def wake(self) -> None:
        """Drain now (or right after the drain running now)."""
        if not self.running:
            return
        if self._draining is not None:
            self._again = True
            return
        self._cancel_timer()
        self._draining = defer.ensureDeferred(self._drain())
        self._draining.addBoth(self._drained)

    async def _drain(self) -> bool:
        """Publish until the outbox is empty; False when an attempt failed."""
        while self.running:
            self._again = False
            try:
                claim = await self.outbox.claim(BATCH_SIZE)
                if not claim.rows:
                    await claim.release()
                    return True
                try:
                    confirmed = await self._publish(claim)
                finally:
                    await claim.release()  # what was not confirmed goes back (if not finished)
            except Exception as e:
                if not self.running:
                    return False  # stopping: what was not confirmed stays in the outbox
                self.failures += 1
                log.warn("publishing events to the broker failed ({why}); retrying in {delay} s",
                         why=error_text(e), delay=self._backoff.delay_s)
                self._drop_channel()
                return False
            self._backoff.reset()
            log.debug("the broker confirmed {n} event(s)", n=confirmed)
        return True

    async def _publish(self, claim) -> int:
        rows = claim.rows
        channel = await self._ready_channel()
        for exchange in dict.fromkeys(row["exchange"] for row in rows):
            if exchange not in self._declared:
                await channel.declare(exchange)
                self._declared.add(exchange)
        confirms = []
        for row in rows:
            body = json.dumps(row["payload"], sort_keys=True).encode()
            headers = {ORIGIN_HEADER: row["origin"]} if row.get("origin") is not None else None
            d = channel.publish(row["exchange"], row["routing_key"], body, row["payload"].get("eventId"),
                                headers)
            confirms.append(d.addTimeout(CONFIRM_TIMEOUT_S, self.clock))
        confirmed: list[int] = []
        failure = None
        # The broker confirms in order: delete what it confirmed, even when a later one failed.
        for row, d in zip(rows, confirms, strict=True):
            try:
                await d
            except Exception as e:
                failure = failure or e
                continue
            if failure is None:
                confirmed.append(row["id"])
        await claim.finish(confirmed)
        self.published += len(confirmed)
        if failure is not None:
            raise failure
        return len(confirmed)

    async def _ready_channel(self) -> Channel:
        if self._channel is None:
            self._channel = await self.open_channel()
            self._declared = set()
            log.info("connected to the broker")
        return self._channel

    def _drained(self, result) -> None:
        self._draining = None
        if isinstance(result, Failure):  # an error of ours, not the broker's
            log.failure("the outbox publisher failed", result)
            result = False
        if not self.running:
            return
        if result is False:
            self._schedule(self._backoff.next())
        elif self._again:
            self.wake()
        else:
            self._schedule(POLL_INTERVAL_S)

    def _schedule(self, delay: float) -> None:
        self._cancel_timer()
        self._timer = self.clock.callLater(delay, self._fire_timer)

    def _fire_timer(self) -> None:
        self._timer = None
        self.wake()


