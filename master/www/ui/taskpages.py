"""What the task pages show (docs/tasks.md "Pages"): the task list with its filters and
cursors, one task with its request, tries and output, the live output stream, and the fleet
grouped by a dimension.  The routes are in app.py; this module reads ``db.tasks`` through its
public methods and works out what the templates show.

The list filters by state, tags, creation time (``db.tasks.list_tasks`` does) and by name,
user and slave (read here from batches of ``list_tasks``: at most ``MAX_SCANNED`` tasks per
page, then the page ends with a cursor to go on from there).
"""

from __future__ import annotations

import calendar
import codecs
import dataclasses
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from buildfarm.master.cas.browse import browse_url
from buildfarm.master.db.tasks import TaskQuery
from buildfarm.master.tasks import ids, records
from buildfarm.master.tasks.api import STATE_FILTERS, CursorSigner
from buildfarm.master.tasks.botstates import bots_with_states
from buildfarm.master.tasks.model import State
from buildfarm.master.www.ui.logstream import KEEPALIVE_S, MAX_STREAM_S, POLL_S, sse_event

LIST_PAGE_SIZE = 50
SCAN_BATCH = 500  # tasks read per list_tasks call while filtering by name, user or slave
MAX_SCANNED = 2000  # tasks read for one page at most; then the page ends with a cursor
MAX_TAG_FILTERS = 16
MAX_FILTER_CHARS = 256
OUTPUT_TAIL_BYTES = 256 * 1024  # of a try's output, on its page; the rest by /output
MAX_OUTPUT_READ_BYTES = 16 * 1024 * 1024  # one /output answer
MAX_EVENT_BYTES = 64 * 1024  # of output in one ``output`` event
MAX_DEDUPED_SCANNED = 1000  # tasks answered from this one, looked for on its page
RECENT_TASKS_ON_SLAVE = 20
NO_VALUE = "(none)"  # the group of the bots without the chosen dimension
DEFAULT_GROUP_KEY = "pool"
TIME_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")
_CURSOR_KIND = "pages"


class BadFilter(ValueError):
    """A filter of the task list or the bots page that cannot be read; the message says which."""


class NoSuchTask(LookupError):
    """No task (or no such try of it) has this id."""


# -- states ----------------------------------------------------------------------------------

def state_class(state: str | None, exit_code: int | None = None) -> str:
    """The CSS class of a task's state, coloured as build results are."""
    if state in (None, "PENDING", "RUNNING"):
        return "result-running"
    if state == "COMPLETED":
        return "result-success" if exit_code == 0 else "result-failure"
    return {"TIMED_OUT": "result-failure", "CANCELED": "result-cancelled", "KILLED": "result-cancelled",
            "BOT_DIED": "result-retry", "EXPIRED": "result-exception",
            "NO_RESOURCE": "result-exception"}.get(state, "result-exception")


def is_final(state: str) -> bool:
    return State(state).is_final


def _duration(row: dict, now: float) -> float | None:
    if row.get("duration") is not None:
        return row["duration"]
    if row.get("state") == "RUNNING" and row.get("started_at") is not None:
        return now - row["started_at"]
    return None


# -- the list ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TaskFilter:
    """The task list's filters, as the form sent them (``form``) and as read."""

    state: str = "ALL"
    tags: tuple[str, ...] = ()
    name: str = ""
    user: str = ""
    slave: str = ""
    start: float | None = None
    end: float | None = None
    form: dict = dataclasses.field(default_factory=dict)

    @property
    def scans(self) -> bool:
        """Whether some filter is read here, not by the database."""
        return bool(self.name or self.user or self.slave)

    def matches(self, row: dict) -> bool:
        return ((not self.name or self.name.casefold() in row["name"].casefold())
                and (not self.user or row["user"] == self.user)
                and (not self.slave or row["slave"] == self.slave))

    def query(self, limit: int, after: tuple[float, int] | None) -> TaskQuery:
        states, deduped, failure = STATE_FILTERS[self.state]
        return TaskQuery(states=states, deduped=deduped, failure=failure, tags=self.tags,
                         start=self.start, end=self.end, limit=limit, after=after)


def parse_time(text: str, field: str) -> float | None:
    """Epoch seconds of ``2026-12-04``, ``2026-12-04 21:30`` (UTC) or a number of epoch seconds."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in TIME_FORMATS:
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    raise BadFilter(f"{field} must be a UTC time like 2026-12-04 21:30 (or epoch seconds), "
                    f"not {text[:40]!r}")


def parse_filter(values: Callable[[str], list[str]]) -> TaskFilter:
    """The filters of the query string (``values(name)``: every value of ``name``)."""
    def one(name: str) -> str:
        given = values(name)
        text = given[-1].strip() if given else ""
        if len(text) > MAX_FILTER_CHARS:
            raise BadFilter(f"{name} is longer than {MAX_FILTER_CHARS} characters")
        return text

    state = one("state") or "ALL"
    if state not in STATE_FILTERS:
        raise BadFilter(f"state must be one of {', '.join(STATE_FILTERS)}, not {state[:40]!r}")
    tags = tuple(t.strip() for t in values("tag") if t.strip())
    if len(tags) > MAX_TAG_FILTERS:
        raise BadFilter(f"at most {MAX_TAG_FILTERS} tags")
    for tag in tags:
        if ":" not in tag or len(tag) > MAX_FILTER_CHARS:
            raise BadFilter(f"a tag must be key:value, not {tag[:40]!r}")
    form = {"state": state, "tags": list(tags), "name": one("name"), "user": one("user"),
            "slave": one("slave"), "start": one("start"), "end": one("end")}
    return TaskFilter(state=state, tags=tags, name=form["name"], user=form["user"], slave=form["slave"],
                      start=parse_time(form["start"], "start"), end=parse_time(form["end"], "end"),
                      form=form)


@dataclasses.dataclass(frozen=True)
class ListPage:
    """A page of the list: its tasks, the cursor of the next page (None: the last page), how
    many tasks were read for it, and whether it ended at ``MAX_SCANNED`` before it was full."""

    tasks: list[dict]
    cursor: str | None
    scanned: int
    limited: bool = False


class TaskList:
    """Pages of the task list, newest first, with signed cursors (the Swarming API's kind)."""

    def __init__(self, db_tasks, cursors: CursorSigner | None = None):
        self.db = db_tasks
        self.cursors = cursors or CursorSigner()

    def position(self, cursor: str) -> tuple[float, int] | None:
        """The position of a cursor this list gave; BadFilter for any other."""
        if not cursor:
            return None
        try:
            position = self.cursors.check(_CURSOR_KIND, cursor)
        except Exception:
            raise BadFilter("cursor is not one this master gave (or it restarted since): "
                            "start from the first page") from None
        if not (isinstance(position, list) and len(position) == 2):
            raise BadFilter("cursor is malformed")
        return position[0], position[1]

    async def page(self, flt: TaskFilter, cursor: str = "", size: int = LIST_PAGE_SIZE) -> ListPage:
        """The page after ``cursor``."""
        after = self.position(cursor)
        if not flt.scans:
            rows = await self.db.list_tasks(flt.query(size + 1, after))
            more = len(rows) > size
            rows = rows[:size]
            return ListPage(rows, self._cursor(rows[-1]) if more else None, len(rows))
        found: list[dict] = []
        scanned = 0
        while True:
            batch = await self.db.list_tasks(flt.query(SCAN_BATCH, after))
            for index, row in enumerate(batch):
                scanned += 1
                if flt.matches(row):
                    found.append(row)
                    if len(found) == size:
                        more = index < len(batch) - 1 or len(batch) == SCAN_BATCH
                        return ListPage(found, self._cursor(row) if more else None, scanned)
            if len(batch) < SCAN_BATCH:
                return ListPage(found, None, scanned)
            after = (batch[-1]["created_at"], batch[-1]["request_id"])
            if scanned >= MAX_SCANNED:
                return ListPage(found, self._cursor(batch[-1]), scanned, limited=True)

    def _cursor(self, row: dict) -> str:
        return self.cursors.issue(_CURSOR_KIND, [row["created_at"], row["request_id"]])


def list_url(flt: TaskFilter, cursor: str | None = None) -> str:
    """The list's URL with the filters of ``flt`` (and a page's cursor)."""
    pairs = [(k, v) for k, v in flt.form.items() if k != "tags" and v and not (k == "state" and v == "ALL")]
    pairs += [("tag", t) for t in flt.tags]
    if cursor:
        pairs.append(("cursor", cursor))
    return "/tasks" + ("?" + urlencode(pairs) if pairs else "")


def task_row(row: dict, now: float) -> dict:
    """One row of the list (``list_tasks``' answer) as the template shows it."""
    return {"task_id": ids.summary_id(row["request_id"]), "name": row["name"], "user": row["user"],
            "state": row["state"], "state_class": state_class(row["state"], row.get("exit_code")),
            "exit_code": row.get("exit_code"), "slave": row.get("slave"), "created_at": row["created_at"],
            "duration": _duration(row, now), "deduped_from": row.get("deduped_from"),
            "twin_of": None if row.get("twin_of") is None else ids.summary_id(row["twin_of"]),
            "tags": row.get("tags", [])}


# -- one task ------------------------------------------------------------------------------

def parse_id(task_id: str) -> tuple[int, int]:
    """``(request id, try number)``; BadFilter for what is not a task id."""
    try:
        return ids.parse_task_id(task_id)
    except ids.BadTaskId as e:
        raise BadFilter(str(e)) from None


async def task_pool(db_tasks, task_id: str) -> str:
    """The pool of a task (its cancel scope's)."""
    request_id, _ = parse_id(task_id)
    stored = await db_tasks.get_request(request_id)
    if stored is None:
        raise NoSuchTask(f"There is no task {task_id}.")
    return records.request_of(stored).task_slices[0].properties.pool


async def shown_try(db_tasks, task_id: str) -> tuple[int, int, int]:
    """``(request id, try number of the id, the try its page shows)``: a run id shows its try,
    a summary id the task's last one (0: none yet).  NoSuchTask for an unknown task or try."""
    request_id, try_number = parse_id(task_id)
    result = await db_tasks.get_result(request_id)
    if result is None:
        raise NoSuchTask(f"There is no task {task_id}.")
    if not try_number:
        return request_id, 0, result.get("try_number") or 0
    if try_number > (result.get("try_number") or 0) or await db_tasks.get_run(request_id, try_number) is None:
        raise NoSuchTask(f"Task {ids.summary_id(request_id)} has no try {try_number}.")
    return request_id, try_number, try_number


def _slice_view(index: int, task_slice, current: int) -> dict:
    props = task_slice.properties
    inputs = None
    if props.inputs_ref is not None:
        ref = props.inputs_ref
        inputs = {"isolated": ref.isolated, "namespace": ref.namespace, "server": ref.isolatedserver,
                  "url": browse_url(ref.namespace, ref.isolated)}
    return {
        "index": index, "current": index == current, "expiration_secs": task_slice.expiration_secs,
        "wait_for_capacity": task_slice.wait_for_capacity,
        "dimensions": [f"{key}:{value}" for key, values in props.dimensions for value in values],
        "command": list(props.command), "extra_args": list(props.extra_args),
        "relative_cwd": props.relative_cwd, "env": list(props.env),
        "env_prefixes": [(key, list(paths)) for key, paths in props.env_prefixes],
        "inputs": inputs, "caches": [(c.name, c.path) for c in props.caches], "outputs": list(props.outputs),
        "execution_timeout_secs": props.execution_timeout_secs, "io_timeout_secs": props.io_timeout_secs,
        "grace_period_secs": props.grace_period_secs, "idempotent": props.idempotent,
        "secret_bytes": bool(props.secret_bytes),  # shown as "set", never their value
    }


def outputs_view(outputs_ref: dict | None) -> dict | None:
    if not outputs_ref or not outputs_ref.get("isolated"):
        return None
    namespace = outputs_ref.get("namespace") or "default-gzip"
    return {"isolated": outputs_ref["isolated"], "namespace": namespace,
            "url": browse_url(namespace, outputs_ref["isolated"])}


def _try_view(request_id: int, run: dict, now: float) -> dict:
    return {"try_number": run["try_number"], "run_id": ids.run_id(request_id, run["try_number"]),
            "state": run["state"], "state_class": state_class(run["state"], run.get("exit_code")),
            "exit_code": run.get("exit_code"), "slave": run.get("slave"), "slice_index": run["slice_index"],
            "started_at": run.get("started_at"), "completed_at": run.get("completed_at"),
            "duration": _duration(run, now), "outputs": outputs_view(run.get("outputs_ref")),
            "internal_failure": bool(run.get("internal_failure")), "stdout_size": run.get("stdout_size") or 0}


async def task_view(db_tasks, task_id: str, now: float) -> dict:
    """Everything the task page shows of ``task_id`` (a summary id, or a run id: that try)."""
    request_id, try_number = parse_id(task_id)
    stored = await db_tasks.get_request(request_id)
    result = await db_tasks.get_result(request_id) if stored is not None else None
    if stored is None or result is None:
        raise NoSuchTask(f"There is no task {task_id}.")
    tries = []
    for number in range(1, (result.get("try_number") or 0) + 1):
        run = await db_tasks.get_run(request_id, number)
        if run is not None:
            tries.append(_try_view(request_id, run, now))
    if try_number and not any(t["try_number"] == try_number for t in tries):
        raise NoSuchTask(f"Task {ids.summary_id(request_id)} has no try {try_number}.")
    shown = next((t for t in tries if t["try_number"] == try_number), None) if try_number else \
        (tries[-1] if tries else None)
    output, output_start = "", 0
    if shown is not None and shown["stdout_size"]:
        output_start = max(0, shown["stdout_size"] - OUTPUT_TAIL_BYTES)
        data = await db_tasks.get_output(request_id, shown["try_number"], output_start,
                                         shown["stdout_size"] - output_start)
        output = data.decode("utf-8", "replace")
        output_end = output_start + len(data)
    else:
        output_end = 0
    request = records.request_of(stored)
    summary_id = ids.summary_id(request_id)
    source = shown if try_number else result
    state = source["state"]
    return {
        "task_id": task_id, "summary_id": summary_id, "try_number": try_number,
        "name": stored["name"], "user": stored["user"], "priority": stored["priority"],
        "tags": stored["tags"], "request_uuid": stored["request_uuid"],
        "parent_task_id": stored["parent_task_id"], "created_at": stored["created_at"],
        "expiration_at": stored["expiration_at"],
        "slices": [_slice_view(i, s, result["current_slice"]) for i, s in enumerate(request.task_slices)],
        "pool": request.task_slices[0].properties.pool,
        "state": state, "state_class": state_class(state, source.get("exit_code")),
        "exit_code": source.get("exit_code"), "final": is_final(state),
        "summary_state": result["state"], "summary_final": is_final(result["state"]),
        "slave": source.get("slave"), "started_at": source.get("started_at"),
        "completed_at": source.get("completed_at"), "abandoned_at": result.get("abandoned_at"),
        "duration": _duration(source, now), "error": result.get("error"),
        "outputs": outputs_view(source.get("outputs_ref")),
        "deduped_from": result.get("deduped_from"),
        "twin_of": None if result.get("twin_of") is None else ids.summary_id(result["twin_of"]),
        "attached": [ids.summary_id(t) for t in await db_tasks.get_twins(request_id)],
        "answered": await answered_from(db_tasks, summary_id, stored["created_at"]),
        "tries": tries, "shown_try": shown["try_number"] if shown is not None else 0,
        "output": output, "output_start": output_start, "output_end": output_end,
    }


async def answered_from(db_tasks, summary_id: str, created_at: float) -> list[str]:
    """The tasks answered from ``summary_id`` (``deduped_from`` it: a finished twin reused, or
    an in-flight twin attached and ended with it); they were created after it.  At most
    ``MAX_DEDUPED_SCANNED`` deduplicated tasks are looked at."""
    rows = await db_tasks.list_tasks(TaskQuery(deduped=True, start=created_at, limit=MAX_DEDUPED_SCANNED))
    return [ids.summary_id(r["request_id"]) for r in reversed(rows) if r["deduped_from"] == summary_id]


class TaskOutputStream:
    """Writes one try's new output and the task's state as Server-Sent Events, polling the
    database every ``poll_s`` of the master's clock (task output is stored in chunks; nothing
    pushes it), until the task is over and all its output sent, or ``max_s`` passed.

    Events: ``state`` ``{state, state_class, exit_code}`` whenever it changes; ``output``
    ``{offset, text}`` (at most ``MAX_EVENT_BYTES`` a time; the ``id:`` is the byte offset
    after it, so a reconnecting ``EventSource`` resumes there); ``newtry`` ``{try_number}``
    when the task (followed by its summary id) started another try than the page shows;
    ``done`` ``{state, state_class, exit_code}`` at the end.
    """

    def __init__(self, db_tasks, clock: IReactorTime, request_id: int, try_number: int, follow_summary: bool,
                 offset: int, poll_s: float = POLL_S, max_s: float = MAX_STREAM_S):
        self.db = db_tasks
        self.clock = clock
        self.request_id = request_id
        self.try_number = try_number
        self.follow_summary = follow_summary
        self.offset = offset
        self.poll_s = poll_s
        self.max_s = max_s
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._state_sent: dict | None = None

    async def run(self, write: Callable[[bytes], None],
                  wait_until_wanted: Callable[[], Awaitable[None]] | None = None) -> None:
        started = last_write = self.clock.seconds()
        while True:
            result = await self.db.get_result(self.request_id)
            if result is None:
                return
            if self.follow_summary and (result.get("try_number") or 0) != self.try_number:
                write(sse_event("newtry", {"try_number": result.get("try_number") or 0}))
                return
            run = await self.db.get_run(self.request_id, self.try_number) if self.try_number else None
            source = result if self.follow_summary or run is None else run
            shown = {"state": source["state"], "exit_code": source.get("exit_code"),
                     "state_class": state_class(source["state"], source.get("exit_code"))}
            if shown != self._state_sent:
                self._state_sent = shown
                write(sse_event("state", shown))
            sent = await self._send_output(run, write)
            now = self.clock.seconds()
            if sent:
                last_write = now
                if wait_until_wanted is not None:
                    await wait_until_wanted()
                continue
            if is_final(source["state"]) and (run is None or is_final(run["state"])):
                tail = self._decoder.decode(b"", final=True)
                if tail:
                    write(sse_event("output", {"offset": self.offset, "text": tail}, str(self.offset)))
                write(sse_event("done", shown))
                return
            if now - started >= self.max_s:
                return
            if now - last_write >= KEEPALIVE_S:
                write(b": keepalive\n\n")
                last_write = now
            await task.deferLater(self.clock, self.poll_s, lambda: None)

    async def _send_output(self, run: dict | None, write: Callable[[bytes], None]) -> bool:
        if run is None or (run.get("stdout_size") or 0) <= self.offset:
            return False
        data = await self.db.get_output(self.request_id, self.try_number, self.offset, MAX_EVENT_BYTES)
        if not data:
            return False
        start = self.offset
        self.offset += len(data)
        text = self._decoder.decode(data)
        if text:
            write(sse_event("output", {"offset": start, "text": text}, str(self.offset)))
        return True


# -- the fleet by dimension ------------------------------------------------------------------

def parse_pairs(values: list[str], field: str = "dimension") -> list[tuple[str, str]]:
    """``key:value`` filters; BadFilter for anything else."""
    pairs = []
    for text in values[:MAX_TAG_FILTERS + 1]:
        text = text.strip()
        if not text:
            continue
        key, sep, value = text.partition(":")
        if not sep or not key or len(text) > MAX_FILTER_CHARS:
            raise BadFilter(f"a {field} filter must be key:value, not {text[:40]!r}")
        pairs.append((key, value))
    if len(pairs) > MAX_TAG_FILTERS:
        raise BadFilter(f"at most {MAX_TAG_FILTERS} {field} filters")
    return pairs


BOT_STATE_CLASSES = {"dead": "state-lost", "quarantined": "result-exception", "maintenance": "state-disabled",
                     "busy": "state-busy", "idle": "state-idle"}


async def fleet_view(master, key: str, wanted: list[tuple[str, str]]) -> dict:
    """The bots with every ``wanted`` pair, grouped by their values of ``key``."""
    bots = await master.db.tasks.get_bots()
    keys = sorted({k for bot in bots for k in bot["dimensions"]})
    chosen = [b for b in bots if all(value in b["dimensions"].get(k, []) for k, value in wanted)]
    shown = []
    for bot, state in await bots_with_states(master, chosen):
        task_id = bot.get("task_id")
        shown.append({"name": bot["name"], "state": state, "state_class": BOT_STATE_CLASSES[state],
                      "task_id": task_id if state != "dead" else None,
                      "quarantined": bot.get("quarantined"), "maintenance": bot.get("maintenance"),
                      "version": bot.get("version"), "last_seen_at": bot.get("last_seen_at"),
                      "dimensions": sorted((k, list(v)) for k, v in bot["dimensions"].items())})
    groups: dict[str, list[dict]] = {}
    for bot in shown:
        by_name = dict(bot["dimensions"])
        for value in by_name.get(key) or [NO_VALUE]:
            groups.setdefault(value, []).append(bot)
    ordered = sorted(groups.items(), key=lambda item: (item[0] == NO_VALUE, item[0]))
    counts: dict[str, int] = {}
    for bot in shown:
        counts[bot["state"]] = counts.get(bot["state"], 0) + 1
    return {"key": key, "dimension_keys": keys, "groups": ordered, "bots": shown,
            "counts": sorted(counts.items()), "wanted": [f"{k}:{v}" for k, v in wanted],
            "chart": bots_chart(ordered)}


# The bots chart: a bar per value of the chosen dimension, split by state; each state's fill
# a colour *and* a pattern of _patterns.html, so states differ without telling colours apart.
BOT_STATE_FILLS = (("idle", "success"), ("busy", "running"), ("maintenance", "skipped"),
                   ("quarantined", "exception"), ("dead", "failure"))
BOTS_CHART_WIDTH = 600
BOTS_CHART_LEFT = 140  # room for the values' labels
BOTS_CHART_RIGHT = 40  # room for each bar's total
BOTS_BAR_HEIGHT = 18
BOTS_BAR_GAP = 6
MAX_CHART_GROUPS = 40  # values drawn; the JSON twin and the table below have them all
GROUP_LABEL_CHARS = 20


def bot_state_counts(groups: list[tuple[str, list[dict]]]) -> list[dict]:
    """``[{value, total, states: {state: n}}]`` of each group (the chart's and the JSON's figures)."""
    found = []
    for value, bots in groups:
        states = dict.fromkeys((state for state, _ in BOT_STATE_FILLS), 0)
        for bot in bots:
            states[bot["state"]] = states.get(bot["state"], 0) + 1
        found.append({"value": value, "total": len(bots), "states": states})
    return found


def bots_chart(groups: list[tuple[str, list[dict]]]) -> dict:
    """The geometry of the bots chart (viewBox units) for ``fleet_view``'s groups."""
    counted = bot_state_counts(groups)[:MAX_CHART_GROUPS]
    most = max((g["total"] for g in counted), default=0)
    plot_w = BOTS_CHART_WIDTH - BOTS_CHART_LEFT - BOTS_CHART_RIGHT
    drawn = []
    for i, group in enumerate(counted):
        x = float(BOTS_CHART_LEFT)
        bars = []
        for state, fill in BOT_STATE_FILLS:
            count = group["states"][state]
            if count:
                width = round(count / most * plot_w, 1)
                bars.append({"state": state, "fill": fill, "count": count, "x": round(x, 1), "width": width})
                x += width
        value = group["value"]
        label = value if len(value) <= GROUP_LABEL_CHARS else value[:GROUP_LABEL_CHARS - 1] + "\u2026"
        drawn.append({"value": group["value"], "label": label, "total": group["total"], "bars": bars,
                      "y": BOTS_BAR_GAP + i * (BOTS_BAR_HEIGHT + BOTS_BAR_GAP), "height": BOTS_BAR_HEIGHT,
                      "end": round(x, 1)})
    height = BOTS_BAR_GAP + max(len(drawn), 1) * (BOTS_BAR_HEIGHT + BOTS_BAR_GAP)
    return {"width": BOTS_CHART_WIDTH, "height": height, "left": BOTS_CHART_LEFT, "groups": drawn,
            "states": BOT_STATE_FILLS, "omitted": max(0, len(groups) - MAX_CHART_GROUPS)}


async def slave_tasks(db_tasks, name: str) -> tuple[dict | None, list[dict]]:
    """A slave's bot row (its dimensions) and the tries it ran most recently."""
    bot = await db_tasks.get_bot(name)
    runs = await db_tasks.runs_of_bot(name, RECENT_TASKS_ON_SLAVE)
    tries = [{"run_id": ids.run_id(r["request_id"], r["try_number"]), "name": r["name"], "user": r["user"],
              "state": r["state"], "state_class": state_class(r["state"], r.get("exit_code")),
              "exit_code": r.get("exit_code"), "started_at": r.get("started_at"),
              "duration": r.get("duration")}
             for r in runs]
    dimensions = sorted((k, list(v)) for k, v in bot["dimensions"].items()) if bot is not None else []
    return ({**bot, "dimensions": dimensions} if bot is not None else None), tries
