"""``BrokerConsumer``: with ``c['mq']`` amqp, the master reads the other masters' events from
the broker and hands them to its own bus's subscribers, so that its pages (and whatever else
subscribes to the bus) see every master's builds, requests, slaves and changes.

Each master consumes one durable queue of its own, ``queue/buildfarm/master-<masterid>``,
bound to every routing key of buildfarm's exchanges and the Queue's (``exchanges``).  The
queue is durable so that a broker restart loses nothing that was routed to it (the messages
are persistent); the broker deletes it once no master consumed it for ``QUEUE_EXPIRES_S``.

A message published by this master (its ``buildfarm-origin`` header is this master's id) is
acknowledged and dropped: its subscribers had it in-process.  Any other is handed to
``bus.deliver_remote``, which drops an event it delivered already (delivery is at least once),
and acknowledged after.  A lost connection or a broker that cannot be reached is tried again
after the publisher's backoff (master/mq/backoff.py).
"""

import json
from collections.abc import Awaitable, Callable
from typing import Protocol

from twisted.application import service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from buildfarm.master.mq.backoff import Backoff, BrokerLink, error_text
from buildfarm.master.mq.exchanges import Message
from buildfarm.master.mq.publisher import ORIGIN_HEADER

log = Logger()

QUEUE_EXPIRES_S = 600.0  # a queue no master consumed for this long is deleted by the broker
PREFETCH = 200  # messages the broker sends before their acknowledgements
QUEUE_NAME = "queue/buildfarm/master-{masterid}"


class ConsumerChannel(Protocol):
    """A channel that consumes a queue (master/mq/amqp.py has the real one)."""

    def subscribe(self, queue: str, exchanges: list[str], expires_s: float, prefetch: int) -> Awaitable:
        """Declare and bind ``queue`` to ``exchanges`` and consume it: an object whose ``get()``
        fires with pika's ``ReceivedMessage`` (``method.delivery_tag``, ``properties.headers``,
        ``body``) and fails once the channel is gone."""

    def ack(self, delivery_tag: int) -> None:
        """Acknowledge one message."""

    def close(self) -> None:
        """Close the channel and its connection."""


ConsumerOpener = Callable[[], Awaitable[ConsumerChannel]]


class BrokerConsumer(BrokerLink, service.Service):
    """Delivers the messages of ``exchanges`` that other masters published to ``bus``
    (``IEventBus.deliver_remote``); ``masterid()`` is this master's id (it consumes once known)."""

    name = "mq-consumer"

    def __init__(self, clock: IReactorTime, bus, open_channel: ConsumerOpener,
                 masterid: Callable[[], int | None], exchanges: list[str]) -> None:
        self.clock = clock
        self.bus = bus
        self.open_channel = open_channel
        self.masterid = masterid
        self.exchanges = exchanges
        self.received = 0  # messages read from the broker, since the start
        self.own = 0  # of which this master's own (dropped)
        self.delivered = 0  # of which handed to the bus's subscribers
        self.failures = 0  # failed attempts to consume, since the start
        self.consuming = False  # bound and reading
        self._channel: ConsumerChannel | None = None
        self._running: defer.Deferred | None = None
        self._backoff = Backoff()
        self._timer = None

    @property
    def queue(self) -> str:
        return QUEUE_NAME.format(masterid=self.masterid())

    def startService(self):  # noqa: N802
        super().startService()
        self._start()

    def stopService(self):  # noqa: N802
        super().stopService()
        self._cancel_timer()
        self._drop_channel()
        running, self._running = self._running, None
        if running is None:
            return None
        running.cancel()
        return running.addErrback(lambda _: None)

    def _start(self) -> None:
        self._timer = None
        if not self.running or self._running is not None:
            return
        self._running = defer.ensureDeferred(self._consume())
        self._running.addBoth(self._ended)

    async def _consume(self) -> None:
        if self.masterid() is None:
            raise MasterNotReady("this master has no id yet")
        self._channel = await self.open_channel()
        received = await self._channel.subscribe(self.queue, self.exchanges, QUEUE_EXPIRES_S, PREFETCH)
        self.consuming = True
        self._backoff.reset()
        log.info("consuming the other masters' events from the broker (queue {queue})", queue=self.queue)
        while self.running:
            delivery = await received.get()
            self._handle(delivery)
            self._channel.ack(delivery.method.delivery_tag)

    def _handle(self, delivery) -> None:
        self.received += 1
        headers = getattr(delivery.properties, "headers", None) or {}
        if headers.get(ORIGIN_HEADER) is not None and headers.get(ORIGIN_HEADER) == self.masterid():
            self.own += 1
            return
        try:
            payload = json.loads(delivery.body)
        except ValueError:
            log.warn("dropped a message of {exchange} that is not JSON", exchange=delivery.method.exchange)
            return
        if not isinstance(payload, dict):
            log.warn("dropped a message of {exchange} that is not a JSON object",
                     exchange=delivery.method.exchange)
            return
        message = Message(delivery.method.exchange, delivery.method.routing_key, payload,
                          headers.get(ORIGIN_HEADER))
        if self.bus.deliver_remote(message):
            self.delivered += 1

    def _ended(self, result) -> None:
        self._running = None
        self.consuming = False
        self._drop_channel()
        if not self.running:
            return
        if isinstance(result, Failure):
            self.failures += 1
            delay = self._backoff.next()
            if result.check(MasterNotReady):
                log.debug("not consuming yet: {why}", why=result.getErrorMessage())
            else:
                log.warn("consuming events from the broker failed ({why}); retrying in {delay} s",
                         why=error_text(result.value), delay=delay)
        else:
            delay = self._backoff.next()
        self._timer = self.clock.callLater(delay, self._start)


class MasterNotReady(Exception):
    """The master has not found its id in the database yet."""
