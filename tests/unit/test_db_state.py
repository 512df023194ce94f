"""Scheduler state: JSON values kept per scheduler and key across restarts."""

import pytest_twisted
from twisted.internet import defer, reactor

from buildfarm.master.db.connector import DBConnector


@pytest_twisted.ensureDeferred
async def test_a_missing_value_reads_as_the_default(db):
    assert await db.state.get("nightly", "last_change") is None
    assert await db.state.get("nightly", "last_change", 0) == 0


@pytest_twisted.ensureDeferred
async def test_set_stores_json_values_and_replaces_them(db):
    await db.state.set("nightly", "last_change", 7)
    await db.state.set("nightly", "seen", {"branches": ["main", "rel"], "ok": True})
    await db.state.set("nightly", "last_change", 9)
    assert await db.state.get("nightly", "last_change") == 9
    assert await db.state.get("nightly", "seen") == {"branches": ["main", "rel"], "ok": True}


@pytest_twisted.ensureDeferred
async def test_none_is_a_value_not_an_absence(db):
    await db.state.set("nightly", "next", None)
    assert await db.state.get("nightly", "next", "default") is None


@pytest_twisted.ensureDeferred
async def test_each_scheduler_has_its_own_keys(db):
    await db.state.set("nightly", "last_change", 1)
    await db.state.set("on-commit", "last_change", 2)
    assert [await db.state.get(s, "last_change") for s in ("nightly", "on-commit")] == [1, 2]


@pytest_twisted.ensureDeferred
async def test_two_masters_setting_a_new_key_together_both_succeed(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        writes = [
            defer.ensureDeferred(connector.state.set("nightly", f"k{i}", value))
            for i in range(10)
            for connector, value in ((db, "mine"), (other, "theirs"))
        ]
        await defer.gatherResults(writes)
    finally:
        await other.stopService()
    values = {await db.state.get("nightly", f"k{i}") for i in range(10)}
    assert values <= {"mine", "theirs"}
