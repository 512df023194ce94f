"""The broker consumer (master/mq/consumer.py) against a scripted broker and an injected clock:
it consumes this master's queue bound to the exchanges, hands the other masters' messages to
the bus's subscribers once each (deduped by eventId), drops its own, acknowledges every message
after handling it, and reconnects after the publisher's backoff when the broker goes away."""

import json
from types import SimpleNamespace

import pytest
import pytest_twisted
from pika.adapters.twisted_connection import ClosableDeferredQueue
from twisted.internet import defer, task

from buildfarm.master.db import outbox as db_outbox
from buildfarm.master.mq.backoff import MAX_BACKOFF_S, MIN_BACKOFF_S
from buildfarm.master.mq.bus import EventBus, SeenEvents
from buildfarm.master.mq.consumer import PREFETCH, QUEUE_EXPIRES_S, BrokerConsumer
from buildfarm.master.mq.exchanges import BUILD_FINISHED, BUILDFARM_EXCHANGES, Message
from tests.fixtures.memorymaster import MASTER_CFG, start_memory_master

EXCHANGE = "exchange/buildfarm/v1/build-finished"
# the memory master's reactor never connects: its consumer and publisher keep retrying
AMQP_CFG = MASTER_CFG + "c['mq'] = {'type': 'amqp', 'url': 'amqp://guest:guest@127.0.0.1:9/'}\n"
MASTERID = 1
OTHER = 2


class ScriptedConsumerChannel:
    """A consuming channel whose deliveries the test gives (``deliver``); ``lose()`` is the
    broker going away (the pending ``get`` fails, as pika's queue does)."""

    def __init__(self, broker: "ScriptedBroker"):
        self.broker = broker
        self.received = ClosableDeferredQueue()
        self.acked: list[int] = []
        self.closed = False
        self.subscribed: tuple | None = None
        self._tag = 0

    async def subscribe(self, queue, exchanges, expires_s, prefetch):
        self.subscribed = (queue, list(exchanges), expires_s, prefetch)
        return self.received

    def deliver(self, payload, origin=None, routing_key="primary.linux.1._", exchange=EXCHANGE,
                body: bytes | None = None) -> int:
        self._tag += 1
        headers = {"buildfarm-origin": origin} if origin is not None else None
        self.received.put(SimpleNamespace(
            method=SimpleNamespace(delivery_tag=self._tag, exchange=exchange, routing_key=routing_key),
            properties=SimpleNamespace(headers=headers),
            body=body if body is not None else json.dumps(payload).encode()))
        return self._tag

    def ack(self, delivery_tag):
        self.acked.append(delivery_tag)

    def lose(self):
        self.received.close(ConnectionError("connection lost"))

    def close(self):
        self.closed = True


class ScriptedBroker:
    def __init__(self):
        self.down = False
        self.clock = task.Clock()
        self.attempts: list[float] = []
        self.opened: list[ScriptedConsumerChannel] = []

    async def open(self):
        self.attempts.append(self.clock.seconds())
        if self.down:
            raise ConnectionRefusedError("broker down")
        channel = ScriptedConsumerChannel(self)
        self.opened.append(channel)
        return channel


@pytest.fixture
def broker():
    return ScriptedBroker()


@pytest.fixture
def bus():
    return EventBus(origin=lambda: MASTERID)


@pytest.fixture
def seen(bus):
    got: list[Message] = []
    bus.subscribe(EXCHANGE, "#", got.append)
    return got


def consumer_of(broker, bus, masterid=lambda: MASTERID) -> BrokerConsumer:
    return BrokerConsumer(broker.clock, bus, broker.open, masterid, [EXCHANGE])


@pytest.fixture
def consumer(broker, bus):
    started = consumer_of(broker, bus)
    yield started
    if started.running:
        started.stopService()


def test_it_consumes_the_durable_queue_named_after_its_master_bound_to_the_exchanges(broker, consumer):
    consumer.startService()
    assert broker.opened[0].subscribed == ("queue/buildfarm/master-1", [EXCHANGE], QUEUE_EXPIRES_S, PREFETCH)
    assert consumer.consuming


def test_another_masters_message_reaches_the_subscribers_and_is_acknowledged(broker, consumer, seen):
    consumer.startService()
    tag = broker.opened[0].deliver({"eventId": "e1", "buildId": 7}, origin=OTHER)
    assert seen == [Message(EXCHANGE, "primary.linux.1._", {"eventId": "e1", "buildId": 7})]
    assert seen[0].origin == OTHER
    assert broker.opened[0].acked == [tag] and consumer.delivered == 1


def test_its_own_messages_are_acknowledged_and_dropped(broker, consumer, seen):
    consumer.startService()
    tag = broker.opened[0].deliver({"eventId": "e1"}, origin=MASTERID)
    assert seen == [] and broker.opened[0].acked == [tag] and consumer.own == 1


def test_an_event_brought_twice_is_delivered_once(broker, consumer, seen):
    consumer.startService()
    channel = broker.opened[0]
    channel.deliver({"eventId": "e1"}, origin=OTHER)
    channel.deliver({"eventId": "e1"}, origin=OTHER)  # at least once: the publisher sent it again
    channel.deliver({"eventId": "e1"}, origin=OTHER, routing_key="route.linux")  # a route copy
    assert [m.routing_key for m in seen] == ["primary.linux.1._", "route.linux"]
    assert channel.acked == [1, 2, 3]


@pytest_twisted.ensureDeferred
async def test_an_event_delivered_in_process_is_not_delivered_again_from_the_broker(broker, seen):
    bus = EventBus(origin=lambda: None)  # published before this master knew its id: no origin
    bus.subscribe(EXCHANGE, "#", seen.append)
    consumer = consumer_of(broker, bus)
    consumer.startService()
    message = bus.message(BUILDFARM_EXCHANGES, BUILD_FINISHED, {"builderName": "linux", "buildId": 7})
    bus.published([message])
    broker.opened[0].deliver(message.payload, routing_key=message.routing_key, exchange=message.exchange)
    assert seen == [message]
    consumer.stopService()


def test_a_message_that_is_not_a_json_object_is_acknowledged_and_dropped(broker, consumer, seen):
    consumer.startService()
    channel = broker.opened[0]
    channel.deliver(None, origin=OTHER, body=b"not json")
    channel.deliver([1, 2], origin=OTHER)
    channel.deliver({"eventId": "e3"}, origin=OTHER)
    assert [m.payload["eventId"] for m in seen] == ["e3"] and channel.acked == [1, 2, 3]


def test_a_failing_subscriber_does_not_stop_the_consumer(broker, bus, consumer, seen):
    bus.subscribe(EXCHANGE, "#", lambda m: 1 / 0)
    consumer.startService()
    broker.opened[0].deliver({"eventId": "e1"}, origin=OTHER)
    broker.opened[0].deliver({"eventId": "e2"}, origin=OTHER)
    assert len(seen) == 2 and broker.opened[0].acked == [1, 2]


def test_a_lost_connection_is_opened_again_after_the_backoff_on_the_same_queue(broker, consumer, seen):
    consumer.startService()
    first = broker.opened[0]
    first.lose()
    assert first.closed and not consumer.consuming and consumer.failures == 1
    broker.clock.advance(MIN_BACKOFF_S - 0.01)
    assert len(broker.opened) == 1
    broker.clock.advance(0.01)
    second = broker.opened[1]
    assert second.subscribed[0] == first.subscribed[0] and consumer.consuming
    second.deliver({"eventId": "e1"}, origin=OTHER)
    assert len(seen) == 1


def test_an_unreachable_broker_is_retried_with_the_publishers_doubling_backoff(broker, consumer, seen):
    broker.down = True
    consumer.startService()
    broker.clock.pump([MIN_BACKOFF_S] * int(130 / MIN_BACKOFF_S))
    gaps = [b - a for a, b in zip(broker.attempts, broker.attempts[1:], strict=False)]
    assert gaps == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]
    broker.down = False
    broker.clock.advance(MAX_BACKOFF_S)
    assert consumer.consuming
    broker.opened[-1].lose()  # once consuming, the next failure starts again from the shortest
    lost_at = broker.clock.seconds()
    broker.clock.advance(MIN_BACKOFF_S)
    assert broker.attempts[-1] == lost_at + MIN_BACKOFF_S


def test_it_waits_for_its_master_id_before_consuming(broker, bus):
    masterid: list[int | None] = [None]
    consumer = consumer_of(broker, bus, masterid=lambda: masterid[0])
    consumer.startService()
    assert broker.attempts == []
    masterid[0] = 5
    broker.clock.advance(MIN_BACKOFF_S)
    assert broker.opened[0].subscribed[0] == "queue/buildfarm/master-5"
    consumer.stopService()


def test_stopping_closes_the_channel_and_does_not_come_back(broker, consumer):
    consumer.startService()
    d = consumer.stopService()
    assert broker.opened[0].closed and (d is None or d.called)
    broker.clock.advance(MAX_BACKOFF_S * 4)
    assert len(broker.attempts) == 1


def test_stopping_during_a_connection_attempt_that_never_answers_ends_at_once(bus):
    clock, attempts = task.Clock(), []

    def hanging_open():
        attempt = defer.Deferred()
        attempts.append(attempt)
        return attempt

    consumer = BrokerConsumer(clock, bus, hanging_open, lambda: MASTERID, [EXCHANGE])
    consumer.startService()
    d = consumer.stopService()
    assert d.called and attempts[0].called  # cancelled


def test_the_events_seen_are_bounded_oldest_forgotten_first():
    seen = SeenEvents(capacity=3)
    assert all(seen.add(k) for k in "abc")
    assert not seen.add("a")  # remembered, and now the newest
    assert seen.add("d") and len(seen) == 3
    assert seen.add("b")  # forgotten: the oldest
    assert not seen.add("a")


@pytest_twisted.ensureDeferred
async def test_the_outbox_keeps_a_messages_origin_out_of_its_payload(db):
    await db.outbox.add_messages([Message(EXCHANGE, "primary._", {"eventId": "e1"}, origin=3),
                                  Message(EXCHANGE, "primary._", {"eventId": "e2"})])
    rows = await db.outbox.pending(10)
    assert [(r["payload"], r["origin"]) for r in rows] == [({"eventId": "e1"}, 3), ({"eventId": "e2"}, None)]
    assert db_outbox.ORIGIN_KEY not in json.dumps([r["payload"] for r in rows])


def test_a_bus_message_carries_its_masters_id(bus):
    assert bus.message(BUILDFARM_EXCHANGES, BUILD_FINISHED, {"buildId": 1}).origin == MASTERID


@pytest_twisted.ensureDeferred
async def test_an_amqp_master_consumes_after_its_recovery_and_marks_its_messages_with_its_id(tmp_path):
    master = await start_memory_master(tmp_path, AMQP_CFG)
    try:
        children = list(master)
        assert children.index(master.mq_consumer) == children.index(master.recovery) + 1
        assert "exchange/buildfarm/v1/build-finished" in master.mq_consumer.exchanges
        assert "exchange/taskcluster-queue/v1/task-completed" in master.mq_consumer.exchanges
        assert master.mq_consumer.queue == f"queue/buildfarm/master-{master.masterid}"
        brid = await master.scheduler.force("linux", "because", {})
        rows = await master.db.outbox.pending(10)
        assert [(r["payload"]["buildRequestId"], r["origin"]) for r in rows] == [(brid, master.masterid)]
    finally:
        await master.stopService()
    (tmp_path / "simple").mkdir()
    simple = await start_memory_master(tmp_path / "simple", MASTER_CFG)
    try:
        assert simple.mq_consumer is None  # one master, in-process only
    finally:
        await simple.stopService()
