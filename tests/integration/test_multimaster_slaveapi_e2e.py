"""The SlaveAPI on any master, as real processes: two masters on one PostgreSQL database, a
real slave attached to master A; an action asked of master B (HTTP, under /slaveapi/) is run
by A through its PB connection, and its result is visible on both masters."""

import time

from fixtures.daemons import TEST_PASSWORD, TEST_USER
from fixtures.slaveapi import SlaveAPIClient

CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['multiMaster'] = True
c['multiMasterSettings'] = {{'heartbeat_secs': 1, 'dead_after_secs': 5}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['true'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
"""


def shared_master(fleet, db_url: str):
    return fleet.master(config=lambda pb_port, www_port: CFG.format(pb_port=pb_port, www_port=www_port,
                                                                    db_url=db_url))


def test_an_action_asked_of_one_master_is_run_by_the_master_holding_the_slave(fleet, db_url_postgresql):
    a = shared_master(fleet, db_url_postgresql)
    b = shared_master(fleet, db_url_postgresql)
    fleet.slave(a, "bs1")
    a.wait_attached("bs1")
    on_a = SlaveAPIClient(a.url + "/slaveapi", TEST_USER, TEST_PASSWORD)
    on_b = SlaveAPIClient(b.url + "/slaveapi", TEST_USER, TEST_PASSWORD)

    asked_at = time.monotonic()
    status, result = on_b.call("POST", "/slaves/bs1/actions/buildslave_uptime", waittime="20")
    took = time.monotonic() - asked_at

    assert status == 200 and result["state"] == 2, result  # SUCCESS
    assert result["data"]["uptime"] > 0
    assert "through its builder runtests" in result["story"]  # a's live PB connection ran it
    assert "asked of another master: run here, where the slave is attached" in a.log_text()
    path = f"/slaves/bs1/actions/buildslave_uptime?requestid={result['requestid']}"
    for client in (on_a, on_b):
        status, seen = client.call("GET", path)
        assert status == 200 and seen["data"] == result["data"] and seen["state"] == 2
        status, everything = client.call("GET", "/results")
        assert str(result["requestid"]) in everything["bs1"]["buildslave_uptime"]
    print(f"uptime asked of master B, run by master A: answered in {took * 1000:.0f} ms")
