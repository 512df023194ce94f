"""The task engine end to end: a real master (``c['tasks']`` lowering the least timeout to 1 s,
as Swarming's local development server does for its smoke tests) and real ``buildslave``
processes with dimensions from master.cfg and from ``info/dimensions.json``, driven over HTTP
through /_ah/api/swarming/v1/ as a Swarming client with ``--auth-disabled`` is (the scopes are
granted to anonymous callers, docs/tasks.md), on SQLite and on PostgreSQL.

One master and its slaves serve every test of a backend (``farms``, started on first use; every
farm test runs on both):

- bs1: pool ci, gpu nvidia (master.cfg), disk ssd (its dimensions.json); it also runs the
  builder ``hold``, whose build waits for a file;
- bs2: pool ci, gpu amd;
- bs3: pool ci, gpu intel: attached once, then stopped (seen, but not live);
- bd1, bd2, bd3: pool die (bd2 and bd3 also kind retry): the slaves the BOT_DIED tests kill.

The last test starts a master of its own, to kill it (SIGKILL) mid-task and start it again.
"""

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime

import pytest

from fixtures.daemons import Fleet, has_exited, pid_alive, run_cli_here, stop_daemons, wait_for

V1 = "/_ah/api/swarming/v1"
TASK_DEADLINE_S = 30.0
BOTH = pytest.mark.parametrize("farm", ["sqlite", "postgresql"], indirect=True)
FINAL = {"COMPLETED", "TIMED_OUT", "EXPIRED", "CANCELED", "KILLED", "BOT_DIED", "NO_RESOURCE"}
TWINS = 50
SAME_UUID = 20
SLAVES = {  # name: (dimensions in master.cfg, info/dimensions.json or None)
    "bs1": ({"pool": "ci", "gpu": ["nvidia"]}, {"disk": "ssd"}),
    "bs2": ({"pool": "ci", "gpu": ["amd"]}, None),
    "bs3": ({"pool": "ci", "gpu": ["intel"]}, None),
    "bd1": ({"pool": "die"}, None),
    "bd2": ({"pool": "die", "kind": "retry"}, None),
    "bd3": ({"pool": "die", "kind": "retry"}, None),
}
CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(name, 'pass', dimensions=dims) for name, dims in {slaves!r}]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}, 'anonymous_scopes': ['tasks:create:ci', 'tasks:create:die', 'tasks:read',
                                                       'tasks:cancel:ci', 'tasks:cancel:die', 'bots:read']}}
c['db'] = {{'db_url': {db_url!r}}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['builders'] = [util.BuilderConfig(name='hold', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['sh', '-c', 'while [ ! -e {release!s} ]; do sleep 0.05; done'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['hold'])]
"""


class Swarming:
    """What a Swarming client sends (``--auth-disabled``: no credentials) and reads."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + V1 + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def new(self, body: dict) -> dict:
        status, answer = self.call("POST", "/tasks/new", body)
        assert status == 200, answer
        return answer

    def result(self, task_id: str) -> dict:
        status, answer = self.call("GET", f"/task/{task_id}/result")
        assert status == 200, answer
        return answer

    def stdout(self, task_id: str) -> str:
        status, answer = self.call("GET", f"/task/{task_id}/stdout")
        assert status == 200, answer
        return answer["output"]

    def cancel(self, task_id: str, kill_running: bool = False) -> dict:
        status, answer = self.call("POST", f"/task/{task_id}/cancel", {"kill_running": kill_running})
        assert status == 200, answer
        return answer

    def wait(self, task_id: str, states=FINAL, deadline_s: float = TASK_DEADLINE_S) -> dict:
        return wait_for(lambda: (r := self.result(task_id))["state"] in states and r,
                        f"task {task_id} to be {'/'.join(sorted(states))}", deadline_s)

    def wait_output(self, task_id: str, text: str) -> str:
        return wait_for(lambda: text in (out := self.stdout(task_id)) and out,
                        f"{text!r} in the output of {task_id}")


def body(command, dimensions=None, *, slices=None, idempotent=False, hard=20, io=0, grace=1,
         expiration=60, wait_for_capacity=False, request_uuid=None, user=None, tags=(), name="e2e"):
    """A ``tasks/new`` body as ``swarming.py trigger`` sends it."""
    def props(dims):
        return {"command": list(command), "dimensions": [{"key": k, "value": v} for k, v in dims.items()],
                "execution_timeout_secs": hard, "io_timeout_secs": io, "grace_period_secs": grace,
                "idempotent": idempotent, "env": [], "outputs": [], "inputs_ref": None}

    task_slices = [{"expiration_secs": exp, "wait_for_capacity": wfc, "properties": props(dims)}
                   for dims, exp, wfc in (slices or [(dimensions or {"pool": "ci"}, expiration,
                                                      wait_for_capacity)])]
    return {"name": name, "user": user, "priority": 100, "tags": list(tags), "request_uuid": request_uuid,
            "task_slices": task_slices}


def task_output(task: dict) -> str:
    """What the task's command (``echo ...`` or ``sh -c '...; echo ...'``) prints."""
    command = task["task_slices"][0]["properties"]["command"]
    return (command[-1].rpartition("echo ")[2] if command[0] == "sh" else " ".join(command[1:])) + "\n"


def run_id(task_id: str, try_number: int) -> str:
    return task_id[:-1] + str(try_number)


def epoch(v1_timestamp: str) -> float:
    return datetime.fromisoformat(v1_timestamp).replace(tzinfo=UTC).timestamp()


def token() -> str:
    return uuid.uuid4().hex[:12]


def at_once(n: int, call) -> list:
    """``call(i)`` in ``n`` threads released together; their answers in order."""
    answers: list = [None] * n
    errors: list = []
    start = threading.Barrier(n)

    def one(i: int) -> None:
        try:
            start.wait(TASK_DEADLINE_S)
            answers[i] = call(i)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TASK_DEADLINE_S * 2)
    assert not errors, errors[:3]
    assert all(a is not None for a in answers)
    return answers


class Farm:
    """One master (on one backend) and its slaves."""

    def __init__(self, fleet: Fleet, root: str, db_url: str):
        self.root = root
        self.release = os.path.join(root, "release-hold")
        slaves = [(name, dims) for name, (dims, _) in SLAVES.items()]
        self.master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(
            pb_port=pb_port, www_port=www_port, slaves=slaves, db_url=db_url, release=self.release))
        self.slaves = {}
        for name, (_, dimensions_json) in SLAVES.items():
            slave = fleet.slave(self.master, name, "pass", False)
            if dimensions_json is not None:
                os.makedirs(os.path.join(slave.basedir, "info"), exist_ok=True)
                with open(os.path.join(slave.basedir, "info", "dimensions.json"), "w") as f:
                    json.dump(dimensions_json, f)
            run_cli_here("buildslave", "start", slave.basedir, check=True)
            self.slaves[name] = slave
        self.client = Swarming(self.master.url)
        wait_for(lambda: len(self.live_bots()) == len(SLAVES), "every slave to be a live bot")
        stop_daemons([self.slaves["bs3"].basedir])  # seen, no longer live
        wait_for(lambda: "bs3" not in self.live_bots(), "bs3 to be gone")

    def live_bots(self) -> set[str]:
        status, answer = self.client.call("GET", "/bots/list?is_dead=FALSE&is_busy=NONE")
        assert status == 200, answer
        return {bot["bot_id"] for bot in answer.get("items", [])
                if (bot.get("state") or "") and json.loads(bot["state"]).get("attached")}

    def path(self, name: str) -> str:
        return os.path.join(self.root, f"{name}-{token()}")


@pytest.fixture(scope="module")
def farms(tmp_path_factory, request):
    """The module's farms by backend, each started on first use."""
    fleet = Fleet(str(tmp_path_factory.mktemp("tasks-e2e")))
    started: dict[str, Farm] = {}
    databases: list[str] = []

    def get(backend: str) -> Farm:
        if backend not in started:
            db_url = "sqlite:///state.sqlite"
            if backend == "postgresql":
                server = request.getfixturevalue("postgres_server")
                databases.append(server.create_database())
                db_url = server.url(databases[-1])
            root = str(tmp_path_factory.mktemp(f"farm-{backend}"))
            started[backend] = Farm(fleet, root, db_url)
        return started[backend]

    yield get
    fleet.stop_all()
    if databases:
        server = request.getfixturevalue("postgres_server")
        for name in databases:
            server.drop_database(name)


@pytest.fixture
def farm(farms, request) -> Farm:
    return farms(getattr(request, "param", "sqlite"))


def read_pid(path: str) -> int:
    return int(wait_for(lambda: os.path.exists(path) and open(path).read().strip(), f"a pid in {path}"))


# -- running, matching, slices ------------------------------------------------------------------

@BOTH
def test_a_task_runs_on_a_slave_of_its_pool_and_its_output_is_read_back(farm):
    swarming = farm.client
    answer = swarming.new(body(["sh", "-c", "echo hello from $0; exit 3", "bs"]))
    task_id = answer["task_id"]
    assert task_id.endswith("0") and answer["task_result"]["state"] in ("PENDING", "RUNNING")
    result = swarming.wait(task_id)
    assert (result["state"], result["exit_code"], result["failure"]) == ("COMPLETED", "3", True)
    assert result["bot_id"] in ("bs1", "bs2") and result["run_id"] == run_id(task_id, 1)
    assert swarming.stdout(task_id) == "hello from bs\n"
    assert swarming.result(run_id(task_id, 1))["exit_code"] == "3"


@BOTH
def test_dimensions_match_with_alternatives_and_from_the_dimensions_file(farm):
    swarming = farm.client
    amd = swarming.wait(swarming.new(body(["true"], {"pool": "ci", "gpu": "intel|amd"}))["task_id"])
    assert (amd["state"], amd["bot_id"]) == ("COMPLETED", "bs2")
    ssd = swarming.wait(swarming.new(body(["true"], {"pool": "ci", "disk": "ssd", "gpu": "nvidia|amd"}))
                        ["task_id"])
    assert (ssd["state"], ssd["bot_id"]) == ("COMPLETED", "bs1")


@BOTH
def test_a_slice_no_live_slave_matches_expires_into_the_next_one(farm):
    swarming = farm.client
    task = body(["true"], slices=[({"pool": "ci", "gpu": "intel"}, 1, False),  # only bs3, stopped
                                  ({"pool": "ci", "gpu": "nvidia"}, 30, False)])
    task_id = swarming.new(task)["task_id"]
    result = swarming.wait(task_id, deadline_s=10)
    assert (result["state"], result["current_task_slice"], result["bot_id"]) == ("COMPLETED", "1", "bs1")
    assert epoch(result["started_ts"]) - epoch(result["created_ts"]) < 2.5  # the poll is every 5 s


@BOTH
def test_a_task_no_slave_ever_matched_ends_no_resource_at_once(farm):
    swarming = farm.client
    answer = swarming.new(body(["true"], {"pool": "ci", "gpu": "tpu|nvidia", "disk": "hdd"}))
    result = answer["task_result"]
    assert result["state"] == "NO_RESOURCE" and result["failure"] is True and "abandoned_ts" in result
    assert "error" not in result  # Swarming's clients would take the answer for a failed call
    assert "nearest: bs1 lacks disk:hdd" in result["error_message"], result
    waiting = swarming.new(body(["true"], {"pool": "ci", "gpu": "tpu"}, wait_for_capacity=True))
    assert waiting["task_result"]["state"] == "PENDING"
    assert swarming.result(waiting["task_id"])["state"] == "PENDING"
    assert swarming.cancel(waiting["task_id"]) == {"ok": True, "was_running": False}
    assert swarming.result(waiting["task_id"])["state"] == "CANCELED"


@BOTH
def test_a_pending_task_expires(farm):
    swarming = farm.client
    task_id = swarming.new(body(["true"], {"pool": "ci", "gpu": "tpu"}, expiration=1,
                                wait_for_capacity=True))["task_id"]
    result = swarming.wait(task_id, deadline_s=10)
    assert result["state"] == "EXPIRED" and "abandoned_ts" in result and "bot_id" not in result
    waited = epoch(result["abandoned_ts"]) - epoch(result["created_ts"])
    assert 1 <= waited < 2, waited  # at its deadline, not at the engine's next poll (5 s)


# -- timeouts, sharing, cancel and kill ---------------------------------------------------------

@BOTH
def test_a_hard_timeout_ends_the_task_timed_out_and_its_process(farm):
    swarming, pid_file = farm.client, farm.path("pid")
    task_id = swarming.new(body(["sh", "-c", f"echo $$ > {pid_file}; while :; do sleep 0.1; done"],
                                hard=1, grace=1))["task_id"]
    pid = read_pid(pid_file)
    result = swarming.wait(task_id, deadline_s=15)
    assert result["state"] == "TIMED_OUT" and result["failure"] is True
    assert 1 <= result["duration"] < 10
    assert not pid_alive(pid)


@BOTH
def test_an_io_timeout_ends_a_silent_task_timed_out_and_its_process(farm):
    swarming, pid_file = farm.client, farm.path("pid")
    task_id = swarming.new(body(["sh", "-c", f"echo $$ > {pid_file}; echo quiet now; exec sleep 60"],
                                hard=30, io=1, grace=1))["task_id"]
    pid = read_pid(pid_file)
    result = swarming.wait(task_id, deadline_s=15)
    assert result["state"] == "TIMED_OUT" and result["duration"] < 10
    assert "quiet now" in swarming.stdout(task_id)
    assert not pid_alive(pid)


@BOTH
def test_a_build_and_a_task_share_the_slaves_one_slot(farm):
    swarming, master = farm.client, farm.master
    brid = master.force("hold")
    build_id = wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "the build")[0]
    task_id = swarming.new(body(["true"], {"pool": "ci", "id": "bs1"}))["task_id"]
    assert swarming.result(task_id)["state"] == "PENDING"
    with open(farm.release, "w"):
        pass
    result = swarming.wait(task_id)
    build = master.get(f"/api/v1/builds/{build_id}")
    assert result["state"] == "COMPLETED" and build["complete"]
    assert epoch(result["started_ts"]) >= build["complete_at"] - 0.001

    # and the other way: a running task keeps the build waiting
    go = farm.path("go")
    task_id = swarming.new(body(["sh", "-c", f"while [ ! -e {go} ]; do sleep 0.05; done"],
                                {"pool": "ci", "id": "bs1"}))["task_id"]
    swarming.wait(task_id, {"RUNNING"})
    brid = master.force("hold")
    assert master.get(f"/api/v1/buildrequests/{brid}")["buildids"] == []
    with open(go, "w"):
        pass
    result = swarming.wait(task_id)
    build = master.get(f"/api/v1/builds/{master.wait_request_complete(brid)['buildids'][0]}")
    assert build["started_at"] >= epoch(result["completed_ts"]) - 0.001


@BOTH
def test_cancel_ends_a_pending_task(farm):
    swarming = farm.client
    task_id = swarming.new(body(["true"], {"pool": "ci", "gpu": "intel"}))["task_id"]  # bs3 is gone
    assert swarming.result(task_id)["state"] == "PENDING"
    assert swarming.cancel(task_id) == {"ok": True, "was_running": False}
    result = swarming.result(task_id)
    assert result["state"] == "CANCELED" and "abandoned_ts" in result
    assert swarming.cancel(task_id)["ok"] is False


@BOTH
def test_kill_running_terminates_then_kills_a_command_that_ignores_term(farm):
    swarming, pid_file = farm.client, farm.path("pid")
    script = f"trap 'echo got-TERM' TERM; echo $$ > {pid_file}; echo ready; while :; do sleep 0.1; done"
    task_id = swarming.new(body(["sh", "-c", script], grace=1))["task_id"]
    swarming.wait_output(task_id, "ready")
    pid = read_pid(pid_file)
    assert swarming.cancel(task_id) == {"ok": False, "was_running": True}  # without kill_running
    started = time.monotonic()
    assert swarming.cancel(task_id, kill_running=True) == {"ok": True, "was_running": True}
    result = swarming.wait(task_id, deadline_s=15)
    assert result["state"] == "KILLED" and result["failure"] is True
    assert time.monotonic() - started >= 1  # the grace period, then SIGKILL
    assert "got-TERM" in swarming.stdout(task_id)
    assert not pid_alive(pid)


# -- a lost slave -------------------------------------------------------------------------------

def kill_slave_running(farm, task_id: str, pid_file: str) -> str:
    """SIGKILL the slave that runs the task (and then the command it left behind)."""
    result = farm.client.wait(task_id, {"RUNNING"})
    pid = read_pid(pid_file)
    os.kill(farm.slaves[result["bot_id"]].pid, signal.SIGKILL)
    wait_for(lambda: not farm.client.result(task_id)["state"] == "RUNNING" or
             farm.client.result(task_id)["try_number"] != "1", "the master to see the slave gone")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: has_exited(pid), "the orphaned command to end")
    return result["bot_id"]


@BOTH
def test_a_slave_killed_mid_task_ends_it_bot_died(farm):
    swarming, pid_file = farm.client, farm.path("pid")
    task_id = swarming.new(body(["sh", "-c", f"echo $$ > {pid_file}; while :; do sleep 0.1; done"],
                                {"pool": "die", "id": "bd1"}))["task_id"]
    assert kill_slave_running(farm, task_id, pid_file) == "bd1"
    result = swarming.wait(task_id)
    assert (result["state"], result["internal_failure"], result["try_number"]) == ("BOT_DIED", True, "1")


@BOTH
def test_an_idempotent_task_whose_slave_is_killed_is_retried_once_on_another(farm):
    swarming, pid_file, marker = farm.client, farm.path("pid"), farm.path("marker")
    script = (f"if [ -e {marker} ]; then echo second try; exit 0; fi; touch {marker}; echo $$ > {pid_file}; "
              "while :; do sleep 0.1; done")
    task_id = swarming.new(body(["sh", "-c", script], {"pool": "die", "kind": "retry"},
                                idempotent=True))["task_id"]
    first_bot = kill_slave_running(farm, task_id, pid_file)
    result = swarming.wait(task_id)
    assert (result["state"], result["exit_code"], result["try_number"]) == ("COMPLETED", "0", "2")
    assert result["bot_id"] != first_bot and result["bot_id"] in ("bd2", "bd3")
    first, second = (swarming.result(run_id(task_id, n)) for n in (1, 2))
    assert (first["state"], first["bot_id"], first["internal_failure"]) == ("BOT_DIED", first_bot, True)
    assert (second["state"], second["bot_id"]) == ("COMPLETED", result["bot_id"])
    assert swarming.stdout(run_id(task_id, 2)) == "second try\n"


# -- idempotency --------------------------------------------------------------------------------

@BOTH
def test_an_idempotent_task_is_answered_at_once_from_a_finished_twin(farm):
    swarming = farm.client
    task = body(["echo", f"dedup {token()}"], idempotent=True)
    first = swarming.wait(swarming.new(task)["task_id"])
    assert first["state"] == "COMPLETED" and "deduped_from" not in first
    answer = swarming.new(task)
    result = answer["task_result"]
    assert (result["state"], result["exit_code"]) == ("COMPLETED", "0")
    assert result["deduped_from"] == first["task_id"]
    assert "run_id" not in result and result["bot_id"] == first["bot_id"]
    assert swarming.result(answer["task_id"]) == result
    assert swarming.stdout(answer["task_id"]) == swarming.stdout(first["task_id"]) == task_output(task)


@BOTH
def test_fifty_identical_idempotent_requests_at_once_run_once(farm):
    swarming, go, runs = farm.client, farm.path("go"), farm.path("runs")
    task = body(["sh", "-c", f"echo run >> {runs}; while [ ! -e {go} ]; do sleep 0.05; done; "
                             f"echo twins {token()}"], idempotent=True)
    answers = at_once(TWINS, lambda _: swarming.new(task))
    task_ids = [a["task_id"] for a in answers]
    assert len(set(task_ids)) == TWINS
    with open(go, "w"):
        pass
    results = [swarming.wait(task_id) for task_id in task_ids]
    ran = [r for r in results if "deduped_from" not in r]
    assert len(ran) == 1 and ran[0]["try_number"] == "1", [r.get("deduped_from") for r in results]
    assert all(r["deduped_from"] == ran[0]["task_id"] for r in results if r is not ran[0])
    agreed = {(r["state"], r["exit_code"], r["bot_id"]) for r in results}
    assert agreed == {("COMPLETED", "0", ran[0]["bot_id"])}
    assert {swarming.stdout(task_id) for task_id in task_ids} == {task_output(task)}
    with open(runs) as f:
        assert f.read() == "run\n"


@BOTH
def test_killing_a_running_twin_lets_the_task_attached_to_it_run_on_its_own(farm):
    swarming, go = farm.client, farm.path("go")
    script = f"echo waiting; while [ ! -e {go} ]; do sleep 0.05; done; echo killed twin {token()}"
    task = body(["sh", "-c", script], idempotent=True)
    first = swarming.new(task)["task_id"]
    swarming.wait_output(first, "waiting")
    second = swarming.new(task)["task_id"]
    assert swarming.cancel(first, kill_running=True)["ok"] is True
    assert swarming.wait(first)["state"] == "KILLED"
    with open(go, "w"):
        pass
    result = swarming.wait(second)
    assert (result["state"], result["try_number"], "deduped_from" in result) == ("COMPLETED", "1", False)
    assert swarming.stdout(second) == "waiting\n" + task_output(task)


@BOTH
def test_the_same_request_uuid_from_the_same_user_twenty_times_at_once_is_one_task(farm):
    swarming, tag = farm.client, f"e2e:uuid-{token()}"
    task = body(["true"], request_uuid=str(uuid.uuid4()), user="alice", tags=[tag])
    answers = at_once(SAME_UUID, lambda _: swarming.new(task))
    assert len({a["task_id"] for a in answers}) == 1
    status, count = swarming.call("GET", f"/tasks/count?tags={tag}&start=0")
    assert status == 200 and count["count"] == "1", count
    assert swarming.wait(answers[0]["task_id"])["state"] == "COMPLETED"


@BOTH
def test_fifty_identical_quick_idempotent_requests_at_once_all_end(farm):
    swarming = farm.client
    task = body(["echo", f"quick twins {token()}"], idempotent=True)
    answers = at_once(TWINS, lambda _: swarming.new(task))
    results = [swarming.wait(a["task_id"], deadline_s=15) for a in answers]
    assert {(r["state"], r["exit_code"]) for r in results} == {("COMPLETED", "0")}


# -- a master restarted -------------------------------------------------------------------------

RESTART_CONFIG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(name, 'pass', dimensions={{'pool': 'ci'}}) for name in ('bs1', 'bs2')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}, 'anonymous_scopes': ['tasks:create:ci', 'tasks:read', 'bots:read']}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['tasks'] = {{'min_timeout_secs': 1}}
c['builders'] = []
"""


def test_tasks_running_when_their_master_was_killed_end_when_their_slave_attaches_again(fleet, tmp_path):
    master = fleet.master(config=lambda pb_port, www_port: RESTART_CONFIG.format(pb_port=pb_port,
                                                                                 www_port=www_port))
    for name in ("bs1", "bs2"):
        fleet.slave(master, name, "pass", True, "--maxdelay", "1")  # back soon after the master is
        master.wait_attached(name)
    swarming, task_ids = Swarming(master.url), {}
    for idempotent, slave in ((False, "bs1"), (True, "bs2")):
        marker = tmp_path / f"marker-{idempotent}"
        script = f"if [ -e {marker} ]; then echo again; exit 0; fi; touch {marker}; exec sleep 60"
        task_ids[idempotent] = swarming.new(body(["sh", "-c", script], {"pool": "ci", "id": slave},
                                                 idempotent=idempotent))["task_id"]
        swarming.wait(task_ids[idempotent], {"RUNNING"})
        wait_for(marker.exists, "the command to start")
    master.halt("killed")
    run_cli_here("buildmaster", "start", master.basedir, check=True)
    once, retried = (swarming.wait(task_ids[idempotent]) for idempotent in (False, True))
    # the slave attached again: the tries it ran for the killed master are lost
    assert (once["state"], once["try_number"], once["internal_failure"]) == ("BOT_DIED", "1", True)
    assert (retried["state"], retried["try_number"]) == ("COMPLETED", "2")
    assert swarming.stdout(task_ids[True]) == "again\n"
    assert swarming.result(run_id(task_ids[True], 1))["state"] == "BOT_DIED"
