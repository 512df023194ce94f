"""The one completion signal both systems get: polling their HTTP API at a fixed interval.

Times are ``time.monotonic()`` readings taken when the poll that saw the event returned, so
every figure carries the same quantisation (up to one interval) on both systems."""

import time
from collections.abc import Callable

from benchmarks.systems import System

REQUEST_POLL_S = 0.01
STEP_POLL_S = 0.025
BULK_POLL_S = 0.05
DEFAULT_DEADLINE_S = 600.0


class Timeout(AssertionError):
    """A polled condition did not come true within its deadline."""


def poll(predicate: Callable[[], object], interval_s: float, what: str,
         deadline_s: float = DEFAULT_DEADLINE_S) -> tuple[object, float]:
    """Call ``predicate`` every ``interval_s`` until it returns something other than None or
    False; that value and the monotonic time it was seen."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        seen = time.monotonic()
        if value is not None and value is not False:
            return value, seen
        if seen > deadline:
            raise Timeout(f"gave up after {deadline_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def wait_result(system: System, brid: int, interval_s: float = REQUEST_POLL_S,
                deadline_s: float = DEFAULT_DEADLINE_S) -> tuple[str, float]:
    """Wait for build request ``brid`` to complete: its result and the time it was seen."""
    return poll(lambda: system.request_done(brid), interval_s, f"build request {brid} to complete",
                deadline_s)


def wait_request(system: System, brid: int, interval_s: float = REQUEST_POLL_S,
                 deadline_s: float = DEFAULT_DEADLINE_S) -> float:
    """Wait for build request ``brid`` to complete successfully; the time it was seen."""
    result, seen = wait_result(system, brid, interval_s, deadline_s)
    if result != "success":
        raise AssertionError(f"{system.label}: build request {brid} ended {result}")
    return seen


def wait_all_done(system: System, builder: str, interval_s: float = BULK_POLL_S,
                  deadline_s: float = DEFAULT_DEADLINE_S) -> float:
    """Wait until ``builder`` has no incomplete build request; the time that was seen."""
    return poll(lambda: not system.any_incomplete(builder), interval_s,
                f"every request of {builder} to complete", deadline_s)[1]


def watch_steps(system: System, brid: int, step_count: int, interval_s: float = STEP_POLL_S,
                deadline_s: float = DEFAULT_DEADLINE_S) -> list[tuple[float, float]]:
    """Follow the build of request ``brid`` until its ``step_count`` steps completed (Buildbot
    lists a step only once it starts, so the count is given) and the request completed: for
    each step, the times it was first seen started and first seen complete."""
    buildid, _ = poll(lambda: system.build_of(brid), interval_s, f"a build of request {brid}", deadline_s)
    started: dict[int, float] = {}
    completed: dict[int, float] = {}

    def build_complete():
        states = system.step_states(buildid)
        now = time.monotonic()
        for index, (is_started, is_complete) in enumerate(states):
            if is_started:
                started.setdefault(index, now)
            if is_complete:
                started.setdefault(index, now)
                completed.setdefault(index, now)
        return len(completed) >= step_count

    poll(build_complete, interval_s, f"the steps of build {buildid}", deadline_s)
    wait_request(system, brid, interval_s, deadline_s)
    return [(started[i], completed[i]) for i in sorted(completed)]
