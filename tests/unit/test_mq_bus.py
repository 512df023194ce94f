"""The master's event bus (master/mq/bus.py): AMQP topic patterns, in-process subscribers, and
the outboxed bus that writes each message to ``mq_outbox`` before its subscribers hear of it."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface.verify import verifyObject

from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.exchanges import BUILD_FINISHED, BUILDFARM_EXCHANGES, Message
from buildfarm.master.mq.interfaces import IEventBus
from buildfarm.master.mq.topic import matches

EXCHANGE = "exchange/buildfarm/v1/build-finished"


@pytest.mark.parametrize(("pattern", "key", "expected"), [
    ("primary.linux.#", "primary.linux.7.3.bs1.success.1._", True),
    ("primary.linux.#", "primary.linux", True),  # '#' matches zero words
    ("primary.*.#", "primary", False),  # '*' needs exactly one word
    ("primary.*.7.#", "primary.linux.7.3", True),
    ("primary.*.7.#", "primary.windows.8.3", False),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("*", "a", True),
    ("*", "a.b", False),
    ("#.success.#", "primary.linux.7.success.1._", True),
    ("#.success.#", "primary.linux.7.failure.1._", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y.c", False),
    ("a.*", "a.", True),  # an empty word is a word
    ("route.#", "primary.route", False),
])
def test_topic_patterns_select_as_rabbitmq_does(pattern, key, expected):
    assert matches(pattern, key) is expected


def test_the_bus_provides_its_interface():
    assert verifyObject(IEventBus, EventBus())


def test_a_subscriber_gets_the_messages_of_its_exchange_whose_key_matches_its_pattern():
    bus, seen = EventBus(), []
    bus.subscribe(EXCHANGE, "primary.linux.#", seen.append)
    bus.publish(EXCHANGE, "primary.linux.1._", {"n": 1})
    bus.publish(EXCHANGE, "primary.windows.2._", {"n": 2})
    bus.publish("exchange/buildfarm/v1/build-started", "primary.linux.3._", {"n": 3})
    assert seen == [Message(EXCHANGE, "primary.linux.1._", {"n": 1})]


def test_subscribers_are_called_in_the_order_they_subscribed_and_can_leave():
    bus, calls = EventBus(), []
    first = bus.subscribe(EXCHANGE, "#", lambda m: calls.append("first"))
    bus.subscribe(EXCHANGE, "#", lambda m: calls.append("second"))
    bus.publish(EXCHANGE, "primary._", {})
    first()
    first()  # twice is harmless
    bus.publish(EXCHANGE, "primary._", {})
    assert calls == ["first", "second", "second"]
    assert bus.subscriptions() == 1


def test_a_failing_subscriber_is_logged_and_the_others_still_hear():
    bus, seen, logged = EventBus(), [], []

    def broken(message):
        raise RuntimeError("subscriber bug")

    bus.subscribe(EXCHANGE, "#", broken)
    bus.subscribe(EXCHANGE, "#", lambda m: defer.fail(RuntimeError("async bug")))
    bus.subscribe(EXCHANGE, "#", seen.append)
    globalLogPublisher.addObserver(logged.append)
    try:
        d = bus.publish(EXCHANGE, "primary._", {})
    finally:
        globalLogPublisher.removeObserver(logged.append)
    assert d.called and len(seen) == 1
    failures = [e["log_failure"] for e in logged if "log_failure" in e]
    assert sorted(str(f.value) for f in failures) == ["async bug", "subscriber bug"]
    assert all("event subscriber" in formatEvent(e) for e in logged if "log_failure" in e)


def test_a_declared_message_carries_an_event_id_and_its_routing_key():
    bus = EventBus(exchange_prefix="exchange/")
    payload = {"builderName": "linux", "builderId": 1, "buildId": 7, "number": 3, "buildRequestId": 9,
               "slaveName": "bs1.example.org", "masterId": 1, "startedAt": 1.0, "results": 0,
               "result": "success", "completeAt": 2.0, "stateString": "build successful"}
    one, two = bus.message(BUILDFARM_EXCHANGES, BUILD_FINISHED, payload), \
        bus.message(BUILDFARM_EXCHANGES, BUILD_FINISHED, payload)
    assert one.exchange == "exchange/buildfarm/v1/build-finished"
    assert one.routing_key == "primary.linux.7.9.bs1%2Eexample%2Eorg.success.1._"
    assert one.payload["eventId"] != two.payload["eventId"]
    assert bus.exchange_name(BUILDFARM_EXCHANGES, BUILD_FINISHED) == one.exchange


class RecordingOutbox:
    """``db.outbox`` as the bus calls it; ``fail`` makes the write fail."""

    def __init__(self):
        self.rows: list[Message] = []
        self.fail = False

    async def add_messages(self, messages):
        if self.fail:
            raise ConnectionError("database unavailable")
        self.rows.extend(messages)


@pytest_twisted.ensureDeferred
async def test_an_outboxed_bus_writes_the_outbox_then_tells_subscribers_and_wakes_the_publisher():
    outbox, wakes, seen = RecordingOutbox(), [], []
    bus = EventBus(outbox=outbox, wake=lambda: wakes.append(len(outbox.rows)))
    bus.subscribe(EXCHANGE, "#", lambda m: seen.append(len(outbox.rows)))
    assert bus.outboxed
    await bus.publish(EXCHANGE, "primary._", {"eventId": "e1"})
    assert outbox.rows == [Message(EXCHANGE, "primary._", {"eventId": "e1"})]
    assert seen == [1] and wakes == [1]  # both after the row was written


@pytest_twisted.ensureDeferred
async def test_an_outboxed_publish_that_cannot_write_fails_and_tells_nobody():
    outbox, seen = RecordingOutbox(), []
    outbox.fail = True
    bus = EventBus(outbox=outbox)
    bus.subscribe(EXCHANGE, "#", seen.append)
    with pytest.raises(ConnectionError):
        await bus.publish(EXCHANGE, "primary._", {})
    assert seen == []


def test_messages_written_by_the_callers_transaction_are_delivered_without_a_second_write():
    outbox, wakes, seen = RecordingOutbox(), [], []
    bus = EventBus(outbox=outbox, wake=lambda: wakes.append(True))
    bus.subscribe(EXCHANGE, "#", seen.append)
    message = Message(EXCHANGE, "primary._", {"eventId": "e1"})
    bus.published([message])
    assert seen == [message] and outbox.rows == [] and wakes == [True]
