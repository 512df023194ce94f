"""Masters sharing one database (master/cluster/liveness.py, master/db/masters.py): each writes a
heartbeat on its injected clock, a clean stop marks it inactive, and a master whose heartbeat is
older than dead_after_secs is reclaimed by exactly one peer, in one transaction.  Real in-memory
masters on SQLite and PostgreSQL."""

import os

import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from zope.interface.verify import verifyObject

from buildfarm.common.results import RETRY
from buildfarm.master.cluster.interfaces import IClusterMaster
from buildfarm.master.cluster.settings import MultiMasterSettings, validate_multimaster_config
from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.db.masters import DEAD_BUILD_STATE
from buildfarm.master.db.model import masters
from buildfarm.master.fleet import ActionState
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.model import request_from_json
from buildfarm.master.tasks.records import new_task
from buildfarm.master.www import apidata
from tests.fixtures.memorymaster import MASTER_CFG, attach_slave, eventually, start_memory_master

NOW = 1_800_000_000.0
HEARTBEAT_S, DEAD_AFTER_S = 10, 30
SETTINGS = (f"c['multiMasterSettings'] = {{'heartbeat_secs': {HEARTBEAT_S}, "
            f"'dead_after_secs': {DEAD_AFTER_S}}}\n")


@pytest.fixture
def shared_url(db_url, tmp_path):
    """One database for several masters: the backend's, or one SQLite file outside their basedirs."""
    return f"sqlite:///{tmp_path}/shared.sqlite" if db_url.startswith("sqlite") else db_url


def cfg(url: str) -> str:
    return MASTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {url!r}") + SETTINGS


@pytest_twisted.async_yield_fixture
async def cluster(shared_url, tmp_path):
    """Two started in-memory masters, ``a`` and ``b``, on one database; stopped afterwards."""
    started = []
    for name in ("a", "b"):
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, cfg(shared_url), now=NOW))
    yield started
    for master in started:
        if master.running:
            await master.stopService()


async def beat_after(master, seconds: float) -> None:
    """Advance ``master``'s clock by ``seconds`` and wait for the heartbeat that starts."""
    master.reactor.advance(seconds)
    beating = master.liveness._beating
    if beating is not None:
        await eventually(lambda: defer.succeed(beating.called), "the heartbeat to be written")


async def row_of(master, masterid):
    return await master.db.masters.get(masterid)


async def a_dead_master(db, last_active: float) -> int:
    """A master row as a process killed at ``last_active`` leaves it: active, no heartbeat since."""
    masterid = await db.masters.find_or_create("killed-host:/srv/master")
    await db.masters.mark_active(masterid, last_active)
    return masterid


@pytest_twisted.ensureDeferred
async def test_the_master_provides_what_the_liveness_service_sees_of_it(cluster):
    assert verifyObject(IClusterMaster, cluster[0])


def test_settings_default_to_a_10_s_heartbeat_and_60_s_to_death():
    assert validate_multimaster_config({}) == (MultiMasterSettings(10.0, 60.0), [])


@pytest.mark.parametrize("section, message", [
    ([1], "c['multiMasterSettings'] must be a dict like {'heartbeat_secs': 10, 'dead_after_secs': 60}"),
    ({"beat": 1}, "unknown c['multiMasterSettings'] key 'beat'"),
    ({"heartbeat_secs": 0},
     "c['multiMasterSettings']['heartbeat_secs'] must be a positive number of seconds, not 0"),
    ({"dead_after_secs": "1m"},
     "c['multiMasterSettings']['dead_after_secs'] must be a positive number of seconds, not '1m'"),
    ({"heartbeat_secs": 10, "dead_after_secs": 15},
     "c['multiMasterSettings']['dead_after_secs'] (15) must be at least 2 times heartbeat_secs (10)"),
])
def test_checkconfig_refuses_bad_settings_in_one_line(tmp_path, section, message):
    path = tmp_path / "master.cfg"
    path.write_text(MASTER_CFG + f"c['multiMasterSettings'] = {section!r}\n")
    with pytest.raises(ConfigErrors) as raised:
        load_config(str(path))
    assert [str(e) for e in raised.value.errors] == [f"master.cfg:11: {message}"]


@pytest_twisted.ensureDeferred
async def test_a_master_writes_a_heartbeat_every_heartbeat_secs_on_its_clock(cluster):
    a, _ = cluster
    assert await row_of(a, a.masterid) == {"masterid": a.masterid, "name": a.name_in_database, "active": True,
                                           "last_active": NOW}
    await beat_after(a, HEARTBEAT_S - 1)
    assert (await row_of(a, a.masterid))["last_active"] == NOW
    await beat_after(a, 1)
    assert (await row_of(a, a.masterid))["last_active"] == NOW + HEARTBEAT_S


@pytest_twisted.ensureDeferred
async def test_a_clean_stop_marks_the_master_inactive_and_nobody_reclaims_it(cluster):
    a, b = cluster
    await a.stopService()
    assert (await row_of(b, a.masterid))["active"] is False
    b.reactor.advance(DEAD_AFTER_S * 10)
    assert await b.liveness.reclaim_dead() == []


@pytest_twisted.ensureDeferred
async def test_a_master_whose_heartbeat_is_recent_is_not_reclaimed(cluster):
    _, b = cluster
    await a_dead_master(b.db, NOW - DEAD_AFTER_S + 1)
    assert await b.liveness.reclaim_dead() == []


async def held_by(db, masterid: int, now: float) -> dict:
    """What a master holds while a build runs: the slave bs1 attached to it, a claimed request
    with its unfinished build, a RUNNING and a PENDING SlaveAPI action."""
    builderid = await db.builders.find_or_create("linux")
    slaveid = await db.slaves.attached("bs1", masterid, {}, "1.0", now, peer="127.0.0.1:5000")
    brid = await db.buildrequests.add(builderid, "test", {}, now)
    assert await db.buildrequests.claim(brid, masterid, now)
    buildid, _ = await db.builds.add(builderid, brid, slaveid, masterid, now, "running")
    running = await db.slaveapi.add_result("bs1", "reboot", {}, "admin", "127.0.0.1", masterid, int(now))
    await db.slaveapi.start_result(running, int(now))
    await db.slaveapi.add_audit(int(now), "admin", "127.0.0.1", "bs1", "reboot", "pending", running)
    pending = await db.slaveapi.add_result("bs1", "shutdown", {}, "admin", "127.0.0.1", masterid, int(now))
    return {"brid": brid, "buildid": buildid, "running": running, "pending": pending}


@pytest_twisted.ensureDeferred
async def test_a_dead_masters_builds_requests_actions_and_slaves_are_reclaimed(cluster):
    a, b = cluster
    dead = await a_dead_master(b.db, NOW - DEAD_AFTER_S - 1)
    held = await held_by(b.db, dead, NOW - DEAD_AFTER_S - 5)

    [reclaimed] = await b.liveness.reclaim_dead()

    assert (reclaimed.masterid, reclaimed.builds, reclaimed.requests, reclaimed.slaves) == (dead, 1, 1, 1)
    assert sorted(reclaimed.actions) == sorted([held["running"], held["pending"]])
    assert (await row_of(b, dead))["active"] is False
    build = await b.db.builds.get(held["buildid"])
    assert (build["results"], build["state_string"], build["complete_at"]) == (RETRY, DEAD_BUILD_STATE, NOW)
    request = await b.db.buildrequests.get(held["brid"])
    assert (request["claimed"], request["complete"]) == (False, False)
    await b.slaveapi.pick_up_addressed()  # after the one the reclaim started
    for requestid in (held["running"], held["pending"]):
        action = await b.db.slaveapi.get_result(requestid)
        assert "the master killed-host:/srv/master died (no heartbeat for 30 s) before this action " \
               f"finished; the master {b.name_in_database} took it over" in action["text"]
    # the reboot had started, and a reboot is not repeated; the shutdown never started: it is
    # b's now, and waits for bs1 to attach again (no out-of-band channel), to run where it is
    reboot, shutdown = [await b.db.slaveapi.get_result(held[k]) for k in ("running", "pending")]
    assert reboot["state"] == ActionState.FAILURE and "is not safe to repeat" in reboot["text"]
    assert (shutdown["state"], shutdown["masterid"]) == (ActionState.PENDING, b.masterid)
    assert [row["outcome"] for row in await b.db.slaveapi.get_audit("bs1")] == ["failure"]
    slave = await b.db.slaves.get("bs1")
    assert slave["connected_masterid"] is None
    assert [c["disconnected_at"] for c in await b.db.slaves.get_connections("bs1")] == [NOW]
    assert await a.liveness.reclaim_dead() == []  # done once


@pytest_twisted.ensureDeferred
async def test_exactly_one_of_two_masters_reclaims_a_dead_one_when_both_try_at_once(cluster):
    a, b = cluster
    dead = await a_dead_master(a.db, NOW - DEAD_AFTER_S - 1)
    held = await held_by(a.db, dead, NOW - DEAD_AFTER_S - 5)

    done = await defer.gatherResults([defer.ensureDeferred(m.liveness.reclaim_dead()) for m in (a, b)])

    assert sorted(len(d) for d in done) == [0, 1]
    assert [r.builds for d in done for r in d] == [1]
    assert len(await a.db.builds.get_all(complete=True)) == 1
    assert (await a.db.buildrequests.get(held["brid"]))["claimed"] is False


@pytest_twisted.ensureDeferred
async def test_a_master_killed_between_heartbeats_is_reclaimed_at_a_peers_heartbeat(cluster):
    a, b = cluster
    held = await held_by(a.db, a.masterid, NOW)
    a.liveness._beater.stop()  # a is killed: no heartbeat any more (its process is gone)

    for _ in range(DEAD_AFTER_S // HEARTBEAT_S):
        await beat_after(b, HEARTBEAT_S)
    assert not b.liveness.reclaimed  # 30 s without a heartbeat: not yet dead
    await beat_after(b, HEARTBEAT_S)
    assert b.liveness.reclaimed[0].masterid == a.masterid
    assert (await b.db.builds.get(held["buildid"]))["results"] == RETRY


@pytest_twisted.ensureDeferred
async def test_a_master_declared_dead_while_it_ran_says_so_at_its_next_heartbeat(cluster):
    a, b = cluster
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        await beat_after(b, DEAD_AFTER_S + 1)  # b beats; a's clock stands still (a is paused)
        assert [r.masterid for r in b.liveness.reclaimed] == [a.masterid]
        await beat_after(a, HEARTBEAT_S)
        assert a.liveness.declared_dead
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert any("this master was declared dead by another" in formatEvent(e) for e in events)


def task_request(idempotent: bool):
    props = {"command": ["sleep", "60"], "dimensions": [{"key": "pool", "value": "ci"}],
             "execution_timeout_secs": 60, "io_timeout_secs": 0, "grace_period_secs": 10,
             "idempotent": idempotent}
    return request_from_json({"name": "t", "user": "alice", "priority": 100,
                              "task_slices": [{"expiration_secs": 300, "properties": props,
                                               "wait_for_capacity": True}]})


@pytest_twisted.ensureDeferred
async def test_the_task_tries_a_dead_master_ran_end_as_the_engine_rules_say(cluster):
    a, b = cluster
    dead = await a_dead_master(b.db, NOW - DEAD_AFTER_S - 1)
    await b.db.slaves.attached("bs1", dead, {}, "1.0", NOW - DEAD_AFTER_S - 5)
    tasks = {}
    for n, idempotent in enumerate((False, True), start=1):
        request_id = ids.new_request_id(b.reactor, lambda bits, n=n: n)
        request_id, _ = await b.db.tasks.create(new_task(task_request(idempotent), request_id, NOW - 40))
        assert await b.db.tasks.start_run(request_id, "bs1", NOW - 35) == 1
        tasks[idempotent] = request_id

    [reclaimed] = await b.liveness.reclaim_dead()

    assert sorted(t["request_id"] for t in reclaimed.tries) == sorted(tasks.values())
    plain = await b.db.tasks.get_result(tasks[False])
    assert (plain["state"], plain["internal_failure"]) == ("BOT_DIED", True)
    assert (await b.db.tasks.get_result(tasks[True]))["state"] == "PENDING"  # tried once more


@pytest_twisted.ensureDeferred
async def test_a_restarted_master_beats_before_anything_claims_work(shared_url, tmp_path):
    basedir = tmp_path / "m"
    basedir.mkdir()
    master = await start_memory_master(basedir, cfg(shared_url), now=NOW)
    try:
        order = [child.name for child in master]
        assert order.index("liveness") == order.index("recovery") + 1
        assert order.index("liveness") < order.index("botmaster")
    finally:
        await master.stopService()
    engine = sa.create_engine(_absolute(shared_url, basedir))
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(masters.c.active)).scalar_one() == 0
    finally:
        engine.dispose()


def _absolute(url: str, basedir) -> str:
    from buildfarm.master.db.engine import resolve_db_url

    return resolve_db_url(url, os.fspath(basedir))


@pytest_twisted.ensureDeferred
async def test_the_slaves_of_any_master_name_the_master_each_is_attached_to(cluster):
    a, b = cluster
    await attach_slave(a, "bs1")

    for master in (a, b):
        listed = {s["name"]: s for s in await apidata.slave_summaries(master)}
        assert (listed["bs1"]["master"], listed["bs1"]["connected"]) == (a.name_in_database, True)
        assert listed["bs1"]["attached"] is (master is a)
        assert listed["bs2"]["master"] is None
        assert (await apidata.slave_detail(master, "bs1"))["master"] == a.name_in_database
