"""``BuildEventStream``: a running build's steps and new log lines, as Server-Sent Events.

The build page opens ``GET /builds/<id>/events?logs=<logid>:<line>,...`` with a plain
``EventSource`` (static/build.js); ``logs`` says, per log already on the page, the first
line it has not shown.  The stream polls the database every ``POLL_S`` of the master's
clock (the log writer flushes chunks there every 0.2 s, and another master may be the one
running the build) and sends:

- ``step``: ``{number, name, state_string, result_label, result_class, duration}`` for each
  step, first for all of them, then whenever one changes;
- ``newlog``: ``{step, logid, name, slug, url}`` when a log appears;
- ``lines``: ``{logid, text}``: complete new lines (a partial last line only once its log is
  complete); at most ``MAX_EVENT_LINES`` per event, so a huge backlog arrives in pieces;
- ``done``: ``{result_label, result_class, state_string}`` once the build is over and every
  line was sent; then the response ends.

Each ``lines`` event carries an ``id:`` with the positions of every log, so a reconnecting
``EventSource`` (which sends it back as ``Last-Event-ID``) resumes where it was.
"""

import json
from collections.abc import Awaitable, Callable

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from buildfarm.master.http.routing import parse_url_int
from buildfarm.master.www.ui.format import duration, result_class, result_label

POLL_S = 0.5
MAX_EVENT_LINES = 2000
MAX_STREAM_S = 3600.0  # then the response ends and the browser reconnects with its Last-Event-ID
KEEPALIVE_S = 15.0
MAX_POSITIONS = 1000


def parse_positions(text: str | None) -> dict[int, int]:
    """``{logid: first unsent line}`` from ``"12:40,13:0"``; malformed parts are ignored."""
    positions: dict[int, int] = {}
    for part in (text or "").split(",")[:MAX_POSITIONS]:
        logid, colon, line = part.strip().partition(":")
        numbers = parse_url_int(logid), parse_url_int(line)
        if colon and None not in numbers:
            positions[numbers[0]] = numbers[1]
    return positions


def format_positions(positions: dict[int, int]) -> str:
    return ",".join(f"{logid}:{line}" for logid, line in sorted(positions.items()))


def sse_event(event: str, data, event_id: str | None = None) -> bytes:
    """One Server-Sent Event; ``data`` as JSON on one line (JSON escapes newlines)."""
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"data: {json.dumps(data)}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def step_event(step: dict, now: float) -> dict:
    """What the page shows of a step (the build page template shows the same)."""
    end = step["complete_at"] if step["complete"] else now
    started = step["started_at"]
    return {
        "number": step["number"],
        "name": step["name"],
        "state_string": step["state_string"],
        "result_label": result_label(step["results"], step["complete"]),
        "result_class": result_class(step["results"], step["complete"]),
        "duration": duration(end - started) if started is not None and end is not None else "",
    }


def log_url(buildid: int, step_number: int, slug: str) -> str:
    return f"/builds/{buildid}/steps/{step_number}/logs/{slug}"


class BuildEventStream:
    """Writes one build's events to one client until the build ends or time runs out."""

    def __init__(self, db, clock: IReactorTime, buildid: int, positions: dict[int, int],
                 poll_s: float = POLL_S, max_s: float = MAX_STREAM_S):
        self.db = db
        self.clock = clock
        self.buildid = buildid
        self.positions = dict(positions)
        self.poll_s = poll_s
        self.max_s = max_s
        self._steps_sent: dict[int, tuple] = {}

    async def run(self, write: Callable[[bytes], None],
                  wait_until_wanted: Callable[[], Awaitable[None]] | None = None) -> None:
        """Poll and write events; return when the build is over (after ``done``) or at
        ``max_s``.  Cancelling the Deferred (the client went away) stops it.  After each poll
        that sent lines, ``wait_until_wanted`` (flow control) waits until the client took them,
        so a client that does not read holds at most one poll's events in the master."""
        started = last_write = self.clock.seconds()
        while True:
            build = await self.db.builds.get(self.buildid)
            if build is None:
                return
            sent_lines = await self._poll(write)
            now = self.clock.seconds()
            if sent_lines:
                last_write = now
                if wait_until_wanted is not None:
                    await wait_until_wanted()
            if build["complete"] and not sent_lines:
                write(sse_event("done", {"result_label": result_label(build["results"]),
                                         "result_class": result_class(build["results"]),
                                         "state_string": build["state_string"]}))
                return
            if now - started >= self.max_s:
                return
            if now - last_write >= KEEPALIVE_S:
                write(b": keepalive\n\n")
                last_write = now
            if not sent_lines:
                await task.deferLater(self.clock, self.poll_s, lambda: None)

    async def _poll(self, write: Callable[[bytes], None]) -> bool:
        """Send what changed since the last poll; whether any log text was sent."""
        sent_lines = False
        now = self.clock.seconds()
        for step in await self.db.steps.get_all(self.buildid):
            shown = step_event(step, now)
            if self._step_changed(step["number"], shown):
                write(sse_event("step", shown))
            for entry in await self.db.logs.get_all(step["stepid"]):
                sent_lines |= await self._send_lines(step["number"], entry, write)
        return sent_lines

    def _step_changed(self, number: int, shown: dict) -> bool:
        # A running step's duration ticks by itself: it alone is no reason for an event.
        running = shown["result_label"] == "running"
        key = (shown["name"], shown["state_string"], shown["result_label"],
               None if running else shown["duration"])
        if self._steps_sent.get(number) == key:
            return False
        self._steps_sent[number] = key
        return True

    async def _send_lines(self, step_number: int, entry: dict, write: Callable[[bytes], None]) -> bool:
        logid = entry["logid"]
        if logid not in self.positions:
            self.positions[logid] = 0
            write(sse_event("newlog", {"step": step_number, "logid": logid, "name": entry["name"],
                                       "slug": entry["slug"],
                                       "url": log_url(self.buildid, step_number, entry["slug"])}))
        first = self.positions[logid]
        # Lines 0 .. num_lines-1 are complete; line num_lines is a partial one, final once
        # the log is complete.
        last = entry["num_lines"] if entry["complete"] else entry["num_lines"] - 1
        if first > last:
            return False
        last = min(last, first + MAX_EVENT_LINES - 1)
        text = await self.db.logs.get_text_range(logid, first, last)
        self.positions[logid] = last + 1
        if not text:
            return False
        write(sse_event("lines", {"logid": logid, "text": text}, format_positions(self.positions)))
        return True
