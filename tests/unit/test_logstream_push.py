"""The build event stream of a build this master runs, against a real database, a real
LogWriter and the master's LogBus, on an injected clock: lines are pushed, not polled.

Before, each viewer read the database every 0.5 s (four to five queries per log and step),
through the thread pool the LogWriter needs: 20 viewers made 40+ rounds of queries a second
while a build streamed.  Now a viewer reads the database to catch up and when the build's
steps or logs change, and nothing while lines stream."""

import json

import pytest_twisted
from twisted.internet import defer, task

from buildfarm.common.results import SUCCESS
from buildfarm.master.db.testing import add_running_build
from buildfarm.master.process.logbus import MAX_PENDING_CHARS, LogBus
from buildfarm.master.process.logwriter import LogWriter
from buildfarm.master.www.ui.logstream import KEEPALIVE_S, MAX_EVENT_LINES, POLL_S, BuildEventStream
from fixtures.memorymaster import on_database, running_step, start_memory_master
from fixtures.rawhttp import wait_for

LINE = "%06d the quick brown fox jumps over the lazy dog\n"
VIEWERS = 20


def lines(first: int, count: int) -> str:
    return "".join(LINE % n for n in range(first, first + count))


class Viewer:
    """One client of the event stream: what it was written, and the stream's Deferred."""

    def __init__(self, db, clock, bus, buildid: int, positions: dict | None = None,
                 wait_until_wanted=None, running_here=lambda: True):
        self.written: list[bytes] = []
        self.stream = BuildEventStream(db, clock, buildid, positions or {}, bus=bus,
                                       running_here=running_here)
        self.done = defer.ensureDeferred(self.stream.run(self.written.append, wait_until_wanted))

    def events(self) -> list[tuple[str, dict]]:
        parsed = []
        for block in b"".join(self.written).decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
            if fields:
                parsed.append((fields["event"], json.loads(fields["data"])))
        return parsed

    def text(self, logid: int) -> str:
        return "".join(data["text"] for kind, data in self.events()
                       if kind == "lines" and data["logid"] == logid)

    def has_lines(self, logid: int, count: int) -> bool:
        return self.text(logid).count("\n") >= count


class Reads:
    """Counts the queries an event stream makes (builds, steps, logs, log text)."""

    def __init__(self, db):
        self.calls: list[str] = []
        for component, name in [(db.builds, "get"), (db.steps, "get_all"), (db.logs, "get_all"),
                                (db.logs, "get_text_range")]:
            setattr(component, name, self._counting(getattr(component, name), name))

    def _counting(self, original, name):
        def counting(*args, **kwargs):
            self.calls.append(name)
            return original(*args, **kwargs)
        return counting


async def advance_until(clock: task.Clock, condition, what: str) -> None:
    """Advance the master's clock a polling interval at a time until ``condition()`` (the
    stream works between advances, on the real reactor's database threads)."""
    await wait_for(lambda: condition() or clock.advance(POLL_S), what)


async def running_log(db):
    """A running build with one step and its ``stdio`` log: (clock, bus, buildid, stepid, writer)."""
    clock, bus = task.Clock(), LogBus()
    build = await add_running_build(db)
    stepid = await db.steps.add(build.buildid, 0, "compile", 1000.0)
    logid = await db.logs.add(stepid, "stdio")
    return clock, bus, build.buildid, stepid, LogWriter(db, logid, clock, bus=bus)


async def end_build(db, bus, buildid: int, stepid: int, writer: LogWriter) -> None:
    await writer.finish()
    await db.steps.finish(stepid, SUCCESS, 1010.0, "compiled")
    bus.build_changed(buildid)
    await db.builds.finish(buildid, SUCCESS, 1011.0, "build success")
    bus.build_changed(buildid)


@pytest_twisted.ensureDeferred
async def test_viewers_get_every_line_once_in_order_whenever_they_join(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    writer.add_stdout(lines(0, 300))
    await writer.flushed()
    early = Viewer(db, clock, bus, buildid)
    late = resumed = None
    for batch in range(10):
        # a line split across writes, written while the viewers catch up from the database
        writer.add_stdout(lines(300 + 30 * batch, 30) + "partial ")
        writer.add_stdout("line\n")
        if batch == 4:
            late = Viewer(db, clock, bus, buildid)
            resumed = Viewer(db, clock, bus, buildid, {logid: 150})
        await writer.flushed()
    writer.add_stdout("the last line has no newline")
    await end_build(db, bus, buildid, stepid, writer)
    await wait_for(lambda: all(v.done.called for v in (early, late, resumed)), "the streams to end")

    expected = lines(0, 300) + "".join(lines(300 + 30 * b, 30) + "partial line\n" for b in range(10)) \
        + "the last line has no newline"
    assert early.text(logid) == expected and late.text(logid) == expected
    assert resumed.text(logid) == "".join(line + "\n" for line in expected.split("\n")[150:]).rstrip("\n")
    kinds = [kind for kind, _ in early.events()]
    assert kinds[:2] == ["step", "newlog"] and kinds[-1] == "done" and kinds.count("newlog") == 1
    sizes = [data["text"].count("\n") for kind, data in early.events() if kind == "lines"]
    assert max(sizes) <= MAX_EVENT_LINES


@pytest_twisted.ensureDeferred
async def test_twenty_viewers_read_nothing_from_the_database_while_lines_stream(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    writer.add_stdout(lines(0, 100))
    await writer.flushed()
    viewers = [Viewer(db, clock, bus, buildid) for _ in range(VIEWERS)]
    await wait_for(lambda: all(v.has_lines(logid, 100) for v in viewers), "the viewers to catch up")

    reads = Reads(db)
    for second in range(20):  # 10 s of the master's clock: 20 of the old polling intervals
        writer.add_stdout(lines(100 + 10 * second, 10))
        await writer.flushed()
        clock.advance(POLL_S)
    await wait_for(lambda: all(v.has_lines(logid, 300) for v in viewers), "the pushed lines")
    assert reads.calls == []  # the old stream: 20 viewers x 20 polls x 5 queries

    clock.advance(KEEPALIVE_S)  # quiet: a keepalive each, still without reading anything
    assert all(v.written[-1] == b": keepalive\n\n" for v in viewers) and reads.calls == []

    await end_build(db, bus, buildid, stepid, writer)
    await wait_for(lambda: all(v.done.called for v in viewers), "the streams to end")
    assert all(v.text(logid) == lines(0, 300) for v in viewers)
    # the end of the step and of the build: each viewer reads them once or twice
    assert len(reads.calls) <= VIEWERS * 2 * 5
    assert bus.followed() == 0 and bus.viewers(buildid) == 0


@pytest_twisted.ensureDeferred
async def test_a_viewer_that_does_not_read_holds_a_bounded_backlog_then_catches_up_from_the_database(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    client_ready = defer.Deferred()
    slow = Viewer(db, clock, bus, buildid, wait_until_wanted=lambda: client_ready)
    writer.add_stdout(lines(0, 10))
    await writer.flushed()
    await wait_for(lambda: slow.has_lines(logid, 10), "the first lines")

    total = 3 * MAX_PENDING_CHARS // len(LINE % 0)  # three times what a viewer may hold
    for first in range(10, total, 20000):
        writer.add_stdout(lines(first, min(20000, total - first)))
        await writer.flushed()
        assert bus.held_chars() <= MAX_PENDING_CHARS
    assert slow.text(logid) == lines(0, 10)  # the client took nothing more meanwhile

    await end_build(db, bus, buildid, stepid, writer)
    client_ready.callback(None)  # the client reads again (and from now on keeps up)
    await wait_for(lambda: slow.done.called, "the stream to end", 60)
    assert slow.text(logid) == lines(0, total)


@pytest_twisted.ensureDeferred
async def test_a_build_another_master_runs_is_still_polled(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    viewer = Viewer(db, clock, bus, buildid, running_here=lambda: False)
    await wait_for(lambda: viewer.events(), "the first events")
    writer.add_stdout(lines(0, 5))  # as if another master wrote it: nothing pushed reaches this stream
    await writer.flushed()
    reads = Reads(db)
    await advance_until(clock, lambda: viewer.has_lines(logid, 5), "the polled lines")
    assert "get_text_range" in reads.calls
    await end_build(db, bus, buildid, stepid, writer)
    await advance_until(clock, lambda: viewer.done.called, "the stream to end")
    assert viewer.text(logid) == lines(0, 5)


@pytest_twisted.ensureDeferred
async def test_a_build_that_stops_running_here_without_a_word_is_read_again(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    running = [True]
    viewer = Viewer(db, clock, bus, buildid, running_here=lambda: running[0])
    await wait_for(lambda: viewer.events(), "the first events")
    await writer.finish()
    await db.steps.finish(stepid, SUCCESS, 1010.0, "compiled")
    await db.builds.finish(buildid, SUCCESS, 1011.0, "build success")
    running[0] = False  # (no build_changed)
    await advance_until(clock, lambda: viewer.done.called, "the stream to end")
    assert viewer.events()[-1][0] == "done"


@pytest_twisted.ensureDeferred
async def test_pushed_lines_a_viewer_already_has_are_not_sent_again(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    writer.add_stdout(lines(0, 10))
    await writer.flushed()
    ahead = Viewer(db, clock, bus, buildid, {logid: 15})  # e.g. a page that has lines 0 .. 14
    await wait_for(lambda: ahead.events(), "the first events")
    writer.add_stdout(lines(10, 10))  # one pushed batch: lines 10 .. 19
    await writer.flushed()
    await end_build(db, bus, buildid, stepid, writer)
    await wait_for(lambda: ahead.done.called, "the stream to end")
    assert ahead.text(logid) == lines(15, 5)


@pytest_twisted.ensureDeferred
async def test_twenty_viewers_joining_a_long_log_read_each_range_of_it_once(db):
    clock, bus, buildid, stepid, writer = await running_log(db)
    logid = writer.logid
    backlog = 5 * MAX_EVENT_LINES + 7
    writer.add_stdout(lines(0, backlog))
    await writer.flushed()
    viewers = [Viewer(db, clock, bus, buildid) for _ in range(VIEWERS)]
    await wait_for(lambda: all(v.has_lines(logid, backlog) for v in viewers), "the viewers to catch up")
    assert all(v.text(logid) == lines(0, backlog) for v in viewers)
    assert bus.reads.reads == 6  # five ranges of MAX_EVENT_LINES and the rest, each read once
    await end_build(db, bus, buildid, stepid, writer)
    await wait_for(lambda: all(v.done.called for v in viewers), "the streams to end")


@pytest_twisted.ensureDeferred
async def test_a_step_s_new_log_is_announced_on_the_bus_and_its_writer_publishes_there(tmp_path, db_url):
    master = await start_memory_master(tmp_path, on_database(db_url))
    try:
        bus, run = master.logbus, await running_step(master, "linux", "compile")
        watch = bus.watch(run.build.buildid)
        writer = await run.add_log("stdio")
        assert watch.changed and bus.is_open(writer.logid)  # viewers read the steps and logs again
        feed = watch.follow(writer.logid)
        writer.add_stdout("compiled\n")
        await writer.finish()
        assert feed.take().text == "compiled\n" and feed.final and not bus.is_open(writer.logid)
        assert master.metrics.registry.get_sample_value("buildfarm_log_bytes_written_total") == 9
    finally:
        await master.stopService()
