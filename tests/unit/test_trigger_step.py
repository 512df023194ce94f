"""The Trigger step in a build of a real master in memory: its real SchedulerManager with
Triggerable schedulers, real database (SQLite), the step's real context (``StepRun``)."""

import pytest_twisted
from twisted.internet import defer

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, SUCCESS, WARNINGS
from buildfarm.master.config import MasterConfig
from buildfarm.master.process.build import StepRun
from buildfarm.master.process.properties import Interpolate, Property
from buildfarm.master.process.steps.trigger import STOP_CHECK_INTERVAL_S, Trigger
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.triggerable import Triggerable
from fixtures.memorymaster import eventually, memory_master_fixture, running_step

# Builders a, b and c; Triggerable ``unit`` builds a, ``perf`` builds b and c.
TRIGGER_CFG = """\
from buildfarm.master.plugins import slaves, schedulers, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {'pb': {'port': 9989}}
factory = util.BuildFactory([steps.ShellCommand(command=['true'])])
c['builders'] = [util.BuilderConfig(name=name, slavenames=['bs1'], factory=factory) for name in 'abc']
c['schedulers'] = [schedulers.Triggerable(name='unit', builderNames=['a']),
                   schedulers.Triggerable(name='perf', builderNames=['b', 'c'])]
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
"""
NOW = 1000.0

master = memory_master_fixture(TRIGGER_CFG, NOW)


def run_step(step, run: StepRun) -> defer.Deferred:
    return defer.ensureDeferred(step.rendered(run.properties).run(run))


async def log_text(master, run: StepRun) -> str:
    await run.close_logs()
    return "".join([await master.db.logs.get_text(writer.logid) for writer in run.logs])


async def buildsets(master, scheduler: str) -> list[dict]:
    """The buildsets of ``scheduler``, oldest first."""
    return [b for b in reversed(await master.db.buildsets.get_all()) if b["scheduler"] == scheduler]


def completed(master, bsid: int):
    """Whether buildset ``bsid`` is complete (a check for ``eventually``)."""
    async def check() -> bool:
        return (await master.db.buildsets.get(bsid))["complete"]
    return check


async def finish_buildset(master, scheduler: str, results: int) -> None:
    """The builds of the buildset end with ``results``, as the BotMaster records them."""
    [buildset] = await buildsets(master, scheduler)
    for brid in buildset["buildrequestids"]:
        await master.db.buildrequests.complete(brid, results, NOW)
        master.botmaster.tell_schedulers(await master.db.buildrequests.get(brid))
    await eventually(completed(master, buildset["bsid"]), f"the buildset of {scheduler} to complete")


@pytest_twisted.ensureDeferred
async def test_trigger_without_waiting_succeeds_once_the_buildsets_exist(master):
    properties = {"branch": "main", "revision": "r1", "colour": "red", "secret": "x"}
    run = await running_step(master, "a", "trigger", properties=properties)
    step = Trigger(schedulerNames=["unit", "perf"], copy_properties=["colour"],
                   set_properties={"label": Interpolate("%(prop:revision)s-ci")})
    results, state = await run_step(step, run)
    assert (results, state) == (SUCCESS, "triggered unit, perf")
    [unit], [perf] = await buildsets(master, "unit"), await buildsets(master, "perf")
    assert unit["parent_buildid"] == run.build.buildid and len(perf["buildrequestids"]) == 2
    assert unit["properties"] == {"branch": "main", "revision": "r1", "colour": "red",
                                  "label": "r1-ci", "scheduler": "unit"}
    text = await log_text(master, run)
    assert f"triggered unit: buildset {unit['bsid']}" in text
    assert f"triggered perf: buildset {perf['bsid']}" in text


@pytest_twisted.ensureDeferred
async def test_trigger_waiting_ends_with_the_worst_result_of_the_buildsets(master):
    run = await running_step(master, "a", "trigger")
    d = run_step(Trigger(schedulerNames=["unit", "perf"], waitForFinish=True), run)
    await eventually(lambda: buildsets(master, "perf"), "the buildsets")
    await finish_buildset(master, "unit", WARNINGS)
    assert not d.called
    await finish_buildset(master, "perf", FAILURE)
    results, state = await d
    assert (results, state) == (FAILURE, "triggered unit, perf: failure")


@pytest_twisted.ensureDeferred
async def test_trigger_waiting_on_successful_builds_succeeds(master):
    run = await running_step(master, "a", "trigger")
    d = run_step(Trigger(schedulerNames=["unit"], waitForFinish=True), run)
    await eventually(lambda: buildsets(master, "unit"), "the buildset")
    await finish_buildset(master, "unit", SUCCESS)
    assert (await d)[0] == SUCCESS
    [unit] = await buildsets(master, "unit")
    assert f"unit: buildset {unit['bsid']} finished: success" in await log_text(master, run)


@pytest_twisted.ensureDeferred
async def test_trigger_source_stamps_give_the_triggered_builds_exactly_those_stamps(master):
    run = await running_step(master, "a", "trigger",
                             properties={"branch": "main", "revision": "r1", "tag_rev": "abc"})
    stamp = {"codebase": "", "branch": "release-24", "revision": Property("tag_rev"),
             "repository": "https://example.org/os.git", "project": ""}
    results, _ = await run_step(Trigger(schedulerNames=["unit"], sourceStamps=[stamp]), run)
    assert results == SUCCESS
    [unit] = await buildsets(master, "unit")
    assert unit["properties"]["sourcestamps"] == [dict(stamp, revision="abc")]
    assert (unit["properties"]["branch"], unit["properties"]["revision"]) == ("release-24", "abc")


@pytest_twisted.ensureDeferred
async def test_trigger_always_use_latest_hands_no_source_on(master):
    run = await running_step(master, "a", "trigger", properties={"branch": "main", "revision": "r1"})
    await run_step(Trigger(schedulerNames=["unit"], alwaysUseLatest=True), run)
    [unit] = await buildsets(master, "unit")
    assert unit["properties"] == {"scheduler": "unit"}


def test_trigger_source_stamps_config_problems():
    assert Trigger(schedulerNames=["u"], sourceStamps=[{"branch": "b"}]).config_problems() == []
    assert "sourceStamps must be a list of dicts" in \
        Trigger(schedulerNames=["u"], sourceStamps="main").config_problems()[0]
    assert "not both" in Trigger(schedulerNames=["u"], sourceStamps=[{}],
                                 alwaysUseLatest=True).config_problems()[0]


@pytest_twisted.ensureDeferred
async def test_triggering_an_unknown_scheduler_is_an_exception_naming_it(master):
    run = await running_step(master, "a", "trigger")
    results, state = await run_step(Trigger(schedulerNames=["unit", "nope"]), run)
    assert results == EXCEPTION and state == "could not trigger nope"
    assert "cannot trigger nope: scheduler 'nope' is not configured" in await log_text(master, run)
    assert len(await buildsets(master, "unit")) == 1


def test_trigger_config_problems_and_cross_check():
    assert Trigger(schedulerNames=["unit"]).config_problems() == []
    assert "schedulerNames" in Trigger(schedulerNames=[]).config_problems()[0]
    assert "schedulerNames" in Trigger(schedulerNames="unit").config_problems()[0]
    assert "waitForFinish" in Trigger(schedulerNames=["u"], waitForFinish="yes").config_problems()[0]
    config = MasterConfig(filename="master.cfg",
                          schedulers=[Triggerable("unit", ["a"]), ForceScheduler("force", ["a"])])
    assert Trigger(schedulerNames=["unit"]).cross_check(config) == []
    assert Trigger(schedulerNames=["force", "gone"]).cross_check(config) == [
        "Trigger names 'force', which is not a Triggerable scheduler",
        "Trigger names 'gone', which is not a Triggerable scheduler",
    ]


@pytest_twisted.ensureDeferred
async def test_stopping_the_build_cancels_the_triggered_requests_and_the_wait(master):
    run = await running_step(master, "a", "trigger")
    timers_before = set(master.reactor.getDelayedCalls())
    d = run_step(Trigger(schedulerNames=["unit"], waitForFinish=True), run)
    await eventually(lambda: buildsets(master, "unit"), "the buildset")
    master.reactor.advance(5 * STOP_CHECK_INTERVAL_S)
    assert not d.called
    run.build.stop("user asked")
    master.reactor.advance(STOP_CHECK_INTERVAL_S)
    assert await d == (CANCELLED, "triggered unit: cancelled")
    [buildset] = await buildsets(master, "unit")
    request = await master.db.buildrequests.get(buildset["buildrequestids"][0])
    assert request["results"] == CANCELLED
    await eventually(completed(master, buildset["bsid"]), "the cancelled buildset to complete")
    await run.close_logs()  # as the build does after each step
    assert set(master.reactor.getDelayedCalls()) <= timers_before  # the step's watcher is gone
