"""W2 log streaming: one step printing 50 MB to stdout (500,000 lines of 100 bytes); MB/s of
the step (first seen started to first seen complete, polled), the master's RSS growth during
the build (peak sampled RSS minus RSS before it), and the slave's peak RSS."""

from benchmarks.polling import wait_request, watch_steps
from benchmarks.procfs import RssSampler, rss_kib
from benchmarks.systems import Builder, Shell, System, started
from benchmarks.workload import Row, at_least_times, below, medians, profile_our_master

ID = "W2"
TITLE = "log streaming"
LINE_BYTES = 100
LINES = 500_000
QUICK_LINES = 50_000
WARMUP_LINES = 1_000
PROFILED_BUILDS = 3
LINE_TEXT = "x" * (LINE_BYTES - 1)  # `yes` adds the newline


def printing(builder: str, lines: int) -> Builder:
    return Builder(builder, ["s1"], [Shell(["sh", "-c", f"yes {LINE_TEXT} | head -n {lines}"])])


def rows(quick: bool) -> list[Row]:
    mb = (QUICK_LINES if quick else LINES) * LINE_BYTES / 1e6
    return [
        Row("mb_per_s", f"MB/s of a step printing {mb:.0f} MB", True, "7.5 MB/s", ">= 3x Buildbot",
            at_least_times(3)),
        Row("master_growth_mib", "master RSS growth MiB", False, "+53 MB", "< 20 MB", below(20)),
        Row("slave_peak_mib", "slave peak RSS MiB", False),
    ]


def one_run(system: System, lines: int) -> dict[str, float]:
    master_pid = system.master_pid
    before_kib = rss_kib(master_pid)
    with RssSampler(master_pid) as master_rss, RssSampler(system.slave_pid()) as slave_rss:
        [(step_started, step_complete)] = watch_steps(system, system.force("stream"), 1)
    return {"mb_per_s": lines * LINE_BYTES / 1e6 / (step_complete - step_started),
            "master_growth_mib": (master_rss.peak_kib - before_kib) / 1024,
            "slave_peak_mib": slave_rss.peak_kib / 1024}


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    lines = QUICK_LINES if quick else LINES
    builders = [printing("stream", lines), printing("warmup", WARMUP_LINES)]
    with started(system_class, root, ["s1"], builders, ["s1"]) as system:
        wait_request(system, system.force("warmup"))
        results = [one_run(system, lines) for _ in range(runs)]
        profile_our_master(system, profile_dir, "w2", lambda: [wait_request(system, system.force("stream"))
                                                               for _ in range(PROFILED_BUILDS)])
    return medians(results)
