"""W7 tasks vs builds: 1,000 one-command tasks on 4 slaves, triggered through Swarming's
``tasks/new`` as a client does (several keep-alive connections at once), beside 1,000 builds of
the same command (W1's ``true`` step) on the same 4 slaves of the same master (one process,
SQLite), forced through the JSON API by the same client.

For each kind, per run:

- throughput: the count divided by the time from the first trigger sent to the last one
  completed (the master's ``completed_ts`` of the task, ``complete_at`` of the build request);
- latency: for each, from the trigger's answer reaching the client to its completion on the
  master, p50 and p99 (client and master read the same clock: both run on this machine);
- those not ending well (a task not COMPLETED with exit 0, a build not successful);
- the master's CPU seconds.

Completion is watched by polling ``tasks/count`` (one query, tags filter) and the builder's
incomplete requests every ``COMPLETION_POLL_S``; the figures come from the master's timestamps,
read once at the end (``tasks/list`` by tag, the builder's build requests), so the poll
interval does not quantise them.  Only buildfarm runs tasks: Buildbot 4.3's column shows n/a.
"""

from __future__ import annotations

import datetime
import http.client
import json
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from benchmarks import w1_throughput
from benchmarks.polling import poll, wait_all_done
from benchmarks.procfs import cpu_seconds
from benchmarks.stats import percentile
from benchmarks.systems import PASSWORD, Builder, BuildfarmSystem, started
from benchmarks.workload import Row, at_least, at_most, medians, profile_our_master

ID = "W7"
TITLE = "tasks vs builds"
COUNT = 1000
QUICK_COUNT = 40
WARMUP = 5
SLAVES = ("s1", "s2", "s3", "s4")
POOL = "w7"
TOKEN = "w7-bench-token"
TRIGGER_CONNECTIONS = 8  # concurrent triggering clients, each with its keep-alive connection
COMPLETION_POLL_S = 0.1
HTTP_TIMEOUT_S = 60.0
V1 = "/_ah/api/swarming/v1"
LIST_PAGE = 1000  # the API's largest page
BUILDER = Builder("w7", SLAVES, w1_throughput.BUILDER.steps)  # W1's one `true` step
COMMAND = list(w1_throughput.BUILDER.steps[0].argv)
EXTRA_CONFIG = f"""
from buildfarm.master.auth.users import User as _W7User
c['workers'] = [worker.Worker(name, {PASSWORD!r}, dimensions={{'pool': {POOL!r}}})
                for name in {list(SLAVES)!r}]
c['users'] = [_W7User('w7', tokens=[{TOKEN!r}], scopes=['*'])]
"""

OWN_TARGETS = True  # its targets compare buildfarm's tasks with its builds: shown with --systems buildfarm
NOTE = ("W7: only buildfarm runs tasks (Buildbot 4.3: n/a). Tasks and builds run the same `true` on the "
        "same 4 slaves of one master, triggered by the same client with "
        f"{TRIGGER_CONNECTIONS} keep-alive connections; latency is from the trigger's answer to the "
        "master's completion time.")


class TaskSystem(BuildfarmSystem):
    """W1's buildfarm system, its slaves in pool ``POOL`` and a bearer token for the client."""

    extra_config = EXTRA_CONFIG


def rows(quick: bool) -> list[Row]:
    n = QUICK_COUNT if quick else COUNT
    return [
        Row("tasks_per_s", f"tasks/s, {n} one-command tasks on {len(SLAVES)} slaves", True),
        Row("builds_per_s", f"builds/s, {n} `true` builds on the same slaves", True),
        Row("tasks_vs_builds", "tasks/s / builds/s", True, "", ">= 1 (no slower)", at_least(1.0), digits=2),
        Row("task_p50_ms", "task ms trigger -> completed, p50", False, digits=0),
        Row("build_p50_ms", "build ms trigger -> completed, p50", False, digits=0),
        Row("task_vs_build_p50", "task p50 / build p50", False, "", "<= 1", at_most(1.0), digits=2),
        Row("task_p99_ms", "task ms trigger -> completed, p99", False, digits=0),
        Row("build_p99_ms", "build ms trigger -> completed, p99", False, digits=0),
        Row("tasks_failed", "tasks not COMPLETED with exit 0, all runs", False, "", "none", at_most(0),
            digits=0, is_count=True),
        Row("builds_failed", "builds not successful, all runs", False, "", "none", at_most(0),
            digits=0, is_count=True),
        Row("task_master_cpu_s", f"master CPU s for the {n} tasks", False, digits=2),
        Row("build_master_cpu_s", f"master CPU s for the {n} builds", False, digits=2),
    ]


class Client:
    """JSON over HTTP/1.1 to the master, one keep-alive connection per thread (as a Swarming
    client's ``requests`` session keeps one), with the bench user's bearer token."""

    def __init__(self, port: int):
        self.port = port
        self.headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json",
                        "Accept": "application/json"}
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        raw = None if body is None else json.dumps(body).encode()
        reused = getattr(self._local, "connection", None) is not None
        try:
            status, data = self._exchange(method, path, raw)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise
            # the master closed a connection left idle past its idle timeout: a new one, as
            # requests (urllib3) does
            status, data = self._exchange(method, path, raw)
        if status != 200:
            raise AssertionError(f"{method} {path}: HTTP {status} {data[:300]!r}")
        return json.loads(data)

    def _exchange(self, method: str, path: str, raw: bytes | None) -> tuple[int, bytes]:
        connection = self._connection()
        try:
            connection.request(method, path, body=raw, headers=self.headers)
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            connection.close()
            self._local.connection = None
            raise

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()


def task_body(name: str, tag: str) -> dict:
    """A ``tasks/new`` body as ``swarming.py trigger --raw-cmd -d pool POOL -- true`` sends it."""
    return {
        "name": name, "priority": "200", "tags": [tag], "user": None, "parent_task_id": "",
        "request_uuid": str(uuid.uuid4()), "pool_task_template": "AUTO", "realm": None,
        "task_slices": [{"expiration_secs": "3600", "wait_for_capacity": False, "properties": {
            "command": COMMAND, "relative_cwd": None, "dimensions": [{"key": "pool", "value": POOL}],
            "env": [], "env_prefixes": [], "caches": [], "outputs": [], "inputs_ref": None,
            "execution_timeout_secs": "3600", "io_timeout_secs": "1200", "grace_period_secs": "30",
            "idempotent": False, "secret_bytes": None}}],
    }


def v1_seconds(timestamp: str) -> float:
    """Epoch seconds of a v1 timestamp (naive UTC, ``2026-12-04T21:00:00.123456``)."""
    return datetime.datetime.fromisoformat(timestamp).replace(tzinfo=datetime.UTC).timestamp()


def trigger_all(count: int, send: Callable[[int], object]) -> tuple[float, list[tuple[object, float]]]:
    """``send(i)`` for i in range(count) from ``TRIGGER_CONNECTIONS`` threads: the time the
    first was sent, and each answer with the time it arrived (epoch seconds)."""
    first_sent = time.time()
    with ThreadPoolExecutor(TRIGGER_CONNECTIONS) as pool:
        answers = list(pool.map(lambda i: (send(i), time.time()), range(count)))
    return first_sent, answers


def figures(first_sent: float, answered: dict[object, float], completed: dict[object, float],
            failed: int) -> dict[str, float]:
    """Throughput and latency of one batch: ``answered``/``completed`` map each id to the time
    its trigger's answer arrived / it completed on the master."""
    missing = set(answered) - set(completed)
    if missing:
        raise AssertionError(f"{len(missing)} of {len(answered)} never completed, e.g. {sorted(missing)[:3]}")
    latencies = [(completed[key] - answered[key]) * 1000 for key in answered]
    return {"per_s": len(answered) / (max(completed[key] for key in answered) - first_sent),
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99), "failed": failed}


def run_tasks(system: BuildfarmSystem, client: Client, count: int) -> dict[str, float]:
    """Trigger ``count`` tasks, wait until none is pending or running; their figures."""
    tag = f"w7run:{uuid.uuid4().hex}"
    cpu_before = cpu_seconds(system.master_pid)
    first_sent, answers = trigger_all(count, lambda i: client.call(
        "POST", f"{V1}/tasks/new", task_body(f"w7-{i}", tag))["task_id"])
    unfinished = f"{V1}/tasks/count?state=PENDING_RUNNING&tags={quote(tag)}"
    poll(lambda: client.call("GET", unfinished)["count"] == "0", COMPLETION_POLL_S, f"{count} tasks to end")
    cpu = cpu_seconds(system.master_pid) - cpu_before
    results = list_tasks(client, tag)
    completed = {r["task_id"]: v1_seconds(r["completed_ts"]) for r in results if "completed_ts" in r}
    failed = sum(1 for r in results if r["state"] != "COMPLETED" or r.get("exit_code") != "0")
    if failed:
        print(f"  W7 task states: {sorted((r['state'], r.get('exit_code')) for r in results)[:5]} ...",
              flush=True)
    return {**figures(first_sent, dict(answers), completed, failed), "cpu_s": cpu}


def list_tasks(client: Client, tag: str) -> list[dict]:
    """Every task with ``tag`` (``tasks/list``, page by page)."""
    path = f"{V1}/tasks/list?tags={quote(tag)}&limit={LIST_PAGE}"
    page = client.call("GET", path)
    items = list(page.get("items", []))
    while page.get("cursor"):
        page = client.call("GET", f"{path}&cursor={quote(page['cursor'])}")
        items += page.get("items", [])
    return items


def run_builds(system: BuildfarmSystem, client: Client, count: int) -> dict[str, float]:
    """Force ``count`` builds, wait until the builder has none incomplete; their figures."""
    cpu_before = cpu_seconds(system.master_pid)
    first_sent, answers = trigger_all(count, lambda _: client.call(
        "POST", f"/api/v1/builders/{BUILDER.name}/force", {})["buildrequestid"])
    wait_all_done(system, BUILDER.name, COMPLETION_POLL_S)
    cpu = cpu_seconds(system.master_pid) - cpu_before
    answered = dict(answers)
    requests = [r for r in system._get_every(f"/buildrequests?builder={BUILDER.name}", "buildrequests")
                if r["buildrequestid"] in answered]
    completed = {r["buildrequestid"]: r["complete_at"] for r in requests if r["complete_at"] is not None}
    failed = sum(1 for r in requests if r["result"] != "success")
    return {**figures(first_sent, answered, completed, failed), "cpu_s": cpu}


def one_run(system: BuildfarmSystem, client: Client, count: int) -> dict[str, float]:
    builds = run_builds(system, client, count)
    tasks = run_tasks(system, client, count)
    return {"tasks_per_s": tasks["per_s"], "builds_per_s": builds["per_s"],
            "tasks_vs_builds": tasks["per_s"] / builds["per_s"],
            "task_p50_ms": tasks["p50_ms"], "build_p50_ms": builds["p50_ms"],
            "task_vs_build_p50": tasks["p50_ms"] / builds["p50_ms"],
            "task_p99_ms": tasks["p99_ms"], "build_p99_ms": builds["p99_ms"],
            "tasks_failed": tasks["failed"], "builds_failed": builds["failed"],
            "task_master_cpu_s": tasks["cpu_s"], "build_master_cpu_s": builds["cpu_s"]}


def wait_bots(client: Client, names: Sequence[str]) -> None:
    """Until the master lists every slave as a live bot of the pool."""
    def listed():
        bots = client.call("GET", f"{V1}/bots/list?dimensions={quote(f'pool:{POOL}')}&is_dead=FALSE")
        return {b["bot_id"] for b in bots.get("items", [])} >= set(names)
    poll(listed, COMPLETION_POLL_S, f"bots {', '.join(names)} in pool {POOL}", 60.0)


def measure(system_class, root: str, runs: int, quick: bool,
            profile_dir: str | None = None) -> dict[str, float]:
    if system_class.label != BuildfarmSystem.label:
        return {row.key: float("nan") for row in rows(quick)}
    count = QUICK_COUNT if quick else COUNT
    with started(TaskSystem, root, SLAVES, [BUILDER], SLAVES) as system:
        client = Client(system.master.www_port)
        try:
            wait_bots(client, SLAVES)
            run_builds(system, client, WARMUP)
            run_tasks(system, client, WARMUP)
            results = [one_run(system, client, count) for _ in range(runs)]
            profile_our_master(system, profile_dir, "w7-tasks", lambda: run_tasks(system, client, count))
        finally:
            client.close()
    return {**medians(results), "tasks_failed": sum(r["tasks_failed"] for r in results),
            "builds_failed": sum(r["builds_failed"] for r in results)}
