"""A dead master's SlaveAPI actions are carried out (master/db/slaveapi.py, master/db/masters.py,
master/slaveapi/runner.py): the reclaim gives them to the reclaiming master, PENDING again; it
runs one that never started, runs again one that had started only when its action is safe to
repeat (ending the others FAILURE), and sends one on to the master now holding the slave's
connection.  The database part on SQLite and PostgreSQL; the masters (c['multiMaster'] needs
PostgreSQL) on PostgreSQL, on injected clocks."""

import pytest_twisted

from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.runner import ADDRESSED_POLL_S, REATTACH_WAIT_S
from tests.fixtures.memorymaster import attach_slave
from tests.unit.test_slaveapi_multimaster import finished, start_cluster, stop_cluster

NOW = 1_800_000_000.0
DEAD_AFTER_S = 30  # test_slaveapi_multimaster's SETTINGS
DEAD_NAME = "killed-host:/srv/master"


async def dead_master_with(db, action: str, args: dict, started: bool, slave: str = "bs1") -> tuple[int, int]:
    """A master killed 31 s ago that had accepted ``action`` (RUNNING when ``started``)."""
    dead = await db.masters.find_or_create(DEAD_NAME)
    await db.masters.mark_active(dead, NOW - DEAD_AFTER_S - 1)
    requestid = await db.slaveapi.add_result(slave, action, args, "admin", "127.0.0.1", dead, int(NOW - 40))
    await db.slaveapi.add_audit(int(NOW - 40), "admin", "127.0.0.1", slave, action, "pending", requestid)
    if started:
        await db.slaveapi.start_result(requestid, int(NOW - 35))
    return dead, requestid


@pytest_twisted.async_yield_fixture
async def pg_cluster(db_url_postgresql, tmp_path):
    """Masters ``a`` and ``b`` with c['multiMaster'] on one PostgreSQL database."""
    started = await start_cluster(db_url_postgresql, tmp_path)
    yield started
    await stop_cluster(started)


@pytest_twisted.ensureDeferred
async def test_the_reclaim_gives_a_dead_masters_actions_to_the_reclaimer_pending_again(db):
    _, running = await dead_master_with(db, "reboot", {}, started=True)
    dead = await db.masters.find_or_create(DEAD_NAME)
    pending = await db.slaveapi.add_result("bs2", "enable", {}, "admin", "127.0.0.1", dead, int(NOW - 40))
    survivor = await db.masters.find_or_create("host:/srv/survivor")
    done = await db.slaveapi.add_result("bs3", "enable", {}, "admin", "127.0.0.1", dead, int(NOW - 40))
    await db.slaveapi.finish_result(done, ActionState.SUCCESS, "enabled", int(NOW - 39))

    reclaimed = await db.masters.reclaim(dead, NOW - DEAD_AFTER_S, NOW, DEAD_AFTER_S, by=survivor)

    assert reclaimed.actions == [running, pending]
    for requestid, started_at in ((running, NOW - 35), (pending, 0)):
        row = await db.slaveapi.get_result(requestid)
        assert (row["state"], row["masterid"]) == (ActionState.PENDING, survivor)
        assert row["start_timestamp"] == started_at  # a started one is repeated only if safe
        assert row["text"].endswith(f"the master {DEAD_NAME} died (no heartbeat for 30 s) before this action "
                                    "finished; the master host:/srv/survivor took it over")
    assert (await db.slaveapi.get_result(done))["state"] == ActionState.SUCCESS
    assert [a["outcome"] for a in await db.slaveapi.get_audit("bs1")] == ["pending"]


@pytest_twisted.ensureDeferred
async def test_an_action_is_sent_on_only_while_pending_and_of_the_master_named(db):
    one, two = await db.masters.find_or_create("m1"), await db.masters.find_or_create("m2")
    requestid = await db.slaveapi.add_result("bs1", "enable", {}, "admin", "127.0.0.1", one, int(NOW))
    assert await db.slaveapi.readdress(requestid, two, one, "no") is False
    assert await db.slaveapi.readdress(requestid, one, two, "sent on") is True
    assert (await db.slaveapi.get_result(requestid))[("masterid")] == two
    await db.slaveapi.start_result(requestid, int(NOW))
    assert await db.slaveapi.readdress(requestid, two, one, "no") is False


async def reclaimed_by(master) -> None:
    [reclaimed] = await master.liveness.reclaim_dead()
    assert reclaimed.actions
    await master.slaveapi.pick_up_addressed()  # after the one the reclaim started


@pytest_twisted.ensureDeferred
async def test_an_action_safe_to_repeat_that_a_dead_master_had_started_runs_again(pg_cluster):
    _, b = pg_cluster
    await b.db.slaveapi.set_settings("bs1", enabled=False, disabled_reason="broken fan")
    _, requestid = await dead_master_with(b.db, "enable", {"comment": ""}, started=True)
    await attach_slave(b, "bs1")  # it failed over to b

    await reclaimed_by(b)

    done = await finished(b, requestid)
    assert done.state == ActionState.SUCCESS, done.text
    assert "enable had started there; it is safe to repeat: run again from the start" in done.text
    assert (await b.db.slaveapi.get_settings("bs1"))["enabled"] is True
    row = await b.db.slaveapi.get_result(requestid)
    assert (row["masterid"], row["start_timestamp"]) == (b.masterid, NOW)


@pytest_twisted.ensureDeferred
async def test_a_forced_disable_that_a_dead_master_had_started_is_not_repeated(pg_cluster):
    # disable with force reboots: the reboot may have been sent, and is never sent twice
    _, b = pg_cluster
    _, requestid = await dead_master_with(b.db, "disable", {"reason": "", "force": True, "comment": ""},
                                          started=True)

    await reclaimed_by(b)

    row = await b.db.slaveapi.get_result(requestid)
    assert row["state"] == ActionState.FAILURE
    assert row["text"].endswith("disable had started there and may have had an effect; it is not safe to "
                                "repeat, so it is not run again: ask again if it is still wanted")
    assert (await b.db.slaveapi.get_settings("bs1"))["enabled"] is True  # not run here
    assert [a["outcome"] for a in await b.db.slaveapi.get_audit("bs1")] == ["failure"]


@pytest_twisted.ensureDeferred
async def test_a_taken_over_action_is_sent_on_to_the_master_now_holding_the_slave(pg_cluster):
    a, b = pg_cluster
    connection = await attach_slave(a, "bs1")
    _, requestid = await dead_master_with(b.db, "shutdown_buildslave", {}, started=False)

    await reclaimed_by(b)
    a.reactor.advance(ADDRESSED_POLL_S)  # a's poll (on PostgreSQL its wake-up may be first)

    done = await finished(b, requestid)
    assert done.state == ActionState.SUCCESS, done.text
    assert "shutdown" in connection.calls  # through a's live connection
    assert (await b.db.slaveapi.get_result(requestid))["masterid"] == a.masterid
    assert f"sent on to the master {a.name_in_database} (id {a.masterid})" in done.text


@pytest_twisted.ensureDeferred
async def test_a_taken_over_action_waits_for_its_slave_to_attach_again_then_runs_where_it_is(pg_cluster):
    a, b = pg_cluster
    _, requestid = await dead_master_with(b.db, "shutdown_buildslave", {}, started=False)

    await reclaimed_by(b)
    b.reactor.advance(REATTACH_WAIT_S / 2)  # bs1 attached nowhere (it was the dead master's)
    await b.slaveapi.pick_up_addressed()
    assert (await b.db.slaveapi.get_result(requestid))["state"] == ActionState.PENDING

    connection = await attach_slave(a, "bs1")  # its buildslave attached to another master
    await b.slaveapi.pick_up_addressed()
    a.reactor.advance(ADDRESSED_POLL_S)

    done = await finished(b, requestid)
    assert done.state == ActionState.SUCCESS, done.text
    assert "shutdown" in connection.calls


@pytest_twisted.ensureDeferred
async def test_a_taken_over_action_whose_slave_never_attaches_runs_here_after_the_wait(pg_cluster):
    _, b = pg_cluster
    _, requestid = await dead_master_with(b.db, "shutdown_buildslave", {}, started=False)

    await reclaimed_by(b)
    b.reactor.advance(REATTACH_WAIT_S)
    await b.slaveapi.pick_up_addressed()

    done = await finished(b, requestid)
    assert done.state == ActionState.FAILURE  # its real result: nothing reaches the slave
    assert (await b.db.slaveapi.get_result(requestid))["masterid"] == b.masterid
