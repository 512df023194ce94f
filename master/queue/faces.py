"""One engine, three faces: build requests and Swarming tasks as read-only Queue tasks
(docs/taskcluster.md, "One engine, three faces").

A build request and a Swarming task have a Queue taskId of their own, a slugid made from their
id (buildfarm.common.faceids: no table maps them).  ``Faces`` answers ``task``, ``status``,
``listTaskGroup`` and ``getTaskGroup`` for those ids, in Taskcluster's shapes, from the tables
the builds and the task engine keep:

- a **build request** is a task of the queue ``buildfarm/<builder>`` (``schedulerId``
  ``buildfarm``) in the group of its buildset; each build of it is a run (the builds a
  ``RETRY`` result brings are runs with ``reasonCreated: retry``), run on ``workerGroup``
  ``buildfarm``, ``workerId`` the slave; ``BUILD_RESULTS`` maps the build's results;
- a **Swarming task** is a task of ``swarming/<pool>`` (``schedulerId`` ``swarming``), alone
  in its group; each try is a run, its end mapped as the Queue's own tasks' are
  (master/queue/service.py ``outcome``).

Reading a face needs the scope its own surface needs (``builds:read``, ``tasks:read``), since
the Queue's reads are public.  Faces are read-only: ``refuse_change`` answers 409 naming the
API to act on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from buildfarm.common.faceids import BUILD_REQUEST, BUILDSET, SWARMING, face_id, parse_face_id
from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SKIPPED, SUCCESS, WARNINGS
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.queue import model
from buildfarm.master.queue.model import COMPLETED, FAILED, PENDING, RESOLVED, RUNNING
from buildfarm.master.queue.routing import QueueAPIError
from buildfarm.master.queue.service import WORKER_GROUP, outcome
from buildfarm.master.queue.store import UnknownQueueTask
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.model import State, request_from_storage

BUILDS_SCHEDULER = BUILDS_PROVISIONER = "buildfarm"
SWARMING_SCHEDULER = SWARMING_PROVISIONER = "swarming"
BUILDS_SCOPE, SWARMING_SCOPE = "builds:read", "tasks:read"
NO_POOL = "none"  # the workerType of a Swarming task that names no pool
# a build request has no deadline: its face shows Taskcluster's longest, after its submission
FACE_DEADLINE_S = model.MAX_DEADLINE_S
# a build's results (buildfarm.common.results) as its run's state and reasonResolved;
# WARNINGS and SKIPPED complete the task as they let Buildbot's Dependent scheduler go on
BUILD_RESULTS = {
    SUCCESS: (COMPLETED, "completed"), WARNINGS: (COMPLETED, "completed"), SKIPPED: (COMPLETED, "completed"),
    FAILURE: (FAILED, "failed"), EXCEPTION: (model.EXCEPTION, "internal-error"),
    RETRY: (model.EXCEPTION, "worker-shutdown"), CANCELLED: (model.EXCEPTION, "canceled"),
}
# the engine's priorities (lower runs first) as Taskcluster's: the first bound not below it
ENGINE_PRIORITY_NAMES = ((20, "highest"), (40, "very-high"), (60, "high"), (80, "medium"), (100, "low"),
                         (120, "very-low"))
_NOT_IDENTIFIER = re.compile(r"[^a-zA-Z0-9_-]")
_MAX_NAME = 38


def queue_name(name: str) -> str:
    """``name`` (a builder, a pool) as a workerType: itself when it is 1 to 38 of
    ``[a-zA-Z0-9-_]``, else those characters kept (others as ``-``), cut to 29, then ``-`` and
    8 hex digits of its SHA-1 (distinct names stay distinct)."""
    if name and len(name) <= _MAX_NAME and not _NOT_IDENTIFIER.search(name):
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    return f"{_NOT_IDENTIFIER.sub('-', name)[:_MAX_NAME - 9]}-{digest}"


def builder_queue_id(builder: str) -> str:
    """The taskQueueId of a builder's build requests: ``buildfarm/<builder>``."""
    return f"{BUILDS_PROVISIONER}/{queue_name(builder)}"


def pool_queue_id(pool: str) -> str:
    """The taskQueueId of a Swarming pool's tasks: ``swarming/<pool>``."""
    return f"{SWARMING_PROVISIONER}/{queue_name(pool or NO_POOL)}"


def priority_name(engine_priority: int) -> str:
    return next((name for bound, name in ENGINE_PRIORITY_NAMES if engine_priority <= bound), "lowest")


@dataclass(frozen=True)
class FaceTask:
    """A build request or a Swarming task as a Queue task (what ``StoredTask`` is to the
    Queue's own): ``body`` its definition, ``runs`` its status's runs."""

    task_id: str
    body: dict
    runs: list[dict]

    @property
    def state(self) -> str:
        return model.state_of(self.runs)

    def status(self) -> dict:
        return model.status_json(self.task_id, self.body, self.state, self.runs, 0)


def refuse_change(task_id: str, what: str = "task") -> None:
    """``QueueAPIError`` 409 when ``task_id`` is a face's: it is changed where it lives."""
    parsed = parse_face_id(task_id)
    if parsed is None:
        return
    kind, number = parsed
    if kind == SWARMING:
        where = (f"Swarming task {ids.summary_id(number)} is read-only here: act on it with the tasks API "
                 f"(POST /api/tasks/v1/task/{ids.summary_id(number)}/cancel)")
    elif kind == BUILDSET:
        where = f"buildset {number} is read-only here: act on its build requests with the buildfarm API"
    else:
        where = (f"build request {number} is read-only here: act on it with the buildfarm API (POST "
                 f"/api/v1/buildrequests/{number}/cancel, or stop its build, or force a new build)")
    raise QueueAPIError(409, f"{what} {task_id} is a face of buildfarm's {where}")


class Faces:
    """Build requests and Swarming tasks as Queue tasks; ``master`` gives ``db`` (builds,
    build requests, buildsets, the engine's tasks), ``config`` (``buildbot_url``) and ``auth``."""

    def __init__(self, master):
        self.master = master

    @staticmethod
    def is_face(task_id: str) -> bool:
        return parse_face_id(task_id) is not None

    # -- tasks -------------------------------------------------------------------------------

    async def task(self, identity, task_id: str) -> FaceTask:
        """The face of ``task_id``; ``UnknownQueueTask`` when it names nothing (or a buildset,
        which is a group); ``AuthError`` when ``identity`` may not read it."""
        parsed = parse_face_id(task_id)
        kind, number = parsed if parsed is not None else (None, None)
        if kind == BUILD_REQUEST:
            self.master.auth.require(identity, BUILDS_SCOPE)
            found = await self._build_request(number)
        elif kind == SWARMING:
            self.master.auth.require(identity, SWARMING_SCOPE)
            found = await self._swarming_task(number)
        else:
            found = None
        if found is None:
            raise UnknownQueueTask(task_id)
        return found

    async def group(self, identity, task_group_id: str, after: str | None, limit: int) -> list[FaceTask]:
        """Up to ``limit`` tasks of a face's group after the taskId ``after``, in the order of
        their ids (a buildset's requests by request id); ``UnknownQueueTask`` when none."""
        parsed = parse_face_id(task_group_id)
        if parsed is None or parsed[0] != BUILDSET:
            task = await self.task(identity, task_group_id)
            if task.body["taskGroupId"] != task_group_id:
                raise UnknownQueueTask(task_group_id)
            return [task] if after is None else []
        self.master.auth.require(identity, BUILDS_SCOPE)
        buildset = await self.master.db.buildsets.get(parsed[1])
        if buildset is None:
            raise UnknownQueueTask(task_group_id)
        shown_after = parse_face_id(after) if after is not None else None
        start = shown_after[1] if shown_after is not None and shown_after[0] == BUILD_REQUEST else -1
        brids = sorted(b for b in buildset["buildrequestids"] if b > start)[:limit]
        return [t for t in [await self._build_request(b) for b in brids] if t is not None]

    async def group_info(self, identity, task_group_id: str) -> dict:
        """``getTaskGroup`` of a face's group: ``{taskGroupId, schedulerId, expires}``."""
        tasks = await self.group(identity, task_group_id, None, 1)
        if not tasks:
            raise UnknownQueueTask(task_group_id)
        body = tasks[0].body
        return {"taskGroupId": task_group_id, "schedulerId": body["schedulerId"], "expires": body["expires"]}

    # -- build requests ----------------------------------------------------------------------

    async def _build_request(self, brid: int) -> FaceTask | None:
        db = self.master.db
        row = await db.buildrequests.get(brid)
        if row is None:
            return None
        builds = [b for b in [await db.builds.get(i) for i in sorted(row["buildids"])] if b is not None]
        task_id = face_id(BUILD_REQUEST, brid)
        return FaceTask(task_id, self._build_request_body(task_id, row, builds), build_runs(row, builds))

    def _build_request_body(self, task_id: str, row: dict, builds: list[dict]) -> dict:
        builder, brid = row["buildername"], row["buildrequestid"]
        queue_id = builder_queue_id(builder)
        owner = row["properties"].get("owner")
        owner = owner[0] if isinstance(owner, list | tuple) and owner else owner
        priority = "high" if row["priority"] > 0 else "low" if row["priority"] < 0 else "normal"
        group = face_id(BUILDSET, row["buildsetid"]) if row["buildsetid"] is not None else task_id
        return _definition(
            task_id, queue_id, BUILDS_SCHEDULER, group, row["submitted_at"],
            row["submitted_at"] + FACE_DEADLINE_S, priority,
            {"name": f"{builder} build request {brid}", "description": row["reason"] or "",
             "owner": owner if isinstance(owner, str) else "",
             "source": self._url(f"api/v1/buildrequests/{brid}")},
            tags={"builder": builder},
            extra={"buildfarm": {"builder": builder, "buildrequestid": brid, "buildsetid": row["buildsetid"],
                                 "buildids": [b["buildid"] for b in builds],
                                 "url": f"/api/v1/buildrequests/{brid}"}})

    # -- Swarming tasks ----------------------------------------------------------------------

    async def _swarming_task(self, request_id: int) -> FaceTask | None:
        db = self.master.db.tasks
        stored = await db.get_request(request_id)
        result = await db.get_result(request_id)
        if stored is None or result is None:
            return None
        tries = [await db.get_run(request_id, n) for n in range(1, (result.get("try_number") or 0) + 1)]
        request = request_from_storage(stored["request"])
        slices = request.task_slices
        pool = slices[min(result.get("current_slice") or 0, len(slices) - 1)].properties.pool
        summary_id = ids.summary_id(request_id)
        url = f"_ah/api/swarming/v1/task/{summary_id}/result"
        task_id = face_id(SWARMING, request_id)
        body = _definition(
            task_id, pool_queue_id(pool), SWARMING_SCHEDULER, task_id, stored["created_at"],
            stored["expiration_at"], priority_name(stored["priority"]),
            {"name": stored["name"], "description": f"Swarming task {summary_id}",
             "owner": stored["user"] or "", "source": self._url(url)},
            extra={"swarming": {"task_id": summary_id, "user": stored["user"], "tags": stored["tags"],
                                "url": f"/{url}"}})
        return FaceTask(task_id, body, swarming_runs(result, [t for t in tries if t is not None]))

    def _url(self, path: str) -> str:
        """``path`` on this master: under c['buildbotURL'] when set, else from the root."""
        return f"{self.master.config.buildbot_url or '/'}{path}"


def _definition(task_id: str, queue_id: str, scheduler: str, group: str, created: float, deadline: float,
                priority: str, metadata: dict, tags: dict | None = None, extra: dict | None = None) -> dict:
    provisioner, worker_type = queue_id.split("/")
    return {"taskQueueId": queue_id, "provisionerId": provisioner, "workerType": worker_type,
            "schedulerId": scheduler, "projectId": model.DEFAULT_PROJECT_ID, "taskGroupId": group,
            "dependencies": [], "requires": "all-completed", "routes": [], "priority": priority, "retries": 0,
            "created": iso(created), "deadline": iso(deadline),
            "expires": iso(deadline + model.DEFAULT_EXPIRES_S), "scopes": [], "payload": {},
            "metadata": metadata, "tags": tags or {}, "extra": extra or {}}


def _run(runs: list[dict], reason_created: str, scheduled: float, **fields) -> dict:
    return {"runId": len(runs), "state": PENDING, "reasonCreated": reason_created,
            "scheduled": iso(scheduled), **fields}


def _started(run: dict, started: float, slave: str | None) -> dict:
    return {**run, "state": RUNNING, "started": iso(started), "workerGroup": WORKER_GROUP,
            "workerId": slave or ""}


def build_runs(row: dict, builds: list[dict]) -> list[dict]:
    """The runs of a build request (``db.buildrequests.get``) from its builds, oldest first:
    one per build, then a pending one while the request waits for a (new) build."""
    runs: list[dict] = []
    scheduled = row["submitted_at"]
    for build in builds:
        run = _started(_run(runs, "retry" if runs else "scheduled", scheduled), build["started_at"],
                       build["slavename"])
        if build["complete"]:
            state, reason = BUILD_RESULTS.get(build["results"], (model.EXCEPTION, "internal-error"))
            run = model.resolve_run(run, state, reason, build["complete_at"])
            scheduled = build["complete_at"]
        runs.append(run)
    if not row["complete"] and (not runs or runs[-1]["state"] in RESOLVED):
        runs.append(_run(runs, "retry" if runs else "scheduled", scheduled))
    elif row["complete"] and not runs:  # ended without a build (canceled while it waited)
        state, reason = BUILD_RESULTS.get(row["results"], (model.EXCEPTION, "internal-error"))
        runs.append(model.resolve_run(_run(runs, "scheduled", scheduled), state, reason,
                                      row["complete_at"] or scheduled))
    return runs


def swarming_runs(result: dict, tries: list[dict]) -> list[dict]:
    """The runs of a Swarming task (its summary, ``db.tasks.get_result``) from its tries."""
    runs: list[dict] = []
    scheduled = result["created_at"]
    for attempt in tries:
        run = _started(_run(runs, "retry" if runs else "scheduled", scheduled), attempt["started_at"],
                       attempt["slave"])
        state = State(attempt["state"])
        if state.is_final:
            ended = attempt["completed_at"] or attempt["abandoned_at"] or attempt["modified_at"]
            resolved, reason, _ = outcome(state, attempt.get("exit_code"))
            run = model.resolve_run(run, resolved, reason, ended)
            scheduled = ended
        runs.append(run)
    state = State(result["state"])
    if state is State.PENDING and (not runs or runs[-1]["state"] in RESOLVED):
        runs.append(_run(runs, "retry" if runs else "scheduled", scheduled))
    elif state.is_final and not runs:  # ended without a try: expired, canceled, no slave, deduplicated
        ended = result["completed_at"] or result["abandoned_at"] or result["modified_at"]
        if state is State.NO_RESOURCE:
            resolved, reason = model.EXCEPTION, "resource-unavailable"
        else:
            resolved, reason, _ = outcome(state, 0 if result.get("deduped_from") else result.get("exit_code"))
        runs.append(model.resolve_run(_run(runs, "scheduled", scheduled), resolved, reason, ended))
    return runs
