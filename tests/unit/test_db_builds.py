"""Builds: per-builder numbering, finishing, and what a restarting master must clean up."""

import pytest_twisted

from buildfarm.master.db.testing import add_running_build

SUCCESS, FAILURE, RETRY = 0, 2, 4


async def _another_build(db, build, started_at=2000.0, masterid=None):
    return await db.builds.add(
        build.builderid, build.buildrequestid, build.slaveid,
        masterid or build.masterid, started_at,
    )


@pytest_twisted.ensureDeferred
async def test_build_numbers_count_up_separately_for_each_builder(db):
    linux = await add_running_build(db, builder="linux")
    windows = await add_running_build(db, builder="windows")
    (_, linux_second), (_, linux_third) = [await _another_build(db, linux) for _ in range(2)]
    assert (linux.number, linux_second, linux_third) == (1, 2, 3)
    assert windows.number == 1


@pytest_twisted.ensureDeferred
async def test_a_new_build_reads_back_running_with_names(db):
    build = await add_running_build(db, builder="linux", slave="s1", now=1000.0)
    assert await db.builds.get(build.buildid) == {
        "buildid": build.buildid, "number": 1, "builderid": build.builderid,
        "buildername": "linux", "buildrequestid": build.buildrequestid,
        "slaveid": build.slaveid, "slavename": "s1", "masterid": build.masterid,
        "started_at": 1000.0, "complete": False, "complete_at": None,
        "state_string": "starting", "results": None, "properties": {},
    }


@pytest_twisted.ensureDeferred
async def test_build_properties_round_trip_as_json(db):
    build = await add_running_build(db)
    properties = {"got_revision": ["abc123", "Git"], "count": 3, "none": None}
    buildid, _ = await db.builds.add(
        build.builderid, build.buildrequestid, build.slaveid, build.masterid, 5.0,
        properties=properties,
    )
    assert (await db.builds.get(buildid))["properties"] == properties


@pytest_twisted.ensureDeferred
async def test_finish_and_set_state_update_the_build(db):
    build = await add_running_build(db)
    await db.builds.set_state(build.buildid, "building")
    assert (await db.builds.get(build.buildid))["state_string"] == "building"
    await db.builds.finish(build.buildid, FAILURE, 1500.0, "failed compile")
    finished = await db.builds.get(build.buildid)
    assert (finished["complete"], finished["results"], finished["complete_at"]) == (
        True, FAILURE, 1500.0,
    )
    assert finished["state_string"] == "failed compile"


@pytest_twisted.ensureDeferred
async def test_unfinished_builds_of_a_master_exclude_finished_and_other_masters(db):
    build = await add_running_build(db, master="m1")
    finished, _ = await _another_build(db, build)
    await db.builds.finish(finished, SUCCESS, 2100.0, "done")
    other_master = await db.masters.find_or_create("m2")
    await _another_build(db, build, masterid=other_master)
    unfinished = await db.builds.get_unfinished_of_master(build.masterid)
    assert [b["buildid"] for b in unfinished] == [build.buildid]


@pytest_twisted.ensureDeferred
async def test_master_restart_cleanup_requeues_the_request(db):
    build = await add_running_build(db)
    for stale in await db.builds.get_unfinished_of_master(build.masterid):
        await db.builds.finish(stale["buildid"], RETRY, 3000.0, "retry: master restarted")
    await db.buildrequests.unclaim_all_of_master(build.masterid)
    assert await db.builds.get_unfinished_of_master(build.masterid) == []
    unclaimed = await db.buildrequests.get_unclaimed(build.builderid)
    assert [r["buildrequestid"] for r in unclaimed] == [build.buildrequestid]


@pytest_twisted.ensureDeferred
async def test_get_all_is_newest_first_with_filters_and_paging(db):
    linux = await add_running_build(db, builder="linux", slave="s1")
    windows = await add_running_build(db, builder="windows", slave="s2")
    linux2, _ = await _another_build(db, linux)
    await db.builds.finish(linux.buildid, SUCCESS, 1.0, "done")
    ids = [b["buildid"] for b in await db.builds.get_all()]
    assert ids == [linux2, windows.buildid, linux.buildid]
    running_linux = await db.builds.get_all(builderid=linux.builderid, complete=False)
    assert [b["buildid"] for b in running_linux] == [linux2]
    on_s2 = await db.builds.get_all(slaveid=windows.slaveid)
    assert [b["buildid"] for b in on_s2] == [windows.buildid]
    page = await db.builds.get_all(limit=1, offset=1)
    assert [b["buildid"] for b in page] == [windows.buildid]
