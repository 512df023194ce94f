"""Leases (master/db/leases.py, master/cluster/leases.py): each singleton job (a timed
scheduler, a change poller, the CAS janitor) runs on exactly one of the masters sharing a
database.  The table on SQLite and PostgreSQL; real in-memory masters on injected clocks."""

import pytest
import pytest_twisted
from twisted.application import service
from twisted.internet import defer, reactor

from buildfarm.master.cas.janitor import janitor_lease_name
from buildfarm.master.cas.settings import S3Location
from buildfarm.master.cluster.leases import LeaseGate
from buildfarm.master.db.connector import DBConnector
from tests.fixtures.memorymaster import MASTER_CFG, eventually, start_memory_master

NOW = 1_800_000_000.0
HEARTBEAT_S, DEAD_AFTER_S = 10, 30
PERIOD_S = 60


# -- the table -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_lease_is_held_by_one_master_until_it_expires(db):
    assert await db.leases.acquire("scheduler:nightly", 1, 100.0, 60) is True
    assert await db.leases.acquire("scheduler:nightly", 2, 159.0, 60) is False
    assert await db.leases.acquire("scheduler:nightly", 1, 150.0, 60) is True  # renewed: until 210
    assert await db.leases.acquire("scheduler:nightly", 2, 209.0, 60) is False
    assert await db.leases.acquire("scheduler:nightly", 2, 211.0, 60) is True
    assert await db.leases.acquire("scheduler:nightly", 1, 212.0, 60) is False
    assert await db.leases.get_all() == [{"name": "scheduler:nightly", "masterid": 2, "expires": 271.0}]


@pytest_twisted.ensureDeferred
async def test_a_released_lease_may_be_taken_at_once_but_only_its_holder_releases_it(db):
    await db.leases.acquire("cas-janitor", 1, 100.0, 60)
    assert await db.leases.release("cas-janitor", 2) is False
    assert await db.leases.acquire("cas-janitor", 2, 101.0, 60) is False
    assert await db.leases.release("cas-janitor", 1) is True
    assert await db.leases.acquire("cas-janitor", 2, 102.0, 60) is True


@pytest_twisted.ensureDeferred
async def test_two_masters_taking_a_new_lease_together_one_wins(db):
    other = DBConnector(db.db_url, db.basedir, reactor)
    await other.setup()
    try:
        for round_ in range(5):
            name = f"scheduler:s{round_}"
            won = await defer.gatherResults([defer.ensureDeferred(db.leases.acquire(name, 1, 100.0, 60)),
                                             defer.ensureDeferred(other.leases.acquire(name, 2, 100.0, 60))])
            assert sorted(won) == [False, True]
    finally:
        await other.stopService()


@pytest_twisted.ensureDeferred
async def test_the_reclaim_of_a_dead_master_releases_its_leases(db):
    dead = await db.masters.find_or_create("killed-host:/srv/master")
    await db.masters.mark_active(dead, NOW - 100)
    await db.leases.acquire("scheduler:nightly", dead, NOW - 100, 1000)
    await db.leases.acquire("cas-janitor", 99, NOW - 100, 1000)

    reclaimed = await db.masters.reclaim(dead, NOW - DEAD_AFTER_S, NOW, DEAD_AFTER_S, by=2)

    assert reclaimed.leases == 1
    assert await db.leases.acquire("scheduler:nightly", 2, NOW, 60) is True
    assert await db.leases.acquire("cas-janitor", 2, NOW, 60) is False


def test_the_janitor_of_a_shared_bucket_has_one_lease_and_a_file_store_its_own():
    class Settings:
        backend, path, s3 = "s3", "cas", S3Location(bucket="cas", endpoint_url="http://127.0.0.1:9000")

    assert janitor_lease_name(Settings, "/srv/m1") == janitor_lease_name(Settings, "/srv/m2") == \
        "cas-janitor:s3:http://127.0.0.1:9000/cas"
    Settings.backend = "file"
    assert janitor_lease_name(Settings, "/srv/m1") != janitor_lease_name(Settings, "/srv/m2")


# -- masters ---------------------------------------------------------------------------------

PERIODIC = (f"c['schedulers'].append(schedulers.Periodic(name='periodic', builderNames=['linux'], "
            f"periodicBuildTimer={PERIOD_S}))\n")


def cfg(url: str, multi: bool) -> str:
    return (MASTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {url!r}") + PERIODIC
            + f"c['multiMaster'] = {multi!r}\n"
            + f"c['multiMasterSettings'] = {{'heartbeat_secs': {HEARTBEAT_S}, "
              f"'dead_after_secs': {DEAD_AFTER_S}}}\n")


@pytest.fixture
def shared_url(db_url_postgresql):
    # c['multiMaster'] needs PostgreSQL (LISTEN/NOTIFY) or an AMQP broker: checkconfig refuses
    # it on SQLite, so the masters sharing one database share a PostgreSQL one
    return db_url_postgresql


async def start_masters(url, tmp_path, names, multi=True) -> list:
    started = []
    for name in names:
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, cfg(url, multi), now=NOW))
    return started


@pytest_twisted.async_yield_fixture
async def cluster(shared_url, tmp_path):
    """Two started in-memory masters, ``a`` and ``b``, with c['multiMaster'], each with a
    Periodic scheduler ``periodic`` every 60 s."""
    started = await start_masters(shared_url, tmp_path, ("a", "b"))
    yield started
    for master in started:
        if master.running:
            await master.stopService()


def gate(master) -> LeaseGate:
    return master.scheduler.gates["periodic"]


async def settled(*masters) -> None:
    """Wait until no heartbeat or lease renewal of ``masters`` waits for the database."""
    def idle(master):
        pending = [master.liveness._beating, gate(master)._renewing]
        return all(d is None or d.called for d in pending)

    await eventually(lambda: defer.succeed(all(idle(m) for m in masters)), "renewals to be written")


async def advance(masters, seconds: float) -> None:
    """Advance the clocks of ``masters`` (the live ones) by ``seconds``, one heartbeat at a time."""
    for _ in range(int(seconds // HEARTBEAT_S)):
        for master in masters:
            master.reactor.advance(HEARTBEAT_S)
        await settled(*masters)
        for master in masters:
            master.reactor.advance(0)  # a scheduler activated by the renewal: its first timer


async def periodic_buildsets(master) -> int:
    return len([b for b in await master.db.buildsets.get_all() if b["scheduler"] == "periodic"])


async def count_becomes(master, n: int) -> None:
    async def check():
        return await periodic_buildsets(master) == n
    await eventually(check, f"{n} buildsets of the Periodic scheduler")


@pytest_twisted.ensureDeferred
async def test_a_periodic_scheduler_on_two_masters_fires_once_per_period(cluster):
    a, b = cluster
    await settled(a, b)
    await advance(cluster, 0)
    a.reactor.advance(0)
    b.reactor.advance(0)

    assert sorted([gate(a).held, gate(b).held]) == [False, True]
    holder = a if gate(a).held else b
    assert holder.scheduler.schedulers["periodic"].active
    assert not (b if holder is a else a).scheduler.schedulers["periodic"].active
    await count_becomes(a, 1)  # its first build, at once
    await advance(cluster, 3 * PERIOD_S)
    await count_becomes(a, 4)  # one per period, not two
    assert await periodic_buildsets(a) == 4


@pytest_twisted.ensureDeferred
async def test_when_the_holder_dies_the_other_master_runs_the_scheduler_within_the_lease_time(cluster):
    a, b = cluster
    await settled(a, b)
    a.reactor.advance(0)
    b.reactor.advance(0)
    holder, other = (a, b) if gate(a).held else (b, a)
    await count_becomes(a, 1)

    # the holder is killed: its clock stands still, nothing of it runs any more
    await advance([other], DEAD_AFTER_S)
    assert not gate(other).held  # not yet dead: its lease holds
    await advance([other], 2 * HEARTBEAT_S)

    assert gate(other).held and other.scheduler.schedulers["periodic"].active
    assert [r.masterid for r in other.liveness.reclaimed] == [holder.masterid]
    leases = {lease["name"]: lease["masterid"] for lease in await other.db.leases.get_all()}
    assert leases["scheduler:periodic"] == other.masterid
    await advance([other], PERIOD_S)
    await count_becomes(a, 2)  # the period goes on from the last build, on the other master


@pytest_twisted.ensureDeferred
async def test_a_cleanly_stopped_holder_hands_the_scheduler_over_at_the_next_renewal(cluster):
    a, b = cluster
    await settled(a, b)
    holder, other = (a, b) if gate(a).held else (b, a)

    await holder.stopService()
    await advance([other], HEARTBEAT_S)

    assert gate(other).held and other.scheduler.schedulers["periodic"].active


@pytest_twisted.ensureDeferred
async def test_one_master_without_multimaster_runs_its_timed_schedulers_as_before(db_url, tmp_path):
    url = f"sqlite:///{tmp_path}/own.sqlite" if db_url.startswith("sqlite") else db_url
    [master] = await start_masters(url, tmp_path, ["solo"], multi=False)
    try:
        assert master.scheduler.gates == {}
        assert master.scheduler.schedulers["periodic"].active
        master.reactor.advance(0)
        await count_becomes(master, 1)
        assert await master.db.leases.get_all() == []  # nothing asked of the database
    finally:
        await master.stopService()


class Recorded(service.Service):
    """A child that records when it starts and stops."""

    def __init__(self):
        self.events = []

    def startService(self):  # noqa: N802
        super().startService()
        self.events.append("start")

    def stopService(self):  # noqa: N802
        super().stopService()
        self.events.append("stop")


@pytest_twisted.ensureDeferred
async def test_a_gate_that_loses_its_lease_stops_its_child_and_one_that_gains_it_starts_it(cluster):
    a, b = cluster
    child = Recorded()
    gated = LeaseGate("job", child, a)
    gated.startService()
    await eventually(lambda: defer.succeed(gated.held), "the lease to be taken")
    assert child.events == ["start"]

    b.reactor.advance(DEAD_AFTER_S + 1)  # a's lease ran out; b takes it
    assert await b.db.leases.acquire("job", b.masterid, b.reactor.seconds(), DEAD_AFTER_S)
    assert await gated.renew() is False
    assert child.events == ["start", "stop"]

    await b.db.leases.release("job", b.masterid)
    assert await gated.renew() is True
    assert child.events == ["start", "stop", "start"]
    await gated.stopService()
    assert child.events[-1] == "stop"
    leases = {lease["name"]: lease["masterid"] for lease in await a.db.leases.get_all()}
    assert leases["job"] is None  # released at stop
