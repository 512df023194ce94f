"""``BuildEvents`` (master/process/buildevents.py): listeners in order, errors logged and not
passed to the build, unsubscribing; the master's live pages follow builds through it."""

import pytest_twisted
from twisted.internet import defer
from twisted.logger import capturedLogs

from buildfarm.master.process.buildevents import (
    BUILD_FINISHED,
    BUILD_STARTED,
    STEP_STARTED,
    BuildEvent,
    BuildEvents,
)
from fixtures.memorymaster import start_memory_master


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
