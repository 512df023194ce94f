"""W3 fleet: N idle slaves connecting at once to one master (N = 100, 300, 1,000), simulated
by ``fleet_sim.py`` (one process, N PB logins, each slave reporting the info a real slave
sends: environment, commands, host facts; run with the system's own Python).  Each run
uses a fresh master configured with slaves s0..sN-1, none of them in a builder (Buildbot
refuses a config without builders, so both get one builder on a slave that never connects).
Figures: the master's RSS growth per attached slave, the time until all attached (inf when
some never did), how many attached, and how many were still pending at the simulator's
deadline ("stuck").  Before the baseline, one warm-up login (the absent slave, in and out)."""

import json
import math
import os
import select
import subprocess

from benchmarks.polling import poll
from benchmarks.procfs import rss_kib
from benchmarks.systems import Builder, Shell, System, started
from benchmarks.workload import Row, at_least, at_most, at_most_fraction, medians

ID = "W3"
TITLE = "fleet"
SIZES = (100, 300, 1000)
QUICK_SIZES = (20, 50)
SIM_DEADLINE_S = 30.0
SIM_REPORT_GRACE_S = 30.0
SIM_EXIT_TIMEOUT_S = 30.0
API_SETTLE_DEADLINE_S = 10.0
API_POLL_S = 0.25
ABSENT_SLAVE = "absent"
IDLE_BUILDER = Builder("idle", [ABSENT_SLAVE], [Shell(["true"])])
FLEET_SIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fleet_sim.py")


def rows(quick: bool) -> list[Row]:
    sizes = QUICK_SIZES if quick else SIZES
    largest = sizes[-1]
    result = []
    for n in sizes:
        is_largest = n == largest
        result += [
            Row(f"kib_per_slave_{n}", f"{n} slaves: master RSS KiB per attached slave", False,
                "45-48 KiB", "<= 1/3 Buildbot", at_most_fraction(1 / 3)),
            Row(f"all_attached_s_{n}", f"{n} slaves: s until all attached", False,
                {100: "0.8 s"}.get(n, ""), "<= 10 s" if is_largest else "",
                at_most(10) if is_largest else None, digits=2),
            Row(f"attached_{n}", f"{n} slaves: attached", True, {300: "176 of 300"}.get(n, ""),
                f"all {n}" if is_largest else "", at_least(n) if is_largest else None, digits=0),
            Row(f"stuck_{n}", f"{n} slaves: stuck at {SIM_DEADLINE_S:.0f} s", False, "",
                "none" if is_largest else "", at_most(0) if is_largest else None, digits=0, is_count=True),
        ]
    return result


def read_report(sim: subprocess.Popen, timeout_s: float) -> dict:
    ready, _, _ = select.select([sim.stdout], [], [], timeout_s)
    line = sim.stdout.readline() if ready else ""
    if not line:
        raise AssertionError(f"the fleet simulator gave no report within {timeout_s:.0f} s")
    return json.loads(line)


def warm_up_login(system: System) -> None:
    """One slave (the builder's absent one) logs in and out before the baseline, so the
    master's login code paths are warm (warm-up excluded, as in the other workloads)."""
    sim = subprocess.Popen(
        [system.python, FLEET_SIM, "--port", str(system.pb_port), "--count", "1",
         "--names", ABSENT_SLAVE, "--deadline", str(SIM_DEADLINE_S)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        report = read_report(sim, SIM_DEADLINE_S + SIM_REPORT_GRACE_S)
        if report["attached"] != 1:
            raise AssertionError(f"{system.label}: the warm-up login failed: {report['errors']}")
        poll(lambda: system.attached() == 1, API_POLL_S, "the warm-up slave to be listed",
             API_SETTLE_DEADLINE_S)
    finally:
        sim.stdin.close()
        sim.wait(SIM_EXIT_TIMEOUT_S)
    poll(lambda: system.attached() == 0, API_POLL_S, "the warm-up slave to be gone", API_SETTLE_DEADLINE_S)


def one_run(system_class: type[System], root: str, n: int) -> dict[str, float]:
    names = [f"s{i}" for i in range(n)]
    with started(system_class, root, [*names, ABSENT_SLAVE], [IDLE_BUILDER]) as system:
        warm_up_login(system)
        system.attached()  # the API's code paths are warm before the baseline is read
        before_kib = rss_kib(system.master_pid)
        sim = subprocess.Popen(
            [system.python, FLEET_SIM, "--port", str(system.pb_port), "--count", str(n),
             "--deadline", str(SIM_DEADLINE_S)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            report = read_report(sim, SIM_DEADLINE_S + SIM_REPORT_GRACE_S)
            # the master's own view settles a moment after the logins returned
            attached, _ = poll(lambda: (a := system.attached()) >= report["attached"] and a,
                               API_POLL_S, "the master's API to list the attached slaves",
                               API_SETTLE_DEADLINE_S)
            after_kib = rss_kib(system.master_pid)
        finally:
            sim.stdin.close()
            try:
                sim.wait(SIM_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
    if report["errors"]:
        print(f"  {system_class.label} {n} slaves: login errors {report['errors']}", flush=True)
    return {f"kib_per_slave_{n}": (after_kib - before_kib) / attached if attached else math.nan,
            f"all_attached_s_{n}": report["all_attached_s"] if report["all_attached_s"] is not None
            else math.inf,
            f"attached_{n}": attached, f"stuck_{n}": report["stuck"]}


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    figures: dict[str, float] = {}
    for n in QUICK_SIZES if quick else SIZES:
        results = [one_run(system_class, os.path.join(root, f"{n}-{run}"), n) for run in range(runs)]
        figures.update(medians(results))
    return figures
