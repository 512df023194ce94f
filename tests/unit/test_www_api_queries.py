"""The database queries the JSON API and /metrics added: counts beside pages, result filters,
queues by builder, last builds, log sizes, SlaveAPI result counts (SQLite and PostgreSQL)."""

import pytest_twisted

from buildfarm.master.db.testing import add_running_build

SUCCESS, FAILURE = 0, 2


async def _finished_builds(db):
    """Builds on linux: #1 success, #2 failure, #3 running; one windows build, success."""
    first = await add_running_build(db, builder="linux", slave="s1")
    await db.builds.finish(first.buildid, SUCCESS, 1100.0, "done")
    ids = (first.builderid, first.buildrequestid, first.slaveid, first.masterid)
    second, _ = await db.builds.add(*ids, 1200.0)
    await db.builds.finish(second, FAILURE, 1300.0, "failed")
    third, _ = await db.builds.add(*ids, 1400.0)
    windows = await add_running_build(db, builder="windows", slave="s2")
    await db.builds.finish(windows.buildid, SUCCESS, 1500.0, "done")
    return first, second, third, windows


@pytest_twisted.ensureDeferred
async def test_builds_filter_by_result_and_count_over_all_pages(db):
    first, second, third, windows = await _finished_builds(db)
    successes = await db.builds.get_all(results=SUCCESS)
    assert [b["buildid"] for b in successes] == [windows.buildid, first.buildid]
    assert await db.builds.count() == 4
    assert await db.builds.count(builderid=first.builderid) == 3
    assert await db.builds.count(builderid=first.builderid, complete=True) == 2
    assert await db.builds.count(slaveid=windows.slaveid, results=SUCCESS) == 1
    page = await db.builds.get_all(builderid=first.builderid, limit=1, offset=1)
    assert [b["buildid"] for b in page] == [second]


@pytest_twisted.ensureDeferred
async def test_last_finished_build_of_each_builder(db):
    first, second, third, windows = await _finished_builds(db)
    last = await db.builds.get_last_finished_by_builder()
    assert {k: v["buildid"] for k, v in last.items()} == {first.builderid: second,
                                                           windows.builderid: windows.buildid}
    assert last[first.builderid]["results"] == FAILURE


@pytest_twisted.ensureDeferred
async def test_buildrequests_count_filter_by_result_and_queue_by_builder(db):
    build = await add_running_build(db, builder="linux")  # claimed
    waiting = [await db.buildrequests.add(build.builderid, "r", {}, t) for t in (50.0, 70.0)]
    other = await db.builders.find_or_create("windows")
    await db.buildrequests.add(other, "r", {}, 90.0)
    await db.buildrequests.complete(build.buildrequestid, FAILURE, 2000.0)
    assert await db.buildrequests.count() == 4
    assert await db.buildrequests.count(complete=False) == 3
    assert await db.buildrequests.count(results=FAILURE) == 1
    assert [r["buildrequestid"] for r in await db.buildrequests.get_all(results=FAILURE)] == [
        build.buildrequestid]
    assert await db.buildrequests.get_queue_by_builder() == {
        "linux": {"pending": 2, "oldest_submitted_at": 50.0},
        "windows": {"pending": 1, "oldest_submitted_at": 90.0},
    }
    await db.buildrequests.claim(waiting[0], build.masterid, 3000.0)
    assert (await db.buildrequests.get_queue_by_builder())["linux"] == {
        "pending": 1, "oldest_submitted_at": 70.0}


@pytest_twisted.ensureDeferred
async def test_changes_count(db):
    assert await db.changes.count() == 0
    for _ in range(3):
        await db.changes.add("me", "fix", [], 1.0, 2.0)
    assert await db.changes.count() == 3


@pytest_twisted.ensureDeferred
async def test_log_sizes_are_utf8_bytes_and_a_log_reads_back_by_id(db):
    build = await add_running_build(db)
    stepid = await db.steps.add(build.buildid, 0, "compile", 10.0)
    text_log = await db.logs.add(stepid, "stdio")
    empty_log = await db.logs.add(stepid, "empty")
    await db.logs.append_many([(text_log, "héllo\n"), (text_log, "€\n")])
    assert await db.logs.get_sizes([text_log, empty_log]) == {text_log: 11, empty_log: 0}
    assert await db.logs.get_sizes([]) == {}
    assert (await db.logs.get(text_log))["num_lines"] == 2
    assert await db.logs.get(text_log + 100) is None


@pytest_twisted.ensureDeferred
async def test_slaveapi_results_counted_by_action_and_state(db):
    for action in ("reboot", "reboot", "disable"):
        await db.slaveapi.add_result("bs1", action, {}, "oncall", "1.2.3.4", None, 5)
    first = (await db.slaveapi.get_results(action="reboot"))[0]["requestid"]
    await db.slaveapi.finish_result(first, 2, "rebooted", 9)
    counted = sorted(await db.slaveapi.count_results())
    assert counted == [("disable", 0, 1), ("reboot", 0, 1), ("reboot", 2, 1)]
