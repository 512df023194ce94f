"""W2 log streaming: one step printing 50 MB to stdout (500,000 lines of 100 bytes); MB/s of
the step (first seen started to first seen complete, polled), the master's RSS growth during
the build (peak sampled RSS minus RSS before it), the slave's peak RSS, and the master's CPU
seconds from the force until the build and its viewers are done.

``viewers`` (buildfarm only, ``--viewers`` of benchmarks.run) opens that many live-log viewers
(Server-Sent-Events clients of the build page, benchmarks/sse_viewers.py) as soon as the build
exists, each reading the whole stream; the fewest log lines any of them got is reported, to
show none was short-changed."""

from benchmarks.polling import STEP_POLL_S, poll, wait_request, watch_steps
from benchmarks.procfs import RssSampler, cpu_seconds, rss_kib
from benchmarks.sse_viewers import Viewers
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


def rows(quick: bool, viewers: int = 0) -> list[Row]:
    mb = (QUICK_LINES if quick else LINES) * LINE_BYTES / 1e6
    watched = f", {viewers} live viewers" if viewers else ""
    shown = [
        Row("mb_per_s", f"MB/s of a step printing {mb:.0f} MB{watched}", True, "7.5 MB/s",
            ">= 3x Buildbot", at_least_times(3)),
        Row("master_growth_mib", "master RSS growth MiB", False, "+53 MB", "< 20 MB", below(20)),
        Row("slave_peak_mib", "slave peak RSS MiB", False),
        Row("master_cpu_s", f"master CPU s, force to build{' and viewers' if viewers else ''} done",
            False, digits=2),
    ]
    if viewers:
        shown.append(Row("viewer_min_lines", "fewest log lines a viewer got", True, is_count=True,
                         digits=0))
        shown.append(Row("viewers_behind_s", "s from the step's end until every viewer had it all",
                         False, digits=2))
    return shown


def start_viewers(system: System, brid: int, viewers: int) -> Viewers:
    buildid, _ = poll(lambda: system.build_of(brid), STEP_POLL_S, f"a build of request {brid}")
    return Viewers(system.master.www_port, buildid, viewers).start()


def one_run(system: System, lines: int, viewers: int = 0) -> dict[str, float]:
    master_pid = system.master_pid
    before_kib = rss_kib(master_pid)
    before_cpu_s = cpu_seconds(master_pid)
    with RssSampler(master_pid) as master_rss, RssSampler(system.slave_pid()) as slave_rss:
        brid = system.force("stream")
        watching = start_viewers(system, brid, viewers) if viewers else None
        [(step_started, step_complete)] = watch_steps(system, brid, 1)
        watched = watching.wait() if watching is not None else []
    figures = {"mb_per_s": lines * LINE_BYTES / 1e6 / (step_complete - step_started),
               "master_growth_mib": (master_rss.peak_kib - before_kib) / 1024,
               "slave_peak_mib": slave_rss.peak_kib / 1024,
               "master_cpu_s": cpu_seconds(master_pid) - before_cpu_s}
    if watched:
        unfinished = [v for v in watched if not v.done]
        if unfinished:
            raise AssertionError(f"{len(unfinished)} of {viewers} viewers did not get the whole stream")
        figures["viewer_min_lines"] = min(v.lines for v in watched)
        figures["viewers_behind_s"] = max(0.0, max(v.closed_at for v in watched) - step_complete)
    return figures


def measure(system_class: type[System], root: str, runs: int, quick: bool,
            profile_dir: str | None = None, viewers: int = 0) -> dict[str, float]:
    if viewers and system_class.label != "buildfarm":
        raise ValueError("live viewers are a buildfarm option (the build page's SSE stream)")
    lines = QUICK_LINES if quick else LINES
    builders = [printing("stream", lines), printing("warmup", WARMUP_LINES)]
    with started(system_class, root, ["s1"], builders, ["s1"]) as system:
        wait_request(system, system.force("warmup"))
        results = [one_run(system, lines, viewers) for _ in range(runs)]
        profile_our_master(system, profile_dir, f"w2-{viewers}-viewers" if viewers else "w2",
                           lambda: [one_run(system, lines, viewers) for _ in range(PROFILED_BUILDS)])
    return medians(results)
