"""Leases between real masters on one PostgreSQL database: a Periodic scheduler configured on
both masters fires once per period (on the master holding its lease), and when that master is
killed with SIGKILL the other takes the scheduler over within the lease time and goes on."""

import time

import sqlalchemy as sa

from buildfarm.master.db.model import buildsets, leases, masters
from fixtures.daemons import wait_for

HEARTBEAT_S, DEAD_AFTER_S = 0.5, 2.0
PERIOD_S = 2.0
# The time the survivor may take past dead_after_secs: its next heartbeat and renewal (the
# reclaim releases the lease), the polls of this test.
TAKEOVER_SLACK_S = 2 * HEARTBEAT_S + 3.0

CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': {heartbeat}, 'dead_after_secs': {dead_after}}}
c['builders'] = [util.BuilderConfig(name='nightly', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['true'])]))]
c['schedulers'] = [schedulers.Periodic(name='periodic', builderNames=['nightly'],
                                       periodicBuildTimer={period})]
"""


def shared_master(fleet, db_url: str):
    return fleet.master(config=lambda pb_port, www_port: CFG.format(
        pb_port=pb_port, www_port=www_port, db_url=db_url, heartbeat=HEARTBEAT_S, dead_after=DEAD_AFTER_S,
        period=PERIOD_S))


class Database:
    """Reads of the shared database by the test."""

    def __init__(self, db_url: str):
        self.engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))

    def submitted(self) -> list[float]:
        """When each buildset of the Periodic scheduler was submitted, oldest first."""
        query = sa.select(buildsets.c.submitted_at).where(buildsets.c.scheduler == "periodic")
        with self.engine.connect() as conn:
            return sorted(conn.execute(query).scalars())

    def holder(self) -> str | None:
        """The name (host:basedir) of the master holding the scheduler's lease."""
        query = (sa.select(masters.c.name).join(leases, leases.c.masterid == masters.c.id)
                 .where(leases.c.name == "scheduler:periodic"))
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one_or_none()


def test_a_periodic_scheduler_on_two_masters_fires_once_per_period_and_survives_its_holder(
        fleet, db_url_postgresql):
    a = shared_master(fleet, db_url_postgresql)
    b = shared_master(fleet, db_url_postgresql)
    db = Database(db_url_postgresql)
    try:
        holder_name = wait_for(db.holder, "a master to hold the scheduler's lease")
        holder, other = (a, b) if holder_name.endswith(a.basedir) else (b, a)
        wait_for(lambda: len(db.submitted()) >= 4, "four periods", deadline_s=4 * PERIOD_S + 10)

        gaps = [later - earlier for earlier, later in zip(db.submitted(), db.submitted()[1:])]
        assert all(gap > PERIOD_S / 2 for gap in gaps), gaps  # once per period, never twice (jitter aside)
        assert "lease scheduler:periodic: this master runs it now" in holder.log_text()
        assert "lease scheduler:periodic: this master runs it now" not in other.log_text()

        before = len(db.submitted())
        killed_at = time.monotonic()
        holder.halt("killed")
        wait_for(lambda: (h := db.holder()) is not None and h.endswith(other.basedir),
                 "the other master to take the lease", deadline_s=DEAD_AFTER_S + 30)
        took_over_after = time.monotonic() - killed_at
        assert took_over_after < DEAD_AFTER_S + TAKEOVER_SLACK_S, took_over_after
        wait_for(lambda: len(db.submitted()) >= before + 2, "the scheduler to go on on the other master",
                 deadline_s=3 * PERIOD_S + 10)
        gaps = [later - earlier for earlier, later in zip(db.submitted(), db.submitted()[1:])]
        assert all(gap > PERIOD_S / 2 for gap in gaps), gaps
        assert "lease scheduler:periodic: this master runs it now" in other.log_text()
        print(f"takeover after SIGKILL: {took_over_after:.2f} s (dead_after_secs {DEAD_AFTER_S}, "
              f"heartbeat_secs {HEARTBEAT_S})")
    finally:
        db.engine.dispose()
