"""The Queue's exchanges (master/queue/events.py), on SQLite and PostgreSQL: each Queue state
change writes its messages to the outbox in its own transaction (a rolled-back change writes
none) and hands them to the bus after the commit; routing keys are Taskcluster's, payloads
validate against the served schemas, and the served reference matches the official client's
``taskcluster.QueueEvents``."""

import base64
import json
import pathlib
import uuid

import jsonschema
import pytest
import pytest_twisted
import taskcluster
import yaml
from twisted.internet import defer

from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.topic import matches
from buildfarm.master.queue import model
from buildfarm.master.queue.artifacts import ERROR, OBJECT, ArtifactStore, StoredArtifact
from buildfarm.master.queue.claims import ClaimStore
from buildfarm.master.queue.events import QUEUE_EXCHANGES, TASK_DEFINED, Collector
from buildfarm.master.queue.store import QueueConflict, QueueStore, StoredTask, _get, _resolve
from fixtures import docexamples

HERE = pathlib.Path(__file__).parent
TASKCLUSTER_SCHEMAS = HERE.parent / "fixtures" / "taskcluster"
SHIPPED = HERE.parents[1] / "common" / "references"
PREFIX = "exchange/taskcluster-queue/v1/"
NOW = 1_700_000_000.0


def task_id(n: int) -> str:
    """A fixed slugid (a v4 UUID in url-safe base64) per ``n``."""
    return base64.urlsafe_b64encode(uuid.UUID(int=n << 64, version=4).bytes).decode()[:22]


GROUP = task_id(999)


def definition(n: int, **changes) -> model.TaskDefinition:
    body = {"taskQueueId": "proj/linux", "taskGroupId": GROUP, "created": iso(NOW),
            "deadline": iso(NOW + 3600), "routes": ["index.project.x", "tc-notify.on-any"],
            "tags": {"kind": "test"}, "payload": {},
            "metadata": {"name": "t", "description": "d", "owner": "me@example.com", "source": "https://x/"}}
    body.update(changes)
    return model.check_definition(task_id(n), body, NOW)


class Seen:
    """Every Queue message the in-process bus delivers."""

    def __init__(self, bus: EventBus):
        self.messages = []
        for exchange in QUEUE_EXCHANGES.exchanges:
            bus.subscribe(bus.exchange_name(QUEUE_EXCHANGES, exchange), "#", self.messages.append)

    def primary(self) -> list[tuple[str, str]]:
        return [(m.exchange.removeprefix(PREFIX), m.routing_key) for m in self.messages
                if m.routing_key.startswith("primary.")]

    def take(self) -> list:
        taken, self.messages[:] = list(self.messages), []
        return taken


@pytest.fixture
def bus(db):
    return EventBus(outbox=db.outbox)


@pytest.fixture
def seen(bus):
    return Seen(bus)


def validate(message) -> None:
    name = message.exchange.removeprefix(PREFIX) + "-message"
    schema = CATALOG.schema_document("queue", name)
    jsonschema.Draft6Validator.check_schema(schema)
    jsonschema.Draft6Validator(schema, format_checker=jsonschema.FormatChecker()).validate(message.payload)


async def outboxed(db) -> list[tuple[str, str, str]]:
    return [(r["exchange"], r["routing_key"], r["payload"]["eventId"]) for r in await db.outbox.pending(100)]


@pytest_twisted.ensureDeferred
async def test_create_writes_task_defined_and_pending_with_route_copies_in_its_transaction(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    key = f"primary.{task_id(1)}.{{run}}._._.proj.linux.-.{GROUP}._"
    assert seen.primary() == [("task-defined", key.format(run="_")), ("task-pending", key.format(run="0"))]
    assert [m.routing_key for m in seen.messages] == [
        key.format(run="_"), "route.index.project.x", "route.tc-notify.on-any",
        key.format(run="0"), "route.index.project.x", "route.tc-notify.on-any"]
    # the route copies are the same event
    assert len({m.payload["eventId"] for m in seen.messages}) == 2
    assert await outboxed(db) == [(m.exchange, m.routing_key, m.payload["eventId"]) for m in seen.messages]
    for message in seen.messages:
        validate(message)
    defined, pending = seen.messages[0].payload, seen.messages[3].payload
    assert set(defined) == {"eventId", "version", "status", "task"}
    assert defined["task"] == {"tags": {"kind": "test"}} and defined["status"]["state"] == "pending"
    assert pending["runId"] == 0


@pytest_twisted.ensureDeferred
async def test_the_same_definition_again_writes_nothing(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    seen.take()
    await db.outbox.delete([r["id"] for r in await db.outbox.pending(100)])
    await store.create(definition(1), NOW)
    assert seen.messages == [] and await outboxed(db) == []


@pytest_twisted.ensureDeferred
async def test_a_rolled_back_change_writes_no_message(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    seen.take()
    await db.outbox.delete([r["id"] for r in await db.outbox.pending(100)])
    with pytest.raises(QueueConflict):  # a different definition: refused after reading
        await store.create(definition(1, tags={"kind": "other"}), NOW)

    def resolve_then_fail(conn):
        _resolve(conn, _get(conn, task_id(1), lock=True), "completed", "completed", NOW)
        raise RuntimeError("the change failed after resolving")

    with pytest.raises(RuntimeError):
        await store.run(resolve_then_fail)
    assert seen.messages == [] and await outboxed(db) == []
    assert (await store.get(task_id(1))).state == "pending"


@pytest_twisted.ensureDeferred
async def test_a_claim_runs_and_a_report_resolves_each_with_its_message(db, bus, seen):
    store = QueueStore(db, mq=bus)
    claims = ClaimStore(store)
    await store.create(definition(1), NOW)
    seen.take()
    [claim] = await claims.claim_work("proj/linux", "wg", "w1", 1, NOW + 1, 1200)
    await claims.report(task_id(1), 0, "completed", "completed", NOW + 2)
    messages = [m for m in seen.messages if m.routing_key.startswith("primary.")]
    key = f"primary.{task_id(1)}.0.wg.w1.proj.linux.-.{GROUP}._"
    assert [(m.exchange.removeprefix(PREFIX), m.routing_key) for m in messages] == [
        ("task-running", key), ("task-completed", key),
        ("task-group-resolved", f"primary.{GROUP}.-._")]
    running, completed, group = (m.payload for m in messages)
    assert running["takenUntil"] == claim.run["takenUntil"] and running["workerId"] == "w1"
    assert completed["status"]["state"] == "completed" and completed["workerGroup"] == "wg"
    assert {k: group[k] for k in ("taskGroupId", "schedulerId")} == {"taskGroupId": GROUP, "schedulerId": "-"}
    for message in seen.messages:
        validate(message)
    assert [r[1] for r in await outboxed(db)][-len(seen.messages):] == [m.routing_key for m in seen.messages]


@pytest_twisted.ensureDeferred
async def test_failed_exception_and_a_retry_announce_each_run(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    await store.create(definition(2), NOW)
    await store.started(task_id(1), 0, "buildfarm", "bs1", NOW + 1)
    await store.resolve(task_id(1), 0, "exception", "worker-shutdown", NOW + 2, retry=True)
    await store.resolve(task_id(2), 0, "failed", "failed", NOW + 3)
    seen.take()
    await store.cancel(task_id(1), NOW + 4)
    names = [(m.exchange.removeprefix(PREFIX), m.routing_key.split(".")[2]) for m in seen.messages
             if m.routing_key.startswith("primary.")]
    assert names == [("task-exception", "1"), ("task-group-resolved", "-")]


@pytest_twisted.ensureDeferred
async def test_the_engine_start_retry_and_failure_messages_in_order(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    await store.create(definition(2), NOW)
    seen.take()
    await store.started(task_id(1), 0, "buildfarm", "bs1", NOW + 1)
    await store.resolve(task_id(1), 0, "exception", "worker-shutdown", NOW + 2, retry=True)
    await store.resolve(task_id(2), 0, "failed", "failed", NOW + 3)
    assert [(e, k.split(".")[1:5]) for e, k in seen.primary()] == [
        ("task-running", [task_id(1), "0", "buildfarm", "bs1"]),
        ("task-exception", [task_id(1), "0", "buildfarm", "bs1"]),
        ("task-pending", [task_id(1), "1", "_", "_"]),
        ("task-failed", [task_id(2), "0", "_", "_"]),
    ]
    for message in seen.messages:
        validate(message)
    running = seen.messages[0].payload
    assert "takenUntil" not in running  # a PB run holds no claim


@pytest_twisted.ensureDeferred
async def test_a_dependent_made_pending_is_announced_and_the_group_only_once_all_resolved(db, bus, seen):
    store = QueueStore(db, mq=bus)
    await store.create(definition(1), NOW)
    await store.create(definition(2, dependencies=[task_id(1)]), NOW)
    assert [e for e, _ in seen.primary()] == ["task-defined", "task-pending", "task-defined"]
    seen.take()
    await store.resolve(task_id(1), 0, "completed", "completed", NOW + 1)
    assert [(e, k.split(".")[1]) for e, k in seen.primary()] == [
        ("task-completed", task_id(1)), ("task-pending", task_id(2))]
    seen.take()
    await store.cancel(task_id(2), NOW + 2)
    assert [e for e, _ in seen.primary()] == ["task-exception", "task-group-resolved"]
    exception = seen.messages[0].payload  # a run that never started has no worker
    assert exception["runId"] == 0 and "workerId" not in exception


@pytest_twisted.ensureDeferred
async def test_cancel_task_group_announces_the_group_once(db, bus, seen):
    store = QueueStore(db, mq=bus)
    for n in (1, 2, 3):
        await store.create(definition(n), NOW)
    seen.take()
    await store.cancel_group(GROUP, NOW + 1)
    assert [e for e, _ in seen.primary()] == ["task-exception"] * 3 + ["task-group-resolved"]


@pytest_twisted.ensureDeferred
async def test_the_last_two_tasks_resolved_at_once_announce_the_group_exactly_once(db, bus, seen):
    store = QueueStore(db, mq=bus)
    for n in (1, 2):
        await store.create(definition(n), NOW)
    seen.take()
    # two transactions in the pool at once: the group's row lock orders them
    both = [defer.ensureDeferred(store.resolve(task_id(n), 0, "completed", "completed", NOW)) for n in (1, 2)]
    await defer.gatherResults(both)
    assert sorted(e for e, _ in seen.primary()) == ["task-completed", "task-completed", "task-group-resolved"]


@pytest_twisted.ensureDeferred
async def test_an_artifact_is_announced_once_it_is_there(db, bus, seen):
    store = QueueStore(db, mq=bus)
    artifacts = ArtifactStore(db, bus)
    await store.create(definition(1), NOW)
    await store.started(task_id(1), 0, "buildfarm", "bs1", NOW + 1)
    seen.take()
    error = StoredArtifact(task_id(1), 0, "public/missing", ERROR, "application/binary", NOW + 100,
                           {"reason": "file-missing-on-worker", "message": "no"}, True)
    upload = StoredArtifact(task_id(1), 0, "public/log.txt", OBJECT, "text/plain", NOW + 100,
                            {"uploadId": "u1"}, False)
    await artifacts.create(error, NOW + 2)
    await artifacts.create(upload, NOW + 2)
    assert [m.payload["artifact"]["name"] for m in seen.messages if m.routing_key.startswith("primary.")] == [
        "public/missing"]
    await artifacts.mark_present(task_id(1), 0, "public/log.txt")
    await artifacts.mark_present(task_id(1), 0, "public/log.txt")  # finished again: no second message
    created = [m for m in seen.messages if m.routing_key.startswith("primary.")]
    assert [m.payload["artifact"]["name"] for m in created] == ["public/missing", "public/log.txt"]
    assert created[1].routing_key == f"primary.{task_id(1)}.0.buildfarm.bs1.proj.linux.-.{GROUP}._"
    assert created[1].payload["artifact"] == {"storageType": "object", "name": "public/log.txt",
                                              "expires": iso(NOW + 100), "contentType": "text/plain"}
    for message in seen.messages:
        validate(message)
    assert len(seen.messages) == 6  # each with its two route copies
    written = [(m.exchange, m.routing_key, m.payload["eventId"]) for m in seen.messages]
    assert (await outboxed(db))[-6:] == written


@pytest_twisted.ensureDeferred
async def test_without_an_outbox_the_messages_go_to_in_process_subscribers_only(db):
    bus = EventBus()
    seen = Seen(bus)
    await QueueStore(db, mq=bus).create(definition(1), NOW)
    assert [e for e, _ in seen.primary()] == ["task-defined", "task-pending"]
    assert await db.outbox.pending(10) == []


def test_the_reference_validates_and_matches_the_official_queue_events_client():
    document = CATALOG.exchanges_reference("queue")
    schema = yaml.safe_load((TASKCLUSTER_SCHEMAS / "exchanges-reference-v0.yml").read_text())
    jsonschema.Draft6Validator(schema).validate(document)
    assert document["exchangePrefix"] == PREFIX and document["serviceName"] == "queue"
    client = taskcluster.QueueEvents({"rootUrl": "http://master:8010"})
    assert len(document["entries"]) == 8
    for entry in document["entries"]:
        names = [k["name"] for k in entry["routingKey"]]
        assert names[0] == "routingKeyKind" and names[-1] == "reserved"
        values = {name: f"v{i}" for i, name in enumerate(names[1:-1])}
        binding = getattr(client, entry["name"])(values)
        assert binding["exchange"] == PREFIX + entry["exchange"]
        # the client puts each named value at its place: same names, same order
        assert binding["routingKeyPattern"] == ".".join(["primary", *values.values(), "#"])


def test_the_manifest_lists_the_queue_exchange_reference():
    document = CATALOG.manifest("http://master:8010/")
    assert "http://master:8010/references/queue/v1/exchanges.json" in document["references"]


def test_the_shipped_copy_is_what_the_master_serves():
    shipped = json.loads((SHIPPED / "queue-exchanges.json").read_text())
    assert shipped == json.loads(json.dumps(CATALOG.exchanges_reference("queue")))


def test_the_official_clients_bindings_select_the_messages():
    bus = EventBus()
    client = taskcluster.QueueEvents({"rootUrl": "http://master:8010"})
    messages = []
    bus.subscribe(PREFIX + "task-defined", "#", messages.append)
    definition_ = definition(1)
    stored = StoredTask(definition_.task_id, definition_.body, "pending", [], 0, NOW + 3600)
    collector = Collector()
    collector.add(TASK_DEFINED, {"status": stored.status(), "task": {"tags": {}}}, ["index.project.x"])
    made = collector.messages(bus)
    by_group = client.taskDefined({"taskGroupId": GROUP})["routingKeyPattern"]
    by_other = client.taskDefined({"taskGroupId": "other"})["routingKeyPattern"]
    by_route = client.taskDefined("route.index.project.#")["routingKeyPattern"]
    assert [matches(by_group, m.routing_key) for m in made] == [True, False]
    assert [matches(by_other, m.routing_key) for m in made] == [False, False]
    assert [matches(by_route, m.routing_key) for m in made] == [False, True]


def test_the_queue_binding_example_of_docs_operations_md_selects_the_messages():
    namespace = {"task_id": task_id(1), "group_id": GROUP}
    text = docexamples.example("operations.md", "queue-binding")
    exec(compile(text, "docs/operations.md (queue-binding)", "exec"), namespace)  # noqa: S102
    done, group, notify = namespace["bindings"]
    key = f"primary.{task_id(1)}.0.wg.w1.proj.linux.-.{GROUP}._"
    assert done[0] == PREFIX + "task-completed" and matches(done[1], key)
    assert not matches(done[1], key.replace(task_id(1), task_id(2)))
    assert group[0] == PREFIX + "task-defined" and matches(group[1], key)
    assert notify == (PREFIX + "task-completed", "route.notify.email.#")
    assert matches(notify[1], "route.notify.email.me@example.com")
