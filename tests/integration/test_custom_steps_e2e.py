"""A master.cfg with a custom step written as Buildbot 4's manual shows (ShellMixin, a
LogLineObserver counting lines, setProperty) and steps of the library, run by a real master
on a real slave -- ours, and a stock buildbot-worker 4.3 -- over PB on loopback."""

import os

import pytest

from fixtures.daemons import wait_for

CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
from buildfarm.master.process import buildstep, logobserver
from buildfarm.master.process.results import FAILURE, SUCCESS, WARNINGS


class PassCounter(logobserver.LogLineObserver):
    def __init__(self):
        super().__init__()
        self.passed = 0

    def outLineReceived(self, line):
        if line.startswith("PASS"):
            self.passed += 1


class CountedTests(buildstep.ShellMixin, buildstep.BuildStep):
    name = "counted tests"

    def __init__(self, **kwargs):
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        self.counter = PassCounter()
        self.addLogObserver("stdio", self.counter)

    async def run(self):
        cmd = await self.makeRemoteShellCommand()
        await self.runCommand(cmd)
        self.setProperty("tests-passed", self.counter.passed, "CountedTests")
        await self.addCompleteLog("summary", f"{{self.counter.passed}} passed\\n")
        return FAILURE if cmd.didFail() else SUCCESS


c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
factory = util.BuildFactory([
    steps.SetProperties(properties={{'flavour': 'e2e'}}),
    CountedTests(command=['sh', '-c', 'printf "PASS a\\\\nFAIL b\\\\nPASS c\\\\n"']),
    steps.ShellSequence(commands=[
        util.ShellArg(command=['sh', '-c', 'echo warning: one; echo warning: two'], logname='noisy'),
        util.ShellArg(command=['echo', util.Interpolate('%(prop:flavour)s')], logname='flavour'),
    ]),
    steps.WarningCountingShellCommand(command=['sh', '-c', 'echo "x.c:1: warning: w"'], maxWarnCount=5),
    steps.MasterShellCommand(command=['sh', '-c', 'echo $FLAVOUR > on-master.txt'],
                             env={{'FLAVOUR': util.Property('flavour')}}),
])
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=factory)]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


@pytest.mark.parametrize("slave_kind", ["buildfarm", "stock-buildbot-worker"])
def test_a_custom_step_and_the_step_library_run_on_a_real_slave(fleet, slave_kind):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(pb_port=pb_port, www_port=www_port))
    (fleet.slave if slave_kind == "buildfarm" else fleet.stock_worker)(master)
    master.wait_attached("bs1")
    request = master.wait_request_complete(master.force())
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    states = [(s["name"], s["result"], s["state_string"]) for s in build["steps"]]
    # A WARNINGS step leaves the build a success unless it has warnOnWarnings, as in Buildbot.
    assert request["result"] == "success", states
    assert states[1] == ("counted tests", "success", "counted tests")
    assert build["properties"]["tests-passed"] == 2
    assert build["properties"]["warnings-count"] == 1
    assert [log["name"] for log in build["steps"][1]["logs"]] == ["stdio", "summary"]
    assert [log["name"] for log in build["steps"][2]["logs"]] == ["noisy", "flavour"]
    assert states[3][1] == "warnings" and states[4][1] == "success"
    summary = master.request("GET", f"/api/v1/builds/{build['buildid']}/steps/1/logs/summary")[1]
    assert b"2 passed" in summary
    on_master = os.path.join(master.basedir, "on-master.txt")
    wait_for(lambda: os.path.exists(on_master), "the master's command output")
    with open(on_master) as f:
        assert f.read() == "e2e\n"


SLEEPING_ON_MASTER = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
factory = util.BuildFactory([steps.MasterShellCommand(command='echo started; exec sleep 300')])
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=factory)]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def test_stopping_the_build_interrupts_a_master_shell_command(fleet):
    master = fleet.master(config=lambda pb, www: SLEEPING_ON_MASTER.format(pb_port=pb, www_port=www))
    fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force()
    buildid = wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "the build")[0]
    wait_for(lambda: b"started" in master.request(
        "GET", f"/api/v1/builds/{buildid}/steps/0/logs/stdio")[1], "the command to start")
    status, _ = master.request("POST", f"/api/v1/builds/{buildid}/stop", {"reason": "enough"})
    assert status == 200
    build = wait_for(lambda: (b := master.get(f"/api/v1/builds/{buildid}"))["complete"] and b,
                     "the build to end", deadline_s=15)
    assert build["result"] == "cancelled"
    log = master.request("GET", f"/api/v1/builds/{buildid}/steps/0/logs/stdio")[1]
    assert b"interrupted: enough" in log
