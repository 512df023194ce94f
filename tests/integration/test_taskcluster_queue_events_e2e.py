"""The Queue's exchanges through a real RabbitMQ (tests/fixtures/rabbitmq.py) from a real master
with c['mq'] amqp: consumers written as docs/operations.md's example, bound with the OFFICIAL
client's helpers (``taskcluster.QueueEvents``), receive task-defined, task-pending, task-running,
artifact-created, task-completed and task-group-resolved for a task an HTTP worker runs with the
official client (claimWork, createArtifact, reportCompleted), and the ``route.<route>`` copy of
task-completed on a binding with a custom routing-key pattern."""

import time
import uuid

import pytest
import taskcluster
from test_amqp_e2e import consumer_functions

from fixtures.daemons import Fleet
from fixtures.rabbitmq import rabbitmq_server  # noqa: F401 - the session's broker

pytestmark = pytest.mark.integration

ADMIN = {"clientId": "ci-admin", "accessToken": "ci-admin-token-0123456789"}
WORKER = {"clientId": "ci-worker", "accessToken": "ci-worker-token-0123456789"}
TASK_QUEUE = "proj-events/docker"
PREFIX = "exchange/taskcluster-queue/v1/"
DELIVERY_DEADLINE_S = 30.0
CONFIG = """\
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['builders'] = []
c['clients'] = [
    {{'clientId': 'ci-admin', 'accessToken': 'ci-admin-token-0123456789', 'scopes': ['queue:*']}},
    {{'clientId': 'ci-worker', 'accessToken': 'ci-worker-token-0123456789',
      'scopes': ['queue:claim-work:proj-events/*', 'queue:worker-id:e2e/*']}},
]
c['mq'] = {{'type': 'amqp', 'url': {url!r}}}
"""


class Consumer:
    """docs/operations.md's consumer on a queue of its own (its own eventId set)."""

    def __init__(self, broker, bindings):
        self.broker, self.bindings = broker, [(b["exchange"], b["routingKeyPattern"]) for b in bindings]
        self.queue = f"test-{uuid.uuid4().hex[:8]}"
        self.consume = consumer_functions()["consume"]
        self.seen: set = set()
        self.received: list[tuple[str, str, dict]] = []
        self.poll(0.1)  # declares the queue and its bindings now

    def poll(self, idle_s: float = 0.5) -> list:
        self.consume(self.broker.url, self.queue, self.bindings,
                     lambda *message: self.received.append(message), self.seen, inactivity_timeout=idle_s)
        return self.received

    def wait_for(self, count: int) -> list:
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        while len(self.poll()) < count:
            assert time.monotonic() < deadline, f"timed out waiting for {count} messages: got {self.received}"
        self.poll(0.5)  # and nothing more
        return self.received


def test_a_consumer_bound_with_queue_events_receives_a_tasks_life(tmp_path, rabbitmq_server):  # noqa: F811
    fleet = Fleet(str(tmp_path))
    try:
        master = fleet.master(config=lambda pb, www: CONFIG.format(pb_port=pb, www_port=www,
                                                                   url=rabbitmq_server.url))
        events = taskcluster.QueueEvents({"rootUrl": master.url})
        task_id, group = taskcluster.slugId(), taskcluster.slugId()
        primary = Consumer(rabbitmq_server, [
            events.taskDefined({"taskGroupId": group}), events.taskPending({"taskId": task_id}),
            events.taskRunning({"taskId": task_id}), events.artifactCreated({"taskId": task_id}),
            events.taskCompleted({"taskId": task_id}), events.taskGroupResolved({"taskGroupId": group})])
        routed = Consumer(rabbitmq_server, [events.taskCompleted("route.e2e.notify.#")])

        admin = taskcluster.Queue({"rootUrl": master.url, "credentials": ADMIN, "maxRetries": 0})
        admin.createTask(task_id, {
            "taskQueueId": TASK_QUEUE, "taskGroupId": group, "routes": ["e2e.notify.done"],
            "tags": {"purpose": "events"},
            "created": taskcluster.stringDate(taskcluster.fromNow("0 seconds")),
            "deadline": taskcluster.stringDate(taskcluster.fromNow("1 hour")), "payload": {},
            "metadata": {"name": "e2e", "description": "events e2e", "owner": "ci@example.com",
                         "source": "https://example.com/e2e"}})
        worker = taskcluster.Queue({"rootUrl": master.url, "credentials": WORKER, "maxRetries": 0})
        work = {"workerGroup": "e2e", "workerId": "w1", "tasks": 1}
        (claimed,) = worker.claimWork(TASK_QUEUE, work)["tasks"]
        own = taskcluster.Queue({"rootUrl": master.url, "credentials": claimed["credentials"],
                                 "maxRetries": 0})
        own.createArtifact(task_id, "0", "public/missing.log", {
            "storageType": "error", "expires": taskcluster.stringDate(taskcluster.fromNow("1 day")),
            "reason": "file-missing-on-worker", "message": "no such file"})
        own.reportCompleted(task_id, "0")

        received = primary.wait_for(6)
        key = f"{task_id}.{{run}}.{{group}}.{{worker}}.proj-events.docker.-.{group}._"
        assert [(exchange.removeprefix(PREFIX), routing_key) for exchange, routing_key, _ in received] == [
            ("task-defined", "primary." + key.format(run="_", group="_", worker="_")),
            ("task-pending", "primary." + key.format(run="0", group="_", worker="_")),
            ("task-running", "primary." + key.format(run="0", group="e2e", worker="w1")),
            ("artifact-created", "primary." + key.format(run="0", group="e2e", worker="w1")),
            ("task-completed", "primary." + key.format(run="0", group="e2e", worker="w1")),
            ("task-group-resolved", f"primary.{group}.-._"),
        ]
        payloads = [payload for _, _, payload in received]
        assert payloads[0]["task"] == {"tags": {"purpose": "events"}}
        assert payloads[2]["takenUntil"] == claimed["takenUntil"]
        assert payloads[3]["artifact"]["name"] == "public/missing.log"
        assert payloads[4]["status"]["state"] == "completed"
        assert payloads[5]["taskGroupId"] == group

        [(exchange, routing_key, payload)] = routed.wait_for(1)
        assert (exchange, routing_key) == (PREFIX + "task-completed", "route.e2e.notify.done")
        assert payload["eventId"] == payloads[4]["eventId"]  # the same event, CC'd
    finally:
        fleet.stop_all()
