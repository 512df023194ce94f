"""The SlaveAPI on any master acts on any slave (master/slaveapi/runner.py): an action asked of
master b for a slave attached to master a is recorded for a, which runs it through its live
connection; the result is visible on both.  Real in-memory masters on SQLite and PostgreSQL
sharing one database, on injected clocks."""

import pytest
import pytest_twisted
from twisted.internet import defer

from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.runner import ADDRESSED_POLL_S, REMOTE_WAIT_POLL_S
from tests.fixtures.memorymaster import MASTER_CFG, attach_slave, eventually, start_memory_master

NOW = 1_800_000_000.0
SETTINGS = ("c['multiMaster'] = True\n"
            "c['multiMasterSettings'] = {'heartbeat_secs': 10, 'dead_after_secs': 30}\n")


@pytest.fixture
def shared_url(db_url_postgresql):
    # c['multiMaster'] needs PostgreSQL (LISTEN/NOTIFY) or an AMQP broker: checkconfig refuses
    # it on SQLite, so the masters sharing one database share a PostgreSQL one
    return db_url_postgresql


async def start_cluster(url: str, tmp_path) -> list:
    """Two started in-memory masters, ``a`` and ``b``, with c['multiMaster'], on one database."""
    cfg = MASTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {url!r}") + SETTINGS
    started = []
    for name in ("a", "b"):
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, cfg, now=NOW))
    return started


async def stop_cluster(started) -> None:
    for master in started:
        if master.running:
            await master.stopService()


@pytest_twisted.async_yield_fixture
async def cluster(shared_url, tmp_path):
    started = await start_cluster(shared_url, tmp_path)
    yield started
    await stop_cluster(started)


@pytest_twisted.async_yield_fixture
async def pg_cluster(db_url_postgresql, tmp_path):
    started = await start_cluster(db_url_postgresql, tmp_path)
    yield started
    await stop_cluster(started)


async def ask(master, slave: str, action: str):
    runner = master.slaveapi
    chosen = runner.action(action)
    return await runner.submit(slave, chosen, chosen.parse_args({}), "admin", "127.0.0.1")


async def finished(master, requestid: int):
    async def check():
        return (await master.slaveapi.get(requestid)).finished
    await eventually(check, f"request {requestid} to finish")
    return await master.slaveapi.get(requestid)


@pytest_twisted.ensureDeferred
async def test_an_action_asked_of_another_master_is_run_by_the_one_holding_the_slave(cluster):
    a, b = cluster
    connection = await attach_slave(a, "bs1")

    asked = await ask(b, "bs1", "shutdown_buildslave")
    assert asked.state == ActionState.PENDING and asked.requestid not in b.slaveapi._live
    a.reactor.advance(ADDRESSED_POLL_S)  # a's poll (on PostgreSQL its wake-up may be first)

    done = await finished(b, asked.requestid)
    assert done.state == ActionState.SUCCESS, done.text
    assert "shutdown" in connection.calls  # through a's live connection
    row = await b.db.slaveapi.get_result(asked.requestid)
    assert row["masterid"] == a.masterid
    assert [r.requestid for r in await a.slaveapi.results("bs1")] == [asked.requestid]
    assert (await a.slaveapi.get(asked.requestid)).state == ActionState.SUCCESS  # visible on both


@pytest_twisted.ensureDeferred
async def test_the_asked_master_waits_for_the_result_another_master_records(cluster):
    a, b = cluster
    await attach_slave(a, "bs1")
    asked = await ask(b, "bs1", "shutdown_buildslave")
    waiting = b.slaveapi.wait(asked.requestid, 30)
    assert not waiting.called

    a.reactor.advance(ADDRESSED_POLL_S)
    await finished(a, asked.requestid)

    def waited():
        b.reactor.advance(REMOTE_WAIT_POLL_S)  # b's next read of the result
        return defer.succeed(waiting.called)

    await eventually(waited, "b's wait to end")
    assert b.reactor.seconds() < NOW + 30
    assert (await b.slaveapi.get(asked.requestid)).state == ActionState.SUCCESS


@pytest_twisted.ensureDeferred
async def test_asking_another_master_again_joins_the_pending_action(cluster):
    a, b = cluster
    await attach_slave(a, "bs1", obey_shutdown=False)  # the shutdown stays unfinished
    first = await ask(b, "bs1", "shutdown_buildslave")

    again_on_a = await ask(a, "bs1", "shutdown_buildslave")
    again_on_b = await ask(b, "bs1", "shutdown_buildslave")

    assert again_on_a.requestid == again_on_b.requestid == first.requestid
    assert len(await a.db.slaveapi.get_results("bs1")) == 1


@pytest_twisted.ensureDeferred
async def test_an_action_for_a_slave_attached_nowhere_runs_on_the_master_asked(cluster):
    a, b = cluster
    asked = await ask(b, "bs2", "disable")

    done = await finished(b, asked.requestid)
    assert done.state == ActionState.SUCCESS
    assert (await b.db.slaveapi.get_result(asked.requestid))["masterid"] == b.masterid


@pytest_twisted.ensureDeferred
async def test_on_postgresql_the_holder_is_woken_without_waiting_for_its_poll(pg_cluster):
    a, b = pg_cluster
    connection = await attach_slave(a, "bs1")
    await eventually(lambda: defer.succeed(a.wakeups.listening), "a to listen")

    asked = await ask(b, "bs1", "shutdown_buildslave")

    done = await finished(b, asked.requestid)  # no clock of a advanced
    assert done.state == ActionState.SUCCESS and "shutdown" in connection.calls
