"""Riding out database outages: what is retried, on which schedule, and a real restart."""

import sqlite3

import psycopg
import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import defer, reactor, task, threads
from twisted.logger import capturedLogs, formatEvent

from buildfarm.master.db.retry import OutageRetrier, backoff_delays, is_connection_error
from buildfarm.master.db.testing import open_test_db
from fixtures.postgres import PostgresServer

OUTAGE_DEADLINE_S = 30.0
POLL_INTERVAL_S = 0.05


def _wrapped(cls, orig, invalidated=False):
    return cls("SELECT 1", {}, orig, connection_invalidated=invalidated)


def _refused():
    return _wrapped(sa.exc.OperationalError, psycopg.OperationalError("connection refused"))


class FakeEngine:
    """Fails each attempt with the next error given, then returns ``result``."""

    def __init__(self, errors, result="rows"):
        self.errors = list(errors)
        self.result = result
        self.attempts = []

    def attempt(self, clock):
        self.attempts.append(clock.seconds())
        if self.errors:
            return defer.fail(self.errors.pop(0))
        return defer.succeed(self.result)


def _messages(events):
    return [formatEvent(event) for event in events if event.get("log_namespace", "").startswith(
        "buildfarm.master.db.retry")]


@pytest.mark.parametrize("error", [
    _refused(),
    _wrapped(sa.exc.InterfaceError, psycopg.InterfaceError("the connection is closed")),
    _wrapped(sa.exc.OperationalError, psycopg.errors.AdminShutdown("terminating connection")),
    _wrapped(sa.exc.OperationalError, psycopg.errors.ConnectionFailure("lost")),
    _wrapped(sa.exc.OperationalError, sqlite3.OperationalError("closed"), invalidated=True),
])
def test_connection_level_errors_are_retried(error):
    assert is_connection_error(error)


@pytest.mark.parametrize("error", [
    _wrapped(sa.exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
    _wrapped(sa.exc.ProgrammingError, psycopg.errors.UndefinedTable("no such table")),
    _wrapped(sa.exc.OperationalError, psycopg.errors.InvalidPassword("password failed")),
    _wrapped(sa.exc.OperationalError, psycopg.errors.QueryCanceled("statement timeout")),
    _wrapped(sa.exc.OperationalError, sqlite3.OperationalError("no such table: builds")),
    _wrapped(sa.exc.InterfaceError, sqlite3.InterfaceError("Error binding parameter 1")),
    RuntimeError("boom"),
])
def test_other_errors_are_not_retried(error):
    assert not is_connection_error(error)


def test_backoff_starts_at_half_a_second_and_doubles_up_to_ten():
    delays = backoff_delays()
    assert [next(delays) for _ in range(8)] == [0.5, 1, 2, 4, 8, 10, 10, 10]


@pytest_twisted.ensureDeferred
async def test_an_outage_is_waited_out_on_the_backoff_schedule_and_logged_once():
    clock = task.Clock()
    engine = FakeEngine([_refused() for _ in range(6)])
    retrier = OutageRetrier(clock, total_s=300)
    with capturedLogs() as events:
        result = defer.ensureDeferred(retrier.run(lambda: engine.attempt(clock)))
        clock.pump([0.25] * 200)
        assert retrier.unavailable is False
    assert result.result == "rows"
    assert engine.attempts == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5]
    messages = _messages(events)
    assert messages[0].startswith("database unavailable: connection refused; retrying")
    assert messages[1:] == ["database available again"]


@pytest_twisted.ensureDeferred
async def test_retrying_gives_up_after_the_total_and_raises_the_last_error():
    clock = task.Clock()
    engine = FakeEngine([_refused() for _ in range(100)])
    retrier = OutageRetrier(clock, total_s=20)
    result = defer.ensureDeferred(retrier.run(lambda: engine.attempt(clock)))
    clock.pump([0.5] * 100)
    assert engine.attempts == [0, 0.5, 1.5, 3.5, 7.5, 15.5]  # the next wait would end at 25.5
    with pytest.raises(sa.exc.OperationalError):
        await result


@pytest_twisted.ensureDeferred
async def test_an_integrity_error_fails_at_once():
    clock = task.Clock()
    duplicate = _wrapped(sa.exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate"))
    engine = FakeEngine([duplicate])
    with pytest.raises(sa.exc.IntegrityError):
        await OutageRetrier(clock).run(lambda: engine.attempt(clock))
    assert engine.attempts == [0]


@pytest_twisted.ensureDeferred
async def test_concurrent_queries_log_one_outage():
    clock = task.Clock()
    engines = [FakeEngine([_refused(), _refused()]) for _ in range(3)]
    retrier = OutageRetrier(clock)
    with capturedLogs() as events:
        results = [defer.ensureDeferred(retrier.run(lambda e=e: e.attempt(clock)))
                   for e in engines]
        clock.pump([0.5] * 10)
    assert [r.result for r in results] == ["rows"] * 3
    assert [m.split(":")[0] for m in _messages(events)] == [
        "database unavailable", "database available again",
    ]


@pytest_twisted.ensureDeferred
async def test_cancelling_the_waits_fails_the_waiting_queries():
    clock = task.Clock()
    retrier = OutageRetrier(clock)
    engine = FakeEngine([_refused()])
    waiting = defer.ensureDeferred(retrier.run(lambda: engine.attempt(clock)))
    retrier.cancel_waits()
    with pytest.raises(defer.CancelledError):
        await waiting


async def _poll(predicate, what: str) -> None:
    deadline = reactor.seconds() + OUTAGE_DEADLINE_S
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError(f"gave up after {OUTAGE_DEADLINE_S:.0f} s waiting for {what}")
        await task.deferLater(reactor, POLL_INTERVAL_S, lambda: None)


@pytest.fixture
def own_postgres():
    """A PostgreSQL server of this test's own, since the test stops and restarts it."""
    server = PostgresServer.start_new()
    yield server
    server.stop()


@pytest_twisted.ensureDeferred
async def test_a_query_waits_out_a_postgresql_restart(own_postgres, tmp_path):
    db = await open_test_db(str(tmp_path), own_postgres.url(own_postgres.create_database()))
    try:
        linux = await db.builders.find_or_create("linux")
        with capturedLogs() as events:
            await threads.deferToThread(own_postgres.stop_server)
            query = defer.ensureDeferred(db.builders.get_all())
            await _poll(lambda: db.unavailable, "the query to find the database down")
            assert not query.called
            await threads.deferToThread(own_postgres.start)
            await _poll(lambda: query.called, "the query to complete")
        assert await query == [{"builderid": linux, "name": "linux"}]
    finally:
        await db.stopService()
    messages = _messages(events)
    assert len(messages) == 2, messages
    assert messages[0].startswith("database unavailable: ") and messages[0].endswith("; retrying")
    assert messages[1] == "database available again"


@pytest_twisted.ensureDeferred
async def test_stopping_the_connector_ends_a_query_waiting_for_postgresql(own_postgres, tmp_path):
    db = await open_test_db(str(tmp_path), own_postgres.url(own_postgres.create_database()))
    await threads.deferToThread(own_postgres.stop_server)
    query = defer.ensureDeferred(db.builders.get_all())
    await _poll(lambda: db.unavailable, "the query to find the database down")
    await db.stopService()
    with pytest.raises(defer.CancelledError):
        await query
