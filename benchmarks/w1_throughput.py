"""W1 throughput: 200 one-step builds (``true``) on one slave, all requested at once, no
request collapsing; builds/s from the first request sent to the last request seen complete.
Also the master's CPU seconds over the run and the peak RSS of master and slave."""

import time

from benchmarks.polling import wait_all_done, wait_request
from benchmarks.procfs import RssSampler, cpu_seconds
from benchmarks.systems import Builder, Shell, System, started
from benchmarks.workload import Row, at_least_times, at_most, medians, profile_our_master

ID = "W1"
TITLE = "throughput"
BUILDS = 200
QUICK_BUILDS = 40
WARMUP_BUILDS = 5
BUILDER = Builder("throughput", ["s1"], [Shell(["true"])])


def rows(quick: bool) -> list[Row]:
    builds = QUICK_BUILDS if quick else BUILDS
    return [
        Row("builds_per_s", f"builds/s, {builds} `true` builds requested at once", True,
            "4.3 builds/s", ">= 5x Buildbot", at_least_times(5)),
        Row("unsuccessful", "builds not successful, all runs", False, "", "none", at_most(0),
            digits=0, is_count=True),
        Row("master_cpu_s", f"master CPU s for the {builds} builds", False, "36 s"),
        Row("master_peak_mib", "master peak RSS MiB", False),
        Row("slave_peak_mib", "slave peak RSS MiB", False),
    ]


def one_run(system: System, builds: int) -> dict[str, float]:
    master_pid, slave_pid = system.master_pid, system.slave_pid()
    before = system.outcomes(BUILDER.name)
    cpu_before = cpu_seconds(master_pid)
    with RssSampler(master_pid) as master_rss, RssSampler(slave_pid) as slave_rss:
        first_request = time.monotonic()
        system.force_many(BUILDER.name, builds)
        last_finished = wait_all_done(system, BUILDER.name)
    outcomes = system.outcomes(BUILDER.name) - before
    if outcomes["success"] != builds:
        print(f"  {system.label}: W1 outcomes {dict(outcomes)}", flush=True)
    return {"builds_per_s": builds / (last_finished - first_request),
            "unsuccessful": builds - outcomes["success"],
            "master_cpu_s": cpu_seconds(master_pid) - cpu_before,
            "master_peak_mib": master_rss.peak_kib / 1024, "slave_peak_mib": slave_rss.peak_kib / 1024}


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    builds = QUICK_BUILDS if quick else BUILDS
    with started(system_class, root, ["s1"], [BUILDER], ["s1"]) as system:
        for brid in [system.force(BUILDER.name) for _ in range(WARMUP_BUILDS)]:
            wait_request(system, brid)
        results = [one_run(system, builds) for _ in range(runs)]
        profile_our_master(system, profile_dir, "w1", lambda: one_run(system, builds))
    return {**medians(results), "unsuccessful": sum(r["unsuccessful"] for r in results)}
