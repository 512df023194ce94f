"""``ReportSender`` (master/reporters/sender.py) on a real SQLite database and an injected
clock: reports are sent oldest first, a failing endpoint is retried with capped exponential
backoff (logged each time) while the reports behind it wait, a rejected report is given up,
and a new sender on the same database (a restarted master) sends what was pending, once."""

import pytest
import pytest_twisted
from twisted.internet import defer, task
from twisted.logger import capturedLogs, formatEvent

from buildfarm.master.reporters.sender import ReportRejected, ReportSender, backoff_delay
from fixtures.memorymaster import eventually

MASTERID = 1


class Endpoint:
    """What the sender sends to: records each call; fails while ``failures`` is not empty
    (each item an exception raised for one call)."""

    def __init__(self, failures=()):
        self.calls: list = []
        self.failures = list(failures)

    async def send(self, reports):
        self.calls.append(reports)
        if self.failures:
            raise self.failures.pop(0)


def sender_of(db, endpoint, clock, **kwargs) -> ReportSender:
    return ReportSender(db, clock, "http", MASTERID, endpoint.send, **kwargs)


async def states(db) -> list[tuple[str, str, int]]:
    return [(r["event"], r["state"], r["attempts"]) for r in await db.reports.get_all("http")]


def test_backoff_doubles_from_the_base_up_to_the_cap():
    assert [backoff_delay(n, 1.0, 60.0) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest_twisted.ensureDeferred
async def test_recorded_reports_are_sent_oldest_first_and_marked_sent(sqlite_db):
    clock, endpoint = task.Clock(), Endpoint()
    for n in (1, 2, 3):
        await sqlite_db.reports.record("http", f"e{n}", MASTERID, [{"body": n}], 0.0)
    await sqlite_db.reports.record("http", "other-master", 2, [{"body": 9}], 0.0)
    sender = sender_of(sqlite_db, endpoint, clock)
    sender.wake()
    await eventually(lambda: defer.succeed(len(endpoint.calls) == 3), "three reports sent")
    await sender.stop()
    assert endpoint.calls == [[{"body": 1}], [{"body": 2}], [{"body": 3}]]
    assert await states(sqlite_db) == [("e1", "sent", 1), ("e2", "sent", 1), ("e3", "sent", 1),
                                       ("other-master", "pending", 0)]


@pytest_twisted.ensureDeferred
async def test_a_failing_endpoint_is_retried_with_backoff_and_logged_while_later_reports_wait(sqlite_db):
    clock = task.Clock()
    endpoint = Endpoint([ConnectionRefusedError("refused"), RuntimeError("500 oops"),
                         ConnectionRefusedError("refused")])
    await sqlite_db.reports.record("http", "first", MASTERID, ["a"], 0.0)
    await sqlite_db.reports.record("http", "second", MASTERID, ["b"], 0.0)
    sender = sender_of(sqlite_db, endpoint, clock, base_s=2.0, cap_s=5.0)
    with capturedLogs() as logs:
        sender.wake()
        for calls, wait in ((1, 2.0), (2, 4.0), (3, 5.0)):  # 2, 4, then capped at 5
            await eventually(lambda c=calls: defer.succeed(len(endpoint.calls) == c), f"attempt {calls}")
            await eventually(lambda: _retry_scheduled(clock), "the retry scheduled")
            assert [d.getTime() for d in clock.getDelayedCalls()] == [clock.seconds() + wait]
            clock.advance(wait - 0.001)
            assert len(endpoint.calls) == calls  # not before its time
            clock.advance(0.001)
        await eventually(lambda: defer.succeed(len(endpoint.calls) == 5), "both sent")
    await sender.stop()
    assert endpoint.calls == [["a"], ["a"], ["a"], ["a"], ["b"]]
    assert await states(sqlite_db) == [("first", "sent", 4), ("second", "sent", 1)]
    warnings = [formatEvent(e) for e in logs if "failed (attempt" in formatEvent(e)]
    assert len(warnings) == 3
    assert "attempt 2): 500 oops; next attempt in 4s" in warnings[1]


def _retry_scheduled(clock) -> defer.Deferred:
    return defer.succeed(bool(clock.getDelayedCalls()))


@pytest_twisted.ensureDeferred
async def test_a_rejected_report_is_given_up_and_the_next_is_sent(sqlite_db):
    clock, endpoint = task.Clock(), Endpoint([ReportRejected("400: bad body")])
    await sqlite_db.reports.record("http", "bad", MASTERID, ["x"], 0.0)
    await sqlite_db.reports.record("http", "good", MASTERID, ["y"], 0.0)
    sender = sender_of(sqlite_db, endpoint, clock)
    sender.wake()
    await eventually(lambda: defer.succeed(len(endpoint.calls) == 2), "both tried")
    await sender.stop()
    rows = await sqlite_db.reports.get_all("http")
    assert [(r["event"], r["state"], r["last_error"]) for r in rows] == [
        ("bad", "failed", "400: bad body"), ("good", "sent", "")]


@pytest_twisted.ensureDeferred
async def test_a_report_is_given_up_after_max_attempts(sqlite_db):
    clock, endpoint = task.Clock(), Endpoint([OSError("down")] * 3)
    await sqlite_db.reports.record("http", "e", MASTERID, ["x"], 0.0)
    sender = sender_of(sqlite_db, endpoint, clock, base_s=1.0, max_attempts=3)
    sender.wake()
    for calls in (1, 2):
        await eventually(lambda c=calls: defer.succeed(len(endpoint.calls) == c), f"attempt {calls}")
        await eventually(lambda: _retry_scheduled(clock), "the retry scheduled")
        clock.advance(10)
    await eventually(lambda: _state_is(sqlite_db, "failed"), "given up")
    await sender.stop()
    assert len(endpoint.calls) == 3
    assert clock.getDelayedCalls() == []


async def _state_is(db, state) -> bool:
    return [r["state"] for r in await db.reports.get_all("http")] == [state]


@pytest_twisted.ensureDeferred
async def test_a_new_sender_on_the_same_database_sends_the_pending_report_once(sqlite_db):
    clock = task.Clock()
    dead = Endpoint([ConnectionRefusedError("refused")])
    await sqlite_db.reports.record("http", "e", MASTERID, ["due"], 0.0)
    first = sender_of(sqlite_db, dead, clock, base_s=60.0)
    first.wake()
    await eventually(lambda: _retry_scheduled(clock), "a retry scheduled")
    await first.stop()  # the master stops with the report pending
    assert clock.getDelayedCalls() == []
    clock.advance(60)
    alive = Endpoint()
    second = sender_of(sqlite_db, alive, clock)
    second.wake()
    await eventually(lambda: _state_is(sqlite_db, "sent"), "sent after the restart")
    second.wake()
    await second.stop()
    assert alive.calls == [["due"]]


@pytest_twisted.ensureDeferred
async def test_a_stopped_sender_sends_nothing(sqlite_db):
    clock, endpoint = task.Clock(), Endpoint()
    sender = sender_of(sqlite_db, endpoint, clock)
    await sender.stop()
    await sqlite_db.reports.record("http", "e", MASTERID, ["x"], 0.0)
    sender.wake()
    assert sender._running is None
    assert await states(sqlite_db) == [("e", "pending", 0)]


@pytest.mark.parametrize("attempts,expected", [(0, 1.0), (1, 1.0), (2, 2.0), (20, 300.0)])
def test_backoff_defaults(attempts, expected):
    assert backoff_delay(attempts) == expected


@pytest_twisted.ensureDeferred
async def test_a_send_cancelled_by_its_timeout_is_a_failed_attempt_retried(sqlite_db):
    clock = task.Clock()
    endpoint = Endpoint([defer.CancelledError("timed out")])
    await sqlite_db.reports.record("http", "e", MASTERID, ["x"], 0.0)
    sender = sender_of(sqlite_db, endpoint, clock, base_s=3.0)
    sender.wake()
    await eventually(lambda: _retry_scheduled(clock), "a retry scheduled")
    rows = await sqlite_db.reports.get_all("http")
    assert (rows[0]["attempts"], rows[0]["next_attempt_at"]) == (1, 3.0)
    assert rows[0]["last_error"].startswith("no answer in time")
    clock.advance(3.0)
    await eventually(lambda: _state_is(sqlite_db, "sent"), "sent on the retry")
    await sender.stop()
