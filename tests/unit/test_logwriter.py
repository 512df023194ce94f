"""LogWriter: batching a step log's text into database writes, one write in flight at a time."""

import pytest
import pytest_twisted
from twisted.internet import defer, task

from buildfarm.master.process import logwriter
from buildfarm.master.process.logwriter import (
    CHUNK_CHARS,
    FLUSH_BYTES,
    FLUSH_DELAY_S,
    PAUSE_BYTES,
    LogWriter,
)


class Logs:
    """db.logs whose writes complete when the test says so."""

    def __init__(self):
        self.writes: list[list[str]] = []  # the chunks of each write, in call order
        self.pending: list[defer.Deferred] = []
        self.finished = []
        self.fail_next = False

    def append(self, logid, text):
        return self.append_many([(logid, text)])

    def append_many(self, items):
        self.writes.append([text for _, text in items])
        d = defer.Deferred()
        self.pending.append(d)
        return d

    def complete_oldest(self):
        d = self.pending.pop(0)
        if self.fail_next:
            self.fail_next = False
            d.errback(RuntimeError("database is locked"))
        else:
            d.callback(None)

    async def finish(self, logid):
        self.finished.append(logid)

    def text(self):
        return "".join("".join(chunks) for chunks in self.writes)


class DB:
    def __init__(self):
        self.logs = Logs()


@pytest.fixture
def setup():
    db, clock, seen = DB(), task.Clock(), []
    return db, clock, LogWriter(db, 7, clock, seen.append), seen


def test_small_output_is_written_after_the_delay(setup):
    db, clock, writer, _ = setup
    writer.add_stdout("hello\n")
    writer.add_stderr("oops\n")
    assert db.logs.writes == []
    clock.advance(FLUSH_DELAY_S)
    assert db.logs.writes == [["hello\noops\n"]]


def test_a_full_buffer_is_written_at_once(setup):
    db, _, writer, _ = setup
    writer.add_stdout("x" * FLUSH_BYTES)
    assert db.logs.writes == [["x" * FLUSH_BYTES]]


def test_text_arriving_during_a_write_goes_out_together_in_the_next_one(setup):
    db, clock, writer, seen = setup
    writer.add_stdout("a" * FLUSH_BYTES)
    for letter in "bcdefg":  # six more buffers' worth while the first write is in flight
        writer.add_stdout(letter * FLUSH_BYTES)
    clock.advance(FLUSH_DELAY_S)
    assert len(db.logs.writes) == 1  # one write in flight at a time
    db.logs.complete_oldest()
    assert len(db.logs.writes) == 2
    second = db.logs.writes[1]
    assert [len(chunk) for chunk in second] == [CHUNK_CHARS, 6 * FLUSH_BYTES - CHUNK_CHARS]
    db.logs.complete_oldest()
    assert db.logs.text() == "".join(letter * FLUSH_BYTES for letter in "abcdefg")
    assert "".join(seen) == db.logs.text()  # the hook saw each chunk once it was written


def test_a_short_remainder_after_a_write_waits_for_the_delay(setup):
    db, clock, writer, _ = setup
    writer.add_stdout("a" * FLUSH_BYTES)
    writer.add_stdout("tail\n")
    db.logs.complete_oldest()
    assert len(db.logs.writes) == 1
    clock.advance(FLUSH_DELAY_S)
    assert db.logs.writes[1] == ["tail\n"]


@pytest_twisted.ensureDeferred
async def test_finish_writes_everything_in_order_then_marks_the_log_complete(setup):
    db, _, writer, _ = setup
    writer.add_stdout("a" * FLUSH_BYTES)
    writer.add_stdout("more\n")
    finishing = defer.ensureDeferred(writer.finish())
    assert not finishing.called and db.logs.finished == []
    db.logs.complete_oldest()
    writer.add_stdout("late\n")  # arrives while the last write is in flight
    db.logs.complete_oldest()
    db.logs.complete_oldest()
    await finishing
    assert db.logs.text() == "a" * FLUSH_BYTES + "more\nlate\n"
    assert db.logs.finished == [7]


@pytest_twisted.ensureDeferred
async def test_finish_of_an_empty_log_only_marks_it_complete(setup):
    db, _, writer, _ = setup
    await writer.finish()
    assert db.logs.writes == [] and db.logs.finished == [7]


@pytest_twisted.ensureDeferred
async def test_a_refused_write_is_tried_again_and_nothing_is_lost(setup):
    db, clock, writer, seen = setup
    db.logs.fail_next = True
    writer.add_stdout("a" * FLUSH_BYTES)
    db.logs.complete_oldest()  # refused: "database is locked"
    writer.add_stdout("b\n")  # waits behind the retry, so the log keeps its order
    assert len(db.logs.pending) == 0
    clock.advance(0.5)  # the database's first backoff step
    assert db.logs.writes[-1] == ["a" * FLUSH_BYTES]
    db.logs.complete_oldest()
    finished = defer.ensureDeferred(writer.finish())
    db.logs.complete_oldest()
    await finished
    assert db.logs.writes[-1] == ["b\n"]
    assert "".join(seen) == "a" * FLUSH_BYTES + "b\n"


@pytest_twisted.ensureDeferred
async def test_text_the_database_keeps_refusing_is_reported_lost_in_the_log(setup, monkeypatch):
    db, clock, writer, seen = setup
    errors = []
    monkeypatch.setattr(logwriter.log, "error", lambda fmt, **kw: errors.append(kw))
    writer.add_stdout("x" * FLUSH_BYTES)
    waited = 0.0
    while waited <= logwriter.WRITE_RETRY_S and db.logs.writes[-1] == ["x" * FLUSH_BYTES]:
        db.logs.fail_next = True
        db.logs.complete_oldest()
        clock.advance(10.0)
        waited += 10.0
    notice = db.logs.writes[-1]
    assert notice == [logwriter.lost_text_notice(FLUSH_BYTES, RuntimeError("database is locked"))]
    assert "65536 characters of this log are missing here" in notice[0]
    db.logs.complete_oldest()
    finished = defer.ensureDeferred(writer.finish())
    await finished
    assert errors == [{"id": 7, "lost": FLUSH_BYTES, "why": "database is locked"}]
    assert seen == notice and db.logs.finished == [7]


class Producer:
    def __init__(self):
        self.events = []

    def pauseProducing(self):  # noqa: N802 - Twisted's name
        self.events.append("pause")

    def resumeProducing(self):  # noqa: N802 - Twisted's name
        self.events.append("resume")


def test_the_producer_is_paused_while_too_much_waits_for_the_database(setup):
    db, _, writer, _ = setup
    producer = Producer()
    writer.throttle(producer)
    writer.add_stdout("a" * FLUSH_BYTES)  # written at once; the database is slow
    while writer._buffered < PAUSE_BYTES:
        assert producer.events == []
        writer.add_stdout("b" * FLUSH_BYTES)
    assert producer.events == ["pause"]
    writer.add_stdout("c" * FLUSH_BYTES)  # what was already on its way is still taken
    assert producer.events == ["pause"]
    db.logs.complete_oldest()
    assert producer.events == ["pause", "resume"]
    assert len(db.logs.writes) == 2  # everything buffered went out in one write
