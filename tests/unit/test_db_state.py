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


@pytest_twisted.ensureDeferred
async def test_a_claim_is_held_by_one_master_until_its_lease_runs_out(db):
    assert await db.state.claim("GitPoller:repo", masterid=1, now=100.0, lease_s=60) is True
    assert await db.state.claim("GitPoller:repo", masterid=2, now=159.0, lease_s=60) is False
    assert await db.state.claim("GitPoller:repo", masterid=1, now=150.0, lease_s=60) is True  # renewed
    assert await db.state.claim("GitPoller:repo", masterid=2, now=209.0, lease_s=60) is False
    assert await db.state.claim("GitPoller:repo", masterid=2, now=211.0, lease_s=60) is True
    assert await db.state.claim("GitPoller:repo", masterid=1, now=212.0, lease_s=60) is False


@pytest_twisted.ensureDeferred
async def test_a_released_claim_may_be_taken_at_once_but_only_its_holder_releases_it(db):
    await db.state.claim("GitPoller:repo", masterid=1, now=100.0, lease_s=60)
    await db.state.release("GitPoller:repo", masterid=2)
    assert await db.state.claim("GitPoller:repo", masterid=2, now=101.0, lease_s=60) is False
    await db.state.release("GitPoller:repo", masterid=1)
    assert await db.state.claim("GitPoller:repo", masterid=2, now=102.0, lease_s=60) is True


@pytest_twisted.ensureDeferred
async def test_two_masters_claiming_together_one_wins(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        for round_ in range(5):
            name = f"GitPoller:repo{round_}"
            won = await defer.gatherResults([
                defer.ensureDeferred(db.state.claim(name, 1, 100.0, 60)),
                defer.ensureDeferred(other.state.claim(name, 2, 100.0, 60))])
            assert sorted(won) == [False, True]
    finally:
        await other.stopService()
