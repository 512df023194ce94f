"""The outbox publisher (master/mq/publisher.py) against a scripted channel and an injected
clock: it publishes oldest first, deletes a message only once the broker confirmed it, and
after a refused or unconfirmed message or an unreachable broker it reconnects after a backoff
that doubles up to its cap, losing nothing."""

import pytest
from twisted.internet import defer, task

from buildfarm.master.db.outbox import Claim
from buildfarm.master.mq.publisher import (
    CONFIRM_TIMEOUT_S,
    MAX_BACKOFF_S,
    MIN_BACKOFF_S,
    POLL_INTERVAL_S,
    OutboxPublisher,
)

EXCHANGE = "exchange/buildfarm/v1/build-finished"


class MemoryOutbox:
    """``db.outbox`` as the publisher calls it, in memory."""

    def __init__(self):
        self.rows: list[dict] = []
        self._next = 1

    def put(self, n: int, origin: int | None = None) -> None:
        self.rows.append({"id": self._next, "exchange": EXCHANGE, "routing_key": f"primary.{n}._",
                          "payload": {"eventId": f"e{n}", "n": n}, "origin": origin})
        self._next += 1

    async def pending(self, limit):
        return [dict(row) for row in self.rows[:limit]]

    async def claim(self, limit):
        async def nothing():
            return None

        return Claim(await self.pending(limit), self.delete, nothing)

    async def delete(self, ids):
        ids = set(ids)
        before = len(self.rows)
        self.rows = [row for row in self.rows if row["id"] not in ids]
        return before - len(self.rows)

    def left(self) -> list[int]:
        return [row["payload"]["n"] for row in self.rows]


class ScriptedChannel:
    """A broker channel whose confirms the test gives: ``confirm()`` acks the oldest
    unconfirmed message, ``refuse()`` nacks it; ``auto`` acks each at once."""

    def __init__(self, broker: "ScriptedBroker"):
        self.broker = broker
        self.unconfirmed: list[defer.Deferred] = []
        self.closed = False

    def declare(self, exchange):
        self.broker.declared.append(exchange)
        return defer.succeed(None)

    def publish(self, exchange, routing_key, body, message_id, headers=None):
        if self.closed:
            return defer.fail(ConnectionError("channel closed"))
        self.broker.published.append((exchange, routing_key, message_id))
        self.broker.headers.append(headers)
        d = defer.Deferred()
        if self.broker.auto:
            d.callback(None)
        else:
            self.unconfirmed.append(d)
        return d

    def confirm(self) -> None:
        self.unconfirmed.pop(0).callback(None)

    def refuse(self) -> None:
        self.unconfirmed.pop(0).errback(ConnectionError("nack"))

    def close(self) -> None:
        self.closed = True
        for d in self.unconfirmed:
            if not d.called:
                d.errback(ConnectionError("channel closed"))
        self.unconfirmed = []


class ScriptedBroker:
    """Opens ``ScriptedChannel``s, or fails while ``down``."""

    def __init__(self):
        self.down = False
        self.auto = True
        self.opened: list[ScriptedChannel] = []
        self.attempts: list[float] = []
        self.published: list[tuple] = []
        self.headers: list[dict | None] = []
        self.declared: list[str] = []
        self.clock = task.Clock()

    async def open(self):
        self.attempts.append(self.clock.seconds())
        if self.down:
            raise ConnectionRefusedError("broker down")
        channel = ScriptedChannel(self)
        self.opened.append(channel)
        return channel


@pytest.fixture
def broker():
    return ScriptedBroker()


@pytest.fixture
def outbox():
    return MemoryOutbox()


@pytest.fixture
def publisher(broker, outbox):
    started = OutboxPublisher(broker.clock, outbox, broker.open)
    yield started
    if started.running:
        started.stopService()


def test_messages_go_out_oldest_first_and_leave_the_outbox_once_confirmed(broker, outbox, publisher):
    for n in (1, 2, 3):
        outbox.put(n)
    publisher.startService()
    assert [p[1] for p in broker.published] == ["primary.1._", "primary.2._", "primary.3._"]
    assert [p[2] for p in broker.published] == ["e1", "e2", "e3"]  # the eventId is the message id
    assert broker.declared == [EXCHANGE] and outbox.left() == [] and publisher.published == 3


def test_a_message_carries_its_origin_master_in_its_headers(broker, outbox, publisher):
    outbox.put(1, origin=7)
    outbox.put(2)  # written before its master knew its id
    publisher.startService()
    assert broker.headers == [{"buildfarm-origin": 7}, None]


def test_nothing_leaves_the_outbox_before_the_broker_confirms(broker, outbox, publisher):
    broker.auto = False
    outbox.put(1)
    outbox.put(2)
    publisher.startService()
    channel = broker.opened[0]
    assert outbox.left() == [1, 2]
    channel.confirm()
    assert outbox.left() == [1, 2]  # deleted together, once the batch is answered
    channel.confirm()
    assert outbox.left() == []


def test_a_refused_message_and_those_after_it_are_published_again_after_a_backoff(broker, outbox, publisher):
    broker.auto = False
    for n in (1, 2, 3):
        outbox.put(n)
    publisher.startService()
    first = broker.opened[0]
    first.confirm()
    first.refuse()
    first.confirm()  # confirmed, but after a refused one: sent again (at least once)
    assert outbox.left() == [2, 3] and first.closed
    broker.auto = True
    broker.clock.advance(MIN_BACKOFF_S - 0.01)
    assert len(broker.opened) == 1
    broker.clock.advance(0.01)
    assert len(broker.opened) == 2 and outbox.left() == []
    assert [p[1] for p in broker.published][3:] == ["primary.2._", "primary.3._"]


def test_an_unconfirmed_message_times_out_and_is_sent_again(broker, outbox, publisher):
    broker.auto = False
    outbox.put(1)
    publisher.startService()
    broker.clock.advance(CONFIRM_TIMEOUT_S)
    assert broker.opened[0].closed and outbox.left() == [1]
    broker.auto = True
    broker.clock.advance(MIN_BACKOFF_S)
    assert outbox.left() == [] and [p[1] for p in broker.published] == ["primary.1._", "primary.1._"]


def test_an_unreachable_broker_is_retried_with_a_doubling_backoff_up_to_its_cap(broker, outbox, publisher):
    broker.down = True
    outbox.put(1)
    publisher.startService()
    broker.clock.pump([MIN_BACKOFF_S] * int(130 / MIN_BACKOFF_S))
    gaps = [b - a for a, b in zip(broker.attempts, broker.attempts[1:], strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    assert outbox.left() == [1] and publisher.failures == len(broker.attempts)
    broker.down = False
    broker.clock.advance(MAX_BACKOFF_S)
    assert outbox.left() == []
    # once the broker took a message, the next failure starts again from the shortest backoff
    broker.down = True
    broker.opened[-1].close()
    outbox.put(2)
    publisher.wake()  # publishing on the closed channel fails
    failed_at = broker.clock.seconds()
    broker.clock.advance(MIN_BACKOFF_S)
    assert broker.attempts[-1] == failed_at + MIN_BACKOFF_S


def test_a_wake_during_a_drain_drains_again(broker, outbox, publisher):
    broker.auto = False
    outbox.put(1)
    publisher.startService()
    outbox.put(2)
    publisher.wake()  # arrives while message 1 waits for its confirm
    broker.opened[0].confirm()
    broker.opened[0].confirm()
    assert outbox.left() == [] and len(broker.opened) == 1


def test_messages_an_earlier_run_left_are_found_by_the_poll(broker, outbox, publisher):
    publisher.startService()
    outbox.put(1)  # written by someone who did not wake this publisher
    broker.clock.advance(POLL_INTERVAL_S)
    assert outbox.left() == []


def test_stopping_closes_the_channel_and_keeps_unconfirmed_messages(broker, outbox, publisher):
    broker.auto = False
    outbox.put(1)
    publisher.startService()
    d = publisher.stopService()
    assert broker.opened[0].closed and outbox.left() == [1]
    assert d is None or d.called
    broker.clock.advance(MAX_BACKOFF_S * 4)
    assert len(broker.attempts) == 1  # a stopped publisher does not come back


def test_stopping_during_a_connection_attempt_that_never_answers_ends_at_once(outbox):
    clock, attempts = task.Clock(), []

    def hanging_open():
        attempt = defer.Deferred()
        attempts.append(attempt)
        return attempt

    publisher = OutboxPublisher(clock, outbox, hanging_open)
    outbox.put(1)
    publisher.startService()
    d = publisher.stopService()
    assert d.called and attempts[0].called  # the attempt was cancelled, not waited for
    assert outbox.left() == [1] and publisher.failures == 0
