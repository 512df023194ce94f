"""The Trigger step against a SchedulerManager on the in-memory database double."""

from types import SimpleNamespace

from twisted.internet import defer

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, SUCCESS, WARNINGS
from buildfarm.master.config import MasterConfig
from buildfarm.master.process.properties import Interpolate, Properties
from buildfarm.master.process.steps.trigger import Trigger
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from buildfarm.master.schedulers.triggerable import Triggerable


class FakeLog:
    def __init__(self):
        self.text = ""

    def add_header(self, text):
        self.text += text

    add_stdout = add_stderr = add_header


class FakeStepContext:
    """What a running step gets from its build, as far as Trigger uses it."""

    def __init__(self, master, **properties):
        self.master = master
        self.build = SimpleNamespace(buildid=42)
        self.properties = Properties()
        self.properties.update(properties, "Build")
        self.logs: dict[str, FakeLog] = {}

    async def add_log(self, name):
        self.logs[name] = FakeLog()
        return self.logs[name]


def run_step(step, ctx) -> defer.Deferred:
    return defer.ensureDeferred(step.rendered(ctx.properties).run(ctx))


def setup():
    master = FakeMaster()
    manager = started_manager(master, Triggerable("unit", ["a"]), Triggerable("perf", ["b", "c"]))
    return master, manager


def finish_buildset(master, manager, scheduler, results):
    [buildset] = master.buildsets(scheduler)
    for brid in buildset["buildrequestids"]:
        manager.buildrequest_finished(master.db.buildrequests.finish(brid, results))


def test_trigger_without_waiting_succeeds_once_the_buildsets_exist():
    master, _ = setup()
    ctx = FakeStepContext(master, branch="main", revision="r1", colour="red", secret="x")
    step = Trigger(schedulerNames=["unit", "perf"], copy_properties=["colour"],
                   set_properties={"label": Interpolate("%(prop:revision)s-ci")})
    results, state = result_of(run_step(step, ctx))
    assert (results, state) == (SUCCESS, "triggered unit, perf")
    unit, perf = master.buildsets("unit")[0], master.buildsets("perf")[0]
    assert unit["parent_buildid"] == 42 and len(perf["buildrequestids"]) == 2
    assert unit["properties"] == {"branch": "main", "revision": "r1", "colour": "red",
                                  "label": "r1-ci", "scheduler": "unit"}
    assert "triggered unit: buildset 1" in ctx.logs["triggered"].text
    assert "triggered perf: buildset 2" in ctx.logs["triggered"].text


def test_trigger_waiting_ends_with_the_worst_result_of_the_buildsets():
    master, manager = setup()
    d = run_step(Trigger(schedulerNames=["unit", "perf"], waitForFinish=True), FakeStepContext(master))
    finish_buildset(master, manager, "unit", WARNINGS)
    assert not d.called
    finish_buildset(master, manager, "perf", FAILURE)
    results, state = result_of(d)
    assert (results, state) == (FAILURE, "triggered unit, perf: failure")


def test_trigger_waiting_on_successful_builds_succeeds():
    master, manager = setup()
    ctx = FakeStepContext(master)
    d = run_step(Trigger(schedulerNames=["unit"], waitForFinish=True), ctx)
    finish_buildset(master, manager, "unit", SUCCESS)
    assert result_of(d)[0] == SUCCESS
    assert "unit: buildset 1 finished: success" in ctx.logs["triggered"].text


def test_triggering_an_unknown_scheduler_is_an_exception_naming_it():
    master, _ = setup()
    ctx = FakeStepContext(master)
    results, state = result_of(run_step(Trigger(schedulerNames=["unit", "nope"]), ctx))
    assert results == EXCEPTION and state == "could not trigger nope"
    assert "cannot trigger nope: scheduler 'nope' is not configured" in ctx.logs["triggered"].text
    assert len(master.buildsets("unit")) == 1


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


def test_stopping_the_build_cancels_the_triggered_requests_and_the_wait():
    master, manager = setup()
    ctx = FakeStepContext(master)
    ctx.build.stopped = None
    d = run_step(Trigger(schedulerNames=["unit"], waitForFinish=True), ctx)
    master.reactor.advance(5)
    assert not d.called
    ctx.build.stopped = "user asked"
    master.reactor.advance(1)
    assert result_of(d) == (CANCELLED, "triggered unit: cancelled")
    [buildset] = master.buildsets("unit")
    assert master.db.buildrequests.rows[buildset["buildrequestids"][0]]["results"] == CANCELLED
    assert buildset["complete"]
    assert master.reactor.getDelayedCalls() == []
