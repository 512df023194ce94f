"""Events through a real RabbitMQ broker (tests/fixtures/rabbitmq.py) end to end: a master with
c['mq'] amqp runs builds on a real slave, and a consumer written as docs/operations.md's
example (pika's blocking client on a durable queue bound with the patterns Taskcluster's client
makes from the master's exchange reference) receives build-started and build-finished with
their routing keys; with the broker stopped mid-way the builds go on, their events wait in the
outbox, and all of them arrive once the broker is back."""

import sqlite3
import time
import uuid

from taskcluster.client import createApiClient

from fixtures import docexamples
from fixtures.daemons import MASTER_CFG, wait_for
from fixtures.rabbitmq import rabbitmq_server  # noqa: F401 - the session's broker

CONSUMER = docexamples.example("operations.md", "consumer")
DELIVERY_DEADLINE_S = 60.0  # the publisher's backoff reaches 30 s while the broker is down


def amqp_master(fleet, broker):
    def config(pb_port, www_port):
        text = MASTER_CFG.format(slavenames=["bs1"], command=["echo", "hello"], pb_port=pb_port,
                                 www_port=www_port)
        return text + f"\nc['mq'] = {{'type': 'amqp', 'url': {broker.url!r}}}\n"

    return fleet.master(config=config)


def consumer_functions() -> dict:
    namespace: dict = {}
    exec(compile(CONSUMER, "docs/operations.md (consumer)", "exec"), namespace)  # noqa: S102
    return namespace


class Consumer:
    """The docs' consumer on a queue of its own, bound with the official client's patterns."""

    def __init__(self, broker, master, **patterns):
        reference = master.get("/references/buildfarm/v1/exchanges.json")
        events = createApiClient("BuildfarmEvents", {"reference": reference})({"rootUrl": master.url})
        self.bindings = [(b["exchange"], b["routingKeyPattern"])
                         for b in (getattr(events, name)(**fields) for name, fields in patterns.items())]
        self.broker, self.queue = broker, f"test-{uuid.uuid4().hex[:8]}"
        self.consume = consumer_functions()["consume"]
        self.seen: set = set()
        self.received: list[tuple[str, str, dict]] = []
        self.poll(0.1)  # declares the queue and its bindings now

    def poll(self, idle_s: float = 0.5) -> list:
        self.consume(self.broker.url, self.queue, self.bindings,
                     lambda *message: self.received.append(message), self.seen, inactivity_timeout=idle_s)
        return self.received

    def wait(self, predicate, what: str) -> list:
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        while not predicate(self.poll()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}: got {self.received}"
        return self.received


def finished_of(received, buildid):
    return [m for m in received if m[0].endswith("/build-finished") and m[2]["buildId"] == buildid]


def outbox_rows(master) -> int:
    with sqlite3.connect(f"{master.basedir}/state.sqlite") as conn:
        return conn.execute("SELECT count(*) FROM mq_outbox").fetchone()[0]


def test_a_consumer_receives_build_started_and_build_finished_with_their_routing_keys(
        fleet, rabbitmq_server):  # noqa: F811 - the fixture imported above
    master = amqp_master(fleet, rabbitmq_server)
    fleet.slave(master)
    master.wait_attached("bs1")
    consumer = Consumer(rabbitmq_server, master, buildStarted={"builderName": "runtests"},
                        buildFinished={"builderName": "runtests", "result": "success"})
    assert consumer.bindings == [
        ("exchange/buildfarm/v1/build-started", "primary.runtests.*.*.*.*.#"),
        ("exchange/buildfarm/v1/build-finished", "primary.runtests.*.*.*.success.*.#")]
    brid = master.force("runtests")
    request = master.wait_request_complete(brid)
    buildid = request["buildids"][0]
    received = consumer.wait(lambda got: finished_of(got, buildid), "build-finished")
    masterid = finished_of(received, buildid)[0][2]["masterId"]
    key = f"runtests.{buildid}.{brid}.bs1"
    assert [(exchange, key) for exchange, key, _ in received] == [
        ("exchange/buildfarm/v1/build-started", f"primary.{key}.{masterid}._"),
        ("exchange/buildfarm/v1/build-finished", f"primary.{key}.success.{masterid}._"),
    ]
    payload = received[1][2]
    assert (payload["buildRequestId"], payload["result"], payload["slaveName"]) == (brid, "success", "bs1")
    assert received[0][2]["eventId"] != payload["eventId"]
    wait_for(lambda: outbox_rows(master) == 0, "the outbox to drain")


def test_a_broker_stopped_mid_way_loses_no_event(fleet, rabbitmq_server):  # noqa: F811
    master = amqp_master(fleet, rabbitmq_server)
    fleet.slave(master)
    master.wait_attached("bs1")
    consumer = Consumer(rabbitmq_server, master, buildFinished={"builderName": "runtests"},
                        requestSubmitted={"builderName": "runtests"})
    first = master.wait_request_complete(master.force("runtests"))["buildids"][0]
    consumer.wait(lambda got: finished_of(got, first), "the first build-finished")

    rabbitmq_server.stop_server()
    try:
        requests, builds = [], []
        for _ in range(3):  # one after the other: requests waiting together would collapse
            requests.append(master.force("runtests"))
            builds.append(master.wait_request_complete(requests[-1])["buildids"][0])
        # the builds went on; their events wait in the outbox
        assert outbox_rows(master) >= len(requests) * 2
    finally:
        rabbitmq_server.start()

    received = consumer.wait(lambda got: all(finished_of(got, b) for b in builds), "every build-finished")
    submitted = [m[2]["buildRequestId"] for m in received if m[0].endswith("/request-submitted")]
    assert set(requests) <= set(submitted)
    assert all(len(finished_of(received, b)) == 1 for b in [first, *builds])  # deduped by eventId
    wait_for(lambda: outbox_rows(master) == 0, "the outbox to drain", DELIVERY_DEADLINE_S)
    assert "publishing events to the broker failed" in master.log_text()
