"""Buildsets: one request per builder, added together, complete with the worst result."""

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)
from buildfarm.master.db.connector import DBConnector
from buildfarm.master.db.testing import add_running_build


async def _builders(db, *names):
    return [await db.builders.find_or_create(name) for name in names]


@pytest_twisted.ensureDeferred
async def test_add_creates_one_request_per_builder_in_the_buildset(db):
    linux, windows = await _builders(db, "linux", "windows")
    properties = {"branch": "main", "n": [1, 2]}
    bsid, brids = await db.buildsets.add("nightly", "timer", properties, [linux, windows], 5.0,
                                         priority=3)
    assert set(brids) == {linux, windows}
    for builderid, brid in brids.items():
        request = await db.buildrequests.get(brid)
        assert (request["buildsetid"], request["builderid"], request["reason"]) == (
            bsid, builderid, "timer",
        )
        assert (request["properties"], request["priority"], request["submitted_at"]) == (
            properties, 3, 5.0,
        )
    assert await db.buildsets.get(bsid) == {
        "bsid": bsid, "scheduler": "nightly", "reason": "timer", "properties": properties,
        "submitted_at": 5.0, "complete": False, "complete_at": None, "results": None,
        "parent_buildid": None, "buildrequestids": sorted(brids.values()),
    }


@pytest_twisted.ensureDeferred
async def test_a_buildset_remembers_the_build_that_triggered_it(db):
    parent = await add_running_build(db)
    bsid, _ = await db.buildsets.add("trigger", "r", {}, [parent.builderid], 1.0,
                                     parent_buildid=parent.buildid)
    assert (await db.buildsets.get(bsid))["parent_buildid"] == parent.buildid


@pytest_twisted.ensureDeferred
async def test_a_failing_request_rolls_back_the_whole_buildset(db):
    (linux,) = await _builders(db, "linux")
    with pytest.raises(Exception, match="(?i)foreign key"):
        await db.buildsets.add("force", "r", {}, [linux, 404], 1.0)
    assert await db.buildsets.get_all() == []
    assert await db.buildrequests.get_all() == []


@pytest_twisted.ensureDeferred
async def test_get_of_an_unknown_buildset_is_none(db):
    assert await db.buildsets.get(404) is None


@pytest_twisted.ensureDeferred
async def test_a_buildset_completes_only_when_all_its_requests_have(db):
    linux, windows = await _builders(db, "linux", "windows")
    bsid, brids = await db.buildsets.add("force", "r", {}, [linux, windows], 1.0)
    await db.buildrequests.complete(brids[linux], SUCCESS, 2.0)
    assert await db.buildsets.complete_if_done(bsid, 3.0) is None
    assert (await db.buildsets.get(bsid))["complete"] is False
    await db.buildrequests.complete(brids[windows], WARNINGS, 4.0)
    assert await db.buildsets.complete_if_done(bsid, 5.0) == WARNINGS
    buildset = await db.buildsets.get(bsid)
    assert (buildset["complete"], buildset["complete_at"], buildset["results"]) == (
        True, 5.0, WARNINGS,
    )


@pytest.mark.parametrize("results, worst", [
    ([SKIPPED, SKIPPED], SKIPPED),
    ([SKIPPED, SUCCESS], SUCCESS),
    ([SUCCESS, WARNINGS, FAILURE], FAILURE),
    ([FAILURE, EXCEPTION], EXCEPTION),
    ([EXCEPTION, RETRY, SUCCESS], RETRY),
    ([RETRY, CANCELLED], CANCELLED),
])
@pytest_twisted.ensureDeferred
async def test_a_complete_buildset_takes_the_worst_result_of_its_requests(db, results, worst):
    builderids = await _builders(db, *(f"b{i}" for i in range(len(results))))
    bsid, brids = await db.buildsets.add("force", "r", {}, builderids, 1.0)
    for builderid, result in zip(builderids, results):
        await db.buildrequests.complete(brids[builderid], result, 2.0)
    assert await db.buildsets.complete_if_done(bsid, 3.0) == worst


@pytest_twisted.ensureDeferred
async def test_a_cancelled_request_makes_its_buildset_cancelled(db):
    (linux,) = await _builders(db, "linux")
    bsid, brids = await db.buildsets.add("force", "r", {}, [linux], 1.0)
    await db.buildrequests.cancel(brids[linux], 2.0)
    assert await db.buildsets.complete_if_done(bsid, 3.0) == CANCELLED


@pytest_twisted.ensureDeferred
async def test_a_buildset_is_completed_once_and_later_calls_get_none(db):
    (linux,) = await _builders(db, "linux")
    bsid, brids = await db.buildsets.add("force", "r", {}, [linux], 1.0)
    await db.buildrequests.complete(brids[linux], FAILURE, 2.0)
    assert await db.buildsets.complete_if_done(bsid, 3.0) == FAILURE
    assert await db.buildsets.complete_if_done(bsid, 4.0) is None
    assert (await db.buildsets.get(bsid))["complete_at"] == 3.0


@pytest_twisted.ensureDeferred
async def test_two_masters_completing_a_buildset_together_complete_it_once(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        (linux,) = await _builders(db, "linux")
        added = [await db.buildsets.add("force", "r", {}, [linux], 1.0) for _ in range(10)]
        for _, brids in added:
            await db.buildrequests.complete(brids[linux], SUCCESS, 2.0)
        calls = [
            defer.ensureDeferred(connector.buildsets.complete_if_done(bsid, 3.0))
            for bsid, _ in added
            for connector in (db, other)
        ]
        results = await defer.gatherResults(calls)
    finally:
        await other.stopService()
    pairs = [sorted((results[i], results[i + 1]), key=str) for i in range(0, len(results), 2)]
    assert pairs == [[SUCCESS, None]] * len(added)


@pytest_twisted.ensureDeferred
async def test_complete_if_done_of_an_unknown_buildset_is_none(db):
    assert await db.buildsets.complete_if_done(404, 1.0) is None


@pytest_twisted.ensureDeferred
async def test_get_all_is_newest_first_with_a_complete_filter_and_paging(db):
    (linux,) = await _builders(db, "linux")
    added = [await db.buildsets.add("force", f"r{i}", {}, [linux], float(i)) for i in range(3)]
    first_bsid, first_brids = added[0]
    await db.buildrequests.complete(first_brids[linux], SUCCESS, 5.0)
    await db.buildsets.complete_if_done(first_bsid, 5.0)
    bsids = [bsid for bsid, _ in added]
    assert [b["bsid"] for b in await db.buildsets.get_all()] == bsids[::-1]
    assert [b["bsid"] for b in await db.buildsets.get_all(complete=True)] == [first_bsid]
    assert [b["bsid"] for b in await db.buildsets.get_all(complete=False)] == bsids[:0:-1]
    page = await db.buildsets.get_all(limit=1, offset=1)
    assert [(b["bsid"], b["buildrequestids"]) for b in page] == [(bsids[1], [added[1][1][linux]])]
