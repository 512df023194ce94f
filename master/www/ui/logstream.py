"""``BuildEventStream``: a running build's steps and new log lines, as Server-Sent Events.

The build page opens ``GET /builds/<id>/events?logs=<logid>:<line>,...`` with a plain
``EventSource`` (static/build.js); ``logs`` says, per log already on the page, the first
line it has not shown.  It sends:

- ``step``: ``{number, name, state_string, result_label, result_class, duration}`` for each
  step, first for all of them, then whenever one changes;
- ``newlog``: ``{step, logid, name, slug, url}`` when a log appears;
- ``lines``: ``{logid, text}``: complete new lines (a partial last line only once its log is
  complete); at most ``MAX_EVENT_LINES`` per event, so a huge backlog arrives in pieces;
- ``done``: ``{result_label, result_class, state_string}`` once the build is over and every
  line was sent; then the response ends.

Each ``lines`` event carries an ``id:`` with the positions of every log, so a reconnecting
``EventSource`` (which sends it back as ``Last-Event-ID``) resumes where it was.

Where the events come from:

- a build this master runs: pushed.  The stream watches the build on the master's
  ``LogBus`` (master/process/logbus.py): the log writers push each stored batch of lines
  there and the build tells it when a step or log appears or ends.  The stream reads the
  database only then (steps and logs), and to catch up: the lines written before it came,
  and those it lost while its client was slow (it holds at most the bus's
  ``MAX_PENDING_CHARS`` of pushed text).  With nothing pushed it waits, reading nothing.
- a build another master runs (or one that ended without a word): polled, the database
  every ``POLL_S`` of the master's clock, as there is nothing to push.
"""

import json
from collections.abc import Awaitable, Callable

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime

from buildfarm.master.http.routing import parse_url_int
from buildfarm.master.process.logbus import LogBus, LogFeed, LogLines, Watch
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


def lines_event(logid: int, json_text: bytes, positions: dict[int, int]) -> bytes:
    """A ``lines`` event from text already encoded as a JSON string (the same bytes as
    ``sse_event("lines", {"logid": logid, "text": text}, format_positions(positions))``)."""
    return b"".join((f"event: lines\nid: {format_positions(positions)}\ndata: "
                     f'{{"logid": {logid}, "text": '.encode(), json_text, b"}\n\n"))


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
    """Writes one build's events to one client until the build ends or time runs out.

    ``bus`` and ``running_here`` (whether this master runs the build now) choose pushed
    events over polling; without them the stream polls."""

    def __init__(self, db, clock: IReactorTime, buildid: int, positions: dict[int, int],
                 poll_s: float = POLL_S, max_s: float = MAX_STREAM_S, bus: LogBus | None = None,
                 running_here: Callable[[], bool] = lambda: False):
        self.db = db
        self.clock = clock
        self.buildid = buildid
        self.positions = dict(positions)
        self.poll_s = poll_s
        self.max_s = max_s
        self.bus = bus
        self.running_here = running_here
        self._steps_sent: dict[int, tuple] = {}
        self._stored: dict[int, int] = {}  # per log: lines the database has for sure (pushed mode)

    async def run(self, write: Callable[[bytes], None],
                  wait_until_wanted: Callable[[], Awaitable[None]] | None = None) -> None:
        """Write events; return when the build is over (after ``done``) or at ``max_s``.
        Cancelling the Deferred (the client went away) stops it.  After each round that sent
        lines, ``wait_until_wanted`` (flow control) waits until the client took them, so a
        client that does not read holds at most one round's events in the master."""
        if self.bus is None or not self.running_here():
            await self._run_polled(write, wait_until_wanted)
            return
        watch = self.bus.watch(self.buildid)
        try:
            await self._run_pushed(watch, write, wait_until_wanted)
        finally:
            watch.close()

    # -- pushed: a build this master runs ---------------------------------------------------

    async def _run_pushed(self, watch: Watch, write: Callable[[bytes], None],
                          wait_until_wanted: Callable[[], Awaitable[None]] | None) -> None:
        started = last_write = self.clock.seconds()
        watch.changed = True  # the first round reads the steps and logs
        build: dict = {}
        while True:
            if watch.changed:
                watch.changed = False
                build = await self.db.builds.get(self.buildid)
                if build is None:
                    return
                await self._refresh(watch, write)
            sent_lines = False
            for logid in list(self._stored):
                sent_lines |= await self._send_next(logid, watch.feeds.get(logid), write)
            last_write = await self._end_round(build, sent_lines, started, last_write, write,
                                               wait_until_wanted)
            if last_write is None:
                return
            if sent_lines:
                continue  # more may be waiting: pushed batches come in pieces
            if not build["complete"] and not self.running_here():
                # The build ended here (or went away) without a word: read it again, at the
                # polling pace (a build that stays incomplete in the database is polled).
                watch.changed = True
                await task.deferLater(self.clock, self.poll_s, lambda: None)
                continue
            # Woken by a push or a change; or after poll_s, to see whether the build still
            # runs here (memory only), and for the keepalive.
            await watch.wait(self.clock, self.poll_s)

    async def _end_round(self, build: dict, sent_lines: bool, started: float, last_write: float,
                         write: Callable[[bytes], None],
                         wait_until_wanted: Callable[[], Awaitable[None]] | None) -> float | None:
        """The end of a round of either mode: flow control after lines were sent; ``done``
        once a complete build has nothing more to send; the ``max_s`` limit; the keepalive.
        The time of the last write, or None when the stream is over."""
        now = self.clock.seconds()
        if sent_lines:
            last_write = now
            if wait_until_wanted is not None:
                await wait_until_wanted()
        elif build["complete"]:
            write(_done_event(build))
            return None
        if now - started >= self.max_s:
            return None
        if now - last_write >= KEEPALIVE_S:
            write(b": keepalive\n\n")
            last_write = now
        return last_write

    async def _refresh(self, watch: Watch, write: Callable[[bytes], None]) -> None:
        """Read the steps and logs; follow each log still written (before relying on what
        the database says it has: lines pushed after this are then not missed)."""
        now = self.clock.seconds()
        for step in await self.db.steps.get_all(self.buildid):
            self._send_step(step, now, write)
            for entry in await self.db.logs.get_all(step["stepid"]):
                self._announce(step["number"], entry, write)
                if not entry["complete"]:
                    watch.follow(entry["logid"])
                # Lines 0 .. num_lines-1 are complete; a complete log may end with a partial line.
                stored = entry["num_lines"] + (1 if entry["complete"] else 0)
                self._stored[entry["logid"]] = max(self._stored.get(entry["logid"], 0), stored)

    async def _send_next(self, logid: int, feed: LogFeed | None, write: Callable[[bytes], None]) -> bool:
        """Send the next lines of a log: pushed ones if they follow on, else read from the
        database (catching up); whether anything was sent."""
        first = self.positions[logid]
        batch = _next_batch(feed, first)
        if batch is not None and batch.first_line <= first:
            feed.take()
            encoded = batch.json_bytes() if batch.first_line == first else \
                json.dumps(batch.lines_from(first)).encode("ascii")
            self.positions[logid] = batch.end
            write(lines_event(logid, encoded, self.positions))
            return True
        stored = max(self._stored[logid], feed.end if feed is not None else 0)
        upto = batch.first_line if batch is not None else stored
        if first >= upto:
            return False
        # Ranges end at a multiple of MAX_EVENT_LINES: viewers catching up from different
        # places soon ask for the same ranges, which are then read and encoded once.
        last = min(upto - 1, (first // MAX_EVENT_LINES + 1) * MAX_EVENT_LINES - 1)
        read = await self.bus.reads.lines(logid, first, last, self.db.logs.get_text_range)
        self.positions[logid] = last + 1
        if not read.text:
            return False
        write(lines_event(logid, read.json_bytes(), self.positions))
        return True

    # -- polled: a build another master runs ------------------------------------------------

    async def _run_polled(self, write: Callable[[bytes], None],
                          wait_until_wanted: Callable[[], Awaitable[None]] | None) -> None:
        started = last_write = self.clock.seconds()
        while True:
            build = await self.db.builds.get(self.buildid)
            if build is None:
                return
            sent_lines = await self._poll(write)
            last_write = await self._end_round(build, sent_lines, started, last_write, write,
                                               wait_until_wanted)
            if last_write is None:
                return
            if not sent_lines:
                await task.deferLater(self.clock, self.poll_s, lambda: None)

    async def _poll(self, write: Callable[[bytes], None]) -> bool:
        """Send what changed since the last poll; whether any log text was sent."""
        sent_lines = False
        now = self.clock.seconds()
        for step in await self.db.steps.get_all(self.buildid):
            self._send_step(step, now, write)
            for entry in await self.db.logs.get_all(step["stepid"]):
                self._announce(step["number"], entry, write)
                sent_lines |= await self._send_polled_lines(entry, write)
        return sent_lines

    async def _send_polled_lines(self, entry: dict, write: Callable[[bytes], None]) -> bool:
        logid = entry["logid"]
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
        write(lines_event(logid, json.dumps(text).encode("ascii"), self.positions))
        return True

    # -- both -------------------------------------------------------------------------------

    def _send_step(self, step: dict, now: float, write: Callable[[bytes], None]) -> None:
        shown = step_event(step, now)
        if self._step_changed(step["number"], shown):
            write(sse_event("step", shown))

    def _step_changed(self, number: int, shown: dict) -> bool:
        # A running step's duration ticks by itself: it alone is no reason for an event.
        running = shown["result_label"] == "running"
        key = (shown["name"], shown["state_string"], shown["result_label"],
               None if running else shown["duration"])
        if self._steps_sent.get(number) == key:
            return False
        self._steps_sent[number] = key
        return True

    def _announce(self, step_number: int, entry: dict, write: Callable[[bytes], None]) -> None:
        """A ``newlog`` event for a log the client does not have yet."""
        logid = entry["logid"]
        if logid in self.positions:
            return
        self.positions[logid] = 0
        write(sse_event("newlog", {"step": step_number, "logid": logid, "name": entry["name"],
                                   "slug": entry["slug"],
                                   "url": log_url(self.buildid, step_number, entry["slug"])}))


def _next_batch(feed: LogFeed | None, first: int) -> LogLines | None:
    """The first pushed batch with lines from ``first`` on (older ones are dropped)."""
    if feed is None:
        return None
    while (batch := feed.peek()) is not None and batch.end <= first:
        feed.take()
    return batch


def _done_event(build: dict) -> bytes:
    return sse_event("done", {"result_label": result_label(build["results"]),
                              "result_class": result_class(build["results"]),
                              "state_string": build["state_string"]})
