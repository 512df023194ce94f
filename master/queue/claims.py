"""``ClaimStore``: HTTP workers' claims on the Queue's tasks (master/queue/workerapi.py), in the
``queue_tasks`` table (``taken_until`` and ``priority_rank``, migration 0012_queue_claims).

A claim makes the current pending run ``running`` on ``workerGroup``/``workerId`` until
``takenUntil`` (now + ``c['queue']['claim_timeout_secs']``); ``reclaim`` moves it on; a report
resolves the run through the store's ``_resolve`` (the dependents in the same transaction); a
claim left to expire resolves ``exception``/``claim-expired`` (``expire``, called by the
reconciler of master/queue/service.py).  ``worker-shutdown``, ``intermittent-task`` and
``claim-expired`` give the task a new pending run while it has ``retriesLeft`` (and before its
deadline), as Taskcluster does.

Claims are atomic on both databases: the candidates are read (PostgreSQL skips the rows another
transaction holds: ``FOR UPDATE SKIP LOCKED``), then each is taken by a conditional UPDATE (still
pending, the same runs, no engine task): two claimers never get the same run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.db.model import queue_tasks as tasks
from buildfarm.master.queue import model
from buildfarm.master.queue.events import announce_change
from buildfarm.master.queue.model import EXCEPTION, PENDING, RUNNING
from buildfarm.master.queue.store import (
    QueueConflict,
    QueueStore,
    StoredTask,
    _get,
    _resolve,
    _save,
    _stored,
)

# reportException's reasons (Taskcluster's, with the older ``superseded``) and the
# ``reasonCreated`` of the retry run the retried ones get while retries are left
EXCEPTION_REASONS = ("worker-shutdown", "malformed-payload", "resource-unavailable", "internal-error",
                     "superseded", "intermittent-task")
RETRIED = {"worker-shutdown": "retry", "intermittent-task": "task-retry", "claim-expired": "retry"}
CLAIM_EXPIRED = "claim-expired"
EXPIRE_LIMIT = 500  # claims expired per pass


class UnknownRun(LookupError):
    """The task has no run ``runId`` (404)."""


@dataclass(frozen=True)
class Claim:
    """A run claimed (or reclaimed): the task as stored and the run's ``takenUntil``."""

    task: StoredTask
    run_id: int
    taken_until: float

    @property
    def run(self) -> dict:
        return self.task.runs[self.run_id]


class ClaimStore:
    """Claims over ``store`` (the Queue's ``QueueStore``: its database and its ``pending``
    signal, told of the retry runs made here)."""

    def __init__(self, store: QueueStore):
        self.store = store

    async def held(self) -> bool:
        """Whether any run is held by a claim (running, with a ``takenUntil``)."""
        query = sa.select(tasks.c.task_id).where(tasks.c.taken_until.is_not(None)).limit(1)
        return await self.store.db.run(lambda conn: conn.execute(query).first() is not None)

    async def claim_work(self, task_queue_id: str, worker_group: str, worker_id: str, count: int,
                         now: float, timeout_s: float) -> list[Claim]:
        """Claim up to ``count`` pending tasks of ``task_queue_id`` (before their deadline, not
        run by the engine): the highest priority first, then the oldest."""

        def thd(conn: sa.Connection) -> list[Claim]:
            query = (sa.select(tasks).where(tasks.c.task_queue_id == task_queue_id, tasks.c.state == PENDING,
                                            tasks.c.engine_task_id.is_(None), tasks.c.deadline > now)
                     .order_by(tasks.c.priority_rank.desc(), tasks.c.created, tasks.c.task_id).limit(count))
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            claimed = []
            for row in conn.execute(query).all():
                claim = _take(conn, _stored(row), row.runs, worker_group, worker_id, now + timeout_s, now)
                if claim is not None:
                    claimed.append(claim)
            return claimed

        return await self.store.run(thd)

    async def claim_task(self, task_id: str, run_id: int, worker_group: str, worker_id: str, now: float,
                         timeout_s: float) -> Claim:
        """Claim run ``run_id`` of ``task_id`` (``claimTask``); the same worker claiming it again
        gets its claim back.  ``QueueConflict`` when the run is not the pending current one or
        the deadline passed, ``UnknownRun``, ``UnknownQueueTask``."""

        def thd(conn: sa.Connection) -> Claim:
            task = _get(conn, task_id, lock=True)
            run = _run(task, run_id)
            if run["state"] == RUNNING and (run.get("workerGroup"), run.get("workerId")) == \
                    (worker_group, worker_id) and "takenUntil" in run:
                return Claim(task, run_id, _seconds(run["takenUntil"]))
            if run_id != task.run_id or task.state != PENDING or task.engine_task_id is not None:
                raise QueueConflict(f"run {run_id} of task {task_id} was already claimed, or is not pending")
            if now >= task.deadline:
                raise QueueConflict(f"task {task_id} can't be claimed past its deadline "
                                    f"{task.body['deadline']}")
            raw = conn.execute(sa.select(tasks.c.runs).where(tasks.c.task_id == task_id)).scalar()
            claim = _take(conn, task, raw, worker_group, worker_id, now + timeout_s, now)
            if claim is None:
                raise QueueConflict(f"run {run_id} of task {task_id} was already claimed")
            return claim

        return await self.store.run(thd)

    async def reclaim(self, task_id: str, run_id: int, now: float, timeout_s: float) -> Claim:
        """Move the claim of run ``run_id`` to ``now + timeout_s``; ``QueueConflict`` when the
        run is resolved or not an HTTP worker's claim (409: the worker stops and reports
        nothing), ``UnknownRun``, ``UnknownQueueTask``."""

        def thd(conn: sa.Connection) -> Claim:
            task = _get(conn, task_id, lock=True)
            _running_claim(task, run_id)
            taken_until = now + timeout_s
            run = {**task.runs[-1], "takenUntil": iso(taken_until)}
            saved = _save(conn, task, [*task.runs[:-1], run], taken_until=taken_until)
            return Claim(saved, run_id, taken_until)

        return await self.store.run(thd)

    async def report(self, task_id: str, run_id: int, state: str, reason: str, now: float) -> StoredTask:
        """Resolve run ``run_id`` ``state`` for ``reason`` (``completed``, ``failed``, or an
        ``exception`` reason); a retried reason gives a new pending run while retries are left.
        The same report again answers the task as it is (idempotent); ``QueueConflict`` when the
        run is resolved otherwise or not running."""

        def thd(conn: sa.Connection) -> StoredTask:
            task = _get(conn, task_id, lock=True)
            run = _run(task, run_id)
            if run["state"] == state and run.get("reasonResolved") == reason:
                return task
            _running_claim(task, run_id)
            return _resolve_or_retry(conn, task, state, reason, now)

        return self.store.pending(await self.store.run(thd))

    async def expire(self, now: float) -> list[StoredTask]:
        """Resolve ``exception``/``claim-expired`` each running run whose ``takenUntil`` passed
        (retried while retries are left and before the deadline); the tasks changed."""

        def thd(conn: sa.Connection) -> list[StoredTask]:
            query = (sa.select(tasks.c.task_id).where(tasks.c.state == RUNNING, tasks.c.taken_until <= now)
                     .order_by(tasks.c.taken_until).limit(EXPIRE_LIMIT))
            expired = []
            for (task_id,) in conn.execute(query).all():
                row = conn.execute(sa.select(tasks).where(tasks.c.task_id == task_id).with_for_update()).one()
                if row.state != RUNNING or row.taken_until is None or row.taken_until > now:
                    continue  # reclaimed or resolved meanwhile
                expired.append(_resolve_or_retry(conn, _stored(row), EXCEPTION, CLAIM_EXPIRED, now))
            return expired

        changed = await self.store.run(thd)
        for task in changed:
            self.store.pending(task)
        return changed


def _take(conn: sa.Connection, task: StoredTask, raw_runs: str, worker_group: str, worker_id: str,
          taken_until: float, now: float) -> Claim | None:
    """Run the current pending run of ``task`` on the worker, if no one took it since ``raw_runs``
    was read (a conditional UPDATE); the claim, or None."""
    run = {**task.runs[-1], "state": RUNNING, "workerGroup": worker_group, "workerId": worker_id,
           "takenUntil": iso(taken_until), "started": iso(now)}
    runs = [*task.runs[:-1], run]
    taken = conn.execute(sa.update(tasks).where(
        tasks.c.task_id == task.task_id, tasks.c.state == PENDING, tasks.c.runs == raw_runs,
        tasks.c.engine_task_id.is_(None)).values(state=RUNNING, runs=json.dumps(runs),
                                                 taken_until=taken_until))
    if taken.rowcount != 1:
        return None
    claimed = StoredTask(task.task_id, task.body, RUNNING, runs, task.retries_left, task.deadline)
    announce_change(conn, task, claimed)
    return Claim(claimed, task.run_id, taken_until)


def _run(task: StoredTask, run_id: int) -> dict:
    if not 0 <= run_id < len(task.runs):
        raise UnknownRun(f"run {run_id} not found on task {task.task_id}")
    return task.runs[run_id]


def _running_claim(task: StoredTask, run_id: int) -> None:
    """``run_id`` is the current run, running on an HTTP worker's claim; else ``QueueConflict``."""
    run = _run(task, run_id)
    if run_id != task.run_id or run["state"] != RUNNING:
        raise QueueConflict(f"run {run_id} on task {task.task_id} is resolved or not running")
    if task.engine_task_id is not None or "takenUntil" not in run:
        raise QueueConflict(f"run {run_id} on task {task.task_id} runs on a PB slave of buildfarm's task "
                            "engine, not on an HTTP worker's claim")


def _resolve_or_retry(conn: sa.Connection, task: StoredTask, state: str, reason: str,
                      now: float) -> StoredTask:
    retry = RETRIED.get(reason) if state == EXCEPTION else None
    if retry and task.retries_left > 0 and now < task.deadline and len(task.runs) < model.MAX_RUNS:
        runs = [*task.runs[:-1], model.resolve_run(task.runs[-1], state, reason, now)]
        runs.append(model.scheduled_run(runs, retry, now))
        return _save(conn, task, runs, retries_left=task.retries_left - 1)
    return _resolve(conn, task, state, reason, now)


def _seconds(stamp: str) -> float:
    return model.parse_date(stamp, "takenUntil", []) or 0.0
