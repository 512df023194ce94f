"""W8 scaling with masters (issue 21): W1's workload (one-step ``true`` builds, each request
its own build) spread over 1, 2 and 3 buildfarm masters with ``c['multiMaster']`` on one real
PostgreSQL server, in builds/s.

The total fleet is the same in every configuration, ``SLAVES`` (6: split evenly over 1, 2 or 3
masters), so the slaves' work is the same and what changes is the number of masters sharing
the queue: on 2 cores this measures the cost of coordination (claims on one table, wake-ups,
heartbeats, polls), not a speed-up.  Each configuration has its own database on the one
server; all three run at the same time (idle while another is measured), and each run measures
the three one after the other, so a change of the machine's load hits them alike.  A run
forces ``BUILDS`` requests over HTTP, round-robin over the configuration's masters (16 at a
time), and takes builds/s from the first request sent to the last request seen complete.  The
ratio is each run's 3-master builds/s over its 1-master builds/s, median over the runs
(target: at least 0.8).  Stock Buildbot is not run: its multi-master needs a shared database
and a crossbar (WAMP) router for its messages, which the machine does not have.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from benchmarks import profiling
from benchmarks.polling import wait_all_done
from benchmarks.procfs import cpu_seconds
from benchmarks.systems import FORCE_CONCURRENCY, Builder, BuildfarmSystem, Shell
from benchmarks.workload import Row, at_least, at_most, medians

ID = "W8"
TITLE = "scaling with masters"
MASTER_COUNTS = (1, 2, 3)
SLAVES = tuple(f"s{n}" for n in range(1, 7))  # 6: the same fleet split evenly over 1, 2, 3 masters
BUILDS = 200
QUICK_BUILDS = 30
WARMUP_BUILDS = 6
# PostgreSQL publishes an idle backend's transaction counts within this long (PGSTAT_IDLE_INTERVAL).
PG_STATS_PUBLISHED_S = 11.0
TARGET_RATIO = 0.8  # the issue's: 3 masters reach at least 80% of one master's builds/s
BUILDER = Builder("throughput", SLAVES, [Shell(["true"])])
OWN_TARGETS = True  # its target compares buildfarm with itself: shown with --systems buildfarm
NOTE = (f"W8: buildfarm only (stock Buildbot's multi-master needs a crossbar/WAMP router: n/a). "
        f"{len(SLAVES)} slaves in all, split evenly over the masters, on one PostgreSQL; requests forced "
        "round-robin across the masters; the three configurations measured back to back in each run; "
        "ratio: median of the runs' 3-master/1-master builds/s.")


def rows(quick: bool) -> list[Row]:
    builds = QUICK_BUILDS if quick else BUILDS
    per_count = [Row(f"builds_per_s_{n}", f"builds/s, {builds} `true` builds, {n} master(s), "
                                          f"{len(SLAVES)} slaves in all", True) for n in MASTER_COUNTS]
    return [
        *per_count,
        Row("ratio_2", "2 masters' builds/s / 1 master's", True, digits=2),
        Row("ratio_3", "3 masters' builds/s / 1 master's", True, "", f">= {TARGET_RATIO}",
            at_least(TARGET_RATIO), digits=2),
        Row("unsuccessful", "builds not successful, all runs and configurations", False, "", "none",
            at_most(0), digits=0, is_count=True),
        *[Row(f"master_cpu_s_{n}", f"masters' CPU s (all {n}) for the {builds} builds", False, digits=2)
          for n in MASTER_COUNTS],
        *[Row(f"postgres_cpu_s_{n}", f"PostgreSQL's CPU s for the {builds} builds, {n} master(s)", False,
              digits=2) for n in MASTER_COUNTS],
        *[Row(f"transactions_per_build_{n}", f"database transactions per build, {n} master(s), all runs",
              False) for n in MASTER_COUNTS],
        Row("load_1min", "load average (1 min) at the runs' ends", False, digits=2),
    ]


# -- pure parts (tests/unit/test_benchmarks_w8.py) ------------------------------------------

def split_slaves(slaves: Sequence[str], masters: int) -> list[list[str]]:
    """The slaves each of ``masters`` masters gets: consecutive, equal shares (the count of
    slaves must divide evenly, so every configuration runs the same fleet)."""
    if masters < 1 or len(slaves) % masters:
        raise ValueError(f"{len(slaves)} slaves do not split evenly over {masters} masters")
    share = len(slaves) // masters
    return [list(slaves[i * share:(i + 1) * share]) for i in range(masters)]


def spread(count: int, masters: int) -> list[int]:
    """Which master (index) receives each of ``count`` requests: round-robin."""
    return [i % masters for i in range(count)]


def multimaster_config(db_url: str) -> str:
    """The master.cfg lines W8 adds after W1's body: the shared database, multi-master."""
    return f"c['db'] = {{'db_url': {db_url!r}}}\nc['multiMaster'] = True\n"


def rotation(counts: Sequence[int], run: int) -> list[int]:
    """The order of the configurations in run ``run``: rotated each run, so that none is
    always measured first (right after the machine idled) or last."""
    k = run % len(counts)
    return [*counts[k:], *counts[:k]]


def load_average_1min() -> float:
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


# -- processes ------------------------------------------------------------------------------

def transactions(server, database: str) -> int:
    """Transactions committed or rolled back in ``database`` so far (``pg_stat_database``).
    PostgreSQL publishes a backend's counts late (at most a second apart, 10 s once it idles),
    too late to count one run of a few seconds: W8 counts over all its runs, and its idle
    masters' polls and heartbeats between runs count with them."""
    import psycopg

    with psycopg.connect(server.url(database).replace("postgresql+psycopg", "postgresql"),
                         autocommit=True) as conn:
        return conn.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                            (database,)).fetchone()[0]


def postgres_cpu_seconds(postmaster_pid: int) -> float:
    """CPU seconds of the PostgreSQL server: the postmaster and its live children (one
    backend per connection; the masters' pools keep theirs open across a run)."""
    total = cpu_seconds(postmaster_pid)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster_pid:
                total += cpu_seconds(int(entry))
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return total


class Cluster:
    """``n`` buildfarm masters on one database, each with its share of the slaves."""

    def __init__(self, root: str, db_url: str, n: int, transactions=lambda: 0):
        self.n = n
        self.transactions = transactions  # () -> transactions the database has run so far
        self.systems: list[BuildfarmSystem] = []
        for index, share in enumerate(split_slaves(SLAVES, n)):
            system = BuildfarmSystem(os.path.join(root, f"{n}masters", f"m{index + 1}"))
            os.makedirs(system.root)
            system.extra_config = multimaster_config(db_url)
            self.systems.append(system)
            system.start(SLAVES, [BUILDER], share)

    @property
    def master_pids(self) -> list[int]:
        return [system.master_pid for system in self.systems]

    def force_spread(self, count: int) -> list[int]:
        """``count`` requests forced round-robin on the masters, ``FORCE_CONCURRENCY`` at a time."""
        with ThreadPoolExecutor(FORCE_CONCURRENCY) as pool:
            return list(pool.map(lambda i: self.systems[i].force(BUILDER.name), spread(count, self.n)))

    def stop(self) -> None:
        for system in self.systems:
            system.stop()


def one_run(cluster: Cluster, builds: int, postmaster_pid: int) -> dict[str, float]:
    first = cluster.systems[0]  # any master sees the whole queue (one database)
    before = first.outcomes(BUILDER.name)
    pids = cluster.master_pids
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    pg_before = postgres_cpu_seconds(postmaster_pid)
    started_at = time.monotonic()
    cluster.force_spread(builds)
    finished_at = wait_all_done(first, BUILDER.name)
    outcomes = first.outcomes(BUILDER.name) - before
    if outcomes["success"] != builds:
        print(f"  W8 {cluster.n} master(s): outcomes {dict(outcomes)}", flush=True)
    return {"builds_per_s": builds / (finished_at - started_at),
            "unsuccessful": builds - outcomes["success"],
            "master_cpu_s": sum(cpu_seconds(pid) for pid in pids) - cpu_before,
            "postgres_cpu_s": postgres_cpu_seconds(postmaster_pid) - pg_before,
            "load_1min": load_average_1min()}


def profile_masters(cluster: Cluster, profile_dir: str | None, builds: int, postmaster_pid: int) -> None:
    """One more run (not measured) with py-spy on each of the cluster's masters; a summary per
    master and one of them all together (the collapsed stacks are removed once summarised)."""
    if not profile_dir:
        return
    name = f"w8-{cluster.n}masters"
    raws = [os.path.join(profile_dir, f"{name}-m{i + 1}.txt") for i in range(cluster.n)]
    with contextlib.ExitStack() as stack:
        for pid, raw in zip(cluster.master_pids, raws):
            stack.enter_context(profiling.recording(pid, raw))
        one_run(cluster, builds, postmaster_pid)
    combined = raws[0]
    if len(raws) > 1:
        combined = os.path.join(profile_dir, f"{name}-all.txt")
        with open(combined, "w") as out:
            for raw in raws:
                with open(raw) as f:
                    out.write(f.read())
        for raw in raws:
            profiling.write_summary(raw, raw.replace(".txt", "-summary.txt"))
    print(profiling.write_summary(combined, combined.replace(".txt", "-summary.txt")), flush=True)
    for raw in {*raws, combined}:  # megabytes each: the summaries are kept
        os.remove(raw)


def measure(system_class, root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    if system_class.label != BuildfarmSystem.label:
        return {row.key: float("nan") for row in rows(quick)}
    from fixtures.postgres import PostgresServer  # tests/ is on the path (benchmarks.systems)

    builds = QUICK_BUILDS if quick else BUILDS
    server = PostgresServer.start_new()
    clusters: dict[int, Cluster] = {}
    try:
        with open(os.path.join(server.data_dir, "postmaster.pid")) as f:
            postmaster_pid = int(f.readline())
        for n in MASTER_COUNTS:
            database = server.create_database()
            clusters[n] = Cluster(root, server.url(database), n, lambda d=database: transactions(server, d))
        for cluster in clusters.values():
            one_run(cluster, WARMUP_BUILDS, postmaster_pid)
        before = {n: cluster.transactions() for n, cluster in clusters.items()}
        per_run: list[dict[str, float]] = []
        for run in range(runs):
            figures = {n: one_run(clusters[n], builds, postmaster_pid)
                       for n in rotation(MASTER_COUNTS, run)}
            per_run.append(flatten(figures))
        results = medians(per_run)
        time.sleep(PG_STATS_PUBLISHED_S)  # the last run's counts reach pg_stat_database
        for n, cluster in clusters.items():  # a count over all runs: see ``transactions``
            results[f"transactions_per_build_{n}"] = (cluster.transactions() - before[n]) / (runs * builds)
        for n in (MASTER_COUNTS[0], MASTER_COUNTS[-1]):
            profile_masters(clusters[n], profile_dir, builds, postmaster_pid)
    finally:
        for cluster in clusters.values():
            cluster.stop()
        server.stop()
    return {**results, "unsuccessful": sum(r["unsuccessful"] for r in per_run)}


def flatten(figures: dict[int, dict[str, float]]) -> dict[str, float]:
    """One run's figures of each configuration as one row of keys (``builds_per_s_3``), with
    the ratios to one master and the load at the end of the run."""
    one = figures[MASTER_COUNTS[0]]["builds_per_s"]
    flat: dict[str, float] = {}
    for n in MASTER_COUNTS:
        for key in ("builds_per_s", "master_cpu_s", "postgres_cpu_s"):
            flat[f"{key}_{n}"] = figures[n][key]
    for n in MASTER_COUNTS[1:]:
        flat[f"ratio_{n}"] = figures[n]["builds_per_s"] / one
    flat["unsuccessful"] = sum(f["unsuccessful"] for f in figures.values())
    flat["load_1min"] = max(f["load_1min"] for f in figures.values())
    return flat
