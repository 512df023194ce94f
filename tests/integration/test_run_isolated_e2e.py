"""Runs from a hash with real processes: a master with c['cas'] and two ``buildslave`` daemons.
The pipeline of docs/cas.md: ``build`` on bs1 archives a tree (IsolateArchive) and triggers
``test`` on bs2, which runs from that hash (RunIsolated) and returns its outputs as a hash,
downloaded here with ``isolateserver``; the same hash run again on bs2 fetches nothing; a hard
timeout ends a command with SIGTERM, then SIGKILL after the grace period."""

import os
import subprocess
import sys

from buildfarm.common.results import FAILURE, SUCCESS
from fixtures.daemons import CLI_TIMEOUT_S, TEST_PASSWORD, TEST_USER, wait_for
from fixtures.docexamples import example

BUILD_DEADLINE_S = 90.0
HEAD = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass'), slaves.BuildSlave('bs2', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'upload_secret': 'e2e-cas-secret'}}
c['builders'] = [
    util.BuilderConfig(name='timeout', slavenames=['bs2'], factory=util.BuildFactory([
        steps.RunIsolated(isolated=util.Property('isolated'), hard_timeout=1, grace_period=2,
                          command=['sh', '-c', "trap 'echo got-TERM' TERM; echo ready; "
                                               "while :; do sleep 0.1; done"]),
    ])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force-runs', builderNames=['test', 'timeout'])]
"""


def config(pb_port: int, www_port: int) -> str:
    return HEAD.format(pb_port=pb_port, www_port=www_port) + example("cas.md", "run-pipeline")


def finished_build(master, brid: int) -> dict:
    request = master.wait_request_complete(brid, BUILD_DEADLINE_S)
    return master.get(f"/api/v1/builds/{request['buildids'][0]}")


def log_text(master, build: dict, step: int, name: str) -> str:
    status, text = master.request("GET", f"/api/v1/builds/{build['buildid']}/steps/{step}/logs/{name}")
    assert status == 200, text
    return text.decode()


def isolateserver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildfarm.common.isolateserver", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)


def test_a_tree_archived_on_one_slave_runs_from_its_hash_on_another(fleet, tmp_path):
    master = fleet.master(config=config)
    slaves = {name: fleet.slave(master, name) for name in ("bs1", "bs2")}
    for name in slaves:
        master.wait_attached(name)

    built = finished_build(master, master.force("build"))
    assert built["results"] == SUCCESS, built
    [listed] = master.get("/api/v1/builds?builder=test&complete=true")["builds"]
    tested = master.get(f"/api/v1/builds/{listed['buildid']}")
    assert tested["results"] == SUCCESS and tested["slavename"] == "bs2"
    tree, output = tested["properties"]["isolated"], tested["properties"]["isolated_output"]
    assert tree == built["properties"]["isolated"] and len(output) == 40
    cold = log_text(master, tested, 0, "isolate")
    assert cold.startswith("download: 2 items checked, 0 hits, 2 misses, 2 items downloaded"), cold

    # the outputs, fetched as any Isolate client would
    fetched = isolateserver("download", "-I", master.url, "--namespace", "default-gzip", "-s", output,
                            "-t", str(tmp_path / "outputs"), "--cache", str(tmp_path / "cache"),
                            "--user", TEST_USER, "--password", TEST_PASSWORD)
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "outputs" / "report.txt").read_text() == "ALL GOOD\n"

    # the same hash again on the same slave: everything is in its cache
    again = finished_build(master, master.force("test", properties={"isolated": tree}))
    assert again["results"] == SUCCESS
    warm = log_text(master, again, 0, "isolate")
    assert warm.startswith("download: 2 items checked, 2 hits, 0 misses, 0 items downloaded"), warm

    # the grant the steps handed the slaves is in no log
    logs = [log_text(master, b, 0, "stdio") for b in (tested, again)] + [
        slave.log_text() for slave in slaves.values()] + [master.log_text()]
    assert not any("bfgrant1." in text for text in logs)
    assert os.listdir(os.path.join(slaves["bs2"].basedir, "cas-runs")) == []


def test_a_hard_timeout_kills_the_command_after_its_grace_period(fleet, tmp_path):
    master = fleet.master(config=config)
    slaves = {name: fleet.slave(master, name) for name in ("bs1", "bs2")}
    for name in slaves:
        master.wait_attached(name)
    built = finished_build(master, master.force("build"))
    assert built["results"] == SUCCESS, built

    tree = built["properties"]["isolated"]
    timed_out = finished_build(master, master.force("timeout", properties={"isolated": tree}))
    assert timed_out["results"] == FAILURE
    stdio = log_text(master, timed_out, 0, "stdio")
    killed = stdio.index("command timed out: 1 seconds elapsed, attempting to kill")
    # (the command line itself, in the header, says "ready" and "got-TERM" too: the output ends a line)
    ready, terminated = stdio.index("ready\n"), stdio.index("got-TERM\n")
    assert ready < killed < terminated < stdio.index("process killed by signal 9")
    assert timed_out["steps"][0]["duration"] >= 1 + 2  # the hard timeout, then the whole grace period
    wait_for(lambda: os.listdir(os.path.join(slaves["bs2"].basedir, "cas-runs")) == [], "the run dir to go")
