"""A real slave configured with two masters sharing one PostgreSQL database: it attaches to the
first; when that one is killed (SIGKILL) it attaches to the second and runs its builds; every
master's ``GET /api/v1/slaves`` shows where it is attached."""

import os
import time

from fixtures.daemons import Slave, run_cli_here

HEARTBEAT_S, DEAD_AFTER_S = 0.5, 2.0
# A slave whose master is killed is on the next one after one short wait and a login.
FAILOVER_DEADLINE_S = 15.0

CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': {heartbeat}, 'dead_after_secs': {dead_after}}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['echo', 'built'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
"""


def shared_master(fleet, db_url: str):
    return fleet.master(config=lambda pb_port, www_port: CFG.format(
        pb_port=pb_port, www_port=www_port, db_url=db_url, heartbeat=HEARTBEAT_S, dead_after=DEAD_AFTER_S))


def slave_of(fleet, *masters) -> Slave:
    """A slave daemon created with the masters' PB ports as one list, started."""
    basedir = os.path.join(fleet.root, "slave-bs1")
    addresses = ",".join(f"127.0.0.1:{m.pb_port}" for m in masters)
    run_cli_here("buildslave", "create-slave", basedir, addresses, "bs1", "pass", check=True)
    slave = Slave(basedir, "bs1")
    fleet.slaves.append(slave)
    run_cli_here("buildslave", "start", basedir, check=True)
    return slave


def test_a_slave_with_two_masters_fails_over_when_its_master_is_killed(fleet, db_url_postgresql):
    a = shared_master(fleet, db_url_postgresql)
    b = shared_master(fleet, db_url_postgresql)
    slave = slave_of(fleet, a, b)
    a.wait_attached("bs1")
    a_name, a_id = a.slave("bs1")["master"], a.slave("bs1")["connected_masterid"]
    assert b.slave("bs1")["master"] == a_name  # b sees where it is attached
    assert b.slave("bs1")["attached"] is False

    killed_at = time.monotonic()  # halt returns once the process is gone, which takes a moment
    a.halt("killed")
    b.wait_attached("bs1", deadline_s=FAILOVER_DEADLINE_S)
    failover_s = time.monotonic() - killed_at

    done = b.wait_request_complete(b.force("runtests"))
    assert done["result"] == "success"
    build = b.get(f"/api/v1/builds/{done['buildids'][0]}")
    assert build["slavename"] == "bs1" and build["masterid"] != a_id  # b's build, on the slave
    [listed] = [s for s in b.get("/api/v1/slaves")["slaves"] if s["name"] == "bs1"]
    assert listed["master"] != a_name and listed["master"] == b.slave("bs1")["master"]
    assert f"attached to master 127.0.0.1:{b.pb_port}" in slave.log_text()
    assert failover_s < FAILOVER_DEADLINE_S
