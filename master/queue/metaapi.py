"""The Queue's task-queue metadata (docs/taskcluster.md, "Task queues and workers"):
``pendingTasks``, ``listProvisioners``, ``getProvisioner``, ``listWorkerTypes``,
``getWorkerType``, ``listTaskQueues``, ``getTaskQueue``, ``listWorkers`` and ``getWorker``, in
Taskcluster's shapes, as ``MetaRoutes``, a mixin of ``QueueAPI`` (queue/routing.py says why).

The task queues are those buildfarm knows, none of them declared through the API:

- ``buildfarm/<builder>``: each configured builder (its build requests, master/queue/faces.py);
- the taskQueueIds of ``c['queue']['task_queues']`` (Queue tasks run by the PB slaves);
- ``swarming/<pool>``: each pool of the bots (Swarming tasks);
- any other taskQueueId a Queue task was created in.

A provisioner is the part of a taskQueueId before its ``/``, a worker type the part after it.
Their workers are PB slaves (``workerGroup`` ``buildfarm``, ``workerId`` the slave's name),
found in the database: the slaves that ran builds of the builder, the slaves that ran runs of
the queue's tasks, the bots of the pool; ``firstClaim`` is the first build, run or sighting,
``latestTask`` the newest ``{taskId, runId}``, ``lastDateActive`` the latest activity.  Lists
are ordered by their ids and paged with ``continuationToken`` (the last id shown) and ``limit``.
The scopes are Taskcluster's (``queue:list-task-queues``, ``queue:list-workers:<p>/<w>``, ...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote

import sqlalchemy as sa

from buildfarm.common.faceids import BUILD_REQUEST, SWARMING, face_id
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.db.model import builds, queue_tasks, slaves, task_requests, task_results
from buildfarm.master.http.tcservice import json_answer
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.faces import (
    BUILDS_PROVISIONER,
    SWARMING_PROVISIONER,
    builder_queue_id,
    pool_queue_id,
)
from buildfarm.master.queue.model import PENDING, TASK_QUEUE_ID, parse_date
from buildfarm.master.queue.routing import MAX_LIST_LIMIT, PREFIX, QueueAPIError, api_entry, query_arg, routes
from buildfarm.master.queue.service import WORKER_GROUP
from buildfarm.master.tasks.dimensions import POOL_KEY
from buildfarm.master.tasks.model import request_from_storage

QUEUE_EXPIRES_S = 5 * 24 * 3600  # a queue, provisioner or worker expires this long after its last activity
RECENT_TASKS = 20  # getWorker's recentTasks (Taskcluster's)
MAX_PENDING_SCANNED = 100_000  # pending engine tasks read to count a pool's
MAX_RUNS_SCANNED = 10_000  # newest Queue tasks of a queue read to find its workers


@dataclass
class TaskQueue:
    """A task queue as the metadata calls show it."""

    task_queue_id: str
    description: str
    last_active: float
    builder: str | None = None  # buildfarm/<builder>
    pool: str | None = None  # swarming/<pool>

    @property
    def provisioner_id(self) -> str:
        return self.task_queue_id.split("/")[0]

    @property
    def worker_type(self) -> str:
        return self.task_queue_id.split("/")[1]

    def json(self) -> dict:
        return {"taskQueueId": self.task_queue_id, "stability": "experimental",
                "description": self.description, "expires": iso(self.last_active + QUEUE_EXPIRES_S),
                "lastDateActive": iso(self.last_active)}


@dataclass
class Worker:
    """A PB slave as a worker of one task queue."""

    worker_id: str
    first_claim: float
    last_active: float
    recent: list[tuple[float, str, int]]  # (when, taskId, runId), newest first

    def json(self) -> dict:
        shown = {"workerGroup": WORKER_GROUP, "workerId": self.worker_id, "firstClaim": iso(self.first_claim),
                 "lastDateActive": iso(self.last_active)}
        if self.recent:
            shown["latestTask"] = _task_run(self.recent[0])
        return shown


def _task_run(entry: tuple[float, str, int]) -> dict:
    return {"taskId": entry[1], "runId": entry[2]}


class MetaRoutes:
    """The metadata routes of ``QueueAPI`` (a mixin: ``self.master`` gives ``db``, ``config``;
    ``self.clock`` the time)."""

    # -- what there is -------------------------------------------------------------------------

    async def task_queues(self) -> dict[str, TaskQueue]:
        """Every task queue (see the module), by taskQueueId."""
        now = self.clock.seconds()
        found: dict[str, TaskQueue] = {}
        for builder in self.master.config.builders:
            queue_id = builder_queue_id(builder.name)
            found[queue_id] = TaskQueue(queue_id, f"the build requests of builder {builder.name!r}", now,
                                        builder=builder.name)
        for queue_id, dimensions in sorted(self.master.config.queue.task_queues.items()):
            found.setdefault(queue_id, TaskQueue(queue_id, f"Queue tasks run by the PB slaves with the "
                                                           f"dimensions {json.dumps(dimensions)}", now))
        for bot in await self.master.db.tasks.get_bots():
            for pool in bot["dimensions"].get(POOL_KEY, ()):
                queue_id = pool_queue_id(pool)
                queue = found.setdefault(queue_id, TaskQueue(queue_id, f"the Swarming tasks of pool {pool!r}",
                                                             bot["last_seen_at"], pool=pool))
                queue.last_active = max(queue.last_active, bot["last_seen_at"])
        for queue_id, created in await self.master.db.run(_stored_queues):
            found.setdefault(queue_id, TaskQueue(queue_id, "Queue tasks (no c['queue'] entry runs them)",
                                                 created))
        return dict(sorted(found.items()))

    async def _task_queue(self, given: str) -> TaskQueue:
        task_queue_id = _queue_id(given)
        queue = (await self.task_queues()).get(task_queue_id)
        if queue is None:
            raise QueueAPIError(404, f"no task queue {task_queue_id}")
        return queue

    async def _provisioners(self) -> dict[str, dict]:
        provisioners: dict[str, dict] = {}
        for queue in (await self.task_queues()).values():
            seen = provisioners.setdefault(queue.provisioner_id, {"provisionerId": queue.provisioner_id,
                                                                  "last": queue.last_active})
            seen["last"] = max(seen["last"], queue.last_active)
        return {p: {"provisionerId": p, "stability": "experimental", "description": _provisioner_text(p),
                    "expires": iso(v["last"] + QUEUE_EXPIRES_S), "lastDateActive": iso(v["last"]),
                    "actions": []} for p, v in sorted(provisioners.items())}

    async def _queue_values(self, request, taskQueueId) -> dict:  # noqa: N803
        """The route's scope names the taskQueueId unescaped."""
        return {"taskQueueId": _queue_id(taskQueueId)}

    # -- routes --------------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/pending/<path:taskQueueId>", "GET", scope="queue:pending-count:{taskQueueId}",
                  resolve=_queue_values,
                  api=api_entry("pendingTasks", "Get Number of Pending Tasks",
                                "How many tasks of the queue wait for a worker: its pending Queue tasks, "
                                "plus a builder's pending build requests (`buildfarm/<builder>`) or a pool's "
                                "pending Swarming tasks (`swarming/<pool>`). 0 for a queue nobody used.",
                                "Worker Metadata", output=ref.PENDING_TASKS))
    async def pending_tasks(self, request, taskQueueId):  # noqa: N803 - Taskcluster's name
        """``pendingTasks``: ``{taskQueueId, provisionerId, workerType, pendingTasks}``."""
        taskQueueId = _queue_id(taskQueueId)  # noqa: N806
        count = await self.master.db.run(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(queue_tasks)
            .where(queue_tasks.c.state == PENDING, queue_tasks.c.task_queue_id == taskQueueId)).scalar_one())
        queue = (await self.task_queues()).get(taskQueueId)
        if queue is not None and queue.builder is not None:
            waiting = (await self.master.db.buildrequests.get_queue_by_builder()).get(queue.builder)
            count += waiting["pending"] if waiting else 0
        if queue is not None and queue.pool is not None:
            count += await self._pending_in_pool(queue.pool)
        provisioner, worker_type = taskQueueId.split("/")
        return json_answer(request, {"taskQueueId": taskQueueId, "provisionerId": provisioner,
                                     "workerType": worker_type, "pendingTasks": count})

    async def _pending_in_pool(self, pool: str) -> int:
        """The pending engine tasks whose current slice asks for ``pool`` (read and parsed in
        the database's thread: the reactor parses no request)."""
        return await self.master.db.run(lambda conn: _pending_in_pool(conn, pool))

    @routes.route(f"{PREFIX}/task-queues", "GET", scope="queue:list-task-queues",
                  api=api_entry("listTaskQueues", "Get a list of all active task queues",
                                "Every task queue buildfarm knows (builders, `c['queue']`, Swarming pools, "
                                "queues Queue tasks were created in), by taskQueueId; paged with "
                                "`continuationToken`.", "Worker Metadata", query=ref.PAGE_QUERY,
                                output=ref.LIST_TASK_QUEUES))
    async def list_task_queues(self, request):
        """``listTaskQueues``: ``{taskQueues: [...], continuationToken?}``."""
        queues = await self.task_queues()
        return json_answer(request, _page(request, "taskQueues", [(k, q.json()) for k, q in queues.items()]))

    @routes.route(f"{PREFIX}/task-queues/<path:taskQueueId>", "GET",
                  scope="queue:get-task-queue:{taskQueueId}", resolve=_queue_values,
                  api=api_entry("getTaskQueue", "Task Queue Information", "One task queue.",
                                "Worker Metadata", output=ref.TASK_QUEUE))
    async def get_task_queue(self, request, taskQueueId):  # noqa: N803
        """``getTaskQueue``: ``{taskQueueId, stability, description, expires, lastDateActive}``."""
        return json_answer(request, (await self._task_queue(taskQueueId)).json())

    @routes.route(f"{PREFIX}/provisioners", "GET", scope="queue:list-provisioners",
                  api=api_entry("listProvisioners", "Get a list of all active provisioners",
                                "The provisionerIds of the task queues (`buildfarm`, `swarming`, those of "
                                "`c['queue']`); paged with `continuationToken`.", "Worker Metadata",
                                query=ref.PAGE_QUERY, output=ref.LIST_PROVISIONERS))
    async def list_provisioners(self, request):
        """``listProvisioners``: ``{provisioners: [...], continuationToken?}``."""
        provisioners = await self._provisioners()
        shown = [(p, {k: v for k, v in body.items() if k != "actions"}) for p, body in provisioners.items()]
        return json_answer(request, _page(request, "provisioners", shown))

    @routes.route(f"{PREFIX}/provisioners/<provisionerId>", "GET",
                  scope="queue:get-provisioner:{provisionerId}",
                  api=api_entry("getProvisioner", "Get an active provisioner", "One provisioner.",
                                "Worker Metadata", output=ref.PROVISIONER))
    async def get_provisioner(self, request, provisionerId):  # noqa: N803
        """``getProvisioner``."""
        provisioner = (await self._provisioners()).get(provisionerId)
        if provisioner is None:
            raise QueueAPIError(404, f"no provisioner {provisionerId}")
        return json_answer(request, provisioner)

    @routes.route(f"{PREFIX}/provisioners/<provisionerId>/worker-types", "GET",
                  scope="queue:list-worker-types:{provisionerId}",
                  api=api_entry("listWorkerTypes", "Get a list of all active worker-types",
                                "The worker types of a provisioner (a builder, a pool, ...); paged with "
                                "`continuationToken`.", "Worker Metadata", query=ref.PAGE_QUERY,
                                output=ref.LIST_WORKER_TYPES))
    async def list_worker_types(self, request, provisionerId):  # noqa: N803
        """``listWorkerTypes``: ``{workerTypes: [...], continuationToken?}``."""
        shown = [(q.worker_type, _worker_type_json(q)) for q in (await self.task_queues()).values()
                 if q.provisioner_id == provisionerId]
        return json_answer(request, _page(request, "workerTypes", sorted(shown, key=lambda item: item[0])))

    @routes.route(f"{PREFIX}/provisioners/<provisionerId>/worker-types/<workerType>", "GET",
                  scope="queue:get-worker-type:{provisionerId}/{workerType}",
                  api=api_entry("getWorkerType", "Get a worker-type", "One worker type.", "Worker Metadata",
                                output=ref.WORKER_TYPE))
    async def get_worker_type(self, request, provisionerId, workerType):  # noqa: N803
        """``getWorkerType``."""
        queue = await self._task_queue(f"{provisionerId}/{workerType}")
        return json_answer(request, {**_worker_type_json(queue), "actions": []})

    @routes.route(f"{PREFIX}/provisioners/<provisionerId>/worker-types/<workerType>/workers", "GET",
                  scope="queue:list-workers:{provisionerId}/{workerType}",
                  api=api_entry("listWorkers", "Get a list of all active workers of a workerType",
                                "The PB slaves that worked for the queue (`workerGroup` `buildfarm`, "
                                "`workerId` the slave), by name; paged with `continuationToken`. No PB slave "
                                "is ever quarantined here: `quarantined=true` lists none.",
                                "Worker Metadata", query=(*ref.PAGE_QUERY, "quarantined"),
                                output=ref.LIST_WORKERS))
    async def list_workers(self, request, provisionerId, workerType):  # noqa: N803
        """``listWorkers``: ``{workers: [...], continuationToken?}``."""
        quarantined = query_arg(request, "quarantined")
        if quarantined not in (None, "true", "false"):
            raise QueueAPIError(400, f"quarantined must be true or false, not {quarantined!r}")
        workers = await self._workers(await self._task_queue(f"{provisionerId}/{workerType}"))
        if quarantined == "true":  # a Queue quarantine (quarantineWorker) is not served
            workers = []
        return json_answer(request, _page(request, "workers", [(w.worker_id, w.json()) for w in workers]))

    @routes.route(f"{PREFIX}/provisioners/<provisionerId>/worker-types/<workerType>/workers/<workerGroup>/"
                  "<workerId>", "GET",
                  scope="queue:get-worker:{provisionerId}/{workerType}/{workerGroup}/{workerId}",
                  api=api_entry("getWorker", "Get a worker", "One worker with its 20 most recent tasks.",
                                "Worker Metadata", output=ref.WORKER))
    async def get_worker(self, request, provisionerId, workerType, workerGroup, workerId):  # noqa: N803
        """``getWorker``: the worker, its ``recentTasks`` and ``expires``."""
        queue = await self._task_queue(f"{provisionerId}/{workerType}")
        worker = next((w for w in await self._workers(queue, workerId) if w.worker_id == workerId), None)
        if worker is None or workerGroup != WORKER_GROUP:
            raise QueueAPIError(404, f"no worker {workerGroup}/{workerId} in {queue.task_queue_id}")
        return json_answer(request, {
            "provisionerId": provisionerId, "workerType": workerType, "taskQueueId": queue.task_queue_id,
            **worker.json(), "recentTasks": [_task_run(r) for r in worker.recent[:RECENT_TASKS]],
            "expires": iso(worker.last_active + QUEUE_EXPIRES_S), "actions": []})

    # -- workers -------------------------------------------------------------------------------

    async def _workers(self, queue: TaskQueue, only: str | None = None) -> list[Worker]:
        """The workers of ``queue`` by name (``only``: just that one, when it is one)."""
        if queue.builder is not None:
            found = await self._builder_workers(queue.builder, only)
        elif queue.pool is not None:
            found = await self._pool_workers(queue.pool, only)
        else:
            found = await self.master.db.run(lambda conn: _queue_workers(conn, queue.task_queue_id, only))
        return sorted(found, key=lambda w: w.worker_id)

    async def _builder_workers(self, builder: str, only: str | None) -> list[Worker]:
        row = await self.master.db.builders.get_by_name(builder)
        if row is None:
            return []
        return await self.master.db.run(lambda conn: _builder_workers(conn, row["builderid"], only))

    async def _pool_workers(self, pool: str, only: str | None) -> list[Worker]:
        workers = []
        for bot in await self.master.db.tasks.get_bots():
            if pool not in bot["dimensions"].get(POOL_KEY, ()) or only not in (None, bot["name"]):
                continue
            tries = await self.master.db.tasks.runs_of_bot(bot["name"], RECENT_TASKS if only else 1)
            recent = [(t["started_at"], face_id(SWARMING, t["request_id"]), t["try_number"] - 1)
                      for t in tries]
            workers.append(Worker(bot["name"], bot["first_seen_at"], bot["last_seen_at"], recent))
        return workers


def _queue_id(given: str) -> str:
    """The taskQueueId of a route argument (its ``/`` may arrive escaped: ``%2F``); 400 if it is
    not one."""
    task_queue_id = unquote(given)
    if not TASK_QUEUE_ID.match(task_queue_id):
        raise QueueAPIError(400, f"taskQueueId must be '<provisionerId>/<workerType>' (1 to 38 of "
                                 f"[a-zA-Z0-9-_] each), not {task_queue_id!r}")
    return task_queue_id


def _provisioner_text(provisioner_id: str) -> str:
    if provisioner_id == BUILDS_PROVISIONER:
        return "buildfarm's builders: one worker type per builder, its build requests as read-only tasks"
    if provisioner_id == SWARMING_PROVISIONER:
        return "Swarming's pools: one worker type per pool, its tasks as read-only tasks"
    return "Queue tasks"


def _worker_type_json(queue: TaskQueue) -> dict:
    return {"provisionerId": queue.provisioner_id, "workerType": queue.worker_type,
            **{k: v for k, v in queue.json().items() if k != "taskQueueId"}}


def _page(request, field: str, items: list[tuple[str, dict]]) -> dict:
    """``items`` (``(key, shown)`` by key) after the ``continuationToken`` key, ``limit`` of them."""
    text = query_arg(request, "limit")
    if text is not None and (not text.isdigit() or int(text) < 1):
        raise QueueAPIError(400, f"limit must be a positive integer, not {text!r}")
    limit = min(int(text), MAX_LIST_LIMIT) if text is not None else MAX_LIST_LIMIT
    after = query_arg(request, "continuationToken")
    rest = [(key, shown) for key, shown in items if after is None or key > after]
    body: dict = {field: [shown for _, shown in rest[:limit]]}
    if len(rest) > limit:
        body["continuationToken"] = rest[limit - 1][0]
    return body


def _stored_queues(conn: sa.Connection) -> list[tuple[str, float]]:
    """Each taskQueueId of the Queue's tasks, with its newest task's creation."""
    return [tuple(row) for row in conn.execute(
        sa.select(queue_tasks.c.task_queue_id, sa.func.max(queue_tasks.c.created))
        .group_by(queue_tasks.c.task_queue_id)).all()]


def _pending_in_pool(conn: sa.Connection, pool: str) -> int:
    rows = conn.execute(sa.select(task_results.c.current_slice, task_requests.c.request)
                        .join(task_requests, task_requests.c.id == task_results.c.request_id)
                        .where(task_results.c.state == "PENDING").limit(MAX_PENDING_SCANNED)).all()
    count = 0
    for row in rows:
        slices = request_from_storage(json.loads(row.request)).task_slices
        count += slices[min(row.current_slice, len(slices) - 1)].properties.pool == pool
    return count


def _builder_workers(conn: sa.Connection, builderid: int, only: str | None) -> list[Worker]:
    """The slaves that ran builds of the builder: first build, last activity, and their newest
    builds (one each; ``RECENT_TASKS`` for ``only``) as ``(started, taskId of the request,
    runId)``, a build's runId being its place among its request's builds."""
    ended = sa.func.coalesce(builds.c.complete_at, builds.c.started_at)
    summary = (sa.select(slaves.c.name, sa.func.min(builds.c.started_at), sa.func.max(ended),
                         sa.func.max(builds.c.id))
               .join(slaves, slaves.c.id == builds.c.slaveid).where(builds.c.builderid == builderid)
               .group_by(slaves.c.name))
    if only is not None:
        summary = summary.where(slaves.c.name == only)
    workers = []
    for name, first, last, newest in conn.execute(summary).all():
        recent = sa.select(builds.c.id, builds.c.buildrequestid, builds.c.started_at)
        if only is None:
            recent = recent.where(builds.c.id == newest)
        else:
            recent = (recent.join(slaves, slaves.c.id == builds.c.slaveid)
                      .where(builds.c.builderid == builderid, slaves.c.name == name)
                      .order_by(builds.c.id.desc()).limit(RECENT_TASKS))
        entries = []
        for build in conn.execute(recent).all():
            run_id = conn.execute(sa.select(sa.func.count()).select_from(builds).where(
                builds.c.buildrequestid == build.buildrequestid, builds.c.id < build.id)).scalar_one()
            entries.append((build.started_at, face_id(BUILD_REQUEST, build.buildrequestid), run_id))
        workers.append(Worker(name, first, last, entries))
    return workers


def _queue_workers(conn: sa.Connection, task_queue_id: str, only: str | None) -> list[Worker]:
    """The slaves that ran runs of the queue's newest ``MAX_RUNS_SCANNED`` Queue tasks."""
    rows = conn.execute(sa.select(queue_tasks.c.task_id, queue_tasks.c.runs)
                        .where(queue_tasks.c.task_queue_id == task_queue_id)
                        .order_by(queue_tasks.c.created.desc()).limit(MAX_RUNS_SCANNED)).all()
    workers: dict[str, Worker] = {}
    for row in rows:
        for run in json.loads(row.runs):
            worker_id = run.get("workerId")
            if not worker_id or run.get("workerGroup") != WORKER_GROUP or only not in (None, worker_id):
                continue
            started = parse_date(run.get("started"), "started", [])
            ended = parse_date(run["resolved"], "resolved", []) if run.get("resolved") else started
            if started is None:
                continue
            worker = workers.setdefault(worker_id, Worker(worker_id, started, ended or started, []))
            worker.first_claim = min(worker.first_claim, started)
            worker.last_active = max(worker.last_active, ended or started)
            worker.recent.append((started, row.task_id, run["runId"]))
    for worker in workers.values():
        worker.recent = sorted(worker.recent, reverse=True)[:RECENT_TASKS]
    return list(workers.values())

