"""W4 latency: one build at a time on an idle slave, 30 times; request (force sent) to
request seen complete, p50 and p95, for a ``true`` build.  Command start is timed by an
interleaved build running ``date +%s.%N`` (one exec, like ``true``): the time it prints,
read back from its log, minus the time the force was sent."""

import math
import re
import time

from benchmarks.polling import REQUEST_POLL_S, wait_result
from benchmarks.stats import percentile
from benchmarks.systems import Builder, Shell, System, started
from benchmarks.workload import Row, at_most, at_most_fraction, medians

ID = "W4"
TITLE = "latency"
BUILDS = 30
QUICK_BUILDS = 10
WARMUP_BUILDS = 3
IDLE_GAP_S = 0.2  # the slave and master are idle when each request arrives
STAMP = re.compile(r"^o?(\d{9,11}\.\d+)\s*$", re.MULTILINE)  # Buildbot prefixes the stream
BUILDERS = [Builder("latency", ["s1"], [Shell(["true"])]),
            Builder("stamp", ["s1"], [Shell(["date", "+%s.%N"])])]


def rows(quick: bool) -> list[Row]:
    builds = QUICK_BUILDS if quick else BUILDS
    return [
        Row("finished_p50_ms", f"ms request -> finished, p50 of {builds}", False, "301 ms",
            "<= 1/5 Buildbot", at_most_fraction(1 / 5), digits=0),
        Row("finished_p95_ms", "ms request -> finished, p95", False, digits=0),
        Row("started_p50_ms", "ms request -> command start, p50", False, "218 ms", digits=0),
        Row("started_p95_ms", "ms request -> command start, p95", False, digits=0),
        Row("unsuccessful", "builds not successful, all runs", False, "", "none", at_most(0),
            digits=0, is_count=True),
    ]


def finished_ms(system: System, unsuccessful: list[str]) -> float:
    """Request -> seen complete of a ``true`` build (one that did not succeed is noted in
    ``unsuccessful`` and still timed: the request was answered)."""
    sent = time.monotonic()
    result, seen = wait_result(system, system.force("latency"))
    if result != "success":
        unsuccessful.append(result)
    return (seen - sent) * 1000


def started_ms(system: System, unsuccessful: list[str]) -> float:
    """Request -> the time the ``date`` command printed; NaN (left out) if it did not succeed."""
    sent = time.time()
    brid = system.force("stamp")
    result, _ = wait_result(system, brid)
    if result != "success":
        unsuccessful.append(result)
        return math.nan
    log = system.step_log(system.build_of(brid), 0)
    match = STAMP.search(log)
    if not match:
        raise AssertionError(f"{system.label}: no timestamp in the log of request {brid}: {log!r}")
    return (float(match[1]) - sent) * 1000


def one_run(system: System, builds: int) -> dict[str, float]:
    finished, command_started, unsuccessful = [], [], []
    for _ in range(builds):
        time.sleep(IDLE_GAP_S)
        finished.append(finished_ms(system, unsuccessful))
        time.sleep(IDLE_GAP_S)
        command_started.append(started_ms(system, unsuccessful))
    if unsuccessful:
        print(f"  {system.label}: W4 builds not successful: {unsuccessful}", flush=True)
    command_started = [ms for ms in command_started if not math.isnan(ms)]
    return {"finished_p50_ms": percentile(finished, 50), "finished_p95_ms": percentile(finished, 95),
            "started_p50_ms": percentile(command_started, 50),
            "started_p95_ms": percentile(command_started, 95), "unsuccessful": len(unsuccessful)}


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    builds = QUICK_BUILDS if quick else BUILDS
    with started(system_class, root, ["s1"], BUILDERS, ["s1"]) as system:
        for _ in range(WARMUP_BUILDS):
            finished_ms(system, [])
            started_ms(system, [])
        results = [one_run(system, builds) for _ in range(runs)]
    return {**medians(results), "unsuccessful": sum(r["unsuccessful"] for r in results)}


NOTE = (f"W4 polls every {REQUEST_POLL_S * 1000:.0f} ms, so 'finished' carries up to that much "
        "quantisation on both systems.")
