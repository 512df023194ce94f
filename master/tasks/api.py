"""The Swarming v1 API under ``/_ah/api/swarming/v1/`` (shared/SWARMING-ISOLATE-API.md,
docs/tasks.md "The Swarming API"), so that Swarming's own clients trigger, collect, query and
cancel tasks on the master's slaves.

Tasks are stored through ``master.db.tasks`` (records.py says what the rows are); what runs
them is the task engine (``ITaskEngine``: ``submitted``, ``cancel``, ``terminate_bot``).
Answers follow Cloud Endpoints: int64 as strings, naive UTC timestamps without ``Z``, states
as enum strings, never an empty body; errors are ``{"error": {code, message, errors}}``
(master/http/endpoints.py).  Scopes: ``tasks:create:<pool>``, ``tasks:cancel:<pool>``,
``tasks:read``, ``bots:read``, ``bots:terminate:<pool>``; a priority below
``MIN_UNPRIVILEGED_PRIORITY`` needs ``tasks:high_priority:<pool>`` or is raised to it.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import os
import random
import re

from twisted.logger import Logger

from buildfarm.common.version import VERSION
from buildfarm.master.db.tasks import SORT_COLUMNS, TaskQuery
from buildfarm.master.http.body import BadBody, json_object, read_body
from buildfarm.master.http.endpoints import (
    EndpointsError,
    add_endpoints_error_handlers,
)
from buildfarm.master.http.routes import PUBLIC, APIEntry, RouteTable, request_identity
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.tasks import apireference as ref
from buildfarm.master.tasks import ids, records
from buildfarm.master.tasks.dimensions import POOL_KEY
from buildfarm.master.tasks.interfaces import UnknownBot, UnknownTask
from buildfarm.master.tasks.model import (
    State,
    TaskRequest,
    TaskValidationError,
    request_from_json,
    request_from_storage,
    request_to_json,
)

log = Logger()

PREFIX = "/_ah/api/swarming/v1"
DISCOVERY_PREFIX = "/_ah/api/discovery/v1/apis"
MAX_JSON_BODY_BYTES = 1024 * 1024  # a request with its secret bytes (20 KiB) and 8 slices fits
MIN_UNPRIVILEGED_PRIORITY = 20  # Swarming's: lower (more urgent) needs tasks:high_priority:<pool>
DEFAULT_LIST_LIMIT = 200
MAX_LIST_LIMIT = 1000
BOT_DEAD_AFTER_S = 600  # a slave not seen for this long is dead (Swarming's bot_death_timeout)
MAX_STDOUT_BYTES = 16 * 1024 * 1024  # one stdout read; longer output is read with offset/length
BOOLEAN_FILTER = {"TRUE": True, "FALSE": False, "NONE": None}
SORTS = {"CREATED_TS": "created_at", "MODIFIED_TS": "modified_at", "COMPLETED_TS": "completed_at",
         "ABANDONED_TS": "abandoned_at"}
# Swarming's TaskStateQuery: what each value of ``state=`` selects (states, deduped, failure).
STATE_FILTERS: dict[str, tuple[tuple[str, ...], bool | None, bool | None]] = {
    "ALL": ((), None, None),
    "PENDING": (("PENDING",), None, None),
    "RUNNING": (("RUNNING",), None, None),
    "PENDING_RUNNING": (("PENDING", "RUNNING"), None, None),
    "COMPLETED": (("COMPLETED",), None, None),
    "COMPLETED_SUCCESS": (("COMPLETED",), None, False),
    "COMPLETED_FAILURE": (("COMPLETED",), None, True),
    "DEDUPED": (("COMPLETED",), True, None),
    **{s.value: ((s.value,), None, None) for s in State
       if s.value not in ("PENDING", "RUNNING", "COMPLETED")},
}


class SwarmingError(EndpointsError):
    """An error of the Swarming API, answered in the Endpoints shape."""


class CursorSigner:
    """Opaque page cursors: the position (JSON) and an HMAC of it, so that a forged or mangled
    cursor is refused with 400 instead of being read.  The key is the process's own (a restart
    invalidates the cursors it gave; a client then starts its query again)."""

    def __init__(self, key: bytes | None = None):
        self.key = key or os.urandom(32)

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self.key, payload, hashlib.sha256).hexdigest()[:32]

    def issue(self, kind: str, position) -> str:
        payload = json.dumps([kind, position], separators=(",", ":")).encode()
        return f"{base64.urlsafe_b64encode(payload).decode().rstrip('=')}.{self._mac(payload)}"

    def check(self, kind: str, cursor: str):
        """The position of a cursor issued for ``kind``; SwarmingError 400 otherwise."""
        encoded, _, mac = cursor.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except (binascii.Error, ValueError):
            payload = b""
        if not payload or not hmac.compare_digest(mac, self._mac(payload)):
            raise SwarmingError(400, "cursor is not one this server gave (or it restarted since): "
                                     "start the query again")
        issued_kind, position = json.loads(payload)
        if issued_kind != kind:
            raise SwarmingError(400, f"cursor is of a {issued_kind} query, not of {kind}")
        return position


def _api(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
         input: str | None = None, output: str | None = None) -> APIEntry:
    """An entry of the ``tasks`` service's reference (tasks/apireference.py)."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, query=query, input=input,
                    output=output)


class SwarmingAPI:
    """The Swarming v1 API; ``master`` gives ``auth``, ``db`` and ``tasks``, the engine that runs
    the tasks (an ``ITaskEngine``, or None before there is one: cancel and terminate answer 503)."""

    app = bounded_klein()
    routes = RouteTable(app, "swarming", api_base=PREFIX)  # also served at /api/tasks/v1 (www/site.py)

    def __init__(self, master, reactor, random_bits=None, cursor_key: bytes | None = None):
        self.master = master
        self.reactor = reactor
        self.random_bits = random_bits or random.SystemRandom().getrandbits
        self.cursors = CursorSigner(cursor_key)

    def resource(self):
        """The twisted.web resource serving this API."""
        return self.app.resource()

    @property
    def engine(self):
        return self.master.tasks

    @property
    def db(self):
        return self.master.db.tasks

    # -- plumbing --------------------------------------------------------------------------

    add_endpoints_error_handlers(app, "Swarming API")

    @staticmethod
    def _json(request, value) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode()

    def _body(self, request) -> dict:
        cached = getattr(request, "_swarming_body", None)
        if cached is None:
            try:
                raw = read_body(request, MAX_JSON_BODY_BYTES)
                cached = json_object(raw) if raw.strip() else {}
            except BadBody as e:
                raise SwarmingError(e.status, e.message) from None
            request._swarming_body = cached
        return cached

    def _now(self) -> str:
        return records.v1_timestamp(self.reactor.seconds())

    # -- what each route's scope is about --------------------------------------------------

    async def _new_request_pool(self, request) -> dict:
        task_request = self._new_request(request)
        return {"pool": _pool_of(task_request)}

    async def _task_pool(self, request, task_id) -> dict:
        stored = await self._stored(task_id)
        return {"pool": _pool_of(request_from_storage(stored["request"]))}

    async def _bot_pool(self, request, bot_id) -> dict:
        bot = await self._bot(bot_id)
        pools = bot["dimensions"].get(POOL_KEY) or [""]
        return {"pool": pools[0]}

    async def _tags_pool(self, request) -> dict:
        pools = [t.partition(":")[2] for t in self._body(request).get("tags") or []
                 if isinstance(t, str) and t.startswith(f"{POOL_KEY}:")]
        if len(pools) != 1:
            raise SwarmingError(400, "tasks/cancel needs exactly one pool:<name> among its tags")
        return {"pool": pools[0]}

    # -- tasks -----------------------------------------------------------------------------

    def _new_request(self, request) -> TaskRequest:
        cached = getattr(request, "_swarming_request", None)
        if cached is None:
            try:
                cached = request_from_json(self._body(request), self.master.config.tasks.min_timeout_secs)
            except TaskValidationError as e:
                raise SwarmingError(400, str(e), problems=e.problems) from None
            pools = {_pool_of(s) for s in cached.task_slices}
            if len(pools) != 1:
                raise SwarmingError(400, f"every slice must ask for the same pool, not {sorted(pools)}")
            request._swarming_request = cached
        return cached

    @routes.route(f"{PREFIX}/tasks/new", "POST", scope="tasks:create:{pool}", resolve=_new_request_pool,
                  api=_api("newTask", "Trigger a task",
                           "A Swarming NewTaskRequest; answers the task id, its request and result (the "
                           "same `request_uuid` from the same user answers the first task).", "Tasks",
                           input=ref.NEW_TASK, output=ref.TASK_METADATA))
    async def tasks_new(self, request):
        """A Swarming ``NewTaskRequest`` -> ``{task_id, request, task_result}`` (the result as
        the engine decided it: PENDING, deduplicated, or NO_RESOURCE); the same
        ``request_uuid`` from the same user answers the first task.  400 lists every problem."""
        task_request = self._new_request(request)
        identity = request_identity(request)
        pool = _pool_of(task_request)
        changes = {}
        if task_request.user is None and identity.name is not None:
            changes["user"] = identity.name
        privileged = identity.may(f"tasks:high_priority:{pool}")
        if task_request.priority < MIN_UNPRIVILEGED_PRIORITY and not privileged:
            changes["priority"] = MIN_UNPRIVILEGED_PRIORITY
        task_request = dataclasses.replace(task_request, **changes)
        request_id = ids.new_request_id(self.reactor, self.random_bits)
        new_task = records.new_task(task_request, request_id, self.reactor.seconds())
        stored_id, new = await self.db.create(new_task)
        result = None
        if new and self.engine is not None:
            try:
                result = await self.engine.submitted(stored_id)
            except Exception:  # stored: the engine's poll finds it (ITaskEngine.submitted)
                log.failure("the task engine failed on new task {task_id}", task_id=ids.summary_id(stored_id))
        stored = await self.db.get_request(stored_id)
        if result is None:
            result = await self.db.get_result(stored_id)
        return self._json(request, {"task_id": ids.summary_id(stored_id),
                                    "request": self._request_json(stored),
                                    "task_result": records.result_to_json(stored, result)})

    def _request_json(self, stored) -> dict:
        answer = request_to_json(records.request_of(stored))
        answer["task_id"] = ids.summary_id(stored["request_id"])
        answer["created_ts"] = records.v1_timestamp(stored["created_at"])
        return answer

    async def _stored(self, task_id: str) -> dict:
        request_id, _ = self._task_id(task_id)
        stored = await self.db.get_request(request_id)
        if stored is None:
            raise SwarmingError(404, f"no task {task_id}", "notFound")
        return stored

    @staticmethod
    def _task_id(task_id: str) -> tuple[int, int]:
        try:
            return ids.parse_task_id(task_id)
        except ids.BadTaskId as e:
            raise SwarmingError(400, str(e)) from None

    async def _result(self, task_id: str) -> tuple[dict, dict, dict | None]:
        """``(stored request, summary, the try or None)`` of a summary or run id; 404 if unknown."""
        stored = await self._stored(task_id)
        request_id, try_number = self._task_id(task_id)
        result = await self.db.get_result(request_id)
        run = None
        if try_number:
            run = await self.db.get_run(request_id, try_number)
            if run is None:
                raise SwarmingError(404, f"task {ids.summary_id(request_id)} has no try {try_number}",
                                    "notFound")
        return stored, result, run

    @routes.route(f"{PREFIX}/task/<string:task_id>/result", "GET", scope="tasks:read",
                  api=_api("taskResult", "A task's result",
                           "The TaskResult of a task (or of one try, by its run id).", "Tasks",
                           query=("include_performance_stats",), output=ref.TASK_RESULT_RESPONSE))
    async def task_result(self, request, task_id):
        """A TaskResult (``?include_performance_stats=true`` is accepted: none are kept)."""
        stored, result, run = await self._result(task_id)
        return self._json(request, records.result_to_json(stored, result, run))

    @routes.route(f"{PREFIX}/task/<string:task_id>/request", "GET", scope="tasks:read",
                  api=_api("taskRequest", "A task's request", "The TaskRequest of a task.", "Tasks",
                           output=ref.TASK_REQUEST_RESPONSE))
    async def task_request(self, request, task_id):
        """The TaskRequest (secret bytes shown as ``<REDACTED>``)."""
        return self._json(request, self._request_json(await self._stored(task_id)))

    @routes.route(f"{PREFIX}/task/<string:task_id>/stdout", "GET", scope="tasks:read",
                  api=_api("taskStdout", "A task's output",
                           "`length` bytes of its output from `offset`, and its state.", "Tasks",
                           query=("offset", "length"), output=ref.STDOUT))
    async def task_stdout(self, request, task_id):
        """``{output, state}``: the output as plain UTF-8 text (v1: not base64), of the named
        try or of the task's last one (a deduplicated task's: its twin's), from ``?offset`` for
        at most ``?length`` bytes."""
        _, result, run = await self._result(task_id)
        source = run if run is not None else result
        offset = _query_int(request, "offset", 0)
        length = min(_query_int(request, "length", MAX_STDOUT_BYTES), MAX_STDOUT_BYTES)
        request_id, try_number = result["request_id"], source.get("try_number")
        if not try_number and run is None and result.get("deduped_from"):
            # as Swarming: a task answered from or attached to a twin shows the twin's output
            request_id, _ = ids.parse_task_id(result["deduped_from"])
            twin = await self.db.get_result(request_id)
            try_number = twin["try_number"] if twin is not None else None
        output = b""
        if try_number:
            output = await self.db.get_output(request_id, try_number, offset, length)
        return self._json(request, {"output": output.decode("utf-8", "replace"), "state": source["state"]})

    @routes.route(f"{PREFIX}/task/<string:task_id>/cancel", "POST", scope="tasks:cancel:{pool}",
                  resolve=_task_pool,
                  api=_api("cancelTask", "Cancel a task",
                           "Cancel a pending task; `kill_running` also kills a running one.", "Tasks",
                           input=ref.CANCEL, output=ref.CANCELED))
    async def task_cancel(self, request, task_id):
        """``{kill_running}`` -> ``{ok, was_running}``: a pending task ends CANCELED; a running
        one is killed only with ``kill_running``."""
        kill_running = self._body(request).get("kill_running", False)
        if not isinstance(kill_running, bool):
            raise SwarmingError(400, "kill_running must be true or false")
        request_id, _ = self._task_id(task_id)
        try:
            ok, was_running = await self._engine().cancel(request_id, kill_running)
        except UnknownTask:
            raise SwarmingError(404, f"no task {task_id}", "notFound") from None
        return self._json(request, {"ok": bool(ok), "was_running": bool(was_running)})

    def _engine(self):
        if self.engine is None:
            raise SwarmingError(503, "the task engine is not running", "backendError")
        return self.engine

    def _query(self, request, kind: str) -> TaskQuery:
        state = _query_str(request, "state", "ALL")
        if state not in STATE_FILTERS:
            raise SwarmingError(400, f"state must be one of {', '.join(STATE_FILTERS)}, not {state[:40]!r}")
        states, deduped, failure = STATE_FILTERS[state]
        sort = _query_str(request, "sort", "CREATED_TS")
        if sort not in SORTS:
            raise SwarmingError(400, f"sort must be one of {', '.join(SORTS)}, not {sort[:40]!r}")
        tags = tuple(_query_all(request, "tags"))
        for tag in tags:
            if ":" not in tag:
                raise SwarmingError(400, f"tags must be key:value, not {tag[:40]!r}")
        cursor = _query_str(request, "cursor", "")
        after = None
        if cursor:
            position = self.cursors.check(kind, cursor)
            if not (isinstance(position, list) and len(position) == 2):
                raise SwarmingError(400, "cursor is malformed")
            after = (position[0], position[1])
        assert SORTS[sort] in SORT_COLUMNS
        return TaskQuery(states=states, deduped=deduped, failure=failure, tags=tags,
                         start=_query_float(request, "start"), end=_query_float(request, "end"),
                         sort=SORTS[sort], limit=_limit(request), after=after)

    async def _page(self, request, kind: str) -> tuple[list[dict], dict]:
        query = self._query(request, kind)
        tasks = await self.db.list_tasks(query)
        page = {"now": self._now()}
        if len(tasks) == query.limit:
            last = tasks[-1]
            page["cursor"] = self.cursors.issue(kind, [last[query.sort], last["request_id"]])
        return tasks, page

    @routes.route(f"{PREFIX}/tasks/list", "GET", scope="tasks:read",
                  api=_api("listTasks", "List tasks",
                           "TaskResults, newest first, with their filters; paged with `cursor`.", "Tasks",
                           query=ref.LIST_QUERY, output=ref.LIST_TASKS))
    async def tasks_list(self, request):
        """``{items: [TaskResult], cursor?, now}``, newest first; filters ``state``, ``tags``
        (all of them), ``start``/``end`` (epoch seconds of creation), ``sort``, ``limit``."""
        tasks, page = await self._page(request, "tasks")
        items = [records.result_to_json(t, t) for t in tasks]
        return self._json(request, {"items": items, **page})

    @routes.route(f"{PREFIX}/tasks/requests", "GET", scope="tasks:read",
                  api=_api("listTaskRequests", "List task requests",
                           "TaskRequests with the filters of `listTasks`; paged with `cursor`.", "Tasks",
                           query=ref.LIST_QUERY, output=ref.LIST_REQUESTS))
    async def tasks_requests(self, request):
        """``{items: [TaskRequest], cursor?, now}`` with the filters of ``tasks/list``."""
        tasks, page = await self._page(request, "requests")
        items = [self._request_json({**t, "secrets": {}}) for t in tasks]
        return self._json(request, {"items": items, **page})

    @routes.route(f"{PREFIX}/tasks/count", "GET", scope="tasks:read",
                  api=_api("countTasks", "Count tasks", "How many tasks match the filters.", "Tasks",
                           query=("state", "tags", "start", "end"), output=ref.COUNT))
    async def tasks_count(self, request):
        """``{count, now}`` (int64 as a string) with the filters of ``tasks/list``."""
        count = await self.db.count_tasks(self._query(request, "count"))
        return self._json(request, {"count": str(count), "now": self._now()})

    @routes.route(f"{PREFIX}/tasks/cancel", "POST", scope="tasks:cancel:{pool}", resolve=_tags_pool,
                  api=_api("cancelTasks", "Cancel tasks by tags",
                           "Cancel up to `limit` pending (with `kill_running`, also running) tasks "
                           "carrying every tag (exactly one `pool:`).", "Tasks", input=ref.TASKS_CANCEL,
                           output=ref.TASKS_CANCELED))
    async def tasks_cancel(self, request):
        """``{tags, kill_running?, limit?, start?, end?}`` (tags with exactly one ``pool:``)
        -> ``{matched, now}``: cancels up to ``limit`` pending (and, with ``kill_running``,
        running) tasks with all the tags."""
        body = self._body(request)
        tags = body.get("tags")
        if not isinstance(tags, list) or not all(isinstance(t, str) and ":" in t for t in tags):
            raise SwarmingError(400, "tags must be a list of key:value")
        kill_running = body.get("kill_running", False)
        if not isinstance(kill_running, bool):
            raise SwarmingError(400, "kill_running must be true or false")
        limit = _bounded_int(body.get("limit", 100), "limit", 1, MAX_LIST_LIMIT)
        states = ("PENDING", "RUNNING") if kill_running else ("PENDING",)
        tasks = await self.db.list_tasks(TaskQuery(states=states, tags=tuple(tags), limit=limit,
                                                   start=_float_or_none(body.get("start"), "start"),
                                                   end=_float_or_none(body.get("end"), "end")))
        engine = self._engine()
        for task in tasks:
            try:
                await engine.cancel(task["request_id"], kill_running)
            except UnknownTask:  # gone since it was listed
                continue
        return self._json(request, {"matched": str(len(tasks)), "now": self._now()})

    # -- bots ------------------------------------------------------------------------------

    async def _bot(self, bot_id: str) -> dict:
        bot = await self.db.get_bot(bot_id)
        if bot is None:
            raise SwarmingError(404, f"no bot {bot_id!r}", "notFound")
        return bot

    def _bot_json(self, bot: dict) -> dict:
        dead = self._is_dead(bot)
        answer = {
            "bot_id": bot["name"],
            "dimensions": [{"key": k, "value": list(v)} for k, v in sorted(bot["dimensions"].items())],
            "first_seen_ts": records.v1_timestamp(bot["first_seen_at"]),
            "last_seen_ts": records.v1_timestamp(bot["last_seen_at"]),
            "is_dead": dead, "deleted": False,
            "quarantined": bot["quarantined"] is not None,
            "maintenance_msg": bot["maintenance"],
            "task_id": bot["task_id"],
            "version": bot["version"],
            "state": json.dumps(bot["state"], sort_keys=True),
        }
        return {k: v for k, v in answer.items() if v is not None}

    def _is_dead(self, bot: dict) -> bool:
        return bot["last_seen_at"] < self.reactor.seconds() - BOT_DEAD_AFTER_S

    def _bot_filter(self, request):
        wanted = []
        for pair in _query_all(request, "dimensions"):
            key, sep, value = pair.partition(":")
            if not sep or not key:
                raise SwarmingError(400, f"dimensions must be key:value, not {pair[:40]!r}")
            wanted.append((key, value))
        flags = {}
        for name in ("is_dead", "is_busy", "quarantined", "in_maintenance"):
            value = _query_str(request, name, "NONE").upper()
            if value not in BOOLEAN_FILTER:
                raise SwarmingError(400, f"{name} must be TRUE, FALSE or NONE, not {value[:20]!r}")
            flags[name] = BOOLEAN_FILTER[value]

        def keep(bot: dict) -> bool:
            if any(value not in bot["dimensions"].get(key, ()) for key, value in wanted):
                return False
            seen = {"is_dead": self._is_dead(bot), "is_busy": bot["task_id"] is not None,
                    "quarantined": bot["quarantined"] is not None,
                    "in_maintenance": bot["maintenance"] is not None}
            return all(want is None or seen[name] == want for name, want in flags.items())

        return keep

    @routes.route(f"{PREFIX}/bots/list", "GET", scope="bots:read",
                  api=_api("listBots", "List bots",
                           "BotInfos by name, with their filters; paged with `cursor`.", "Bots",
                           query=(*ref.BOT_FILTERS, "limit", "cursor"), output=ref.LIST_BOTS))
    async def bots_list(self, request):
        """``{items: [BotInfo], cursor?, now, death_timeout}`` by name; filters
        ``dimensions=k:v`` (all of them), ``is_dead``, ``is_busy``, ``quarantined``,
        ``in_maintenance`` (TRUE, FALSE or NONE), ``limit``, ``cursor``."""
        keep = self._bot_filter(request)
        limit = _limit(request)
        cursor = _query_str(request, "cursor", "")
        after = self.cursors.check("bots", cursor) if cursor else None
        bots = [b for b in await self.db.get_bots() if keep(b) and (after is None or b["name"] > after)]
        page = {"now": self._now(), "death_timeout": str(BOT_DEAD_AFTER_S)}
        if len(bots) > limit:
            bots = bots[:limit]
            page["cursor"] = self.cursors.issue("bots", bots[-1]["name"])
        return self._json(request, {"items": [self._bot_json(b) for b in bots], **page})

    @routes.route(f"{PREFIX}/bots/count", "GET", scope="bots:read",
                  api=_api("countBots", "Count bots",
                           "How many bots match, busy, dead, quarantined, in maintenance.", "Bots",
                           query=("dimensions",), output=ref.BOTS_COUNT))
    async def bots_count(self, request):
        """``{count, busy, dead, quarantined, maintenance, now}`` of the bots with ``dimensions=k:v``."""
        keep = self._bot_filter(request)
        bots = [b for b in await self.db.get_bots() if keep(b)]
        return self._json(request, {
            "count": str(len(bots)), "busy": str(sum(b["task_id"] is not None for b in bots)),
            "dead": str(sum(self._is_dead(b) for b in bots)),
            "quarantined": str(sum(b["quarantined"] is not None for b in bots)),
            "maintenance": str(sum(b["maintenance"] is not None for b in bots)), "now": self._now()})

    @routes.route(f"{PREFIX}/bots/dimensions", "GET", scope="bots:read",
                  api=_api("botsDimensions", "Bots' dimensions",
                           "Every dimension of the bots (of one `pool`).", "Bots", query=("pool",),
                           output=ref.DIMENSIONS))
    async def bots_dimensions(self, request):
        """``{bots_dimensions: [{key, value: [..]}], ts}``: every value of every key the bots
        (of ``?pool=`` only, when given) have."""
        pool = _query_str(request, "pool", "")
        values: dict[str, set[str]] = {}
        for bot in await self.db.get_bots():
            if pool and pool not in bot["dimensions"].get(POOL_KEY, ()):
                continue
            for key, vals in bot["dimensions"].items():
                values.setdefault(key, set()).update(vals)
        dimensions = [{"key": k, "value": sorted(v)} for k, v in sorted(values.items())]
        return self._json(request, {"bots_dimensions": dimensions, "ts": self._now()})

    @routes.route(f"{PREFIX}/bot/<string:bot_id>/get", "GET", scope="bots:read",
                  api=_api("bot", "A bot", "One BotInfo.", "Bots", output=ref.BOT_RESPONSE))
    async def bot_get(self, request, bot_id):
        """The BotInfo of ``bot_id``; 404 when unknown."""
        return self._json(request, self._bot_json(await self._bot(bot_id)))

    @routes.route(f"{PREFIX}/bot/<string:bot_id>/tasks", "GET", scope="tasks:read",
                  api=_api("listBotTasks", "A bot's tasks",
                           "The tries a bot ran, newest first; paged with `cursor`.", "Bots",
                           query=("state", "start", "end", "sort", "limit", "cursor"),
                           output=ref.BOT_TASKS))
    async def bot_tasks(self, request, bot_id):
        """``{items: [TaskResult of each try], cursor?, now}``: what the bot ran, newest first."""
        limit = _limit(request)
        cursor = _query_str(request, "cursor", "")
        before = None
        if cursor:
            position = self.cursors.check("bot_tasks", cursor)
            if not (isinstance(position, list) and len(position) == 3):
                raise SwarmingError(400, "cursor is malformed")
            before = tuple(position)
        runs = await self.db.runs_of_bot(bot_id, limit, before)
        items = []
        for run in runs:
            stored = {"request_id": run["request_id"], "name": run["name"], "user": run["user"], "tags": []}
            result = {"created_at": run["request_created_at"]}
            items.append(records.result_to_json(stored, result, run))
        page = {"now": self._now()}
        if len(runs) == limit:
            last = runs[-1]
            page["cursor"] = self.cursors.issue("bot_tasks", [last["started_at"], last["request_id"],
                                                              last["try_number"]])
        return self._json(request, {"items": items, **page})

    @routes.route(f"{PREFIX}/bot/<string:bot_id>/terminate", "POST", scope="bots:terminate:{pool}",
                  resolve=_bot_pool,
                  api=_api("terminateBot", "Terminate a bot",
                           "Ask the bot to stop, as a recorded termination task (its id).", "Bots",
                           input=ref.EMPTY, output=ref.TERMINATED))
    async def bot_terminate(self, request, bot_id):
        """``{}`` -> ``{task_id}``: the slave shuts down gracefully once its current work ends
        (through the engine, as the SlaveAPI's shutdown); ``task_id`` names the request."""
        try:
            task_id = await self._engine().terminate_bot(bot_id)
        except UnknownBot:
            raise SwarmingError(404, f"no bot {bot_id!r}", "notFound") from None
        return self._json(request, {"task_id": task_id})

    @routes.route(f"{PREFIX}/bot/<string:bot_id>/delete", "POST", scope="bots:terminate:{pool}",
                  resolve=_bot_pool,
                  api=_api("deleteBot", "Delete a bot", "Forget a bot that is not attached.", "Bots",
                           input=ref.EMPTY, output=ref.DELETED))
    async def bot_delete(self, request, bot_id):
        """``{}`` -> ``{deleted: true}``: forget the bot (it comes back when the slave is seen)."""
        return self._json(request, {"deleted": await self.db.delete_bot(bot_id)})

    # -- the server ------------------------------------------------------------------------

    @routes.route(DISCOVERY_PREFIX, "GET", scope=PUBLIC)
    def discovery_list(self, request):
        """The APIs described here: ``{items: [{id, discoveryRestUrl}]}`` (Swarming's only)."""
        url = f"{_base_url(request)}{DISCOVERY_PREFIX}/swarming/v1/rest"
        return self._json(request, {"kind": "discovery#directoryList", "discoveryVersion": "v1", "items": [
            {"kind": "discovery#directoryItem", "id": "swarming:v1", "name": "swarming", "version": "v1",
             "discoveryRestUrl": url, "preferred": True}]})

    @routes.route(f"{DISCOVERY_PREFIX}/swarming/v1/rest", "GET", scope=PUBLIC)
    def discovery_swarming(self, request):
        """Swarming v1's discovery document (``discovery_document``)."""
        return self._json(request, discovery_document(_base_url(request)))

    @routes.route(f"{PREFIX}/server/details", "GET", scope=PUBLIC,
                  api=_api("serverDetails", "Server details", "The server's version.", "Server",
                           output=ref.SERVER))
    def server_details(self, request):
        """``{server_version, bot_version, ...}``."""
        return self._json(request, {"server_version": f"buildfarm-{VERSION}", "bot_version": VERSION,
                                    "display_server_url_template": "", "luci_config": "",
                                    "cas_viewer_server": ""})


def discovery_document(base_url: str) -> dict:
    """Swarming v1's Cloud Endpoints discovery document, made from the route table: what
    ``swarming.py query-list`` prints (each method's id, path, HTTP method and description)."""
    resources: dict[str, dict] = {}
    for route in SwarmingAPI.routes.routes:
        if not route.path.startswith(PREFIX + "/"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route.path.removeprefix(PREFIX + "/"))
        resource, _, rest = path.partition("/")
        name = rest.rsplit("/", 1)[-1]
        handler = SwarmingAPI.app.endpoints.get(route.endpoint)
        description = " ".join((getattr(handler, "__doc__", None) or "").split())
        resources.setdefault(resource, {"methods": {}})["methods"][name] = {
            "id": f"swarming.{resource}.{name}", "path": path, "httpMethod": route.method,
            "description": description}
    return {"kind": "discovery#restDescription", "discoveryVersion": "v1", "id": "swarming:v1",
            "name": "swarming", "version": "v1", "description": "Swarming v1 API (buildfarm)",
            "protocol": "rest", "rootUrl": f"{base_url}/_ah/api/", "servicePath": "swarming/v1/",
            "resources": resources}


def _base_url(request) -> str:
    """``scheme://host[:port]`` this server was reached at (its listening address: the Host
    header is not trusted into a URL)."""
    address = request.getHost()
    host = address.host.decode("ascii") if isinstance(address.host, bytes) else address.host
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if request.isSecure() else 'http'}://{host}:{address.port}"


def _pool_of(value) -> str:
    """The pool a request (its first slice) or a slice asks for."""
    task_slice = value.task_slices[0] if isinstance(value, TaskRequest) else value
    return task_slice.properties.pool


def _query_all(request, name: str) -> list[str]:
    return [v.decode("utf-8", "replace") for v in (request.args or {}).get(name.encode(), [])]


def _query_str(request, name: str, default: str) -> str:
    values = _query_all(request, name)
    return values[-1] if values else default


def _query_int(request, name: str, default: int) -> int:
    value = _query_str(request, name, "")
    return default if value == "" else _bounded_int(value, name, 0, 2**63 - 1)


def _query_float(request, name: str) -> float | None:
    return _float_or_none(_query_str(request, name, "") or None, name)


def _float_or_none(value, name: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
        raise SwarmingError(400, f"{name} must be a number of seconds since the epoch")
    return number


def _bounded_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SwarmingError(400, f"{name} must be an integer {low}..{high}")
    return value


def _limit(request) -> int:
    return _bounded_int(_query_str(request, "limit", str(DEFAULT_LIST_LIMIT)), "limit", 1, MAX_LIST_LIMIT)
