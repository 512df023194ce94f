"""The LogBus in memory: log writers publish stored text as numbered complete lines, viewers
get them pushed, a slow viewer holds a bounded amount, and nothing lingers after a log ends."""

import pytest
from twisted.internet import defer, task

from buildfarm.master.process import logbus
from buildfarm.master.process.logbus import (
    MAX_BATCH_LINES,
    MAX_PENDING_CHARS,
    LogBus,
    SharedReads,
    split_lines,
)
from buildfarm.master.process.logwriter import LogWriter

LOGID = 7
VIEWERS = 20


def taken(feed) -> list[tuple[int, int, str]]:
    """``(first_line, count, text)`` of every batch pushed to ``feed`` and not taken yet."""
    batches = []
    while (batch := feed.take()) is not None:
        batches.append((batch.first_line, batch.count, batch.text))
    return batches


def test_complete_lines_are_pushed_with_their_numbers_and_a_partial_line_waits_for_its_end():
    bus = LogBus()
    bus.open(LOGID)
    feed = bus.watch(1).follow(LOGID)
    bus.publish(LOGID, "zero\none\ntw")
    bus.publish(LOGID, "o and")
    assert taken(feed) == [(0, 2, "zero\none\n")] and feed.end == 2
    bus.publish(LOGID, " more\nthree\nfou")
    assert taken(feed) == [(2, 2, "two and more\nthree\n")] and feed.end == 4
    bus.close(LOGID)
    assert taken(feed) == [(4, 1, "fou")] and (feed.end, feed.final) == (5, True)


def test_a_viewer_joining_late_gets_only_what_is_published_after_it_and_knows_where_that_starts():
    bus = LogBus()
    bus.open(LOGID)
    bus.publish(LOGID, "a\nb\nc")
    feed = bus.watch(1).follow(LOGID)
    assert feed.end == 2 and taken(feed) == []  # lines 0 and 1 are in the database
    bus.publish(LOGID, "\nd\n")
    assert taken(feed) == [(2, 2, "c\nd\n")]


def test_a_big_write_arrives_in_batches_of_at_most_max_batch_lines():
    text = "".join(f"{n}\n" for n in range(2 * MAX_BATCH_LINES + 5))
    batches = split_lines(LOGID, 10, text, final=False)
    assert [(b.first_line, b.count) for b in batches] == [
        (10, MAX_BATCH_LINES), (10 + MAX_BATCH_LINES, MAX_BATCH_LINES), (10 + 2 * MAX_BATCH_LINES, 5)]
    assert "".join(b.text for b in batches) == text
    final = split_lines(LOGID, 0, "x\n" * MAX_BATCH_LINES + "tail", final=True)
    assert [(b.count, b.text[-4:]) for b in final] == [(MAX_BATCH_LINES, "x\nx\n"), (1, "tail")]


def test_lines_from_skips_the_lines_a_viewer_already_has():
    [batch] = split_lines(LOGID, 5, "five\nsix\nseven\n", final=False)
    assert batch.lines_from(5) == batch.text and batch.lines_from(6) == "six\nseven\n"
    assert batch.lines_from(7) == "seven\n" and batch.end == 8
    assert batch.json_bytes() == b'"five\\nsix\\nseven\\n"'


def test_a_viewer_that_does_not_take_its_lines_holds_at_most_max_pending_chars():
    bus = LogBus()
    bus.open(LOGID)
    slow, quick = bus.watch(1).follow(LOGID), bus.watch(1).follow(LOGID)
    line = "y" * 99 + "\n"
    for _ in range(3 * MAX_PENDING_CHARS // (100 * 1000)):
        bus.publish(LOGID, line * 1000)
        taken(quick)
    assert slow.pending_chars <= MAX_PENDING_CHARS and slow.dropped > 0
    assert slow.end == quick.end  # it knows how far the database has the log, to catch up
    oldest = slow.peek()
    assert oldest.first_line == slow.end - slow.pending_chars // 100  # only the newest are kept


def test_every_viewer_gets_the_same_text_object_so_many_viewers_cost_little_more_than_one():
    bus = LogBus()
    bus.open(LOGID)
    feeds = [bus.watch(1).follow(LOGID) for _ in range(20)]
    bus.publish(LOGID, "shared\n")
    batches = [feed.take() for feed in feeds]
    assert all(batch is batches[0] for batch in batches)


def test_an_unfinished_line_longer_than_the_cap_is_left_to_the_database():
    bus = LogBus()
    bus.open(LOGID)
    feed = bus.watch(1).follow(LOGID)
    bus.publish(LOGID, "short\n")
    for _ in range(3):
        bus.publish(LOGID, "p" * (logbus.MAX_PARTIAL_CHARS // 2))
    bus.publish(LOGID, "end of the long line\nnext\n")
    # line 1 (the long one) is not pushed; line 2 is, with its number: the viewer sees the gap
    assert taken(feed) == [(0, 1, "short\n"), (2, 1, "next\n")] and feed.end == 3


def test_the_bus_forgets_a_log_once_its_writer_closed_it_and_no_viewer_follows_it():
    bus = LogBus()
    bus.open(LOGID)
    watch = bus.watch(1)
    watch.follow(LOGID)
    bus.publish(LOGID, "half a line")
    bus.close(LOGID)
    assert bus.followed() == 1 and not bus.is_open(LOGID)
    watch.close()
    assert bus.followed() == 0 and bus.viewers(1) == 0
    bus.open(8)
    bus.close(8)
    assert bus.followed() == 0


def test_a_watch_wakes_on_a_push_on_a_build_change_and_after_its_timeout():
    clock, bus = task.Clock(), LogBus()
    bus.open(LOGID)
    watch = bus.watch(1)
    watch.follow(LOGID)
    woken = []
    watch.wait(clock, 5).addCallback(woken.append)
    bus.publish(LOGID, "line\n")
    assert woken == [None] and not watch.changed
    watch.wait(clock, 5).addCallback(woken.append)
    bus.build_changed(2)  # another build
    assert len(woken) == 1
    bus.build_changed(1)
    assert len(woken) == 2 and watch.changed
    watch.wait(clock, 5).addCallback(woken.append)
    clock.advance(5)
    assert len(woken) == 3 and clock.getDelayedCalls() == []
    bus.publish(LOGID, "while nobody waits\n")
    assert watch.wait(clock, 5).called  # what came meanwhile is not missed


def test_cancelling_a_wait_leaves_no_timer_behind():
    clock, bus = task.Clock(), LogBus()
    waiting = bus.watch(1).wait(clock, 5)
    waiting.addErrback(lambda f: f.trap(defer.CancelledError))
    waiting.cancel()
    assert clock.getDelayedCalls() == []


class StoringLogs:
    """db.logs that stores at once, remembering the text."""

    def __init__(self):
        self.text, self.finished = "", False

    async def append(self, logid, text):
        self.text += text

    async def append_many(self, items):
        self.text += "".join(text for _, text in items)

    async def finish(self, logid):
        self.finished = True


class DB:
    def __init__(self):
        self.logs = StoringLogs()


@pytest.mark.parametrize("pieces", [["a\nb", "c\n", "d"], ["x" * 70000 + "\n" + "y\n" * 10, "z"]])
def test_a_log_writer_publishes_what_it_stored_and_closes_the_log_when_finished(pieces):
    db, clock, bus = DB(), task.Clock(), LogBus()
    writer = LogWriter(db, LOGID, clock, bus=bus)
    feed = bus.watch(1).follow(LOGID)
    for piece in pieces:
        writer.add_stdout(piece)
        clock.advance(1)
    assert "".join(text for _, _, text in taken(feed)) == db.logs.text[:db.logs.text.rfind("\n") + 1]
    finished = defer.ensureDeferred(writer.finish())
    assert finished.called and db.logs.finished and feed.final
    assert feed.end == db.logs.text.count("\n") + 1
    assert "".join(text for _, _, text in taken(feed)) == pieces[-1]


# -- database reads shared by viewers catching up -------------------------------------------


class SlowReads:
    """``get_text_range`` whose answers the test gives, counting the calls."""

    def __init__(self):
        self.calls: list[tuple[int, int]] = []
        self.pending: list[defer.Deferred] = []

    def get_text_range(self, logid, first, last):
        self.calls.append((first, last))
        d = defer.Deferred()
        self.pending.append(d)
        return d


def test_viewers_behind_at_the_same_place_share_one_read_and_its_json():
    reads, db = SharedReads(), SlowReads()
    waits = [reads.lines(LOGID, 0, 1999, db.get_text_range) for _ in range(VIEWERS)]
    assert db.calls == [(0, 1999)] and not any(w.called for w in waits)
    db.pending[0].callback("a\nb\n")
    got = [w.result for w in waits]
    assert all(batch is got[0] for batch in got) and (got[0].text, got[0].count) == ("a\nb\n", 2)
    again = reads.lines(LOGID, 0, 1999, db.get_text_range)
    assert again.result is got[0] and reads.reads == 1  # kept for a viewer that comes later


def test_a_viewer_that_leaves_does_not_cancel_the_read_others_wait_for():
    reads, db = SharedReads(), SlowReads()
    leaving, staying = (reads.lines(LOGID, 0, 9, db.get_text_range) for _ in range(2))
    leaving.addErrback(lambda f: f.trap(defer.CancelledError))
    leaving.cancel()
    db.pending[0].callback("x\n")
    assert staying.result.text == "x\n"


def test_a_failed_read_reaches_its_viewers_and_is_not_kept():
    reads, db = SharedReads(), SlowReads()
    failed = reads.lines(LOGID, 0, 9, db.get_text_range)
    db.pending[0].errback(RuntimeError("database is locked"))
    assert isinstance(failed.result.value, RuntimeError)
    failed.addErrback(lambda f: None)
    reads.lines(LOGID, 0, 9, db.get_text_range)
    assert len(db.calls) == 2


def test_shared_reads_keep_at_most_max_chars_dropping_the_least_recently_used():
    reads, db = SharedReads(max_chars=250), SlowReads()
    for first in range(0, 500, 100):
        reads.lines(LOGID, first, first + 99, db.get_text_range)
        db.pending[-1].callback("z" * 99 + "\n")
    assert reads.held_chars() <= 250
    reads.lines(LOGID, 400, 499, db.get_text_range)  # the newest is kept
    reads.lines(LOGID, 0, 99, db.get_text_range)  # the oldest was dropped
    assert db.calls[-1] == (0, 99) and len(db.calls) == 6
