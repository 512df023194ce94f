"""Build requests: the queue, exclusive claims, and putting requests back."""

import pytest_twisted
from twisted.internet import defer, reactor

from buildfarm.common.results import CANCELLED, SUCCESS
from buildfarm.master.db.connector import DBConnector
from buildfarm.master.db.testing import add_running_build


async def _masters_and_builder(db):
    m1 = await db.masters.find_or_create("m1")
    m2 = await db.masters.find_or_create("m2")
    return m1, m2, await db.builders.find_or_create("linux")


@pytest_twisted.ensureDeferred
async def test_two_simultaneous_claims_have_exactly_one_winner(db):
    m1, m2, builderid = await _masters_and_builder(db)
    brid = await db.buildrequests.add(builderid, "r", {}, 10.0)
    won = await defer.gatherResults(
        [defer.ensureDeferred(db.buildrequests.claim(brid, m, 11.0)) for m in (m1, m2)]
    )
    assert sorted(won) == [False, True]
    winner = m1 if won[0] else m2
    request = await db.buildrequests.get(brid)
    assert (request["claimed"], request["claimed_by_masterid"], request["claimed_at"]) == (
        True, winner, 11.0,
    )


@pytest_twisted.ensureDeferred
async def test_a_complete_request_cannot_be_claimed(db):
    m1, _, builderid = await _masters_and_builder(db)
    brid = await db.buildrequests.add(builderid, "r", {}, 10.0)
    await db.buildrequests.complete(brid, SUCCESS, 12.0)
    assert not await db.buildrequests.claim(brid, m1, 13.0)
    request = await db.buildrequests.get(brid)
    assert (request["complete"], request["results"], request["complete_at"]) == (True, 0, 12.0)


@pytest_twisted.ensureDeferred
async def test_unclaimed_requests_come_by_priority_then_age(db):
    _, _, builderid = await _masters_and_builder(db)
    old = await db.buildrequests.add(builderid, "old", {}, 10.0)
    new = await db.buildrequests.add(builderid, "new", {}, 20.0)
    urgent = await db.buildrequests.add(builderid, "urgent", {}, 30.0, priority=5)
    unclaimed = await db.buildrequests.get_unclaimed(builderid)
    assert [r["buildrequestid"] for r in unclaimed] == [urgent, old, new]


@pytest_twisted.ensureDeferred
async def test_unclaim_puts_a_request_back_in_its_place_in_the_queue(db):
    m1, _, builderid = await _masters_and_builder(db)
    old = await db.buildrequests.add(builderid, "old", {}, 10.0)
    new = await db.buildrequests.add(builderid, "new", {}, 20.0)
    await db.buildrequests.claim(old, m1, 21.0)
    assert [r["buildrequestid"] for r in await db.buildrequests.get_unclaimed(builderid)] == [new]
    await db.buildrequests.unclaim(old)
    unclaimed = await db.buildrequests.get_unclaimed(builderid)
    assert [r["buildrequestid"] for r in unclaimed] == [old, new]
    assert (unclaimed[0]["claimed"], unclaimed[0]["claimed_at"]) == (False, None)


@pytest_twisted.ensureDeferred
async def test_unclaim_all_of_master_releases_only_its_incomplete_requests(db):
    m1, m2, builderid = await _masters_and_builder(db)
    mine, done, theirs = [await db.buildrequests.add(builderid, "r", {}, t) for t in (1, 2, 3)]
    for brid, masterid in ((mine, m1), (done, m1), (theirs, m2)):
        await db.buildrequests.claim(brid, masterid, 5.0)
    await db.buildrequests.complete(done, SUCCESS, 6.0)
    await db.buildrequests.unclaim_all_of_master(m1)
    claimed_by = [(await db.buildrequests.get(b))["claimed_by_masterid"] for b in (mine, done, theirs)]
    assert claimed_by == [None, m1, m2]


@pytest_twisted.ensureDeferred
async def test_a_request_reads_back_with_its_properties_and_builds(db):
    build = await add_running_build(db, builder="linux")
    properties = {"branch": "main", "nested": {"n": [1, 2]}, "flag": True}
    brid = await db.buildrequests.add(build.builderid, "forced", properties, 7.5, priority=2)
    request = await db.buildrequests.get(brid)
    assert request == {
        "buildrequestid": brid, "buildsetid": None, "builderid": build.builderid,
        "buildername": "linux",
        "priority": 2, "reason": "forced", "properties": properties, "submitted_at": 7.5,
        "claimed": False, "claimed_by_masterid": None, "claimed_at": None,
        "complete": False, "results": None, "complete_at": None, "buildids": [],
    }


@pytest_twisted.ensureDeferred
async def test_a_retried_request_lists_its_builds_in_order(db):
    first = await add_running_build(db)
    second, _ = await db.builds.add(
        first.builderid, first.buildrequestid, first.slaveid, first.masterid, 2000.0
    )
    request = await db.buildrequests.get(first.buildrequestid)
    assert request["buildids"] == [first.buildid, second]


@pytest_twisted.ensureDeferred
async def test_get_of_an_unknown_request_is_none(db):
    assert await db.buildrequests.get(404) is None


@pytest_twisted.ensureDeferred
async def test_get_all_filters_and_pages_newest_first(db):
    _, _, linux = await _masters_and_builder(db)
    windows = await db.builders.find_or_create("windows")
    ids = [await db.buildrequests.add(b, "r", {}, 1.0) for b in (linux, windows, linux, linux)]
    await db.buildrequests.complete(ids[0], SUCCESS, 2.0)
    everything = await db.buildrequests.get_all()
    assert [r["buildrequestid"] for r in everything] == ids[::-1]
    pending_linux = await db.buildrequests.get_all(builderid=linux, complete=False)
    assert [r["buildrequestid"] for r in pending_linux] == [ids[3], ids[2]]
    page = await db.buildrequests.get_all(limit=2, offset=1)
    assert [r["buildrequestid"] for r in page] == [ids[2], ids[1]]


@pytest_twisted.ensureDeferred
async def test_two_masters_sharing_the_database_never_win_the_same_request(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        m1, m2, builderid = await _masters_and_builder(db)
        brids = [await db.buildrequests.add(builderid, "r", {}, float(t)) for t in range(20)]
        claims = [
            defer.ensureDeferred(connector.buildrequests.claim(brid, masterid, 30.0))
            for brid in brids
            for connector, masterid in ((db, m1), (other, m2))
        ]
        won = await defer.gatherResults(claims)
    finally:
        await other.stopService()
    assert [won[i] + won[i + 1] for i in range(0, len(won), 2)] == [1] * len(brids)


@pytest_twisted.ensureDeferred
async def test_cancel_completes_an_unclaimed_request_as_cancelled(db):
    _, _, builderid = await _masters_and_builder(db)
    brid = await db.buildrequests.add(builderid, "r", {}, 10.0)
    assert await db.buildrequests.cancel(brid, 11.0)
    request = await db.buildrequests.get(brid)
    assert (request["complete"], request["results"], request["complete_at"]) == (
        True, CANCELLED, 11.0,
    )
    assert await db.buildrequests.get_unclaimed(builderid) == []


@pytest_twisted.ensureDeferred
async def test_cancel_leaves_claimed_and_complete_requests_alone(db):
    m1, _, builderid = await _masters_and_builder(db)
    claimed, done = [await db.buildrequests.add(builderid, "r", {}, t) for t in (1.0, 2.0)]
    await db.buildrequests.claim(claimed, m1, 3.0)
    await db.buildrequests.complete(done, SUCCESS, 4.0)
    assert not await db.buildrequests.cancel(claimed, 5.0)
    assert not await db.buildrequests.cancel(done, 5.0)
    assert not await db.buildrequests.cancel(404, 5.0)
    assert (await db.buildrequests.get(claimed))["complete"] is False
    assert (await db.buildrequests.get(done))["results"] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_get_all_filters_by_buildset(db):
    _, _, linux = await _masters_and_builder(db)
    bsid, brids = await db.buildsets.add("force", "r", {}, [linux], 1.0)
    alone = await db.buildrequests.add(linux, "r", {}, 2.0)
    in_set = await db.buildrequests.get_all(buildsetid=bsid)
    assert [(r["buildrequestid"], r["buildsetid"]) for r in in_set] == [(brids[linux], bsid)]
    assert (await db.buildrequests.get(alone))["buildsetid"] is None


@pytest_twisted.ensureDeferred
async def test_claim_next_takes_the_queue_head_and_returns_it(db):
    m1, _, builderid = await _masters_and_builder(db)
    old = await db.buildrequests.add(builderid, "old", {"k": 1}, 10.0)
    urgent = await db.buildrequests.add(builderid, "urgent", {}, 30.0, priority=5)
    first = await db.buildrequests.claim_next(builderid, m1, 31.0)
    assert (first["buildrequestid"], first["claimed_by_masterid"], first["claimed_at"]) == (urgent, m1, 31.0)
    second = await db.buildrequests.claim_next(builderid, m1, 32.0)
    assert (second["buildrequestid"], second["properties"], second["buildids"]) == (old, {"k": 1}, [])
    assert await db.buildrequests.claim_next(builderid, m1, 33.0) is None


@pytest_twisted.ensureDeferred
async def test_claim_next_skips_claimed_complete_and_other_builders_requests(db):
    m1, m2, builderid = await _masters_and_builder(db)
    windows = await db.builders.find_or_create("windows")
    theirs, done, wanted = [await db.buildrequests.add(builderid, "r", {}, t) for t in (1.0, 2.0, 4.0)]
    await db.buildrequests.add(windows, "r", {}, 0.5)
    await db.buildrequests.claim(theirs, m2, 5.0)
    await db.buildrequests.complete(done, SUCCESS, 5.0)
    assert (await db.buildrequests.claim_next(builderid, m1, 6.0))["buildrequestid"] == wanted
    assert await db.buildrequests.claim_next(builderid, m1, 6.0) is None


@pytest_twisted.ensureDeferred
async def test_masters_claiming_the_head_at_once_each_get_a_different_request(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        m1, m2, builderid = await _masters_and_builder(db)
        brids = [await db.buildrequests.add(builderid, "r", {}, float(t)) for t in range(20)]
        claims = [defer.ensureDeferred(connector.buildrequests.claim_next(builderid, masterid, 30.0))
                  for _ in range(10) for connector, masterid in ((db, m1), (other, m2))]
        got = await defer.gatherResults(claims)
    finally:
        await other.stopService()
    assert None not in got  # nobody lost the head to the other and came back empty
    assert sorted(r["buildrequestid"] for r in got) == brids
    assert {r["claimed_by_masterid"] for r in got} == {m1, m2}
