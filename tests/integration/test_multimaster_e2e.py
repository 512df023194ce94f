"""Several masters on one PostgreSQL database, as real processes: a master killed with SIGKILL
mid-build is noticed by the other within its dead-after time, which reclaims its work: the
build ends RETRY, its request runs again on the other master's slave and succeeds, and no row
is left held by the dead master."""

import os
import time

import sqlalchemy as sa

from buildfarm.master.db.model import buildrequests, builds, masters, slave_connections, slaves
from fixtures.daemons import wait_for

HEARTBEAT_S, DEAD_AFTER_S = 0.5, 2.0
# The time the survivor may take past dead_after_secs: its next heartbeat, the reclaim, the
# HTTP polls of this test.
NOTICE_SLACK_S = HEARTBEAT_S + 3.0

CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(n, 'pass') for n in ('bs1', 'bs2')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': {heartbeat}, 'dead_after_secs': {dead_after}}}
c['builders'] = [util.BuilderConfig(name='crash', slavenames=['bs1', 'bs2'], factory=util.BuildFactory([
    steps.ShellCommand(command=['sh', '-c', {script!r}])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['crash'])]
"""
# The first run (wherever it runs) marks and hangs; later runs pass.
SCRIPT = ("if [ -e {marker} ]; then echo second run; else touch {marker}; echo first run; "
          "exec sleep 300; fi")


def shared_master(fleet, db_url: str, marker: str):
    return fleet.master(config=lambda pb_port, www_port: CFG.format(
        pb_port=pb_port, www_port=www_port, db_url=db_url, heartbeat=HEARTBEAT_S, dead_after=DEAD_AFTER_S,
        script=SCRIPT.format(marker=marker)))


def log_of(master, buildid: int) -> str:
    return master.request("GET", f"/api/v1/builds/{buildid}/steps/0/logs/stdio")[1].decode()


def held_by(db_url: str, masterid: int) -> dict:
    """The rows of the database still held by ``masterid``."""
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as conn:
            def count(table, *where):
                return conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar_one()

            active = conn.execute(sa.select(masters.c.active).where(masters.c.id == masterid)).scalar_one()
            return {
                "active": active,
                "claimed requests": count(buildrequests, buildrequests.c.claimed_by_masterid == masterid,
                                          buildrequests.c.complete == 0),
                "unfinished builds": count(builds, builds.c.masterid == masterid,
                                           builds.c.complete_at.is_(None)),
                "attached slaves": count(slaves, slaves.c.connected_masterid == masterid),
                "open connections": count(slave_connections, slave_connections.c.masterid == masterid,
                                          slave_connections.c.disconnected_at.is_(None)),
            }
    finally:
        engine.dispose()


def test_a_master_killed_mid_build_is_reclaimed_and_its_request_runs_on_the_other(fleet, db_url_postgresql,
                                                                                  tmp_path):
    marker = os.path.join(tmp_path, "marker")
    a = shared_master(fleet, db_url_postgresql, marker)
    b = shared_master(fleet, db_url_postgresql, marker)
    fleet.slave(a, "bs1")
    a.wait_attached("bs1")
    brid = a.force("crash")
    first = wait_for(lambda: a.get(f"/api/v1/buildrequests/{brid}")["buildids"], "a build on a")[0]
    wait_for(lambda: "first run" in log_of(a, first), "the first run to start")
    a_id = a.get(f"/api/v1/builds/{first}")["masterid"]
    fleet.slave(b, "bs2")  # only now: the first run is a's
    b.wait_attached("bs2")

    killed_at = time.monotonic()  # halt returns once the process is gone, which takes a moment
    a.halt("killed")
    ended = wait_for(lambda: (bd := b.get(f"/api/v1/builds/{first}"))["complete"] and bd,
                     "b to end a's build", deadline_s=DEAD_AFTER_S + 30)
    noticed_after = time.monotonic() - killed_at

    assert (ended["result"], ended["state_string"]) == ("retry", "master died")
    assert noticed_after < DEAD_AFTER_S + NOTICE_SLACK_S, noticed_after
    done = b.wait_request_complete(brid, deadline_s=60)
    assert done["result"] == "success"
    second = b.get(f"/api/v1/builds/{done['buildids'][1]}")
    assert [b.get(f"/api/v1/builds/{i}")["result"] for i in done["buildids"]] == ["retry", "success"]
    assert second["slavename"] == "bs2" and second["masterid"] != a_id
    assert "second run" in log_of(b, second["buildid"])
    assert held_by(db_url_postgresql, a_id) == {"active": 0, "claimed requests": 0, "unfinished builds": 0,
                                                "attached slaves": 0, "open connections": 0}
    assert "it is dead; reclaimed 1 build(s) (now RETRY), 1 request(s)" in b.log_text()
