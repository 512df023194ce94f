"""The ``reports`` table (master/db/reports.py) on SQLite and PostgreSQL: a report is recorded
once per (reporter, event), read back pending oldest first for the master that recorded it,
and ends sent or failed."""

import pytest_twisted

from buildfarm.master.db.testing import add_running_build


@pytest_twisted.ensureDeferred
async def test_a_report_is_recorded_once_per_reporter_and_event(db):
    assert await db.reports.record("http", "build:1:build_finished", 1, [{"body": {"a": 1}}], 10.0)
    assert not await db.reports.record("http", "build:1:build_finished", 1, [{"body": {"a": 2}}], 11.0)
    assert await db.reports.record("mail", "build:1:build_finished", 1, [{"body": "text"}], 12.0)
    rows = await db.reports.get_all("http")
    assert [(r["event"], r["reports"], r["state"], r["attempts"]) for r in rows] == [
        ("build:1:build_finished", [{"body": {"a": 1}}], "pending", 0)]


@pytest_twisted.ensureDeferred
async def test_pending_reports_are_those_of_the_reporter_and_master_oldest_first(db):
    await db.reports.record("http", "e1", 1, [1], 10.0)
    await db.reports.record("http", "e2", 2, [2], 11.0)  # another master's
    await db.reports.record("http", "e3", 1, [3], 12.0)
    await db.reports.record("mail", "e4", 1, [4], 13.0)
    assert [r["event"] for r in await db.reports.get_pending("http", 1)] == ["e1", "e3"]


@pytest_twisted.ensureDeferred
async def test_sent_failed_and_retried_reports(db):
    for event in ("sent", "failed", "retried"):
        await db.reports.record("http", event, 1, [], 10.0)
    sent, failed, retried = await db.reports.get_all("http")
    await db.reports.mark_sent(sent["reportid"], 20.0)
    await db.reports.mark_failed(failed["reportid"], 21.0, "400 bad request")
    await db.reports.retry_later(retried["reportid"], 30.0, "connection refused")
    rows = {r["event"]: r for r in await db.reports.get_all("http")}
    assert (rows["sent"]["state"], rows["sent"]["done_at"], rows["sent"]["attempts"]) == ("sent", 20.0, 1)
    assert (rows["failed"]["state"], rows["failed"]["last_error"]) == ("failed", "400 bad request")
    assert (rows["retried"]["state"], rows["retried"]["attempts"], rows["retried"]["next_attempt_at"],
            rows["retried"]["last_error"]) == ("pending", 1, 30.0, "connection refused")
    assert [r["event"] for r in await db.reports.get_pending("http", 1)] == ["retried"]
    assert await db.reports.recorded_events("http", ["sent", "other", "retried"]) == {"sent", "retried"}


@pytest_twisted.ensureDeferred
async def test_builds_since_are_the_masters_own_started_or_finished_since(db):
    first = await add_running_build(db, now=100.0)
    await db.builds.finish(first.buildid, 0, 150.0, "done")
    second = await add_running_build(db, now=200.0)
    await db.builds.finish(second.buildid, 2, 250.0, "failed")
    other = await add_running_build(db, master="master2", now=200.0)
    await db.builds.finish(other.buildid, 0, 260.0, "done")
    running = await add_running_build(db, now=300.0)
    assert await db.reports.builds_since(first.masterid, 0.0) == [
        (first.buildid, 100.0, 150.0), (second.buildid, 200.0, 250.0), (running.buildid, 300.0, None)]
    assert await db.reports.builds_since(first.masterid, 220.0) == [
        (second.buildid, 200.0, 250.0), (running.buildid, 300.0, None)]
    assert await db.reports.builds_since(first.masterid, 301.0) == []


@pytest_twisted.ensureDeferred
async def test_old_done_reports_are_deleted_and_pending_ones_kept(db):
    for event in ("old-sent", "old-failed", "new-sent", "pending"):
        await db.reports.record("http", event, 1, [], 10.0)
    await db.reports.record("mail", "other", 1, [], 10.0)
    rows = {r["event"]: r["reportid"] for r in await db.reports.get_all()}
    await db.reports.mark_sent(rows["old-sent"], 100.0)
    await db.reports.mark_failed(rows["old-failed"], 100.0, "400")
    await db.reports.mark_sent(rows["new-sent"], 300.0)
    await db.reports.mark_sent(rows["other"], 100.0)
    assert await db.reports.delete_done_before("http", 200.0) == 2
    assert [r["event"] for r in await db.reports.get_all()] == ["new-sent", "pending", "other"]
