"""Tasks (master/tasks) in the database: requests with their slices, secrets and tags, the
summary result of each task, its tries, their output chunks, and the bots' dimensions.

The database stores what master/tasks gives it (the request as JSON, each slice's properties
hash and queue key) and parses nothing: master/tasks reads the JSON back.  States are the
names of ``master.tasks.model.State``.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, from_json, to_json
from buildfarm.master.db.logs import byte_length
from buildfarm.master.db.model import (
    bots,
    slaves,
    task_output_chunks,
    task_requests,
    task_results,
    task_runs,
    task_secrets,
    task_slices,
    task_tags,
)

PENDING, RUNNING, COMPLETED = "PENDING", "RUNNING", "COMPLETED"
# Fields of the summary a task may be created with, when it ends at once (answered from a
# finished twin, or NO_RESOURCE).
RESULT_FIELDS = frozenset({"state", "deduped_from", "exit_code", "duration", "slave", "outputs_ref", "error",
                           "started_at", "completed_at", "abandoned_at", "internal_failure", "try_number"})
RUN_FINAL_FIELDS = frozenset({"exit_code", "duration", "outputs_ref", "internal_failure"})
# Requests never change: the newest ones read are kept, so that the engine's decision and the
# API's answer to tasks/new (and a page showing a task again) read a new request's rows once.
REQUEST_CACHE_SIZE = 1000


class OutputOutOfOrder(ValueError):
    """An output chunk that starts after the end of the output stored so far."""


@dataclass(frozen=True)
class NewSlice:
    """One slice of a new request, as master/tasks worked it out."""

    properties_hash: str
    expiration_secs: int
    queue_key: str
    idempotent: bool = False
    secret_bytes: bytes | None = None


@dataclass(frozen=True)
class NewTask:
    """A new request and its summary.  ``request`` is the JSON stored (no secrets: those are
    in the slices); ``result`` sets summary fields (``RESULT_FIELDS``) of a task that ends at
    creation, else it starts PENDING on slice 0."""

    request_id: int
    created_at: float
    name: str
    priority: int
    request: Mapping[str, Any]
    slices: Sequence[NewSlice]
    expiration_at: float
    user: str | None = None
    tags: Sequence[str] = ()
    request_uuid: str | None = None
    parent_task_id: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)


SORT_COLUMNS = ("created_at", "modified_at", "completed_at", "abandoned_at")


@dataclass(frozen=True)
class TaskQuery:
    """What ``list_tasks`` and ``count_tasks`` select: ``states`` (any of them; empty: all),
    ``deduped`` (True: only tasks answered from another, False: none of those, None: both),
    ``failure`` (for COMPLETED: True a non-zero exit, False exit 0), ``tags`` (all of
    them), created in [``start``, ``end``), sorted by ``sort`` (one of ``SORT_COLUMNS``)."""

    states: tuple[str, ...] = ()
    deduped: bool | None = None
    failure: bool | None = None
    tags: tuple[str, ...] = ()
    start: float | None = None
    end: float | None = None
    sort: str = "created_at"
    limit: int = 200
    after: tuple[float, int] | None = None


class TasksComponent(DBComponent):
    """Rows of the task tables (model.py): see the module's docstring."""

    def __init__(self, db) -> None:
        super().__init__(db)
        self._requests: OrderedDict[int, dict] = OrderedDict()  # REQUEST_CACHE_SIZE newest read

    async def create(self, task: NewTask) -> tuple[int, bool]:
        """Store the request, its slices, secrets, tags and summary in one transaction:
        ``(request_id, True)``.  When the same user already sent this ``request_uuid``, nothing
        is stored and the answer is ``(the first request's id, False)``; the unique constraint
        on (user, request_uuid) decides between concurrent creates."""
        unknown = set(task.result) - RESULT_FIELDS
        if unknown:
            raise ValueError(f"NewTask.result: not summary fields: {sorted(unknown)}")
        user = task.user or ""

        def existing(conn: sa.Connection) -> int | None:
            if task.request_uuid is None:
                return None
            return conn.execute(sa.select(task_requests.c.id).where(
                task_requests.c.username == user,
                task_requests.c.request_uuid == task.request_uuid)).scalar_one_or_none()

        def thd(conn: sa.Connection) -> tuple[int, bool]:
            first = existing(conn)
            if first is not None:
                return first, False
            try:
                with conn.begin_nested():
                    _insert_task(conn, task, user)
            except sa.exc.IntegrityError:
                first = existing(conn)
                if first is None:
                    raise
                return first, False
            return task.request_id, True

        return await self._run(thd)

    async def create_running(self, task: NewTask, slave: str, now: float) -> int:
        """Store a request whose first try is already RUNNING on ``slave``, in one transaction
        (a task the master itself carries out, never reaped: a bot's termination)."""
        started = replace(task, result={"state": RUNNING, "try_number": 1, "slave": slave, "started_at": now})

        def thd(conn: sa.Connection) -> int:
            _insert_task(conn, started, task.user or "")
            conn.execute(sa.insert(task_runs).values(
                request_id=task.request_id, try_number=1, slice_index=0, slave=slave, state=RUNNING,
                started_at=now, modified_at=now))
            return task.request_id

        return await self._run(thd)

    async def get_request(self, request_id: int) -> dict | None:
        """The request: its columns, ``request`` (the stored JSON), ``slices`` (each with its
        properties hash, queue key, ...), ``secrets`` ({slice index: bytes}) and ``tags``.
        A request read lately is answered from memory (a copy: requests never change)."""
        cached = self._requests.get(request_id)
        if cached is not None:
            self._requests.move_to_end(request_id)
            return copy.deepcopy(cached)
        stored = await self._read_request(request_id)
        if stored is not None:
            self._requests[request_id] = copy.deepcopy(stored)
            while len(self._requests) > REQUEST_CACHE_SIZE:
                self._requests.popitem(last=False)
        return stored

    async def _read_request(self, request_id: int) -> dict | None:
        def thd(conn: sa.Connection) -> dict | None:
            row = conn.execute(sa.select(task_requests).where(task_requests.c.id == request_id)).first()
            if row is None:
                return None
            slices = conn.execute(sa.select(task_slices).where(task_slices.c.request_id == request_id)
                                  .order_by(task_slices.c.slice_index)).all()
            secrets = conn.execute(sa.select(task_secrets.c.slice_index, task_secrets.c.secret_bytes)
                                   .where(task_secrets.c.request_id == request_id)).all()
            tags = conn.execute(sa.select(task_tags.c.tag).where(task_tags.c.request_id == request_id)
                                .order_by(task_tags.c.tag)).scalars().all()
            return {
                "request_id": row.id, "created_at": row.created_at, "name": row.name,
                "user": row.username or None, "priority": row.priority, "request_uuid": row.request_uuid,
                "parent_task_id": row.parent_task_id, "expiration_at": row.expiration_at,
                "request": from_json(row.request), "tags": list(tags),
                "slices": [{"slice_index": s.slice_index, "properties_hash": s.properties_hash,
                            "idempotent": bool(s.idempotent), "expiration_secs": s.expiration_secs,
                            "queue_key": s.queue_key} for s in slices],
                "secrets": {index: bytes(secret) for index, secret in secrets},
            }

        return await self._run(thd)

    async def get_result(self, request_id: int) -> dict | None:
        """The task's summary, or None for an unknown task."""
        return await self._fetch_one(sa.select(task_results).where(task_results.c.request_id == request_id),
                                     _result_dict)

    async def get_run(self, request_id: int, try_number: int) -> dict | None:
        """Try ``try_number`` of the task, or None."""
        query = sa.select(task_runs).where(task_runs.c.request_id == request_id,
                                           task_runs.c.try_number == try_number)
        return await self._fetch_one(query, _run_dict)

    async def find_reusable(self, properties_hash: str, since: float) -> dict | None:
        """The newest summary that an idempotent task with ``properties_hash`` may be answered
        from: idempotent, COMPLETED with exit code 0, not itself deduplicated, and completed at
        or after ``since``; None when there is none."""
        query = (sa.select(task_results)
                 .where(task_results.c.properties_hash == properties_hash,
                        task_results.c.completed_at >= since,
                        task_results.c.state == COMPLETED, task_results.c.exit_code == 0,
                        task_results.c.deduped_from.is_(None), task_results.c.internal_failure == 0)
                 .order_by(task_results.c.completed_at.desc(), task_results.c.request_id.desc())
                 .limit(1))
        return await self._fetch_one(query, _result_dict)

    async def get_pending(self, limit: int = 100, queue_keys: Sequence[str] | None = None) -> list[dict]:
        """Pending tasks, most urgent first (priority: lower first; then oldest first), each
        ``{request_id, priority, created_at, current_slice, queue_key}``; only those of
        ``queue_keys`` when given (the queues a slave serves).  A task attached to a twin
        (``attach_twin``) runs nothing and is not listed."""
        if queue_keys is not None and not queue_keys:
            return []
        query = (sa.select(task_results.c.request_id, task_results.c.priority, task_results.c.created_at,
                           task_results.c.current_slice, task_results.c.queue_key)
                 .where(task_results.c.state == PENDING, task_results.c.twin_of.is_(None))
                 .order_by(task_results.c.priority, task_results.c.created_at, task_results.c.request_id)
                 .limit(limit))
        if queue_keys is not None:
            query = query.where(task_results.c.queue_key.in_(list(queue_keys)))
        return await self._fetch_all(query, lambda row: dict(row._mapping))

    async def start_run(self, request_id: int, slave: str, now: float,
                        slice_index: int | None = None) -> int | None:
        """Give the pending task to ``slave``: its next try starts RUNNING; the try number, or
        None when the task was no longer PENDING (another slave took it, or it ended), or no
        longer on slice ``slice_index`` when that is given."""

        def thd(conn: sa.Connection) -> int | None:
            next_try = sa.func.coalesce(task_results.c.try_number, 0) + 1
            # a task attached to a twin (attach_twin, maybe by another master just now) runs nothing
            pending = sa.and_(task_results.c.request_id == request_id, task_results.c.state == PENDING,
                              task_results.c.twin_of.is_(None))
            if slice_index is not None:
                pending = sa.and_(pending, task_results.c.current_slice == slice_index)
            row = conn.execute(sa.update(task_results).where(pending)
                               .values(state=RUNNING, try_number=next_try, slave=slave, started_at=now,
                                       modified_at=now)
                               .returning(task_results.c.try_number, task_results.c.current_slice)).first()
            if row is None:
                return None
            conn.execute(sa.insert(task_runs).values(
                request_id=request_id, try_number=row.try_number, slice_index=row.current_slice, slave=slave,
                state=RUNNING, started_at=now, modified_at=now))
            return row.try_number

        return await self._run(thd)

    async def running_since(self, before: float, limit: int = 1000) -> list[dict]:
        """The tries RUNNING that started before ``before``, oldest first (at most ``limit``):
        each ``{request_id, try_number, slice_index, started_at, slave}``."""
        query = (sa.select(task_runs.c.request_id, task_runs.c.try_number, task_runs.c.slice_index,
                           task_runs.c.started_at, task_runs.c.slave)
                 .where(task_runs.c.state == RUNNING, task_runs.c.started_at < before)
                 .order_by(task_runs.c.started_at, task_runs.c.request_id).limit(limit))
        return await self._fetch_all(query, lambda row: dict(row._mapping))

    async def running_on(self, slave: str) -> list[dict]:
        """The tries RUNNING on ``slave``, oldest first: each ``{request_id, try_number,
        slice_index, started_at}``."""
        query = (sa.select(task_runs.c.request_id, task_runs.c.try_number, task_runs.c.slice_index,
                           task_runs.c.started_at)
                 .where(task_runs.c.slave == slave, task_runs.c.state == RUNNING)
                 .order_by(task_runs.c.started_at, task_runs.c.request_id))
        return await self._fetch_all(query, lambda row: dict(row._mapping))

    async def finish_run(self, request_id: int, try_number: int, state: str, now: float,
                         retry: bool = False, **fields: Any) -> bool:
        """End a running try in ``state`` (with ``exit_code``, ``duration``, ``outputs_ref``,
        ``internal_failure``), and its task with it; with ``retry`` the task goes back to
        PENDING instead, for another try, in the same transaction (no reader sees it ended).
        The task becomes reusable by idempotent twins when its slice is idempotent and it
        COMPLETED with exit code 0.  False when the try was not running."""
        unknown = set(fields) - RUN_FINAL_FIELDS
        if unknown:
            raise ValueError(f"finish_run: unknown fields {sorted(unknown)}")
        values = {**fields, "state": state, "completed_at": now, "modified_at": now}
        if "outputs_ref" in values:
            values["outputs_ref"] = None if values["outputs_ref"] is None else to_json(values["outputs_ref"])

        def thd(conn: sa.Connection) -> bool:
            ended = conn.execute(sa.update(task_runs).where(
                task_runs.c.request_id == request_id, task_runs.c.try_number == try_number,
                task_runs.c.state == RUNNING).values(**values)).rowcount
            if not ended:
                return False
            summary = dict(values)
            if retry:
                summary = {"state": PENDING, "slave": None, "started_at": None, "completed_at": None,
                           "exit_code": None, "duration": None, "outputs_ref": None, "internal_failure": 0,
                           "modified_at": now}
            elif state == COMPLETED and fields.get("exit_code") == 0:
                summary["properties_hash"] = (
                    sa.select(task_slices.c.properties_hash)
                    .where(task_slices.c.request_id == request_id, task_slices.c.idempotent == 1,
                           task_slices.c.slice_index == task_results.c.current_slice)
                    .scalar_subquery())
            conn.execute(sa.update(task_results).where(
                task_results.c.request_id == request_id, task_results.c.try_number == try_number,
                task_results.c.deduped_from.is_(None)).values(**summary))
            return True

        return await self._run(thd)

    async def end_pending(self, request_id: int, state: str, now: float, unattached: bool = False,
                          **fields: Any) -> bool:
        """End a PENDING task without a try (EXPIRED, CANCELED, NO_RESOURCE, or answered from a
        twin: ``deduped_from``, ``exit_code``, ``duration``, ``outputs_ref``, ``error``, ...);
        False when it was no longer pending, or, with ``unattached``, when it is attached to a
        twin (whose result it waits for: another master may have attached it)."""
        unknown = set(fields) - RESULT_FIELDS
        if unknown:
            raise ValueError(f"end_pending: not summary fields: {sorted(unknown)}")
        values = {**fields, "state": state, "modified_at": now}
        values.setdefault("completed_at" if "deduped_from" in fields else "abandoned_at", now)
        if "outputs_ref" in values:
            values["outputs_ref"] = None if values["outputs_ref"] is None else to_json(values["outputs_ref"])
        where = [task_results.c.request_id == request_id, task_results.c.state == PENDING]
        if unattached:
            where.append(task_results.c.twin_of.is_(None))
        return bool(await self._execute(sa.update(task_results).where(*where).values(**values)))

    async def advance_slice(self, request_id: int, from_slice: int, queue_key: str, now: float) -> bool:
        """Move a PENDING task from slice ``from_slice`` to the next one (its queue
        ``queue_key``); False when it was no longer pending on that slice, or is attached to
        a twin (it waits for the twin's result on its slice)."""
        return bool(await self._execute(sa.update(task_results).where(
            task_results.c.request_id == request_id, task_results.c.state == PENDING,
            task_results.c.current_slice == from_slice, task_results.c.twin_of.is_(None))
            .values(current_slice=from_slice + 1, queue_key=queue_key, modified_at=now)))

    async def attach_twin(self, request_id: int, properties_hash: str, now: float) -> int | None:
        """Attach the PENDING idempotent task ``request_id`` to its oldest in-flight twin: a
        PENDING or RUNNING task, itself attached to none, whose current slice is idempotent
        with ``properties_hash``.  The task's own twins move with it.  The twin's request id
        (the one it is attached to already, when another decision attached it), or None (no
        twin, or no longer PENDING: the task runs itself).

        The decisions of one hash are serialized in the database, across masters: on
        PostgreSQL a transaction-scoped advisory lock on the hash is taken first (the next
        decision then reads what this one committed); SQLite's transactions take the write
        lock when they begin (``BEGIN IMMEDIATE``).  Two masters deciding two twins at once
        thus attach one to the other, never each to the other, and never neither.

        The twin's row is locked (FOR UPDATE on PostgreSQL; SQLite runs one writer at a
        time): a twin ending in another transaction (``finish_run``, ``end_pending``) is read
        once it has ended, and then is no twin.  Read unlocked, it could be attached to after
        its end had read its twins, and the task would wait for a result never given."""
        current = sa.and_(task_slices.c.request_id == task_results.c.request_id,
                          task_slices.c.slice_index == task_results.c.current_slice)

        def thd(conn: sa.Connection) -> int | None:
            lock_decisions(conn, properties_hash)
            own = conn.execute(sa.select(task_results.c.state, task_results.c.twin_of)
                               .where(task_results.c.request_id == request_id)).first()
            if own is None or own.state != PENDING:
                return None
            if own.twin_of is not None:
                return own.twin_of
            twin = conn.execute(
                sa.select(task_results.c.request_id).join(task_slices, current)
                .where(task_slices.c.properties_hash == properties_hash, task_slices.c.idempotent == 1,
                       task_results.c.state.in_([PENDING, RUNNING]), task_results.c.twin_of.is_(None),
                       task_results.c.request_id != request_id)
                .order_by(task_results.c.created_at, task_results.c.request_id).limit(1)
                .with_for_update(of=task_results)).scalar_one_or_none()
            if twin is None:
                return None
            attached = conn.execute(sa.update(task_results).where(
                task_results.c.request_id == request_id, task_results.c.state == PENDING)
                .values(twin_of=twin, modified_at=now)).rowcount
            if not attached:
                return None
            conn.execute(sa.update(task_results).where(task_results.c.twin_of == request_id)
                         .values(twin_of=twin, modified_at=now))
            return twin

        return await self._run(thd)

    async def get_twins(self, request_id: int) -> list[int]:
        """The pending tasks attached to task ``request_id``."""
        return await self._fetch_all(
            sa.select(task_results.c.request_id).where(task_results.c.twin_of == request_id,
                                                       task_results.c.state == PENDING)
            .order_by(task_results.c.request_id), lambda row: row.request_id)

    async def release_twins(self, request_id: int, now: float) -> list[int]:
        """Detach the pending twins of task ``request_id`` (it ended without a result to share:
        canceled, expired); they are pending on their own again.  Their ids."""
        twins = await self.get_twins(request_id)
        if twins:
            await self._execute(sa.update(task_results).where(task_results.c.twin_of == request_id,
                                                              task_results.c.state == PENDING)
                                .values(twin_of=None, modified_at=now))
        return twins

    async def set_bot_state(self, name: str, state: Mapping[str, Any], task_id: str | None = None) -> bool:
        """Replace a known bot's state (``{"attached": ...}``, ...) and current task id."""
        return bool(await self._execute(sa.update(bots).where(bots.c.name == name)
                                        .values(state=to_json(dict(state)), task_id=task_id)))

    async def append_output(self, request_id: int, try_number: int, start: int, data: bytes) -> int:
        """Store output of a try at byte ``start`` (Swarming's ``output_chunk_start``); the
        size stored after it.  Bytes already stored are not stored again (a retried update);
        a chunk starting after the end raises OutputOutOfOrder."""

        def thd(conn: sa.Connection) -> int:
            size = conn.execute(sa.select(task_runs.c.stdout_size).where(
                task_runs.c.request_id == request_id, task_runs.c.try_number == try_number)
                .with_for_update()).scalar_one_or_none()
            if size is None:
                raise KeyError(f"no try {try_number} of task request {request_id}")
            if start > size:
                raise OutputOutOfOrder(f"output chunk starts at {start} but {size} bytes are stored")
            new = data[size - start:]
            if not new:
                return size
            conn.execute(sa.insert(task_output_chunks).values(
                request_id=request_id, try_number=try_number, start=size, content=new))
            conn.execute(sa.update(task_runs).where(
                task_runs.c.request_id == request_id, task_runs.c.try_number == try_number)
                .values(stdout_size=size + len(new)))
            return size + len(new)

        return await self._run(thd)

    async def get_output(self, request_id: int, try_number: int, offset: int = 0,
                         length: int | None = None) -> bytes:
        """``length`` bytes (all when None) of a try's output from byte ``offset``."""
        end = None if length is None else offset + length
        where = [task_output_chunks.c.request_id == request_id, task_output_chunks.c.try_number == try_number,
                 task_output_chunks.c.start + byte_length(task_output_chunks.c.content) > offset]
        if end is not None:
            where.append(task_output_chunks.c.start < end)
        query = (sa.select(task_output_chunks.c.start, task_output_chunks.c.content).where(*where)
                 .order_by(task_output_chunks.c.start))
        rows = await self._run(lambda conn: conn.execute(query).all())
        if not rows:
            return b""
        joined = b"".join(bytes(content) for _, content in rows)
        skip = offset - rows[0].start
        return joined[skip:] if end is None else joined[skip:end - rows[0].start]

    async def set_bot(self, name: str, dimensions: Mapping[str, list[str]], now: float,
                      version: str | None = None, state: Mapping[str, Any] | None = None) -> None:
        """Record that slave ``name`` was seen now with these dimensions (first seen kept)."""
        values = {"dimensions": to_json(dict(dimensions)), "last_seen_at": now, "version": version}
        if state is not None:
            values["state"] = to_json(dict(state))
        await self._upsert(
            sa.update(bots).where(bots.c.name == name).values(**values),
            sa.insert(bots).values(name=name, first_seen_at=now, **values))

    async def touch_bots(self, names: list[str], now: float) -> None:
        """Record that the slaves ``names`` (attached to this master) are still seen now."""
        if names:
            await self._execute(sa.update(bots).where(bots.c.name.in_(sorted(names)))
                                .values(last_seen_at=now))

    async def set_bot_flags(self, name: str, **flags: str | None) -> bool:
        """Set ``quarantined`` and/or ``maintenance`` (a message; None turns it off) of a known
        bot; False when the bot is unknown."""
        unknown = set(flags) - {"quarantined", "maintenance"}
        if unknown:
            raise ValueError(f"set_bot_flags: unknown flags {sorted(unknown)}")
        return bool(await self._execute(sa.update(bots).where(bots.c.name == name).values(**flags)))

    async def get_bot(self, name: str) -> dict | None:
        return await self._fetch_one(sa.select(bots).where(bots.c.name == name), _bot_dict)

    async def get_bots(self, seen_since: float | None = None) -> list[dict]:
        """Every bot by name (only those seen at or after ``seen_since`` when given)."""
        query = sa.select(bots).order_by(bots.c.name)
        if seen_since is not None:
            query = query.where(bots.c.last_seen_at >= seen_since)
        return await self._fetch_all(query, _bot_dict)

    async def list_tasks(self, query: TaskQuery) -> list[dict]:
        """The tasks ``query`` selects, newest first by its ``sort`` column (then by id), at
        most ``query.limit``, after ``query.after`` (the last page's last ``(value, request_id)``):
        each the summary with the request's ``name``, ``user``, ``request`` (stored JSON) and
        ``tags``.  Tasks without a value in the sort column are left out, as Swarming did."""
        column = task_results.c[query.sort]
        select = (sa.select(task_results, task_requests.c.name, task_requests.c.username,
                            task_requests.c.request)
                  .join(task_requests, task_requests.c.id == task_results.c.request_id)
                  .where(*_task_filters(query), column.is_not(None))
                  .order_by(column.desc(), task_results.c.request_id.desc()).limit(query.limit))
        if query.after is not None:
            value, request_id = query.after
            select = select.where(sa.or_(column < value,
                                         sa.and_(column == value, task_results.c.request_id < request_id)))

        def thd(conn: sa.Connection) -> list[dict]:
            rows = conn.execute(select).all()
            tags: dict[int, list[str]] = {}
            if rows:
                for request_id, tag in conn.execute(
                        sa.select(task_tags.c.request_id, task_tags.c.tag)
                        .where(task_tags.c.request_id.in_([r.request_id for r in rows]))
                        .order_by(task_tags.c.tag)):
                    tags.setdefault(request_id, []).append(tag)
            answer = []
            for row in rows:
                task = _result_dict(row)
                task.update(name=row.name, user=row.username or None, request=from_json(row.request),
                            tags=tags.get(row.request_id, []))
                del task["username"]
                answer.append(task)
            return answer

        return await self._run(thd)

    async def count_tasks(self, query: TaskQuery) -> int:
        """How many tasks ``query`` selects (its sort, limit and cursor aside)."""
        select = sa.select(sa.func.count()).select_from(task_results).where(*_task_filters(query))
        return await self._run(lambda conn: conn.execute(select).scalar_one())

    async def delete_bot(self, name: str) -> bool:
        """Forget bot ``name`` (it comes back when the slave is seen again); False if unknown."""
        return bool(await self._execute(sa.delete(bots).where(bots.c.name == name)))

    async def runs_of_bot(self, name: str, limit: int, before: tuple[float, int, int] | None = None
                          ) -> list[dict]:
        """The tries slave ``name`` ran, newest first: ``limit`` of them started before ``before``
        (the last page's last ``(started_at, request_id, try_number)``); each with its task's
        ``name``, ``user`` and ``request_created_at``."""
        select = (sa.select(task_runs, task_requests.c.name, task_requests.c.username,
                            task_requests.c.created_at.label("request_created_at"))
                  .join(task_requests, task_requests.c.id == task_runs.c.request_id)
                  .where(task_runs.c.slave == name)
                  .order_by(task_runs.c.started_at.desc(), task_runs.c.request_id.desc(),
                            task_runs.c.try_number.desc()).limit(limit))
        if before is not None:
            started, request_id, try_number = before
            key = sa.tuple_(task_runs.c.started_at, task_runs.c.request_id, task_runs.c.try_number)
            select = select.where(key < sa.tuple_(started, request_id, try_number))
        rows = await self._run(lambda conn: conn.execute(select).all())
        answer = []
        for row in rows:
            run = _run_dict(row)
            run["user"] = run.pop("username") or None
            answer.append(run)
        return answer


def running_on_slaves_of_master_query(masterid: int) -> sa.Select:
    """The tries RUNNING on the slaves attached to ``masterid`` (a dead master's, reclaimed by
    master/db/masters.py), oldest first: ``request_id``, ``try_number``, ``slice_index``,
    ``started_at``, ``slave``."""
    attached = sa.select(slaves.c.name).where(slaves.c.connected_masterid == masterid)
    return (sa.select(task_runs.c.request_id, task_runs.c.try_number, task_runs.c.slice_index,
                      task_runs.c.started_at, task_runs.c.slave)
            .where(task_runs.c.state == RUNNING, task_runs.c.slave.in_(attached))
            .order_by(task_runs.c.started_at, task_runs.c.request_id))


def _insert_task(conn: sa.Connection, task: NewTask, user: str) -> None:
    conn.execute(sa.insert(task_requests).values(
        id=task.request_id, created_at=task.created_at, name=task.name, username=user, priority=task.priority,
        request_uuid=task.request_uuid, parent_task_id=task.parent_task_id, expiration_at=task.expiration_at,
        request=to_json(dict(task.request))))
    for index, s in enumerate(task.slices):
        conn.execute(sa.insert(task_slices).values(
            request_id=task.request_id, slice_index=index, properties_hash=s.properties_hash,
            idempotent=int(s.idempotent), expiration_secs=s.expiration_secs, queue_key=s.queue_key))
        if s.secret_bytes:
            conn.execute(sa.insert(task_secrets).values(
                request_id=task.request_id, slice_index=index, secret_bytes=s.secret_bytes))
    tags = sorted(set(task.tags))
    if tags:
        conn.execute(sa.insert(task_tags), [{"request_id": task.request_id, "tag": t} for t in tags])
    result = {"state": PENDING, **task.result}
    if result.get("outputs_ref") is not None:
        result["outputs_ref"] = to_json(result["outputs_ref"])
    conn.execute(sa.insert(task_results).values(
        request_id=task.request_id, priority=task.priority, current_slice=0,
        queue_key=task.slices[0].queue_key, created_at=task.created_at, modified_at=task.created_at,
        **result))


# The advisory lock space of twin decisions (PostgreSQL's two-key form: this class, a hash key).
TWIN_DECISION_LOCK_CLASS = 0x7461736B  # "task"


def lock_decisions(conn: sa.Connection, properties_hash: str) -> None:
    """Serialize, until the transaction ends, the twin decisions of ``properties_hash`` across
    every connection (every master): PostgreSQL's ``pg_advisory_xact_lock``.  Nothing on
    SQLite, whose write transactions already run one at a time."""
    if conn.dialect.name != "postgresql":
        return
    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(
        TWIN_DECISION_LOCK_CLASS, sa.func.hashtext(properties_hash))))


def _result_dict(row: sa.Row) -> dict[str, Any]:
    result = dict(row._mapping)
    result["internal_failure"] = bool(row.internal_failure)
    result["outputs_ref"] = None if row.outputs_ref is None else from_json(row.outputs_ref)
    return result


def _run_dict(row: sa.Row) -> dict[str, Any]:
    return _result_dict(row)


def _bot_dict(row: sa.Row) -> dict[str, Any]:
    bot = dict(row._mapping)
    bot["dimensions"] = from_json(row.dimensions)
    bot["state"] = from_json(row.state)
    return bot


def _task_filters(query: TaskQuery) -> list:
    where: list = []
    if query.states:
        where.append(task_results.c.state.in_(list(query.states)))
    if query.deduped is not None:
        deduped = task_results.c.deduped_from
        where.append(deduped.is_not(None) if query.deduped else deduped.is_(None))
    if query.failure is not None:
        where.append(task_results.c.exit_code != 0 if query.failure else task_results.c.exit_code == 0)
    for tag in query.tags:
        tagged = sa.select(task_tags.c.request_id).where(task_tags.c.tag == tag)
        where.append(task_results.c.request_id.in_(tagged))
    if query.start is not None:
        where.append(task_results.c.created_at >= query.start)
    if query.end is not None:
        where.append(task_results.c.created_at < query.end)
    return where
