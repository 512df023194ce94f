"""The step library (ShellSequence, WarningCountingShellCommand and its kin, CMake,
SetProperties, SetPropertiesFromEnv, FileExists, ShellCommand's logfiles, env and suffix), each
run in a build of a real master in memory against a real slave builder in process."""

import os

import pytest_twisted

from buildfarm.common.results import FAILURE, SUCCESS, WARNINGS
from buildfarm.master.plugins import steps, util
from fixtures.memorymaster import memory_master_fixture
from fixtures.stepslave import ONE_SLAVE_CFG, builder_dir, log_texts, run_step, slave_step_run

master = memory_master_fixture(ONE_SLAVE_CFG)


def workdir(tmp_path, master, name: str = "build") -> str:
    """The step's workdir on the in-process slave (made)."""
    path = os.path.join(builder_dir(tmp_path, master, "linux"), name)
    os.makedirs(path, exist_ok=True)
    return path


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


@pytest_twisted.ensureDeferred
async def test_shell_sequence_runs_each_command_into_its_log_and_halts_on_failure(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux", properties={"who": "world"})
    step = steps.ShellSequence(commands=[
        util.ShellArg(command=sh("echo one"), logname="first"),
        util.ShellArg(command=["echo", util.Interpolate("hello %(prop:who)s")], logname="second"),
        util.ShellArg(command=sh("echo three; exit 1"), logname="third", haltOnFailure=True),
        util.ShellArg(command=sh("echo never"), logname="fourth"),
    ])
    assert step.config_problems() == []
    results, state = await run_step(step, run)
    assert results == FAILURE and state == "shellsequence (failure)"
    logs = await log_texts(master, run)
    assert sorted(logs) == ["first", "second", "third"]
    assert "hello world" in logs["second"] and "three" in logs["third"]


@pytest_twisted.ensureDeferred
async def test_shell_sequence_warn_on_failure_makes_warnings_and_goes_on(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.ShellSequence(commands=[
        util.ShellArg(command=sh("exit 2"), flunkOnFailure=False, warnOnFailure=True),
        util.ShellArg(command=sh("echo after")),
    ])
    assert (await run_step(step, run))[0] == WARNINGS
    assert "after" in (await log_texts(master, run))["stdio"]


def test_shell_arg_problems_are_reported_at_config_time():
    step = steps.ShellSequence(commands=[util.ShellArg(command=None), util.ShellArg(command="x", bogus=1),
                                         "not a ShellArg"])
    problems = step.config_problems()
    assert "the 'command' parameter of ShellArg must not be None" in problems
    assert "the parameter 'bogus' is not handled by ShellArg" in problems
    assert any("must be ShellArg objects" in p for p in problems)
    assert "got an unknown argument 'command'" in " ".join(steps.ShellSequence(commands=[], command="x")
                                                             .config_problems())


WARNING_OUTPUT = sh("echo 'a.c:3: warning: unused x'; echo fine; echo 'b.c:9: warning: shadowed y'; "
                    "echo 'a.c:40: Warning: cast'")


@pytest_twisted.ensureDeferred
async def test_warning_counting_counts_matching_lines_into_a_log_and_a_property(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    results, state = await run_step(steps.WarningCountingShellCommand(command=WARNING_OUTPUT), run)
    assert results == WARNINGS
    assert run.properties.getProperty("warnings-count") == 3
    logs = await log_texts(master, run)
    assert logs["warnings (3)"].splitlines() == ["a.c:3: warning: unused x", "b.c:9: warning: shadowed y",
                                                 "a.c:40: Warning: cast"]


@pytest_twisted.ensureDeferred
async def test_more_warnings_than_max_warn_count_fail_the_step(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.WarningCountingShellCommand(command=WARNING_OUTPUT, maxWarnCount=2)
    assert (await run_step(step, run))[0] == FAILURE


@pytest_twisted.ensureDeferred
async def test_a_custom_warning_pattern_and_a_suppression_file_on_the_slave(master, tmp_path):
    with open(os.path.join(workdir(tmp_path, master), "suppress.txt"), "w") as f:
        f.write("# known ones\n\na.c : unused : 1-10\n")
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.WarningCountingShellCommand(
        command=WARNING_OUTPUT, warningPattern=r"^(.*?):(\d+): [Ww]arning: (.*)$",
        warningExtractor=steps.WarningCountingShellCommand.warnExtractFromRegexpGroups,
        suppressionFile="suppress.txt")
    results, _ = await run_step(step, run)
    assert results == WARNINGS and run.properties.getProperty("warnings-count") == 2
    assert "warnings (2)" in await log_texts(master, run)


@pytest_twisted.ensureDeferred
async def test_a_missing_suppression_file_fails_the_step(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.WarningCountingShellCommand(command=WARNING_OUTPUT, suppressionFile="nowhere.txt")
    assert (await run_step(step, run))[0] == FAILURE
    assert "could not read the suppression file 'nowhere.txt'" in (await log_texts(master, run))["err.text"]


def test_configure_compile_and_test_have_buildbots_defaults():
    configure, compile_, test = steps.Configure(), steps.Compile(), steps.Test()
    assert (configure.name, configure.command, configure.haltOnFailure) == (
        "configure", ["./configure"], True)
    assert (compile_.name, compile_.command, compile_.haltOnFailure) == ("compile", ["make", "all"], True)
    assert (test.name, test.command, test.warnOnFailure) == ("test", ["make", "test"], True)
    assert steps.Compile(command=["ninja"], haltOnFailure=False).haltOnFailure is False
    assert all(s.config_problems() == [] for s in (configure, compile_, test))


@pytest_twisted.ensureDeferred
async def test_compile_runs_make_and_counts_its_warnings(master, tmp_path):
    with open(os.path.join(workdir(tmp_path, master), "Makefile"), "w") as f:
        f.write("all:\n\t@echo 'x.c:1: warning: w'\n")
    run = await slave_step_run(master, tmp_path, "linux")
    assert await run_step(steps.Compile(), run) == (WARNINGS, "compile (warnings)")


@pytest_twisted.ensureDeferred
async def test_cmake_builds_its_command_line_from_generator_definitions_and_options(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux", properties={"kind": "Release"})
    step = steps.CMake(path="..", generator="Ninja", cmake="echo",
                       definitions={"CMAKE_BUILD_TYPE": util.Property("kind")}, options=["-Wdev"])
    assert step.config_problems() == []
    assert await run_step(step, run) == (SUCCESS, "cmake")
    assert "-G Ninja -DCMAKE_BUILD_TYPE=Release -Wdev ..\n" in (await log_texts(master, run))["stdio"]
    assert steps.CMake(definitions=["x"]).config_problems() == [
        "CMake definitions must be a dictionary or a renderable"]


@pytest_twisted.ensureDeferred
async def test_set_properties_from_a_dict_or_a_renderer(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux", properties={"branch": "main"})
    await run_step(steps.SetProperties(properties={"a": 1, "b": util.Interpolate("%(prop:branch)s-x")}), run)

    @util.renderer
    def computed(props):
        return {"c": props.getProperty("branch").upper()}

    assert (await run_step(steps.SetProperties(properties=computed), run))[0] == SUCCESS
    assert [run.properties.getProperty(n) for n in "abc"] == [1, "main-x", "MAIN"]
    assert steps.SetProperties(properties=3).config_problems() != []


@pytest_twisted.ensureDeferred
async def test_set_properties_from_env_reads_the_slaves_reported_environment(master, tmp_path):
    await master.db.slaves.attached("bs1", master.masterid, {"environ": {"CC": "clang", "HOME": "/h"}},
                                    "4.3", 0.0)
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.SetPropertiesFromEnv(variables=["CC", "MISSING"])
    assert await run_step(step, run) == (SUCCESS, "1 properties set from the environment")
    assert run.properties.getProperty("CC") == "clang" and not run.properties.hasProperty("MISSING")
    assert run.properties.getPropertySource("CC") == "WorkerEnvironment"


@pytest_twisted.ensureDeferred
async def test_file_exists_succeeds_only_for_a_regular_file(master, tmp_path):
    base = builder_dir(tmp_path, master, "linux")
    os.makedirs(os.path.join(base, "adir"))
    with open(os.path.join(base, "afile"), "w") as f:
        f.write("x")
    outcomes = []
    for name in ("afile", "adir", "missing"):
        run = await slave_step_run(master, tmp_path, "linux")
        outcomes.append(await run_step(steps.FileExists(file=name), run))
    assert outcomes == [(SUCCESS, "file afile found"), (FAILURE, "adir is not a file"),
                        (FAILURE, "file missing not found")]


@pytest_twisted.ensureDeferred
async def test_shell_command_logfiles_become_logs_and_lazy_ones_only_when_written(master, tmp_path):
    workdir(tmp_path, master)
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.ShellCommand(command=sh("echo built > out.log"),
                              logfiles={"out": "out.log", "none": "no.log"})
    assert (await run_step(step, run))[0] == SUCCESS
    logs = await log_texts(master, run)
    assert sorted(logs) == ["none", "out", "stdio"] and logs["out"] == "built\n"

    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.ShellCommand(command=sh("echo again > out.log"), lazylogfiles=True,
                              logfiles={"out": "out.log", "none": "no.log"})
    assert (await run_step(step, run))[0] == SUCCESS
    logs = await log_texts(master, run)
    assert sorted(logs) == ["out", "stdio"] and logs["out"] == "again\n"


@pytest_twisted.ensureDeferred
async def test_shell_command_env_may_be_a_renderable_and_description_takes_a_suffix(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux", properties={"cc": "gcc-13"})

    @util.renderer
    def env(props):
        return {"CC": props.getProperty("cc")}

    step = steps.ShellCommand(command=sh("echo cc=$CC"), env=env, descriptionDone="built",
                              descriptionSuffix=util.Interpolate("with %(prop:cc)s"))
    assert step.config_problems() == []
    assert await run_step(step, run) == (SUCCESS, "built with gcc-13")
    assert "cc=gcc-13" in (await log_texts(master, run))["stdio"]


@pytest_twisted.ensureDeferred
async def test_a_shell_command_subclass_may_set_command_as_a_class_attribute(master, tmp_path):
    class Hello(steps.ShellCommand):
        name = "hello"
        command = ["echo", "from the class"]

    run = await slave_step_run(master, tmp_path, "linux")
    step = Hello()
    assert step.config_problems() == [] and step.name == "hello"
    assert (await run_step(step, run))[0] == SUCCESS
    assert "from the class" in (await log_texts(master, run))["stdio"]


def test_transfer_steps_accept_renderable_paths():
    rendered = util.Interpolate("dist/%(prop:buildnumber)s.tar")
    for step in (steps.FileUpload(workersrc=rendered, masterdest=rendered),
                 steps.DirectoryUpload(workersrc=rendered, masterdest=rendered),
                 steps.FileDownload(mastersrc=rendered, workerdest=rendered),
                 steps.StringDownload(util.Property("text"), workerdest=rendered)):
        assert step.config_problems() == [], step


@pytest_twisted.ensureDeferred
async def test_set_property_from_command_takes_stdout_or_an_extract_function(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.SetPropertyFromCommand(command=sh("echo ' v1.2 '; echo noise >&2"), property="version")
    assert await run_step(step, run) == (SUCCESS, "property 'version' set")
    assert run.properties.getProperty("version") == "v1.2"

    def extract(rc, stdout, stderr):
        return {"rc": rc, "err": stderr.strip()}

    step = steps.SetPropertyFromCommand(command=sh("echo oops >&2; exit 3"), extract_fn=extract,
                                        decodeRC={3: SUCCESS})
    assert await run_step(step, run) == (SUCCESS, "2 properties set")
    assert (run.properties.getProperty("rc"), run.properties.getProperty("err")) == (3, "oops")
    failing = steps.SetPropertyFromCommand(command=sh("exit 1"), property="never")
    assert (await run_step(failing, run))[0] == FAILURE and not run.properties.hasProperty("never")


@pytest_twisted.ensureDeferred
async def test_directory_steps_take_renderable_paths_and_halt_on_failure_as_in_buildbot(master, tmp_path):
    base = builder_dir(tmp_path, master, "linux")
    run = await slave_step_run(master, tmp_path, "linux", properties={"n": "7"})
    made = steps.MakeDirectory(dir=util.Interpolate("out-%(prop:n)s/sub"))
    copied = steps.CopyDirectory(src=util.Interpolate("out-%(prop:n)s"), dest="copy")
    removed = steps.RemoveDirectory(dir=util.Interpolate("out-%(prop:n)s"))
    for step in (made, copied, removed):
        assert step.haltOnFailure is True and step.config_problems() == []
        assert (await run_step(step, run))[0] == SUCCESS
    assert os.path.isdir(os.path.join(base, "copy", "sub"))
    assert not os.path.exists(os.path.join(base, "out-7"))
    assert steps.MakeDirectory(dir="d", haltOnFailure=False).haltOnFailure is False
