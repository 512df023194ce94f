"""``BuildEvents`` (master/process/buildevents.py): listeners in order, errors logged and not
passed to the build, unsubscribing; the master's live pages follow builds through it."""

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.logger import capturedLogs

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.build import Build
from buildfarm.master.process.buildevents import (
    BUILD_FINISHED,
    BUILD_STARTED,
    STEP_FINISHED,
    STEP_STARTED,
    BuildEvent,
    BuildEvents,
)
from buildfarm.slave.builder import SlaveBuilder
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.memorymaster import eventually, start_memory_master
from fixtures.stepslave import ONE_SLAVE_CFG, InProcessSlaveBuilder, SlaveRecord


def test_listeners_get_each_event_in_the_order_they_subscribed():
    bus, seen = BuildEvents(), []
    bus.subscribe(lambda event: seen.append(("first", event.kind)))
    bus.subscribe(lambda event: seen.append(("second", event.kind)))
    bus.publish(BuildEvent(BUILD_STARTED, 1))
    bus.publish(BuildEvent(STEP_STARTED, 1, stepid=4))
    assert seen == [("first", BUILD_STARTED), ("second", BUILD_STARTED),
                    ("first", STEP_STARTED), ("second", STEP_STARTED)]


def test_a_failing_listener_is_logged_and_the_others_still_hear():
    bus, seen = BuildEvents(), []

    def broken(event):
        raise RuntimeError("listener bug")

    bus.subscribe(broken)
    bus.subscribe(lambda event: defer.fail(ValueError("async bug")))
    bus.subscribe(seen.append)
    with capturedLogs() as logs:
        bus.publish(BuildEvent(BUILD_FINISHED, 2, results=0))
    assert seen == [BuildEvent(BUILD_FINISHED, 2, results=0)]
    failures = [e["log_failure"].value for e in logs if "log_failure" in e]
    assert [type(f) for f in failures] == [RuntimeError, ValueError]


def test_unsubscribing_stops_the_events():
    bus, seen = BuildEvents(), []
    unsubscribe = bus.subscribe(seen.append)
    unsubscribe()
    unsubscribe()  # twice is harmless
    bus.publish(BuildEvent(BUILD_STARTED, 1))
    assert seen == [] and bus.listeners() == 0


@pytest_twisted.ensureDeferred
async def test_the_live_page_of_a_build_hears_its_events(tmp_path):
    master = await start_memory_master(tmp_path)
    try:
        watch = master.logbus.watch(5)
        other = master.logbus.watch(6)
        master.buildevents.publish(BuildEvent(STEP_STARTED, 5, stepid=1))
        assert (watch.changed, other.changed) == (True, False)
        watch.close()
        other.close()
    finally:
        await master.stopService()


class PingingSlaveRecord(SlaveRecord):
    """The attached slave as a build reads it, answering pings."""

    async def ping(self, timeout):
        return True


@pytest_twisted.ensureDeferred
async def test_a_build_publishes_its_events_in_order_once_they_are_in_the_database(tmp_path):
    master = await start_memory_master(tmp_path, ONE_SLAVE_CFG.replace(
        "factory=util.BuildFactory([steps.ShellCommand(command=['true'])])",
        "factory=util.BuildFactory([steps.ShellCommand(command=['true']), "
        "steps.ShellCommand(command=['false'])])"))
    try:
        seen = []

        async def in_database(event):
            build = await master.db.builds.get(event.buildid)
            step = None
            if event.stepid is not None:
                step = next(s for s in await master.db.steps.get_all(event.buildid)
                            if s["stepid"] == event.stepid)
            seen.append((event.kind, event.results, build["complete"], step and step["complete"]))

        master.buildevents.subscribe(lambda event: defer.ensureDeferred(in_database(event)))
        builder = master.botmaster.builders["linux"]
        runtime = SlaveRuntime(str(tmp_path / "slave"), defaultRegistry(), reactor, reactor, lambda: None)
        slavebuilder = InProcessSlaveBuilder("bs1", SlaveBuilder("linux", builder.config.builddir, runtime),
                                             defaultRegistry().versions())
        slavebuilder.slave = PingingSlaveRecord("bs1", slavebuilder.slave.commands)
        brid = await master.db.buildrequests.add(builder.builderid, "test", {}, 0.0)
        results = await Build(master, builder, slavebuilder, {"buildrequestid": brid}).run()
        await eventually(lambda: defer.succeed(len(seen) == 6), "six events heard")
    finally:
        await master.stopService()
    assert results == FAILURE
    assert seen == [(BUILD_STARTED, None, False, None),
                    (STEP_STARTED, None, False, False), (STEP_FINISHED, SUCCESS, False, True),
                    (STEP_STARTED, None, False, False), (STEP_FINISHED, FAILURE, False, True),
                    (BUILD_FINISHED, FAILURE, True, None)]
