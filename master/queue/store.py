"""``QueueStore``: the Queue's tasks in the master's database (``queue_tasks`` and
``queue_dependencies``, master/db/model.py).

Each public method is one transaction in the database's pool (``db.run``).  A change that
resolves a task also satisfies its dependents' rows and makes pending every dependent whose
last dependency that was, in the same transaction: no task waits on a lost notification.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.db.model import queue_dependencies as deps
from buildfarm.master.db.model import queue_task_groups as groups
from buildfarm.master.db.model import queue_tasks as tasks
from buildfarm.master.queue import model
from buildfarm.master.queue.events import announce_change, announce_defined, run_announcing
from buildfarm.master.queue.model import (
    COMPLETED,
    EXCEPTION,
    PENDING,
    RESOLVED,
    RUNNING,
    UNSCHEDULED,
    TaskDefinition,
)

# Taskcluster's priority ranks (its queue_pending_tasks_add_for_task): claimWork takes the
# highest rank first (``queue_tasks.priority_rank``), then the oldest task
PRIORITY_RANKS = {"highest": 7, "very-high": 6, "high": 5, "medium": 4, "low": 3, "very-low": 2,
                  "lowest": 1, "normal": 0}


class QueueConflict(Exception):
    """A change the task's state refuses (409): a different definition, a rerun too many..."""


class QueueInputError(Exception):
    """A definition the stored tasks refuse (400): a missing dependency, one expiring too soon."""


class UnknownQueueTask(KeyError):
    """No Queue task (or task group) has this id (404)."""


@dataclass(frozen=True)
class StoredTask:
    """A task as stored: its definition (Taskcluster's task) and its status."""

    task_id: str
    body: dict
    state: str
    runs: list[dict]
    retries_left: int
    deadline: float
    engine_task_id: int | None = None

    @property
    def run_id(self) -> int:
        """The current (last) run's id; -1 with no run."""
        return len(self.runs) - 1

    def status(self) -> dict:
        return model.status_json(self.task_id, self.body, self.state, self.runs, self.retries_left)


class QueueStore:
    """The Queue's tasks over ``db`` (the master's ``DBConnector``).  ``on_pending(taskQueueId)``
    is called (on the reactor thread, after the transaction) when create, schedule, rerun or a
    retry made a task of that queue pending: it wakes the HTTP workers waiting in claimWork.
    With ``mq`` (the master's ``IEventBus``) each change announces itself on the Queue's
    exchanges (master/queue/events.py): written to the outbox in its transaction, handed to the
    bus after the commit."""

    def __init__(self, db, on_pending: Callable[[str], None] | None = None, mq=None):
        self.db = db
        self.on_pending = on_pending
        self.mq = mq

    async def run(self, fn: Callable[[sa.Connection], Any]) -> Any:
        """``fn(conn)`` in one transaction (``db.run``) with its Queue events: in the outbox
        before the commit, on the bus after it."""
        return await run_announcing(self.db, self.mq, fn)

    def pending(self, task: StoredTask) -> StoredTask:
        """Tell ``on_pending`` when ``task`` is pending; answer it."""
        if self.on_pending is not None and task.state == PENDING:
            self.on_pending(task.body["taskQueueId"])
        return task

    async def create(self, definition: TaskDefinition, now: float) -> tuple[StoredTask, bool]:
        """Store a new task: pending when every dependency is already satisfied (or it has
        none), else unscheduled.  The same definition again answers the stored task and False;
        a different one raises ``QueueConflict``; a dependency that does not exist or expires
        before the task's deadline ``QueueInputError``."""
        task, created = await self.run(lambda conn: _create(conn, definition, now))
        return (self.pending(task) if created else task), created

    async def get(self, task_id: str) -> StoredTask:
        """The task; ``UnknownQueueTask`` when there is none."""
        return await self.db.run(lambda conn: _get(conn, task_id))

    async def list_group(self, task_group_id: str, after: str | None, limit: int) -> list[StoredTask]:
        """Up to ``limit`` tasks of the group, by task id, after ``after``."""
        query = sa.select(tasks).where(tasks.c.task_group_id == task_group_id)
        if after:
            query = query.where(tasks.c.task_id > after)
        query = query.order_by(tasks.c.task_id).limit(limit)
        return await self.db.run(lambda conn: [_stored(r) for r in conn.execute(query).all()])

    async def list_dependents(self, task_id: str, after: str | None, limit: int) -> list[StoredTask]:
        """Up to ``limit`` tasks that depend on ``task_id``, by task id, after ``after``."""
        query = (sa.select(tasks).join(deps, deps.c.task_id == tasks.c.task_id)
                 .where(deps.c.dependency_id == task_id))
        if after:
            query = query.where(tasks.c.task_id > after)
        query = query.order_by(tasks.c.task_id).limit(limit)

        def thd(conn: sa.Connection) -> list[StoredTask]:
            _get(conn, task_id)
            return [_stored(r) for r in conn.execute(query).all()]

        return await self.db.run(thd)

    async def schedule(self, task_id: str, now: float) -> StoredTask:
        """An unscheduled task becomes pending whatever its dependencies; any other is left
        as it is.  ``QueueConflict`` past its deadline."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            if task.state != UNSCHEDULED:
                return task
            if now >= task.deadline:
                raise QueueConflict(f"task {task_id} is past its deadline {task.body['deadline']}")
            return _save(conn, task, [model.scheduled_run([], "scheduled", now)])

        return self.pending(await self.run(thd))

    async def rerun(self, task_id: str, now: float) -> StoredTask:
        """A resolved task gets a new pending run (``reasonCreated: rerun``); a pending or
        running task is left as it is.  ``QueueConflict`` for an unscheduled task, past the
        deadline, or past ``MAX_RUNS`` runs."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            if task.state in (PENDING, RUNNING):
                return task
            if task.state == UNSCHEDULED:
                raise QueueConflict(f"task {task_id} is unscheduled: schedule it (scheduleTask) instead")
            if now >= task.deadline:
                raise QueueConflict(f"task {task_id} is past its deadline {task.body['deadline']}")
            if len(task.runs) >= model.MAX_RUNS:
                raise QueueConflict(f"task {task_id} has run {model.MAX_RUNS} times, the most a task may")
            return _save(conn, task, [*task.runs, model.scheduled_run(task.runs, "rerun", now)])

        return self.pending(await self.run(thd))

    async def cancel(self, task_id: str, now: float) -> StoredTask:
        """Resolve the task ``exception``/``canceled`` (an unscheduled one gets a run for it);
        a resolved task is left as it is.  Its dependents are updated in the same transaction."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            if task.state in RESOLVED:
                return task
            return _resolve(conn, task, EXCEPTION, "canceled", now)

        return await self.run(thd)

    async def resolve(self, task_id: str, run_id: int, state: str, reason: str, now: float,
                      retry: bool = False) -> StoredTask:
        """Resolve run ``run_id`` (pending or running) ``state`` for ``reason``, and update the
        dependents in the same transaction; a run already resolved is left as it is.  With
        ``retry`` (a worker lost), a task with retries left and before its deadline gets a new
        pending run (``reasonCreated: retry``) instead, and its dependents wait on."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            if run_id != task.run_id or task.state in RESOLVED:
                return task
            if retry and task.retries_left > 0 and now < task.deadline and len(task.runs) < model.MAX_RUNS:
                runs = [*task.runs[:-1], model.resolve_run(task.runs[-1], state, reason, now)]
                runs.append(model.scheduled_run(runs, "retry", now))
                return _save(conn, task, runs, retries_left=task.retries_left - 1, engine_task_id=None)
            return _resolve(conn, task, state, reason, now)

        return self.pending(await self.run(thd))

    # -- the task engine's side (master/queue/service.py) ------------------------------------

    async def unsubmitted(self, task_queue_ids: list[str], limit: int) -> list[StoredTask]:
        """Pending tasks of ``task_queue_ids`` whose current run has no engine task yet."""
        if not task_queue_ids:
            return []
        query = (sa.select(tasks).where(tasks.c.state == PENDING, tasks.c.engine_task_id.is_(None),
                                        tasks.c.task_queue_id.in_(task_queue_ids))
                 .order_by(tasks.c.created).limit(limit))
        return await self.db.run(lambda conn: [_stored(r) for r in conn.execute(query).all()])

    async def in_flight(self) -> list[StoredTask]:
        """The tasks with an engine task: their run pending or running, or resolved (canceled)
        while their engine task may still run."""
        query = sa.select(tasks).where(tasks.c.engine_task_id.is_not(None)).order_by(tasks.c.task_id)
        return await self.db.run(lambda conn: [_stored(r) for r in conn.execute(query).all()])

    async def attach(self, task_id: str, run_id: int, engine_task_id: int) -> bool:
        """Record the engine task of run ``run_id``; False when that run is no longer the
        pending current one or has an engine task already (another master's)."""

        def thd(conn: sa.Connection) -> bool:
            task = _get(conn, task_id, lock=True)
            if task.run_id != run_id or task.state != PENDING or task.engine_task_id is not None:
                return False
            conn.execute(sa.update(tasks).where(tasks.c.task_id == task_id)
                         .values(engine_task_id=engine_task_id))
            return True

        return await self.db.run(thd)

    async def started(self, task_id: str, run_id: int, worker_group: str, worker_id: str,
                      now: float) -> StoredTask:
        """Run ``run_id``, pending, is running on ``worker_id`` since ``now``."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            if task.run_id != run_id or task.state != PENDING:
                return task
            run = {**task.runs[-1], "state": RUNNING, "started": iso(now), "workerGroup": worker_group,
                   "workerId": worker_id}
            return _save(conn, task, [*task.runs[:-1], run])

        return await self.run(thd)

    async def detach(self, task_id: str, engine_task_id: int) -> None:
        """Forget the engine task (it ended, or was killed after the run was resolved)."""
        await self.db.run(lambda conn: conn.execute(
            sa.update(tasks).where(tasks.c.task_id == task_id, tasks.c.engine_task_id == engine_task_id)
            .values(engine_task_id=None)))

    async def group(self, task_group_id: str) -> dict:
        """Taskcluster's task group: ``{taskGroupId, schedulerId, expires, sealed?}``;
        ``UnknownQueueTask`` when no task was created in it."""
        return await self.db.run(lambda conn: _group(conn, task_group_id))

    async def seal_group(self, task_group_id: str, now: float) -> dict:
        """Seal the group (once): createTask in it is refused from now on."""

        def thd(conn: sa.Connection) -> dict:
            _group(conn, task_group_id)
            conn.execute(sa.update(groups).where(groups.c.task_group_id == task_group_id,
                                                 groups.c.sealed.is_(None)).values(sealed=now))
            return _group(conn, task_group_id)

        return await self.db.run(thd)

    async def cancel_group(self, task_group_id: str, now: float) -> tuple[int, list[str]]:
        """Cancel every unresolved task of the group, as ``cancel`` does each:
        ``(the group's size, the ids canceled)``."""

        def thd(conn: sa.Connection) -> tuple[int, list[str]]:
            _group(conn, task_group_id)
            size = conn.execute(sa.select(sa.func.count()).select_from(tasks)
                                .where(tasks.c.task_group_id == task_group_id)).scalar()
            rows = conn.execute(sa.select(tasks).where(tasks.c.task_group_id == task_group_id,
                                                       tasks.c.state.not_in(tuple(RESOLVED)))
                                .order_by(tasks.c.task_id).with_for_update()).all()
            for row in rows:  # read again: canceling one may have scheduled another
                _resolve(conn, _get(conn, row.task_id), EXCEPTION, "canceled", now)
            return size, [row.task_id for row in rows]

        return await self.run(thd)

    async def expire_deadlines(self, now: float) -> list[str]:
        """Resolve ``exception``/``deadline-exceeded`` every unscheduled or pending task past
        its deadline (a running one is not cut: ``maxRunTime`` bounds the run); their ids."""

        def thd(conn: sa.Connection) -> list[str]:
            rows = conn.execute(sa.select(tasks).where(tasks.c.state.in_((UNSCHEDULED, PENDING)),
                                                       tasks.c.deadline <= now)
                                .with_for_update()).all()
            for row in rows:  # read again: ending one may have scheduled another
                _resolve(conn, _get(conn, row.task_id), EXCEPTION, "deadline-exceeded", now)
            return [row.task_id for row in rows]

        return await self.run(thd)


def _create(conn: sa.Connection, definition: TaskDefinition, now: float) -> tuple[StoredTask, bool]:
    existing = conn.execute(sa.select(tasks).where(tasks.c.task_id == definition.task_id)).first()
    if existing is not None:
        return _same_or_conflict(existing, definition), False
    _join_group(conn, definition)
    satisfied = _dependencies(conn, definition)
    waiting = [d for d, ok in satisfied.items() if not ok]
    runs = [] if waiting else [model.scheduled_run([], "scheduled", now)]
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(tasks).values(
                task_id=definition.task_id, task_group_id=definition.task_group_id,
                scheduler_id=definition.scheduler_id, task_queue_id=definition.task_queue_id,
                definition=definition.canonical(), requires=definition.requires,
                state=model.state_of(runs), runs=json.dumps(runs), retries_left=definition.retries,
                created=definition.created, deadline=definition.deadline, expires=definition.expires,
                priority_rank=PRIORITY_RANKS[definition.body["priority"]]))
            if satisfied:
                conn.execute(sa.insert(deps), [{"task_id": definition.task_id, "dependency_id": d,
                                                "satisfied": ok} for d, ok in satisfied.items()])
    except sa.exc.IntegrityError:  # created at the same time by another call
        existing = conn.execute(sa.select(tasks).where(tasks.c.task_id == definition.task_id)).one()
        return _same_or_conflict(existing, definition), False
    created = _get(conn, definition.task_id)
    announce_defined(conn, created)
    return created, True


def _join_group(conn: sa.Connection, definition: TaskDefinition) -> None:
    """The task's group, made by its first task; ``QueueConflict`` when the group is sealed or
    has another schedulerId (every task of a group has the same, as in Taskcluster).  A group
    lives as long as its longest-lived task."""
    group_id = definition.task_group_id
    row = conn.execute(sa.select(groups).where(groups.c.task_group_id == group_id).with_for_update()).first()
    if row is None:
        try:
            with conn.begin_nested():
                conn.execute(sa.insert(groups).values(task_group_id=group_id,
                                                      scheduler_id=definition.scheduler_id,
                                                      expires=definition.expires))
            return
        except sa.exc.IntegrityError:  # made at the same time by another task of the group
            row = conn.execute(sa.select(groups).where(groups.c.task_group_id == group_id)
                               .with_for_update()).one()
    if row.scheduler_id != definition.scheduler_id:
        raise QueueConflict(f"task group {group_id} has schedulerId {row.scheduler_id!r}; every task of a "
                            f"group must have it, not {definition.scheduler_id!r}")
    if row.sealed is not None:
        raise QueueConflict(f"task group {group_id} is sealed (sealTaskGroup): it takes no new task")
    if definition.expires > row.expires:
        conn.execute(sa.update(groups).where(groups.c.task_group_id == group_id)
                     .values(expires=definition.expires))


def _group(conn: sa.Connection, task_group_id: str) -> dict:
    row = conn.execute(sa.select(groups).where(groups.c.task_group_id == task_group_id)).first()
    if row is None:
        raise UnknownQueueTask(task_group_id)
    group = {"taskGroupId": row.task_group_id, "schedulerId": row.scheduler_id, "expires": iso(row.expires)}
    if row.sealed is not None:
        group["sealed"] = iso(row.sealed)
    return group


def _same_or_conflict(row, definition: TaskDefinition) -> StoredTask:
    if row.definition != definition.canonical():
        raise QueueConflict(f"task {definition.task_id} exists with a different definition; "
                            "createTask with the same taskId must send the same definition")
    return _stored(row)


def _dependencies(conn: sa.Connection, definition: TaskDefinition) -> dict[str, bool]:
    """Each dependency: whether it is already satisfied; ``QueueInputError`` for one that does
    not exist or expires before the task's deadline."""
    wanted = definition.dependencies
    if not wanted:
        return {}
    found = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for row in conn.execute(sa.select(tasks.c.task_id, tasks.c.state, tasks.c.expires)
                                .where(tasks.c.task_id.in_(chunk))).all():
            found[row.task_id] = row
    missing = [d for d in wanted if d not in found]
    if missing:
        raise QueueInputError(f"dependencies do not exist: {', '.join(missing[:20])}")
    expiring = [d for d in wanted if found[d].expires < definition.deadline]
    if expiring:
        raise QueueInputError(f"dependencies expire before this task's deadline "
                              f"{definition.body['deadline']}: {', '.join(expiring[:20])}")
    return {d: _satisfies(found[d].state, definition.requires) for d in wanted}


def _satisfies(state: str, requires: str) -> bool:
    return state == COMPLETED if requires == "all-completed" else state in RESOLVED


def _resolve(conn: sa.Connection, task: StoredTask, state: str, reason: str, now: float) -> StoredTask:
    runs = list(task.runs)
    if runs and runs[-1]["state"] in (PENDING, RUNNING):
        runs[-1] = model.resolve_run(runs[-1], state, reason, now)
    else:  # never scheduled: a run only to say why it ended (Taskcluster's)
        runs.append(model.resolve_run(model.scheduled_run(runs, "exception", now), state, reason, now))
    # an engine task left running (a cancel) is killed, then forgotten, by the service
    resolved = _save(conn, task, runs, **({} if state == EXCEPTION else {"engine_task_id": None}))
    _satisfy_dependents(conn, task.task_id, state, now)
    return resolved


def _satisfy_dependents(conn: sa.Connection, task_id: str, state: str, now: float) -> None:
    """Mark ``task_id``'s rows satisfied where its ``state`` satisfies the dependent; a dependent
    left with none unsatisfied, and still unscheduled, becomes pending."""
    dependents = conn.execute(sa.select(tasks.c.task_id, tasks.c.requires)
                              .join(deps, deps.c.task_id == tasks.c.task_id)
                              .where(deps.c.dependency_id == task_id, deps.c.satisfied == sa.false())).all()
    now_satisfied = [row.task_id for row in dependents if _satisfies(state, row.requires)]
    for start in range(0, len(now_satisfied), 500):
        chunk = now_satisfied[start:start + 500]
        conn.execute(sa.update(deps).where(deps.c.dependency_id == task_id, deps.c.task_id.in_(chunk))
                     .values(satisfied=True))
    for dependent in now_satisfied:
        waiting = conn.execute(sa.select(sa.func.count()).select_from(deps)
                               .where(deps.c.task_id == dependent, deps.c.satisfied == sa.false())).scalar()
        if waiting:
            continue
        task = _get(conn, dependent, lock=True)
        if task.state == UNSCHEDULED and now < task.deadline:
            _save(conn, task, [model.scheduled_run([], "scheduled", now)])


def _get(conn: sa.Connection, task_id: str, lock: bool = False) -> StoredTask:
    query = sa.select(tasks).where(tasks.c.task_id == task_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise UnknownQueueTask(task_id)
    return _stored(row)


def _save(conn: sa.Connection, task: StoredTask, runs: list[dict], **values: Any) -> StoredTask:
    state = model.state_of(runs)
    if state != RUNNING:  # only a running run holds a claim (master/queue/claims.py)
        values.setdefault("taken_until", None)
    conn.execute(sa.update(tasks).where(tasks.c.task_id == task.task_id)
                 .values(state=state, runs=json.dumps(runs), **values))
    saved = StoredTask(task.task_id, task.body, state, runs, values.get("retries_left", task.retries_left),
                       task.deadline, values.get("engine_task_id", task.engine_task_id))
    announce_change(conn, task, saved)
    return saved


def _stored(row: Any) -> StoredTask:
    return StoredTask(row.task_id, json.loads(row.definition), row.state, json.loads(row.runs),
                      row.retries_left, row.deadline, row.engine_task_id)
