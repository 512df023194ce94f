"""Fencing: a master declared dead while it still ran (cut off from the database longer than
dead_after_secs) cannot record the end of a build that another master already ended RETRY and
runs again: its writes change nothing, and it learns that it lost the claim.  Without the
fence the request ran to success twice.  Real in-memory masters on SQLite and PostgreSQL, on
injected clocks."""

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher

from buildfarm.common.results import RETRY, SUCCESS
from buildfarm.master.db.masters import DEAD_BUILD_STATE
from buildfarm.master.pb.buildslave import BuildSlave
from buildfarm.master.process.build import Build
from buildfarm.master.process.builder import SlaveBuilder
from buildfarm.master.process.buildevents import BUILD_FINISHED
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.model import request_from_json
from buildfarm.master.tasks.records import new_task
from tests.fixtures.memorymaster import MASTER_CFG, eventually, start_memory_master

NOW = 1_800_000_000.0
HEARTBEAT_S, DEAD_AFTER_S = 10, 30
SETTINGS = (f"c['multiMasterSettings'] = {{'heartbeat_secs': {HEARTBEAT_S}, "
            f"'dead_after_secs': {DEAD_AFTER_S}}}\n")


@pytest.fixture
def shared_url(db_url, tmp_path):
    return f"sqlite:///{tmp_path}/shared.sqlite" if db_url.startswith("sqlite") else db_url


@pytest_twisted.async_yield_fixture
async def cluster(shared_url, tmp_path):
    """Two started in-memory masters, ``a`` and ``b``, on one database."""
    cfg = MASTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {shared_url!r}") + SETTINGS
    started = []
    for name in ("a", "b"):
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, cfg, now=NOW))
    yield started
    for master in started:
        if master.running:
            await master.stopService()


@pytest.fixture
def logged():
    events = []
    globalLogPublisher.addObserver(events.append)
    yield lambda: [formatEvent(e) for e in events]
    globalLogPublisher.removeObserver(events.append)


async def running_build(master, brid: int) -> Build:
    """``master``'s Build of request ``brid`` on bs1 of builder linux, claimed and started (its
    row added): as it stands while its steps run."""
    db = master.db
    assert await db.buildrequests.claim(brid, master.masterid, master.reactor.seconds())
    builder = master.botmaster.builders["linux"]
    slave = BuildSlave("bs1", master.botmaster, master.reactor, 60.0, 30.0)
    request = await db.buildrequests.get(brid)
    build = Build(master, builder, SlaveBuilder(builder, slave, remote=None), request)
    slaveid = await db.slaves.find_or_create("bs1")
    build.buildid, build.number = await db.builds.add(builder.builderid, brid, slaveid, master.masterid,
                                                      master.reactor.seconds(), "running")
    return build


async def a_declared_dead_by_b(a, b) -> None:
    """``a`` is cut off (its clock stands still, no heartbeat); ``b`` beats past dead_after_secs
    and reclaims it."""
    b.reactor.advance(DEAD_AFTER_S + 1)
    beating = b.liveness._beating
    if beating is not None:
        await eventually(lambda: defer.succeed(beating.called), "b's heartbeat to be written")
    await b.liveness.reclaim_dead()  # when the heartbeat has not yet
    assert [r.masterid for r in b.liveness.reclaimed] == [a.masterid]


async def new_request(master) -> int:
    return await master.db.buildrequests.add(master.botmaster.builders["linux"].builderid, "test", {}, NOW)


async def successes(db, brid: int) -> int:
    return sum(b["results"] == SUCCESS for b in await db.builds.get_all() if b["buildrequestid"] == brid)


@pytest_twisted.ensureDeferred
async def test_a_dead_masters_late_build_end_leaves_the_retry_and_the_request_runs_to_success_once(
        cluster, logged):
    a, b = cluster
    brid = await new_request(a)
    late = await running_build(a, brid)
    await a_declared_dead_by_b(a, b)
    rerun = await running_build(b, brid)  # b runs the reclaimed request again
    finished = []
    a.buildevents.subscribe(lambda e: finished.append(e) if e.kind == BUILD_FINISHED else None)

    assert await late.record_end(SUCCESS, "build successful") is False  # a's build ends after all
    await a.botmaster._settle_request(a.db, brid, SUCCESS)
    assert await rerun.record_end(SUCCESS, "build successful") is True
    await b.botmaster._settle_request(b.db, brid, SUCCESS)

    assert late.claim_lost and finished == []  # a learnt it, and reported nothing
    row = await b.db.builds.get(late.buildid)
    assert (row["results"], row["state_string"]) == (RETRY, DEAD_BUILD_STATE)
    assert await successes(b.db, brid) == 1
    request = await b.db.buildrequests.get(brid)
    assert (request["complete"], request["results"], request["buildids"]) == (
        True, SUCCESS, [late.buildid, rerun.buildid])
    assert any("but this master no longer holds it" in line for line in logged())


@pytest_twisted.ensureDeferred
async def test_a_dead_master_neither_completes_nor_requeues_a_request_another_master_runs(cluster, logged):
    a, b = cluster
    brid = await new_request(a)
    await running_build(a, brid)
    await a_declared_dead_by_b(a, b)
    await running_build(b, brid)

    await a.botmaster._settle_request(a.db, brid, SUCCESS)
    await a.botmaster._settle_request(a.db, brid, RETRY)

    request = await b.db.buildrequests.get(brid)
    assert (request["complete"], request["claimed_by_masterid"]) == (False, b.masterid)
    assert sum("no longer holds its claim" in line for line in logged()) == 2


@pytest_twisted.ensureDeferred
async def test_the_master_holding_the_claim_records_its_build_and_completes_its_request(cluster):
    a, _ = cluster
    brid = await new_request(a)
    build = await running_build(a, brid)

    assert await build.record_end(SUCCESS, "build successful") is True
    await a.botmaster._settle_request(a.db, brid, SUCCESS)

    assert (await a.db.builds.get(build.buildid))["results"] == SUCCESS
    assert (await a.db.buildrequests.get(brid))["results"] == SUCCESS
    assert not build.claim_lost


@pytest_twisted.ensureDeferred
async def test_fenced_writes_report_whether_they_changed_anything(db):
    masterid = await db.masters.find_or_create("m1")
    other = await db.masters.find_or_create("m2")
    builderid = await db.builders.find_or_create("linux")
    slaveid = await db.slaves.find_or_create("bs1")
    brid = await db.buildrequests.add(builderid, "test", {}, NOW)
    assert await db.buildrequests.claim(brid, masterid, NOW)
    buildid, _ = await db.builds.add(builderid, brid, slaveid, masterid, NOW)

    assert await db.builds.finish(buildid, SUCCESS, NOW, "done", other) is False
    assert await db.builds.finish(buildid, SUCCESS, NOW, "done", masterid) is True
    assert await db.builds.finish(buildid, SUCCESS, NOW, "again", masterid) is False  # ended once
    assert await db.buildrequests.unclaim(brid, other) is False
    assert await db.buildrequests.complete(brid, SUCCESS, NOW, other) is False
    assert await db.buildrequests.complete(brid, SUCCESS, NOW, masterid) is True
    assert await db.buildrequests.complete(brid, SUCCESS, NOW, masterid) is False
    assert (await db.builds.get(buildid))["state_string"] == "done"


def task_request(idempotent: bool):
    props = {"command": ["true"], "dimensions": [{"key": "pool", "value": "ci"}],
             "execution_timeout_secs": 60, "io_timeout_secs": 0, "grace_period_secs": 10,
             "idempotent": idempotent}
    return request_from_json({"name": "t", "user": "alice", "priority": 100,
                              "task_slices": [{"expiration_secs": 300, "properties": props,
                                               "wait_for_capacity": True}]})


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("idempotent, after_reclaim", [(False, "BOT_DIED"), (True, "RUNNING")])
async def test_a_dead_masters_late_task_try_end_changes_nothing(cluster, idempotent, after_reclaim):
    """The task engine's try completion was already fenced (a try ends only while RUNNING);
    this pins it: the reclaim ended the try (BOT_DIED) or gave the task a second try (b runs it)."""
    a, b = cluster
    await a.db.slaves.attached("bs1", a.masterid, {}, "1.0", NOW)
    request_id = ids.new_request_id(a.reactor, lambda bits: 7)
    request_id, _ = await a.db.tasks.create(new_task(task_request(idempotent), request_id, NOW))
    assert await a.db.tasks.start_run(request_id, "bs1", NOW) == 1
    await a_declared_dead_by_b(a, b)
    if idempotent:
        assert await b.db.tasks.start_run(request_id, "bs2", NOW + DEAD_AFTER_S + 1) == 2

    ended = await a.db.tasks.finish_run(request_id, 1, "COMPLETED", NOW + 40, exit_code=0, duration=1.0)

    assert ended is False
    result = await b.db.tasks.get_result(request_id)
    assert (result["state"], result["try_number"]) == (after_reclaim, 2 if idempotent else 1)
