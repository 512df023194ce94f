"""Custom steps written as Buildbot 4's documentation shows, run in a build of a real master
in memory (real database, the step's real context) against a real slave builder in process."""

import os

import pytest
import pytest_twisted
from twisted.internet import defer

from buildfarm.common.results import WARNINGS
from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.configobject import fingerprint
from buildfarm.master.plugins import steps, util
from buildfarm.master.process import buildstep, logobserver, remotecommand, results
from fixtures.memorymaster import memory_master_fixture
from fixtures.stepslave import ONE_SLAVE_CFG, builder_dir, log_texts, run_step, slave_step_run

master = memory_master_fixture(ONE_SLAVE_CFG)


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


@pytest_twisted.ensureDeferred
async def test_each_build_gets_a_fresh_step_so_observer_counts_start_again(master, tmp_path):
    step = RunTests(command=["sh", "-c", OUTPUT])  # one object in the factory, as in master.cfg
    for _ in range(2):
        run = await slave_step_run(master, tmp_path, "linux")
        await run_step(step, run)
        assert run.properties.getProperty("tests-passed") == 3
    assert step.counter.passed == 0  # the configured object itself never ran


class Describe(buildstep.BuildStep):
    """A plain BuildStep with an inlineCallbacks run: self.build, properties, logs, a stat."""

    name = "describe"

    def __init__(self, path, **kwargs):
        super().__init__(**kwargs)
        self.path = path
        self.lines = logobserver.BufferLogObserver(wantStdout=True)
        self.addLogObserver("notes", self.lines)

    @defer.inlineCallbacks
    def run(self):
        notes = yield self.addLog("notes")
        yield notes.addStdout(f"build of {self.build.getProperty('project')} by "
                              f"{self.getProperty('owner', 'nobody')}\n")
        cmd = remotecommand.RemoteCommand("stat", {"file": self.path})
        yield self.runCommand(cmd)
        if cmd.didFail():
            raise buildstep.BuildStepFailed(f"no {self.path}")
        yield notes.finish()
        self.setProperty("noted", self.lines.getStdout().strip(), "Describe")
        self.descriptionDone = f"{self.path} is {cmd.updates['stat'][6]} bytes"
        return results.SUCCESS


@pytest_twisted.ensureDeferred
async def test_an_inline_callbacks_step_uses_the_build_logs_and_a_remote_command(master, tmp_path):
    path = builder_dir(tmp_path, master, "linux")
    os.makedirs(path)
    with open(os.path.join(path, "f.txt"), "w") as f:
        f.write("12345")
    run = await slave_step_run(master, tmp_path, "linux", properties={"owner": "ann", "project": "linux"})
    assert await run_step(Describe("f.txt"), run) == (results.SUCCESS, "f.txt is 5 bytes")
    assert run.properties.getProperty("noted") == "build of linux by ann"
    run = await slave_step_run(master, tmp_path, "linux")
    assert await run_step(Describe("missing.txt"), run) == (results.FAILURE, "describe (failure)")


class Wrapped(steps.ShellCommand):
    """A ShellCommand subclass whose run calls the parent's, then judges the output itself."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.output = logobserver.BufferLogObserver()
        self.addLogObserver("stdio", self.output)

    async def run(self):
        result = await super().run()
        noted = results.WARNINGS if "careful" in self.output.getStdout() else result
        return results.worst_status(result, noted)


@pytest_twisted.ensureDeferred
async def test_a_shell_command_subclass_run_may_call_the_parents_run(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    assert await run_step(Wrapped(command=["echo", "careful"]), run) == (results.WARNINGS,
                                                                         "'echo careful' (warnings)")


class Broken(buildstep.BuildStep):
    async def run(self):
        return "done"


@pytest_twisted.ensureDeferred
async def test_a_run_returning_something_else_than_a_result_code_is_an_error(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    with pytest.raises(TypeError, match="Broken.run returned 'done', not a result code"):
        await run_step(Broken(), run)


def test_results_helpers_behave_as_buildbots():
    assert results.statusToString(results.FAILURE) == "failure"
    assert results.statusToString(results.FAILURE, count=2) == "failures"
    assert results.statusToString(None) == "not finished"
    assert results.worst_status(results.SKIPPED, results.SUCCESS) == results.SUCCESS
    assert results.worst_status(results.WARNINGS, results.CANCELLED) == results.CANCELLED
    assert util.Results[util.WARNINGS] == "warnings" and util.LogLineObserver is logobserver.LogLineObserver


def test_buildbot_module_paths_have_the_same_names():
    from buildfarm.master.process.buildstep import BuildStep, ShellMixin  # noqa: F401
    from buildfarm.master.process.results import SUCCESS, statusToString, worst_status  # noqa: F401
    from buildfarm.master.steps.cmake import CMake
    from buildfarm.master.steps.master import MasterShellCommand, SetProperties
    from buildfarm.master.steps.shell import (
        Compile,
        Configure,
        ShellCommand,
        Test,
        WarningCountingShellCommand,
    )
    from buildfarm.master.steps.shellsequence import ShellArg, ShellSequence
    from buildfarm.master.steps.transfer import FileUpload
    from buildfarm.master.steps.trigger import Trigger
    from buildfarm.master.steps.worker import FileExists, SetPropertiesFromEnv

    assert (ShellCommand, Compile, Configure, Test, WarningCountingShellCommand) == (
        steps.ShellCommand, steps.Compile, steps.Configure, steps.Test, steps.WarningCountingShellCommand)
    assert (CMake, MasterShellCommand, SetProperties, ShellSequence, FileExists, SetPropertiesFromEnv) == (
        steps.CMake, steps.MasterShellCommand, steps.SetProperties, steps.ShellSequence, steps.FileExists,
        steps.SetPropertiesFromEnv)
    assert (ShellArg, FileUpload, Trigger) == (util.ShellArg, steps.FileUpload, steps.Trigger)
    assert steps.BuildStep is buildstep.BuildStep


def test_a_step_with_an_observer_compares_by_its_configuration():
    # The observer points back at its step; comparing configurations must not loop.
    assert fingerprint(RunTests(command=["x"])) == fingerprint(RunTests(command=["x"]))
    assert fingerprint(RunTests(command=["x"])) != fingerprint(RunTests(command=["y"]))


class CountingRun(steps.ShellCommand):
    """The manual's LineConsumerLogObserver pattern, with a result summary of its own."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.tests = 0
        self.addLogObserver("stdio", logobserver.LineConsumerLogObserver(self.logConsumer))

    def logConsumer(self):  # noqa: N802
        while True:
            stream, line = yield
            if stream == "o" and line.startswith("test "):
                self.tests += 1

    def getResultSummary(self):  # noqa: N802
        return {"step": f"{self.tests} tests run"}


@pytest_twisted.ensureDeferred
async def test_a_line_consumer_observer_and_a_result_summary_of_the_steps_own(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = CountingRun(command=["sh", "-c", "echo test a; echo test b; echo other >&2"])
    assert await run_step(step, run) == (results.SUCCESS, "2 tests run")


CUSTOM_STEP_CFG = """\
from buildfarm.master.plugins import *
from buildfarm.master.process import buildstep


class Lint(buildstep.ShellMixin, buildstep.BuildStep):
    name = 'lint'

    def __init__(self, **kwargs):
        kwargs = self.setupShellMixin(kwargs)
        super().__init__(**kwargs)

    async def run(self):
        cmd = await self.makeRemoteShellCommand()
        await self.runCommand(cmd)
        return cmd.results()


c = BuildmasterConfig = {}
c['workers'] = [worker.Worker('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='runtests', workernames=['bs1'], factory=util.BuildFactory([
    Lint(command=['flake8'], colour='red'),
    steps.ShellSequence(commands=[util.ShellArg(command=None)]),
]))]
c['protocols'] = {'pb': {'port': 9989}}
"""


def test_checkconfig_reports_bad_arguments_of_custom_steps_and_shell_args(tmp_path):
    path = tmp_path / "master.cfg"
    path.write_text(CUSTOM_STEP_CFG)
    with pytest.raises(ConfigErrors) as caught:
        load_config(str(path))
    text = "\n".join(str(e) for e in caught.value.errors)
    assert "Lint got an unknown argument 'colour'" in text
    assert "the 'command' parameter of ShellArg must not be None" in text
