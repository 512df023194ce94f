"""Run the workloads on buildfarm and on stock Buildbot 4.3, one after the other, and print a
table of both figures, their ratio and the issue's target.

    .venv/bin/python -m benchmarks.run [--workloads W1,W2,W3,W4,W5,W6,W7,W8] [--runs 3] [--quick]
                                       [--no-profile] [--workdir DIR] [--output FILE]
                                       [--systems buildfarm] [--viewers 20]

Each figure is the median of ``--runs`` runs after a warm-up.  ``--quick`` shrinks every
workload (for a smoke run: its figures are not comparable with the issue's).  Profiles of our
master during W1, W2 and W5, and of W8's masters (py-spy, collapsed stacks) go to benchmarks/profiles/.
``--systems buildfarm`` runs one system only; ``--viewers N`` (W2 on buildfarm) has N live-log
viewers read the build's event stream while it runs.
"""

import argparse
import contextlib
import datetime
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback

from benchmarks import (
    w1_throughput,
    w2_log_streaming,
    w3_fleet,
    w4_latency,
    w5_transfer,
    w6_cas,
    w7_tasks,
    w8_multimaster,
)
from benchmarks.systems import SYSTEMS
from benchmarks.workload import Row

WORKLOADS = {m.ID: m for m in (w1_throughput, w2_log_streaming, w3_fleet, w4_latency, w5_transfer, w6_cas,
                                w7_tasks, w8_multimaster)}
PROFILE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
MAX_VIEWERS = 60  # below the master's cap on event streams (64)
HEADER = ("workload", "measure", "buildfarm", "Buildbot 4.3", "ratio", "issue's Buildbot figure",
          "target", "met")


def python_version(python: str) -> str:
    try:
        return subprocess.run([python, "-c", "import platform; print(platform.python_version())"],
                              capture_output=True, text=True, timeout=30).stdout.strip() or "?"
    except OSError:
        return "missing"


def machine_facts() -> list[str]:
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        model = "?"
    return [
        f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}",
        f"machine: {os.cpu_count()} CPUs ({model}), {mem_kib / 1024 / 1024:.0f} GiB, "
        f"{platform.system()} {platform.release()} {platform.machine()}",
        f"python: buildfarm {python_version(SYSTEMS[0].python)}, "
        f"Buildbot 4.3 {python_version(SYSTEMS[1].python)}; everything on loopback",
    ]


NOT_RUN: dict = {"not run": True}  # the figures of a system left out with --systems


def fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "failed"
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "never all"
    return f"{value:.{digits}f}"


def table_rows(workload, rows: list[Row], ours: dict | None, theirs: dict | None) -> list[tuple]:
    lines = []
    for row in rows:
        if NOT_RUN in (ours, theirs):
            a, b = (("not run" if f is NOT_RUN else fmt(f.get(row.key) if f else None, row.digits))
                    for f in (ours, theirs))
            met = ""
            own = ours.get(row.key) if getattr(workload, "OWN_TARGETS", False) and ours else None
            if own is not None and row.target is not None:  # a target Buildbot's figure does not decide
                met = "yes" if row.target(own, math.nan) else "NO"
            lines.append((f"{workload.ID} {workload.TITLE}", row.measure, a, b, "n/a",
                          row.reference, row.target_text, met))
            continue
        a = ours.get(row.key) if ours else None
        b = theirs.get(row.key) if theirs else None
        ratio = row.ratio(a, b) if a is not None and b is not None else math.nan
        met = ""
        if row.target is not None and a is not None:
            met = "yes" if row.target(a, math.nan if b is None else b) else "NO"
        shown_ratio = "n/a" if math.isnan(ratio) or math.isinf(ratio) else f"{ratio:.2f}x"
        lines.append((f"{workload.ID} {workload.TITLE}", row.measure, fmt(a, row.digits),
                      fmt(b, row.digits), shown_ratio, row.reference, row.target_text, met))
    return lines


def markdown(lines: list[tuple]) -> str:
    out = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(line) + " |" for line in lines]
    return "\n".join(out)


def run_workload(workload, system_class, root: str, runs: int, quick: bool, profile_dir: str | None,
                 viewers: int = 0):
    started = time.monotonic()
    print(f"== {workload.ID} {workload.TITLE} on {system_class.label} ...", flush=True)
    extra = {"viewers": viewers} if viewers and workload is w2_log_streaming else {}
    try:
        figures = workload.measure(system_class, os.path.join(root, workload.ID), runs, quick, profile_dir,
                                   **extra)
    except Exception:  # one failed system must not lose the rest of a long run
        traceback.print_exc()
        print(f"== {workload.ID} on {system_class.label} FAILED", flush=True)
        return None
    print(f"== {workload.ID} on {system_class.label}: {figures} ({time.monotonic() - started:.0f} s)",
          flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workloads", default=",".join(WORKLOADS),
                        help="comma-separated workload ids (default: all)")
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profiles")
    parser.add_argument("--workdir", help="keep the masters' and slaves' basedirs (logs) in this new "
                        "directory instead of a temporary one")
    parser.add_argument("--output", help="also write the report (markdown) to this file")
    parser.add_argument("--systems", default=",".join(cls.label for cls in SYSTEMS),
                        help="comma-separated systems to run (default: both)")
    parser.add_argument("--viewers", type=int, default=0,
                        help="W2 on buildfarm: live-log viewers reading the build's event stream")
    args = parser.parse_args(argv)
    systems = [cls for cls in SYSTEMS if cls.label in {s.strip() for s in args.systems.split(",")}]
    if not systems:
        parser.error(f"no system selected; choose from {[cls.label for cls in SYSTEMS]}")
    if args.viewers and any(cls.label != "buildfarm" for cls in systems):
        parser.error("--viewers needs --systems buildfarm (viewers read buildfarm's event stream)")
    if not 0 <= args.viewers <= MAX_VIEWERS:
        parser.error(f"--viewers must be between 0 and {MAX_VIEWERS}")
    selected = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {list(WORKLOADS)}")

    facts = machine_facts()
    print("\n".join(facts), flush=True)
    lines, notes, failed = [], [], []
    if args.workdir:
        os.makedirs(args.workdir)
    with (contextlib.nullcontext(args.workdir) if args.workdir
          else tempfile.TemporaryDirectory(prefix="buildfarm-bench-")) as root:
        for workload_id in selected:
            workload = WORKLOADS[workload_id]
            ours, theirs = [run_workload(workload, cls, os.path.join(root, cls.__name__), args.runs,
                                         args.quick, None if args.no_profile else PROFILE_DIR,
                                         args.viewers)
                            if cls in systems else NOT_RUN for cls in SYSTEMS]
            shown_rows = (workload.rows(args.quick, args.viewers) if workload is w2_log_streaming
                          else workload.rows(args.quick))
            lines += table_rows(workload, shown_rows, ours, theirs)
            failed += [f"{workload_id} on {cls.label}" for cls, figures in zip(SYSTEMS, (ours, theirs))
                       if figures is None and cls in systems]
            if getattr(workload, "NOTE", None):
                notes.append(workload.NOTE)
    report = "\n".join([
        *facts,
        f"command: .venv/bin/python -m benchmarks.run {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"each figure: median of {args.runs} run(s) after a warm-up{'; QUICK sizes' if args.quick else ''}",
        "", markdown(lines), "", *notes])
    print("\n" + report, flush=True)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report + "\n")
    # a target not met is a finding, not an error; a workload that could not run is one
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
