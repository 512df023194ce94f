"""``EventBus``: the master's one event bus (``IEventBus``).

Subscribers in this master get every message whose exchange and routing key they bound,
in the order they subscribed.  With ``c['mq']`` amqp the bus is *outboxed*: a published
message is also written to the ``mq_outbox`` table, and the ``OutboxPublisher``
(master/mq/publisher.py) sends it to the broker and deletes it once the broker confirmed it,
and the ``BrokerConsumer`` (master/mq/consumer.py) hands the other masters' messages to this
bus's subscribers (``deliver_remote``).  The bus remembers the last ``SEEN_EVENTS`` events it
delivered, so that a message delivered once (in-process, or from the broker) is not delivered
again when the broker brings it (again).
"""

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.mq.exchanges import DEFAULT_EXCHANGE_PREFIX, Exchange, ExchangeSet, Message
from buildfarm.master.mq.interfaces import IEventBus
from buildfarm.master.mq.topic import matches

log = Logger()

Callback = Callable[[Message], object]
SEEN_EVENTS = 10_000  # (eventId, routing key) pairs remembered, oldest forgotten first


class SeenEvents:
    """The last ``capacity`` keys added, in a bounded memory."""

    def __init__(self, capacity: int = SEEN_EVENTS) -> None:
        self.capacity = capacity
        self._keys: OrderedDict = OrderedDict()

    def add(self, key) -> bool:
        """Remember ``key``; False when it was remembered already."""
        if key in self._keys:
            self._keys.move_to_end(key)
            return False
        self._keys[key] = None
        if len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._keys)


@implementer(IEventBus)
class EventBus:
    """In-process topic exchanges; ``outbox`` (``db.outbox``) and ``wake`` (the publisher's)
    make it outboxed; ``origin`` says the id of the master whose messages it makes."""

    def __init__(self, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX, outbox=None,
                 wake: Callable[[], None] | None = None,
                 origin: Callable[[], int | None] = lambda: None) -> None:
        self.exchange_prefix = exchange_prefix
        self._outbox = outbox
        self._wake = wake or (lambda: None)
        self._origin = origin
        self._subscriptions: list[tuple[str, str, Callback]] = []
        self.seen = SeenEvents()
        self.remote = 0  # messages of other masters delivered (``deliver_remote``)

    @property
    def outboxed(self) -> bool:
        return self._outbox is not None

    def message(self, exchanges: ExchangeSet, exchange: Exchange, payload: dict) -> Message:
        """The message of a declared exchange for ``payload``, named with this bus's prefix."""
        return dataclasses.replace(exchanges.message(exchange, payload, self.exchange_prefix),
                                   origin=self._origin())

    def exchange_name(self, exchanges: ExchangeSet, exchange: Exchange) -> str:
        """A declared exchange's full name, for ``subscribe``."""
        return exchanges.full_name(exchange, self.exchange_prefix)

    def subscribe(self, exchange: str, pattern: str, callback: Callback) -> Callable[[], None]:
        subscription = (exchange, pattern, callback)
        self._subscriptions.append(subscription)

        def unsubscribe() -> None:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

        return unsubscribe

    def publish(self, exchange: str, routing_key: str, payload: dict) -> defer.Deferred:
        message = Message(exchange, routing_key, payload, self._origin())
        if self._outbox is None:
            self._deliver(message)
            return defer.succeed(None)
        d = defer.ensureDeferred(self._outbox.add_messages([message]))
        d.addCallback(lambda _: self.published([message]))
        return d

    def published(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self._deliver(message)
        if self._outbox is not None:
            self._wake()

    def deliver_remote(self, message: Message) -> bool:
        """Deliver a message another master published (the consumer's) to this master's
        subscribers, unless its event was delivered here already; whether it was delivered."""
        if not self._first_time(message):
            return False
        self.remote += 1
        self._deliver(message, seen=True)
        return True

    def subscriptions(self) -> int:
        """How many subscriptions there are."""
        return len(self._subscriptions)

    def _first_time(self, message: Message) -> bool:
        event_id = message.payload.get("eventId")
        return event_id is None or self.seen.add((event_id, message.exchange, message.routing_key))

    def _deliver(self, message: Message, seen: bool = False) -> None:
        if not seen:  # this master's own: delivered whatever, remembered for the broker's copy
            self._first_time(message)
        for exchange, pattern, callback in list(self._subscriptions):
            if exchange != message.exchange or not matches(pattern, message.routing_key):
                continue
            try:
                result = callback(message)
            except Exception:
                log.failure("event subscriber {callback!r} failed on {exchange} {key}",
                            callback=callback, exchange=message.exchange, key=message.routing_key)
                continue
            if isinstance(result, defer.Deferred):
                result.addErrback(lambda f, m=message, c=callback: log.failure(
                    "event subscriber {callback!r} failed on {exchange} {key}", f, callback=c,
                    exchange=m.exchange, key=m.routing_key))
