"""The Queue's exchanges, Taskcluster's (``exchange/taskcluster-queue/v1/...``), and the
messages the Queue's transactions announce on them.

The task exchanges' routing key is Taskcluster's
``primary.<taskId>.<runId>.<workerGroup>.<workerId>.<provisionerId>.<workerType>.<schedulerId>.<taskGroupId>.<reserved>``
(``_`` for a field without a value); ``task-group-resolved``'s is
``primary.<taskGroupId>.<schedulerId>.<reserved>``.  Each task message is also sent once with
the routing key ``route.<route>`` for each of the task's ``routes`` (Taskcluster's CC routing);
the copies carry the same ``eventId``.

A Queue transaction (``QueueStore.run``) collects its messages in a ``Collector`` kept in the
connection's ``info`` while it runs: the store's helpers (``_create``, ``_save``, claims,
artifacts) call ``announce_*`` with the state before and after; the transaction writes them
to the outbox before it commits, and the bus gets them after (``IEventBus.published``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import sqlalchemy as sa

from buildfarm.master.db import outbox
from buildfarm.master.db.model import queue_task_groups as groups
from buildfarm.master.db.model import queue_tasks as tasks
from buildfarm.master.mq.exchanges import (
    API_VERSION,
    DEFAULT_EXCHANGE_PREFIX,
    EMPTY_WORD,
    PRIMARY,
    Exchange,
    ExchangeSet,
    Message,
    RoutingKeyField,
)

SERVICE = "queue"  # its reference: /references/queue/v1/exchanges.json, as Taskcluster's
EXCHANGE_SERVICE = "taskcluster-queue"  # its exchanges: exchange/taskcluster-queue/v1/<name>
ROUTE_PREFIX = "route."
COLLECTOR_KEY = "buildfarm.queue.events"  # the running transaction's Collector in ``conn.info``

_TASK_FIELDS = (
    RoutingKeyField("taskId", "`taskId` for the task this message concerns."),
    RoutingKeyField("runId", "The run the message concerns; `_` when the task has no run."),
    RoutingKeyField("workerGroup", "That run's `workerGroup`; `_` when it has none."),
    RoutingKeyField("workerId", "That run's `workerId`; `_` when it has none."),
    RoutingKeyField("provisionerId", "`provisionerId` this task is targeted at."),
    RoutingKeyField("workerType", "`workerType` this task must run on."),
    RoutingKeyField("schedulerId", "`schedulerId` this task was created by."),
    RoutingKeyField("taskGroupId", "`taskGroupId` this task was created in."),
)
_STATUS = {"type": "object", "description": "The task's status, as `queue.status` answers it."}
_RUN_ID = {"type": "integer", "minimum": 0, "maximum": 1000, "description": "The run this message concerns."}
_WORKER_GROUP = {"type": "string", "description": "The run's workerGroup."}
_WORKER_ID = {"type": "string", "description": "The run's workerId."}
_TASK_PROPERTIES = {
    "status": _STATUS,
    "task": {"type": "object", "properties": {"tags": {"type": "object"}}, "required": ["tags"],
             "description": "Subset of the task definition: its tags."},
}


def _word(value) -> str:
    """One routing-key word: Taskcluster's identifiers hold no dot, so the value as it is."""
    return EMPTY_WORD if value is None or value == "" else str(value)


@dataclass(frozen=True)
class TaskExchange(Exchange):
    """An exchange about one task: its routing-key words come from the message's ``status``
    and run fields, not from top-level properties of the same names."""

    def routing_key(self, payload: dict) -> str:
        status = payload["status"]
        words = [status["taskId"], payload.get("runId"), payload.get("workerGroup"), payload.get("workerId"),
                 status["provisionerId"], status["workerType"], status["schedulerId"], status["taskGroupId"]]
        return ".".join([PRIMARY.constant, *(_word(w) for w in words), EMPTY_WORD])

    def schema(self) -> dict:
        schema = super().schema()
        schema["required"] = ["eventId", "version", *self.required]
        return schema


TASK_DEFINED = TaskExchange(
    "task-defined", "Task Defined Messages",
    "A task was defined (createTask): it may be unscheduled (waiting on dependencies) or pending.",
    _TASK_FIELDS, _TASK_PROPERTIES, required=("status", "task"))
TASK_PENDING = TaskExchange(
    "task-pending", "Task Pending Messages",
    "A run of a task became pending: created with its dependencies met, scheduled, its last "
    "dependency resolved, rerun, or retried.",
    _TASK_FIELDS, {**_TASK_PROPERTIES, "runId": _RUN_ID}, required=("status", "runId", "task"))
TASK_RUNNING = TaskExchange(
    "task-running", "Task Running Messages",
    "A run started: claimed by an HTTP worker (with its `takenUntil`), or started on a PB slave "
    "by the task engine (no claim, no `takenUntil`).",
    _TASK_FIELDS, {**_TASK_PROPERTIES, "runId": _RUN_ID, "workerGroup": _WORKER_GROUP, "workerId": _WORKER_ID,
                   "takenUntil": {"type": "string", "format": "date-time",
                                  "description": "When the worker's claim ends unless reclaimed."}},
    required=("status", "runId", "workerGroup", "workerId", "task"))
ARTIFACT_CREATED = TaskExchange(
    "artifact-created", "Artifact Creation Messages",
    "An artifact of a run is there: a reference, link or error artifact once created, an object "
    "artifact once its upload is finished (finishArtifact, or collected from a PB run).",
    _TASK_FIELDS, {"status": _STATUS, "runId": _RUN_ID, "workerGroup": _WORKER_GROUP, "workerId": _WORKER_ID,
                   "artifact": {"type": "object",
                                "required": ["storageType", "name", "expires", "contentType"],
                                "description": "The artifact, as `listArtifacts` shows it."}},
    required=("status", "artifact", "workerGroup", "workerId", "runId"))
_RESOLVED_PROPERTIES = {**_TASK_PROPERTIES, "runId": _RUN_ID, "workerGroup": _WORKER_GROUP,
                        "workerId": _WORKER_ID}
TASK_COMPLETED = TaskExchange(
    "task-completed", "Task Completed Messages", "A run resolved `completed`.",
    _TASK_FIELDS, _RESOLVED_PROPERTIES, required=("status", "runId", "workerGroup", "workerId", "task"))
TASK_FAILED = TaskExchange(
    "task-failed", "Task Failed Messages", "A run resolved `failed`.",
    _TASK_FIELDS, _RESOLVED_PROPERTIES, required=("status", "runId", "task"))
TASK_EXCEPTION = TaskExchange(
    "task-exception", "Task Exception Messages",
    "A run resolved `exception` (canceled, deadline-exceeded, claim-expired, worker-shutdown, ...); "
    "`workerGroup` and `workerId` are absent when the run never started.",
    _TASK_FIELDS, _RESOLVED_PROPERTIES, required=("status", "runId", "task"))
TASK_GROUP_RESOLVED = Exchange(
    "task-group-resolved", "Task Group Resolved Messages",
    "The last unresolved task of a task group resolved: the group has none left.",
    (RoutingKeyField("taskGroupId", "`taskGroupId` for the task-group this message concerns."),
     RoutingKeyField("schedulerId", "`schedulerId` for the task-group this message concerns.")),
    {"taskGroupId": {"type": "string", "description": "The task group."},
     "schedulerId": {"type": "string", "description": "Its schedulerId."}})

@dataclass(frozen=True)
class QueueExchangeSet(ExchangeSet):
    """Taskcluster's Queue names its exchanges ``exchange/taskcluster-queue/v1/`` while its
    service (and reference) is ``queue``."""

    def prefix(self, exchange_prefix: str = DEFAULT_EXCHANGE_PREFIX) -> str:
        return f"{exchange_prefix}{EXCHANGE_SERVICE}/{API_VERSION}/"


QUEUE_EXCHANGES = QueueExchangeSet(
    SERVICE, "Queue AMQP Exchanges",
    "The Queue's events, as Taskcluster's Queue publishes them on Pulse: bind with "
    "`taskcluster.QueueEvents` (docs/operations.md).  Each message carries an `eventId`; delivery "
    "is at least once, so a consumer drops an `eventId` it has seen.",
    (TASK_DEFINED, TASK_PENDING, TASK_RUNNING, ARTIFACT_CREATED, TASK_COMPLETED, TASK_FAILED,
     TASK_EXCEPTION, TASK_GROUP_RESOLVED))

RESOLVED_EXCHANGES = {"completed": TASK_COMPLETED, "failed": TASK_FAILED, "exception": TASK_EXCEPTION}


class Collector:
    """The messages of one Queue transaction, in order: ``(exchange, payload, routes)``."""

    def __init__(self) -> None:
        self.items: list[tuple[Exchange, dict, tuple[str, ...]]] = []

    def add(self, exchange: Exchange, payload: dict, routes=()) -> None:
        self.items.append((exchange, payload, tuple(routes)))

    def messages(self, bus) -> list[Message]:
        """The messages, named with ``bus``'s prefix; each route copy shares its eventId."""
        made = []
        for exchange, payload, routes in self.items:
            message = bus.message(QUEUE_EXCHANGES, exchange, payload)
            made.append(message)
            made += [dataclasses.replace(message, routing_key=ROUTE_PREFIX + route) for route in routes]
        return made


def collecting(conn: sa.Connection, bus, fn):
    """Run ``fn(conn)`` collecting its messages; write them to the outbox in this transaction
    when ``bus`` is outboxed: ``(fn's result, the messages)``.  Without a bus nothing is collected."""
    if bus is None:
        return fn(conn), []
    collector = conn.info[COLLECTOR_KEY] = Collector()
    try:
        result = fn(conn)
    finally:
        conn.info.pop(COLLECTOR_KEY, None)
    messages = collector.messages(bus)
    if bus.outboxed:
        outbox.add_all(conn, messages)
    return result, messages


async def run_announcing(db, bus, fn):
    """``fn(conn)`` in one transaction of ``db`` (``db.run``) with its messages: in the outbox
    before the commit (``collecting``), handed to ``bus.published`` after it."""
    result, messages = await db.run(lambda conn: collecting(conn, bus, fn))
    if messages:
        bus.published(messages)
    return result


def _collector(conn: sa.Connection) -> Collector | None:
    return conn.info.get(COLLECTOR_KEY)


def _task_part(body: dict) -> dict:
    return {"tags": dict(body.get("tags") or {})}


def _run_fields(run: dict) -> dict:
    fields = {"runId": run["runId"]}
    fields.update({key: run[key] for key in ("workerGroup", "workerId") if run.get(key)})
    return fields


def announce_defined(conn: sa.Connection, task) -> None:
    """``task`` (a ``StoredTask``) was created: task-defined, and task-pending when it is."""
    collector = _collector(conn)
    if collector is None:
        return
    routes = task.body.get("routes") or ()
    collector.add(TASK_DEFINED, {"status": task.status(), "task": _task_part(task.body)}, routes)
    for run in task.runs:
        _announce_run(collector, task, run, routes)


def announce_change(conn: sa.Connection, before, after) -> None:
    """The runs of ``after`` whose state differs from ``before``'s each announce theirs
    (pending, running, completed, failed, exception); a task newly resolved whose group has
    no unresolved task left announces task-group-resolved."""
    collector = _collector(conn)
    if collector is None:
        return
    routes = after.body.get("routes") or ()
    for run in after.runs:
        old = before.runs[run["runId"]] if run["runId"] < len(before.runs) else None
        if old is None or old["state"] != run["state"]:
            _announce_run(collector, after, run, routes)
    if after.state in RESOLVED_EXCHANGES and before.state not in RESOLVED_EXCHANGES:
        _announce_group_if_resolved(conn, collector, after.body["taskGroupId"])


def _announce_run(collector: Collector, task, run: dict, routes) -> None:
    payload = {"status": task.status(), **_run_fields(run), "task": _task_part(task.body)}
    state = run["state"]
    if state == "pending":
        payload = {key: payload[key] for key in ("status", "runId", "task")}
        collector.add(TASK_PENDING, payload, routes)
    elif state == "running":
        if run.get("takenUntil"):
            payload["takenUntil"] = run["takenUntil"]
        collector.add(TASK_RUNNING, payload, routes)
    elif state in RESOLVED_EXCHANGES:  # workerGroup and workerId only when the run started
        collector.add(RESOLVED_EXCHANGES[state], payload, routes)


def _announce_group_if_resolved(conn: sa.Connection, collector: Collector, task_group_id: str) -> None:
    # the group's row lock orders the transactions that resolve its last tasks: the later one
    # sees the earlier's commit and announces the group
    group = conn.execute(sa.select(groups).where(groups.c.task_group_id == task_group_id)
                         .with_for_update()).first()
    if group is None:
        return
    unresolved = conn.execute(sa.select(sa.func.count()).select_from(tasks).where(
        tasks.c.task_group_id == task_group_id,
        tasks.c.state.not_in(tuple(RESOLVED_EXCHANGES)))).scalar()
    if not unresolved:
        collector.add(TASK_GROUP_RESOLVED, {"taskGroupId": task_group_id, "schedulerId": group.scheduler_id})


def announce_artifact(conn: sa.Connection, task, artifact) -> None:
    """``artifact`` (a ``StoredArtifact`` of ``task``'s run) is there: artifact-created."""
    collector = _collector(conn)
    if collector is None or not 0 <= artifact.run_id < len(task.runs):
        return
    run = task.runs[artifact.run_id]
    payload = {"status": task.status(), "artifact": artifact.info(), "runId": artifact.run_id,
               "workerGroup": run.get("workerGroup", ""), "workerId": run.get("workerId", "")}
    collector.add(ARTIFACT_CREATED, payload, task.body.get("routes") or ())
