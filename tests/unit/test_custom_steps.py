"""Custom steps written as Buildbot 4's documentation shows, run in a build of a real master
in memory (real database, the step's real context) against a real slave builder in process."""

import pytest_twisted

from buildfarm.common.results import WARNINGS
from buildfarm.master.process import buildstep, logobserver, results
from fixtures.memorymaster import memory_master_fixture
from fixtures.stepslave import log_texts, run_step, slave_step_run

CFG = """\
from buildfarm.master.plugins import slaves, schedulers, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
"""

master = memory_master_fixture(CFG)


class PassFailCounter(logobserver.LogLineObserver):
    """Counts the PASS and FAIL lines of the output, as in Buildbot's manual."""

    def __init__(self):
        super().__init__()
        self.passed = self.failed = 0

    def outLineReceived(self, line):  # noqa: N802
        if line.startswith("PASS"):
            self.passed += 1
        elif line.startswith("FAIL"):
            self.failed += 1


class RunTests(buildstep.ShellMixin, buildstep.BuildStep):
    """Buildbot's documented pattern: ShellMixin, an observer, async run, setProperty."""

    name = "tests"

    def __init__(self, **kwargs):
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)
        self.counter = PassFailCounter()
        self.addLogObserver("stdio", self.counter)

    async def run(self):
        cmd = await self.makeRemoteShellCommand()
        await self.runCommand(cmd)
        self.setProperty("tests-passed", self.counter.passed, "RunTests")
        await self.addCompleteLog("summary", f"{self.counter.passed} passed, {self.counter.failed} failed\n")
        if cmd.didFail():
            return results.FAILURE
        return results.WARNINGS if self.counter.failed else results.SUCCESS


OUTPUT = "printf 'PASS a\\nPASS b\\nFAIL c\\nPASS d\\n'"


@pytest_twisted.ensureDeferred
async def test_a_shellmixin_step_with_a_line_observer_counts_lines_and_sets_a_property(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = RunTests(command=["sh", "-c", OUTPUT])
    assert step.config_problems() == []
    assert await run_step(step, run) == (WARNINGS, "tests (warnings)")
    assert run.properties.getProperty("tests-passed") == 3
    logs = await log_texts(master, run)
    assert "PASS b" in logs["stdio"]
    assert logs["summary"].endswith("3 passed, 1 failed\n")
