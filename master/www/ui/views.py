"""The grid, console and waterfall views (docs/ui.md "Views"), their JSON twins' data, and
their live events.

The routes are in app.py (pages) and api.py (``/api/v1/views/...``); this module parses their
filters, reads ``db.views`` and shapes what the templates and the JSON show, the same dicts
for both.

Live updates go through one seam, ``ViewFeed``: every open ``/views/events`` stream of a
master listens to it, and it alone knows where events come from: the event bus
(``master.mq``: build-started, build-finished, change-added), and, only while another master
shares the database, a fallback poll of the newest change id.  ``TrendsCache`` drops a
builder's trends when one of its builds finishes (build-finished on the bus).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from buildfarm.common.results import RESULT_NAMES
from buildfarm.master.db.views import GridRows
from buildfarm.master.mq.exchanges import (
    BUILD_FINISHED,
    BUILD_STARTED,
    BUILDFARM_EXCHANGES,
    CHANGE_ADDED,
    Message,
)
from buildfarm.master.samples import SAMPLE_INTERVAL_S
from buildfarm.master.tasks.botstates import BOT_STATES
from buildfarm.master.www.ui.format import duration, result_class, result_label
from buildfarm.master.www.ui.logstream import KEEPALIVE_S, MAX_STREAM_S, sse_event  # noqa: F401 - app.py's
from buildfarm.master.www.ui.taskpages import BadFilter, parse_time

log = Logger()

DEFAULT_CHANGES = 25
MAX_CHANGES = 100
MAX_FILTER_CHARS = 256
MAX_BUILDER_FILTERS = 100
COMMENT_LINE_CHARS = 80  # of a change's first comment line on the grid
REVISION_CHARS = 12
UNTAGGED = "(untagged)"
FALLBACK_POLL_S = 10.0  # the newest change, read only while another master is active
MAX_QUEUED_EVENTS = 256  # per stream; a client further behind is told to refresh
# A shape for each result, beside its colour: readable without telling colours apart.
RESULT_SYMBOLS = {"success": "\u2714", "warnings": "!", "failure": "\u2716", "skipped": "\u21b7",
                  "exception": "\u26a0", "retry": "\u21bb", "cancelled": "\u2298", "running": "\u25b6",
                  "pending": "\u2026"}
assert set(RESULT_NAMES) <= set(RESULT_SYMBOLS)


class BadViewFilter(ValueError):
    """A view's query parameter cannot be read: ``field`` names it."""

    def __init__(self, field_name: str, message: str):
        super().__init__(f"{field_name} {message}")
        self.field = field_name


# -- grid and console --------------------------------------------------------------------------

@dataclass(frozen=True)
class GridFilter:
    """What a grid shows: ``changes`` changes from ``offset`` (newest first), of ``branch``;
    the builders named in ``builders`` and holding one of ``tags`` (each empty: all)."""

    branch: str | None = None
    tags: tuple[str, ...] = ()
    builders: tuple[str, ...] = ()
    changes: int = DEFAULT_CHANGES
    offset: int = 0

    def query(self, count_name: str = "changes", **override) -> str:
        """This filter as a query string (``override`` replaces fields; the count is named
        ``count_name``, and left out of a page's URL when it is the default)."""
        values = {**self.__dict__, **override}
        pairs = [("branch", values["branch"])] if values["branch"] is not None else []
        pairs += [("tag", t) for t in values["tags"]] + [("builder", b) for b in values["builders"]]
        if values["changes"] != DEFAULT_CHANGES or count_name != "changes":
            pairs.append((count_name, str(values["changes"])))
        if values["offset"]:
            pairs.append(("offset", str(values["offset"])))
        return urlencode(pairs)


def parse_grid_filter(values_of: Callable[[str], list[str]], count_name: str = "changes") -> GridFilter:
    """The filter of ``?branch=&tag=&builder=&changes=&offset=`` (``values_of(name)``: every
    value given; the JSON twin names the count ``limit``)."""
    branch = _last(values_of("branch"))
    tags = tuple(dict.fromkeys(_text("tag", t) for t in values_of("tag") if t))
    names = tuple(dict.fromkeys(_text("builder", b) for b in values_of("builder") if b))
    if len(tags) > MAX_BUILDER_FILTERS or len(names) > MAX_BUILDER_FILTERS:
        raise BadViewFilter("builder", f"and tag take at most {MAX_BUILDER_FILTERS} values each")
    return GridFilter(branch=_text("branch", branch) if branch else None, tags=tags, builders=names,
                      changes=_int(values_of, count_name, DEFAULT_CHANGES, 1, MAX_CHANGES),
                      offset=_int(values_of, "offset", 0, 0, 10**9))


def grid_builders(builders: dict, flt: GridFilter) -> list[dict]:
    """The configured builders the filter keeps, by name: ``{name, tags}``."""
    chosen = []
    for name in sorted(builders):
        tags = list(builders[name].config.tags or [])
        if flt.builders and name not in flt.builders:
            continue
        if flt.tags and not set(tags) & set(flt.tags):
            continue
        chosen.append({"name": name, "tags": tags})
    return chosen


def tag_groups(columns: list[dict]) -> list[dict]:
    """The console's builder groups: ``{tag, builders}`` by each builder's first tag (the
    untagged last), in the order of the columns regrouped."""
    groups: dict[str, list[dict]] = {}
    for column in columns:
        groups.setdefault(column["tags"][0] if column["tags"] else UNTAGGED, []).append(column)
    order = sorted(groups, key=lambda tag: (tag == UNTAGGED, tag))
    return [{"tag": tag, "builders": groups[tag]} for tag in order]


def cell(row: dict) -> dict:
    """What a grid cell shows of one request or build: ``state`` (a result name, ``running``
    or ``pending``), its symbol, label and link."""
    if row.get("buildid") is None:
        done = row["request_complete"]
        state = result_label(row["request_results"], done) if done else "pending"
        return {"buildid": None, "buildrequestid": row["buildrequestid"], "number": None, "state": state,
                "css": result_class(row["request_results"], done) if done else "result-pending",
                "symbol": RESULT_SYMBOLS.get(state, "?"),
                "label": f"request {row['buildrequestid']} {state}",
                "title": f"request {row['buildrequestid']} {state}",
                "url": f"/builders/{quote(row['buildername'])}", "slavename": None,
                "results": row["request_results"], "complete": bool(done)}
    state = result_label(row["results"], row["complete"])
    label = f"#{row['number']} {state}"
    return {"buildid": row["buildid"], "buildrequestid": row.get("buildrequestid"), "number": row["number"],
            "state": state, "css": result_class(row["results"], row["complete"]),
            "symbol": RESULT_SYMBOLS.get(state, "?"), "label": label,
            "title": f"{label} on {row['slavename']}",
            "url": f"/builds/{row['buildid']}", "slavename": row["slavename"], "results": row["results"],
            "complete": row["complete"]}


def grid_rows(found: GridRows, columns: list[dict]) -> list[dict]:
    """Each change with its cells by builder name (``builds``: ``{name: [cell, ...]}``)."""
    names = {column["name"] for column in columns}
    by_change: dict[int, dict[str, list[dict]]] = {}
    for row in found.cells:
        if row["buildername"] in names:
            by_change.setdefault(row["changeid"], {}).setdefault(row["buildername"], []).append(cell(row))
    rows = []
    for change in found.changes:
        comments = change["comments"] or ""
        first_line = comments.strip().splitlines()[0] if comments.strip() else ""
        revision = change["revision"] or ""
        rows.append({**change, "revision_short": revision[:REVISION_CHARS],
                     "summary": first_line if len(first_line) <= COMMENT_LINE_CHARS
                     else first_line[:COMMENT_LINE_CHARS - 1] + "\u2026",
                     "builds": by_change.get(change["changeid"], {})})
    return rows


async def grid_view(db, builders: dict, flt: GridFilter) -> dict:
    """The grid (and console) of ``flt``: ``columns`` (builders), ``groups`` (by tag),
    ``rows`` (changes with their cells) and ``total`` (changes over all pages)."""
    columns = grid_builders(builders, flt)
    found = await db.views.grid(flt.changes, flt.offset, flt.branch, [c["name"] for c in columns])
    return {"columns": columns, "groups": tag_groups(columns), "rows": grid_rows(found, columns),
            "total": found.total, "filter": flt}


def grid_json(view: dict) -> dict:
    """The JSON twin's body (without ``meta``): the same rows as the page."""
    return {"builders": view["columns"],
            "changes": [{key: row[key] for key in ("changeid", "revision", "author", "committer", "comments",
                                                   "branch", "repository", "project", "codebase",
                                                   "when_timestamp", "builds")}
                        for row in view["rows"]]}


# -- waterfall ----------------------------------------------------------------------------------

WATERFALL_PRESETS = {"1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600}
DEFAULT_PRESET = "6h"
MAX_RANGE_S = 31 * 86400
LATEST_TIME = 253402300799.0  # 9999-12-31T23:59:59Z
# The SVG's drawing: a gutter of builder names, then the time axis, in viewBox units.
SVG_WIDTH = 1000
GUTTER = 130
AXIS_HEIGHT = 24
TRACK_HEIGHT = 22
LANE_GAP = 6
LABEL_MIN_WIDTH = 60  # a bar narrower than this carries its symbol only, its label beside it
MIN_BAR_WIDTH = 3.0
SYMBOL_MIN_WIDTH = 14  # narrower: the symbol goes with the label beside the bar
OUT_LABEL_WIDTH = 70
TICK_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600,
                12 * 3600, 86400, 2 * 86400,
                7 * 86400)
MAX_TICKS = 10


@dataclass(frozen=True)
class WaterfallFilter:
    """A time range ``[start, end]`` (``preset``: which of the presets it is, if one) and the
    builders of the grid's filter."""

    start: float
    end: float
    preset: str | None
    grid: GridFilter

    def query(self, **override) -> str:
        values = {"from": _iso(self.start), "to": _iso(self.end), **override}
        pairs = [(k, v) for k, v in values.items() if v is not None]
        pairs += [("tag", t) for t in self.grid.tags] + [("builder", b) for b in self.grid.builders]
        return urlencode(pairs)


def parse_waterfall_filter(values_of: Callable[[str], list[str]], now: float) -> WaterfallFilter:
    """``?range=1h|6h|24h`` (the last hour ... day), or ``?from=&to=`` (UTC times such as
    ``2026-12-04 21:30``, or epoch seconds; ``to`` defaults to now, ``from`` to the default
    preset's length before ``to``), with the grid's ``tag`` and ``builder``."""
    grid = parse_grid_filter(values_of)
    preset = _last(values_of("range"))
    if preset:
        if preset not in WATERFALL_PRESETS:
            choices = ", ".join(WATERFALL_PRESETS)
            raise BadViewFilter("range", f"must be one of {choices}, not {preset[:40]!r}")
        return WaterfallFilter(now - WATERFALL_PRESETS[preset], now, preset, grid)
    end = _time(values_of, "to", now)
    start = _time(values_of, "from", end - WATERFALL_PRESETS[DEFAULT_PRESET])
    if start >= end:
        raise BadViewFilter("from", "must be before to")
    if end - start > MAX_RANGE_S:
        raise BadViewFilter("from", f"must be at most {MAX_RANGE_S // 86400} days before to")
    given = _last(values_of("from")) or _last(values_of("to"))
    return WaterfallFilter(start, end, None if given else DEFAULT_PRESET, grid)


async def waterfall_view(db, builders: dict, flt: WaterfallFilter, now: float) -> dict:
    """The waterfall of ``flt``: each builder a lane of bars (``lanes``), the time axis's
    ``ticks``, the SVG's ``height``, the presets' links and whether builds were left out."""
    columns = grid_builders(builders, flt.grid)
    found, cut = await db.views.builds_between(flt.start, flt.end, [c["name"] for c in columns])
    lanes = waterfall_lanes(columns, found, flt.start, flt.end, now)
    height = AXIS_HEIGHT + sum(lane["height"] + LANE_GAP for lane in lanes)
    return {"filter": flt, "lanes": lanes, "ticks": axis_ticks(flt.start, flt.end), "height": max(height, 60),
            "width": SVG_WIDTH, "gutter": GUTTER, "axis": AXIS_HEIGHT, "truncated": cut,
            "builds": sum(len(lane["bars"]) for lane in lanes),
            "slaves": sorted({b["slavename"] for b in found}),
            "presets": [{"name": name, "query": urlencode([("range", name)] + [
                ("tag", t) for t in flt.grid.tags] + [("builder", b) for b in flt.grid.builders])}
                for name in WATERFALL_PRESETS]}


def waterfall_lanes(columns: list[dict], found: list[dict], start: float, end: float,
                    now: float) -> list[dict]:
    """One lane per builder: its builds as bars (x and width in viewBox units; overlapping
    builds on tracks of their own), each with its cell's state, symbol, colour and link."""
    scale = (SVG_WIDTH - GUTTER) / (end - start)
    by_builder: dict[str, list[dict]] = {}
    for build in found:
        by_builder.setdefault(build["buildername"], []).append(build)
    lanes, y = [], AXIS_HEIGHT
    for column in columns:
        tracks: list[float] = []  # where each track's last bar ends
        bars = []
        for build in by_builder.get(column["name"], []):
            finish = build["complete_at"] if build["complete"] else now
            left, right = max(build["started_at"], start), min(max(finish, build["started_at"]), end)
            track = next((i for i, busy_until in enumerate(tracks) if busy_until <= left), len(tracks))
            if track == len(tracks):
                tracks.append(right)
            tracks[track] = right
            shown = cell(build)
            width = max((right - left) * scale, MIN_BAR_WIDTH)
            x = min(GUTTER + (left - start) * scale, SVG_WIDTH - width)
            near_end = x + width + OUT_LABEL_WIDTH > SVG_WIDTH  # the label goes before the bar
            bars.append({**shown, "x": round(x, 1), "width": round(width, 1), "track": track,
                         "started_at": build["started_at"], "complete_at": build["complete_at"],
                         "duration": finish - build["started_at"], "text_x": round(x + 3, 1),
                         # a narrow bar holds its symbol; its slave and number follow it
                         "label_outside": width < LABEL_MIN_WIDTH, "symbol_inside": width >= SYMBOL_MIN_WIDTH,
                         "out_x": round(x - 3 if near_end else x + width + 3, 1),
                         "out_anchor": "end" if near_end else "start"})
        height = max(len(tracks), 1) * TRACK_HEIGHT
        for bar in bars:
            bar["y"] = y + bar["track"] * TRACK_HEIGHT + 2
            bar["height"] = TRACK_HEIGHT - 4
            bar["text_y"] = bar["y"] + bar["height"] - 5
        lanes.append({"name": column["name"], "tags": column["tags"], "y": y, "height": height,
                      "label_y": y + min(height, TRACK_HEIGHT) - 7, "bars": bars})
        y += height + LANE_GAP
    return lanes


def axis_ticks(start: float, end: float) -> list[dict]:
    """Round times along the axis (at most ``MAX_TICKS``): ``{x, label}``."""
    span = end - start
    step = next((s for s in TICK_STEPS_S if span / s <= MAX_TICKS), TICK_STEPS_S[-1])
    scale = (SVG_WIDTH - GUTTER) / span
    first = (int(start) // step + 1) * step
    fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%m-%d"
    if span > 86400 and step < 86400:
        fmt = "%m-%d %H:%M"
    return [{"x": round(GUTTER + (t - start) * scale, 1), "label": time.strftime(fmt, time.gmtime(t))}
            for t in range(first, int(end) + 1, step)]


def waterfall_json(view: dict, page_limit: int, offset: int) -> tuple[dict, int]:
    """The JSON twin's body: the range and each builder's builds (one page of them, counted
    across lanes in lane order); the total of builds."""
    builds = [(lane["name"], bar) for lane in view["lanes"] for bar in lane["bars"]]
    shown = builds[offset:offset + page_limit]
    lanes: dict[str, list[dict]] = {lane["name"]: [] for lane in view["lanes"]}
    for name, bar in shown:
        lanes[name].append({key: bar[key] for key in ("buildid", "number", "slavename", "state", "results",
                                                     "started_at", "complete_at", "url")})
    flt = view["filter"]
    return {"from": flt.start, "to": flt.end, "truncated": view["truncated"],
            "builders": [{"name": lane["name"], "tags": lane["tags"], "builds": lanes[lane["name"]]}
                         for lane in view["lanes"]]}, len(builds)


# -- trends per builder ---------------------------------------------------------------------------

TREND_DAYS = 30
TRENDS_CACHE_S = 60.0  # a builder's trends are read at most this often, whoever looks
MAX_CACHED_TRENDS = 1000
CHART_WIDTH = 600
CHART_HEIGHT = 180
CHART_LEFT = 56  # room for the y axis's labels
CHART_BOTTOM = 22
CHART_TOP = 10
CHART_RIGHT = 8
Y_TICKS = 4
X_LABEL_EVERY_DAYS = 7
PRECISE_BELOW_S = 10


class ViewCache:
    """Values read at most once per ``ttl_s`` for each key, however many viewers ask; viewers
    asking while one is read share that read.  ``forget(key)`` drops a value; a read under way
    when it is forgotten serves its waiting viewers but is not kept."""

    def __init__(self, clock: IReactorTime, ttl_s: float, max_entries: int = MAX_CACHED_TRENDS):
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._cached: dict[object, tuple[float, dict]] = {}
        self._reading: dict[object, list[defer.Deferred]] = {}
        self._stale: set[object] = set()  # keys whose read under way began before they were forgotten

    def forget(self, key) -> None:
        """Drop ``key``'s value: the next ``get`` reads it again."""
        self._cached.pop(key, None)
        if key in self._reading:
            self._stale.add(key)

    def forget_all(self) -> None:
        """Drop every value."""
        for key in {*self._cached, *self._reading}:
            self.forget(key)

    async def get(self, key, read: Callable[[float], Awaitable[dict]]) -> dict:
        """``key``'s value: cached, or ``await read(now)``."""
        now = self.clock.seconds()
        cached = self._cached.get(key)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        if key in self._reading:
            waiter: defer.Deferred = defer.Deferred()
            self._reading[key].append(waiter)
            return await waiter
        self._reading[key] = []
        try:
            value = await read(now)
        except Exception:
            self._stale.discard(key)
            for waiter in self._reading.pop(key):
                waiter.errback()
            raise
        if len(self._cached) >= self.max_entries:
            del self._cached[min(self._cached, key=lambda k: self._cached[k][0])]
        if key in self._stale:  # read before it was forgotten: not kept
            self._stale.discard(key)
        else:
            self._cached[key] = (now, value)
        for waiter in self._reading.pop(key):
            waiter.callback(value)
        return value


class TrendsCache:
    """Each builder's trends (``db.views.builder_trends`` of the last ``TREND_DAYS`` days),
    read at most once per ``ttl_s`` however many viewers ask (a ``ViewCache``), and read again
    once a build of the builder finishes (build-finished on the bus)."""

    def __init__(self, db, clock: IReactorTime, ttl_s: float = TRENDS_CACHE_S, mq=None):
        self.db = db
        self._cache = ViewCache(clock, ttl_s)
        if mq is not None:  # for the life of the master, as the cache
            mq.subscribe(mq.exchange_name(BUILDFARM_EXCHANGES, BUILD_FINISHED), "#", self.on_build_finished)

    def on_build_finished(self, message: Message) -> None:
        builderid = message.payload.get("builderId")
        if isinstance(builderid, int):
            self.forget(builderid)

    def forget(self, builderid: int) -> None:
        """Drop ``builderid``'s trends: the next ``get`` reads them again."""
        self._cache.forget(builderid)

    async def get(self, builderid: int) -> dict:
        """The trends of ``builderid``: its ``days`` and ``steps``, ``from``, ``to`` and
        ``computed_at``."""
        return await self._cache.get(builderid, lambda now: self._read(builderid, now))

    async def _read(self, builderid: int, now: float) -> dict:
        found = await self.db.views.builder_trends(builderid, now, TREND_DAYS)
        return {"from": found["first_day"], "to": now, "computed_at": now, "builds": found["builds"],
                "days": found["days"], "steps": found["steps"]}


def trend_charts(trends: dict) -> dict:
    """The SVG geometry of a builder's charts (viewBox units): ``duration`` (p50 and p90
    lines), ``success`` (a bar per day), ``queue`` (wait and running time stacked per day)."""
    days = trends["days"]
    slot = (CHART_WIDTH - CHART_LEFT - CHART_RIGHT) / max(len(days), 1)
    xs = [CHART_LEFT + slot * (i + 0.5) for i in range(len(days))]
    x_ticks = [{"x": round(x, 1), "label": time.strftime("%m-%d", time.gmtime(day["day"]))}
               for i, (x, day) in enumerate(zip(xs, days, strict=True))
               if (len(days) - 1 - i) % X_LABEL_EVERY_DAYS == 0]
    frame = {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT,
             "right": CHART_WIDTH - CHART_RIGHT,
             "top": CHART_TOP, "bottom": CHART_HEIGHT - CHART_BOTTOM, "x_ticks": x_ticks}
    top = _nice_ceiling(max((d["duration_p90"] or 0 for d in days), default=0))
    duration = {**frame, "y_ticks": _y_ticks(top, duration_label),
                "series": [_line(days, xs, key, top, css, marker, label) for key, css, marker, label in (
                    ("duration_p50", "p50", "circle", "p50"), ("duration_p90", "p90", "square", "p90"))]}
    success = {**frame, "y_ticks": _y_ticks(1.0, lambda v: f"{v:.0%}"),
               "bars": [{"x": round(x - slot * 0.35, 1), "width": round(slot * 0.7, 1),
                         **_bar_span(d["success_rate"], 0.0, 1.0), "day": d["day"],
                         "title": f"{_day(d['day'])}: {d['succeeded']} of {d['builds']} succeeded"}
                        for x, d in zip(xs, days, strict=True) if d["success_rate"] is not None]}
    queue_top = _nice_ceiling(max(((d["wait_p50"] or 0) + (d["running_p50"] or 0) for d in days), default=0))
    queue = {**frame, "y_ticks": _y_ticks(queue_top, duration_label), "bars": []}
    for x, d in zip(xs, days, strict=True):
        if not d["builds"]:
            continue
        wait, running = d["wait_p50"] or 0.0, d["running_p50"] or 0.0
        title = f"{_day(d['day'])}: waited {duration_label(wait)}, ran {duration_label(running)} (medians)"
        queue["bars"].append({"x": round(x - slot * 0.35, 1), "width": round(slot * 0.7, 1), "title": title,
                              "wait": _bar_span(wait, 0.0, queue_top),
                              "running": _bar_span(running, wait, queue_top)})
    return {"duration": duration, "success": success, "queue": queue}


def duration_label(seconds: float) -> str:
    """A duration on a chart: hundredths of a second under one, tenths under ``PRECISE_BELOW_S``."""
    if seconds < 1:
        return f"{seconds:.2f}s"
    return f"{seconds:.1f}s" if seconds < PRECISE_BELOW_S else duration(seconds)


def trends_json(name: str, trends: dict) -> dict:
    return {"builder": name, **trends}


def _line(days: list[dict], xs: list[float], key: str, top: float, css: str, marker: str, label: str) -> dict:
    points = [{"x": round(x, 1), "y": _y(d[key], top), "value": d[key], "day": d["day"],
               "title": f"{_day(d['day'])}: {label} {duration_label(d[key])} ({d['builds']} builds)"}
              for x, d in zip(xs, days, strict=True) if d[key] is not None]
    path, previous = [], None
    for point, d in ((p, p["day"]) for p in points):
        joined = previous is not None and d - previous == 86400  # a day without builds breaks the line
        path.append(f"{'L' if joined else 'M'}{point['x']},{point['y']}")
        previous = d
    return {"key": key, "css": css, "marker": marker, "label": label, "points": points,
            "path": " ".join(path)}


def _y(value: float, top: float) -> float:
    plot = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    return round(CHART_HEIGHT - CHART_BOTTOM - (value / top if top else 0) * plot, 1)


def _bar_span(value: float, base: float, top: float) -> dict:
    """``y`` and ``height`` of a bar from ``base`` to ``base + value``."""
    upper, lower = _y(base + value, top), _y(base, top)
    return {"y": upper, "height": round(max(lower - upper, 0.0), 1)}


def _y_ticks(top: float, label: Callable[[float], str]) -> list[dict]:
    return [{"y": _y(top * i / Y_TICKS, top), "label": label(top * i / Y_TICKS)} for i in range(Y_TICKS + 1)]


def _nice_ceiling(value: float) -> float:
    """A round number at least ``value`` (1, 2, 5 times a power of ten; 1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _count_ceiling(value: float) -> float:
    """A round top for counts whose ``Y_TICKS`` ticks are whole numbers."""
    if value <= Y_TICKS:
        return float(Y_TICKS)
    return float(max(Y_TICKS, _nice_ceiling(value / Y_TICKS) * Y_TICKS))


def _day(epoch: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(epoch))


# -- the fleet and the queue over time (the overview) -----------------------------------------------

FLEET_HOURS = 24
ACTIONS_DAYS = 7
MAX_LINE_POINTS = 288  # a day's minutes drawn as the last value of each 5 minutes
SLAVE_STATE_STYLES = (("idle", "solid"), ("busy", "dash"), ("disabled", "dot"), ("lost", "dashdot"),
                      ("never_seen", "longdash"))
# Quarantine is a bot's flag (master/tasks/botstates.py), drawn with the slaves' states: a
# quarantined slave is also idle, busy, ... there.
QUARANTINED = "bots.quarantined"
ACTION_OUTCOMES = ("success", "failure", "running", "pending")


async def fleet_view(db, now: float) -> dict:
    """The overview's charts over time, from ``db.samples`` (master/samples.py): slaves by
    state and the queue over ``FLEET_HOURS``, SlaveAPI actions by outcome per day over
    ``ACTIONS_DAYS``; ``series`` holds the values behind them (the JSON twin)."""
    start = now - FLEET_HOURS * 3600
    slaves = await db.samples.series("slaves.", start)
    slaves[QUARANTINED] = (await db.samples.series(QUARANTINED, start)).get(QUARANTINED, [])
    queue = await db.samples.series("queue.", start)
    days_start = (int(now) // 86400 - ACTIONS_DAYS + 1) * 86400
    hourly = await db.samples.series("slaveapi.", days_start, 3600)
    recent = await db.samples.series("slaveapi.", max((int(now) // 3600) * 3600, days_start))
    per_day = {day: dict.fromkeys(ACTION_OUTCOMES, 0.0) for day in range(days_start, int(now) + 1, 86400)}
    for rows in (hourly, recent):
        for name, points in rows.items():
            outcome = name.split(".", 1)[1]
            for at, value in points:
                day = int(at) // 86400 * 86400
                if day in per_day and outcome in per_day[day]:
                    per_day[day][outcome] += value
    styles = {f"slaves.{state}": style for state, style in SLAVE_STATE_STYLES}
    styles.update({QUARANTINED: "rounddot", "queue.pending": "solid", "queue.oldest_wait_s": "dash"})
    count = "{:.0f}".format
    slave_lines = {name: slaves.get(name, []) for name in styles if name.startswith(("slaves.", QUARANTINED))}
    charts = {
        "slaves": _time_lines(slave_lines, start, now, count, styles, counts=True),
        "pending": _time_lines({"queue.pending": queue.get("queue.pending", [])}, start, now, count, styles,
                               counts=True),
        "oldest_wait": _time_lines({"queue.oldest_wait_s": queue.get("queue.oldest_wait_s", [])}, start, now,
                                   duration_label, styles),
        "actions": _day_stacks(per_day),
    }
    return {"from": start, "to": now, "charts": charts, "series": {**slaves, **queue},
            "actions_per_day": [{"day": day, **counts} for day, counts in per_day.items()]}


TASK_STATE_STYLES = (("pending", "longdash"), ("running", "dash"), ("completed", "solid"),
                     ("failed", "dashdot"))
BOT_STATE_STYLES = (("idle", "solid"), ("busy", "dash"), ("maintenance", "dot"), ("quarantined", "dashdot"),
                    ("dead", "longdash"))
assert tuple(state for state, _ in BOT_STATE_STYLES) == BOT_STATES


async def tasks_view(db, now: float) -> dict:
    """Tasks by state over ``FLEET_HOURS`` from ``db.samples`` (master/samples.py): pending and
    running at each minute, completed and failed that ended in it; ``series`` (the JSON twin)."""
    return await _sampled_lines(db, "tasks.", TASK_STATE_STYLES, now)


async def bot_states_view(db, now: float) -> dict:
    """Bots by state (master/tasks/botstates.py) at each minute over ``FLEET_HOURS``, from
    ``db.samples`` (master/samples.py); ``series`` (the JSON twin)."""
    return await _sampled_lines(db, "bots.", BOT_STATE_STYLES, now)


async def _sampled_lines(db, prefix: str, state_styles: tuple[tuple[str, str], ...], now: float) -> dict:
    """A line per state of the ``prefix`` series over ``FLEET_HOURS``."""
    start = now - FLEET_HOURS * 3600
    found = await db.samples.series(prefix, start)
    styles = {f"{prefix}{state}": style for state, style in state_styles}
    series = {name: found.get(name, []) for name in styles}
    return {"from": start, "to": now, "series": series,
            "chart": _time_lines(series, start, now, "{:.0f}".format, styles, counts=True)}


CHARTS_CACHE_S = SAMPLE_INTERVAL_S  # the samples change once a minute: so may the charts


class SampledCharts:
    """The charts drawn from the master's samples (the overview's fleet, /tasks, /bots), each
    read at most once per sampling minute however many viewers ask (a ``ViewCache``): the
    samples behind them change once a minute, not with each task or build event.  A sample
    this master records (``sampler``) drops them at once; ``ttl_s`` bounds how late another
    master's samples show."""

    def __init__(self, db, clock: IReactorTime, sampler=None, ttl_s: float = CHARTS_CACHE_S):
        self.db = db
        self._cache = ViewCache(clock, ttl_s)
        if sampler is not None:  # for the life of the master, as the cache
            sampler.subscribe(lambda at: self._cache.forget_all())

    async def fleet(self) -> dict:
        """``fleet_view``, cached."""
        return await self._cache.get("fleet", lambda now: fleet_view(self.db, now))

    async def tasks(self) -> dict:
        """``tasks_view``, cached."""
        return await self._cache.get("tasks", lambda now: tasks_view(self.db, now))

    async def bot_states(self) -> dict:
        """``bot_states_view``, cached."""
        return await self._cache.get("bots", lambda now: bot_states_view(self.db, now))


DEFAULT_SERIES_PAGE = 1440  # sampling minutes: a day's
MAX_SERIES_PAGE = 1440


def series_page(series: dict[str, list[tuple[float, float]]], limit: int, offset: int) -> tuple[dict, int]:
    """A page of a view's series as JSON (``series_json``): the points of the sampling times
    ``offset`` to ``offset + limit`` (oldest first), and how many sampling times there are."""
    times = sorted({at for points in series.values() for at, _ in points})
    shown = set(times[offset:offset + limit])
    return series_json({name: [(at, value) for at, value in points if at in shown]
                        for name, points in series.items()}), len(times)


def series_json(series: dict[str, list[tuple[float, float]]]) -> dict:
    """A view's series as JSON: ``{name: [{at, value}, ...]}``."""
    return {name: [{"at": at, "value": value} for at, value in points]
            for name, points in sorted(series.items())}


def _time_lines(series: dict[str, list[tuple[float, float]]], start: float, end: float,
                label: Callable[[float], str], styles: dict[str, str], counts: bool = False) -> dict:
    """A line per series over ``[start, end]``, at most ``MAX_LINE_POINTS`` points each, its
    last point marked (``counts``: whole numbers on the y axis)."""
    step = (end - start) / MAX_LINE_POINTS
    plot_w = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    thinned = {}
    for name, points in series.items():
        buckets: dict[int, tuple[float, float]] = {}
        for at, value in points:
            if start <= at <= end:
                buckets[int((at - start) // step)] = (at, value)
        thinned[name] = [buckets[key] for key in sorted(buckets)]
    highest = max((v for points in thinned.values() for _, v in points), default=0)
    top = _count_ceiling(highest) if counts else _nice_ceiling(highest)
    lines = []
    for name, points in thinned.items():
        coords = [(round(CHART_LEFT + (at - start) / (end - start) * plot_w, 1), _y(value, top))
                  for at, value in points]
        path = " ".join(f"{'M' if i == 0 else 'L'}{x},{y}" for i, (x, y) in enumerate(coords))
        lines.append({"name": name, "label": name.split(".", 1)[1].replace("_", " "), "style": styles[name],
                      "path": path, "last": points[-1][1] if points else None, "points": len(points),
                      "end": {"x": coords[-1][0], "y": coords[-1][1]} if coords else None})
    hours = [start + i * 3600 for i in range(0, int((end - start) // 3600), 4)]
    x_ticks = [{"x": round(CHART_LEFT + (t - start) / (end - start) * plot_w, 1),
                "label": time.strftime("%H:%M", time.gmtime(t))} for t in hours]
    return {**_frame(x_ticks, _y_ticks(top, label)), "lines": lines}


def _day_stacks(per_day: dict[int, dict[str, float]]) -> dict:
    """A stacked bar per day of the actions by outcome."""
    days = sorted(per_day)
    slot = (CHART_WIDTH - CHART_LEFT - CHART_RIGHT) / max(len(days), 1)
    top = _count_ceiling(max((sum(counts.values()) for counts in per_day.values()), default=0))
    bars = []
    for i, day in enumerate(days):
        base = 0.0
        x = CHART_LEFT + slot * (i + 0.15)
        for outcome in ACTION_OUTCOMES:
            count = per_day[day][outcome]
            if count:
                bars.append({"x": round(x, 1), "width": round(slot * 0.7, 1), "outcome": outcome,
                             **_bar_span(count, base, top), "title": f"{_day(day)}: {count:.0f} {outcome}"})
                base += count
    x_ticks = [{"x": round(CHART_LEFT + slot * (i + 0.5), 1),
                "label": time.strftime("%m-%d", time.gmtime(day))} for i, day in enumerate(days)]
    return {**_frame(x_ticks, _y_ticks(top, "{:.0f}".format)), "bars": bars}


def _frame(x_ticks: list[dict], y_ticks: list[dict]) -> dict:
    """A chart's size, plot area and axes' ticks (viewBox units)."""
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": CHART_LEFT,
            "right": CHART_WIDTH - CHART_RIGHT, "top": CHART_TOP, "bottom": CHART_HEIGHT - CHART_BOTTOM,
            "x_ticks": x_ticks, "y_ticks": y_ticks}


# -- live events --------------------------------------------------------------------------------

@dataclass
class ViewListener:
    """One open stream's queue of encoded events."""

    queued: deque = field(default_factory=deque)
    waiting: defer.Deferred | None = None

    def push(self, event: bytes) -> None:
        if len(self.queued) >= MAX_QUEUED_EVENTS:
            self.queued.clear()
            event = sse_event("refresh", {})
        self.queued.append(event)
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.callback(None)

    def wait(self, clock: IReactorTime, timeout_s: float) -> defer.Deferred:
        """Fires once an event is queued (at once if one is), or after ``timeout_s``."""
        if self.queued:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred(lambda _: self._forget(d))
        timer = clock.callLater(timeout_s, lambda: self._fire(d))
        d.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        self.waiting = d
        return d

    def _fire(self, d: defer.Deferred) -> None:
        if self.waiting is d:
            self.waiting = None
            d.callback(None)

    def _forget(self, d: defer.Deferred) -> None:
        if self.waiting is d:
            self.waiting = None

    def take(self) -> list[bytes]:
        taken = list(self.queued)
        self.queued.clear()
        return taken


class ViewFeed:
    """The views' live events, read once and encoded once for every open stream:

    - ``build``: ``{buildid, number, buildername, changeid, state, css, symbol, label, url,
      slavename}`` when a build starts or finishes (``changeid``: the newest change of its
      buildset, or null);
    - ``change``: ``{changeid}`` when a newer change than any seen before is stored.

    They come from the event bus ``mq`` (``build-started``, ``build-finished``,
    ``change-added``), which carries every master's events with ``c['mq']`` amqp (each master
    consumes the others' from the broker) and this master's only without it.  So while a
    stream is open and another master is active in the database, a fallback poll every
    ``poll_s`` reads the newest change id (one query for all viewers), for the changes other
    masters store.  The feed subscribes only
    while a stream is open.
    """

    def __init__(self, db, mq, clock: IReactorTime, poll_s: float = FALLBACK_POLL_S):
        self.db = db
        self.mq = mq
        self.clock = clock
        self.poll_s = poll_s
        self.listeners: list[ViewListener] = []
        self.newest_change: int | None = None
        self._unsubscribe: list[Callable[[], None]] = []
        self._poll: task.LoopingCall | None = None

    @property
    def listening(self) -> bool:
        return bool(self._unsubscribe)

    def listen(self) -> ViewListener:
        """A new stream's listener (``close(listener)`` when the stream ends)."""
        listener = ViewListener()
        self.listeners.append(listener)
        if not self._unsubscribe:
            self._unsubscribe = [
                self.mq.subscribe(self.mq.exchange_name(BUILDFARM_EXCHANGES, exchange), "#", self.on_build)
                for exchange in (BUILD_STARTED, BUILD_FINISHED)]
            self._unsubscribe.append(self.mq.subscribe(
                self.mq.exchange_name(BUILDFARM_EXCHANGES, CHANGE_ADDED), "#", self.on_change))
            self._poll = task.LoopingCall(self.poll_changes)
            self._poll.clock = self.clock
            self._poll.start(self.poll_s, now=True).addErrback(
                lambda f: log.failure("polling the newest change failed", f))
        return listener

    def close(self, listener: ViewListener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
        if not self.listeners and self._unsubscribe:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._unsubscribe = []
            if self._poll is not None and self._poll.running:
                self._poll.stop()
            self._poll = None
            self.newest_change = None

    def publish(self, event: bytes) -> None:
        for listener in list(self.listeners):
            listener.push(event)

    def on_change(self, message: Message) -> None:
        changeid = message.payload.get("changeId")
        if isinstance(changeid, int):
            self.saw_change(changeid)

    def saw_change(self, changeid: int) -> None:
        """Tell the streams of ``changeid`` unless it is not newer than the newest told."""
        if self.newest_change is not None and changeid > self.newest_change:
            self.publish(sse_event("change", {"changeid": changeid}))
        self.newest_change = changeid if self.newest_change is None else max(changeid, self.newest_change)

    async def poll_changes(self) -> None:
        """The fallback: the newest change id, read only while another master is active (the
        first poll, at the first stream, always reads it, as the mark new changes are told
        from)."""
        try:
            if self.newest_change is not None and not await self._other_masters_active():
                return
            newest = await self.db.changes.get_all(limit=1)
        except Exception:
            log.failure("reading the newest change failed")
            return
        self.saw_change(newest[0]["changeid"] if newest else 0)

    async def _other_masters_active(self) -> bool:
        return sum(m["active"] for m in await self.db.masters.get_all()) > 1

    def on_build(self, message: Message):
        buildid = message.payload.get("buildId")
        if not self.listeners or not isinstance(buildid, int):
            return None
        return defer.ensureDeferred(self._publish_build(buildid))

    async def _publish_build(self, buildid: int) -> None:
        build = await self.db.builds.get(buildid)
        if build is None:
            return
        request = await self.db.buildrequests.get(build["buildrequestid"])
        changeids = (request or {}).get("properties", {}).get("changeids") or []
        changeid = max((c for c in changeids if isinstance(c, int)), default=None)
        shown = cell(build)
        fields = ("buildid", "number", "state", "css", "symbol", "label", "url", "slavename")
        self.publish(sse_event("build", {**{k: shown[k] for k in fields},
                                         "buildername": build["buildername"], "changeid": changeid}))


class ViewEventStream:
    """Writes the feed's events to one client until ``max_s`` (then the browser reconnects)."""

    def __init__(self, feed: ViewFeed, clock: IReactorTime, max_s: float = MAX_STREAM_S):
        self.feed = feed
        self.clock = clock
        self.max_s = max_s

    async def run(self, write: Callable[[bytes], None],
                  wait_until_wanted: Callable[[], Awaitable[None]] | None = None) -> None:
        listener = self.feed.listen()
        try:
            started = last_write = self.clock.seconds()
            write(sse_event("hello", {"at": started}))
            while self.clock.seconds() - started < self.max_s:
                await listener.wait(self.clock, KEEPALIVE_S)
                events = listener.take()
                if events:
                    write(b"".join(events))
                    last_write = self.clock.seconds()
                    if wait_until_wanted is not None:
                        await wait_until_wanted()
                elif self.clock.seconds() - last_write >= KEEPALIVE_S:
                    write(b": keepalive\n\n")
                    last_write = self.clock.seconds()
        finally:
            self.feed.close(listener)


# -- helpers ------------------------------------------------------------------------------------

def _last(values: list[str]) -> str | None:
    return values[-1] if values else None


def _text(name: str, value: str) -> str:
    if len(value) > MAX_FILTER_CHARS:
        raise BadViewFilter(name, f"is at most {MAX_FILTER_CHARS} characters long")
    return value


def _time(values_of: Callable[[str], list[str]], name: str, default: float) -> float:
    value = _last(values_of(name))
    if value is None or not value.strip():
        return default
    try:
        parsed = parse_time(value, name)
    except BadFilter as e:
        raise BadViewFilter(name, str(e).split(" ", 1)[1]) from None
    if parsed is None or not math.isfinite(parsed) or not 0 <= parsed <= LATEST_TIME:
        raise BadViewFilter(name, f"must be a time from 1970 to 9999, not {value[:40]!r}")
    return parsed


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(epoch))


def _int(values_of: Callable[[str], list[str]], name: str, default: int, minimum: int, maximum: int) -> int:
    value = _last(values_of(name))
    if value is None or value == "":
        return default
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not minimum <= int(text) <= maximum:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise BadViewFilter(name, f"must be an integer from {minimum} to {maximum}, not {shown!r}")
    return int(text)

