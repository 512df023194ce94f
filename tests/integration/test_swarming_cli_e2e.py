"""The ``swarming`` CLI against a real master running real ``buildslave`` processes: trigger and
collect, a sharded run whose output is printed live, collect's exit status, query, query-list,
bots, cancel --kill-running, terminate, reproduce of a task with isolated inputs, bad flags;
and the examples of docs/tasks.md's "The swarming CLI", run as shown."""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time

import pytest

from fixtures import docexamples
from fixtures.daemons import BIN_DIR, CLI_TIMEOUT_S, Fleet, wait_for

DOC_URL = "http://127.0.0.1:8010"  # the server the examples of docs/tasks.md name
TASK_DEADLINE_S = 60.0
LIVE_DEADLINE_S = 60.0
SLAVES = ("bs1", "bs2")
CONFIG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(name, 'pass', dimensions={{'pool': 'ci', 'role': name}})
               for name in {slaves!r}]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'upload_secret': 'e2e-cas-secret'}}
from buildfarm.master.auth.users import User
c['users'] = [User('carol', tokens=['carol-token'], scopes=['tasks:create:ci', 'tasks:read'])]
{example}
"""


def config(pb_port: int, www_port: int) -> str:
    return CONFIG.format(slaves=list(SLAVES), pb_port=pb_port, www_port=www_port,
                         example=docexamples.example("tasks.md", "cli-anonymous"))


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """One master with two slaves in pool ci (``role`` = the slave's name), for the module."""
    fleet = Fleet(str(tmp_path_factory.mktemp("swarming-cli")))
    master = fleet.master(config=config)
    for name in SLAVES:
        fleet.slave(master, name)
    for name in SLAVES:
        master.wait_attached(name)
    wait_for(lambda: len(bot_ids(master)) == len(SLAVES), "the bots to be listed")
    yield master
    fleet.stop_all()


def bot_ids(master) -> list[str]:
    return [b["bot_id"] for b in master.get("/_ah/api/swarming/v1/bots/list")["items"]]


def env_for(cwd=None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SWARMING_", "ISOLATE_"))}
    if cwd is not None:
        env["XDG_CACHE_HOME"] = str(cwd)
    return env


def swarming(master, *args: str, cwd=None, timeout: float = CLI_TIMEOUT_S) -> subprocess.CompletedProcess:
    """The console script, as a user runs it, on ``master``."""
    return subprocess.run([os.path.join(BIN_DIR, "swarming"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**env_for(cwd), "SWARMING_SERVER": master.url})


def trigger(master, *args: str, pool: str = "ci") -> list[str]:
    done = swarming(master, "trigger", "-d", "pool", pool, *args)
    assert done.returncode == 0, done.stderr
    return [line.split()[0] for line in done.stdout.splitlines()]


def result(master, task_id: str) -> dict:
    return master.get(f"/_ah/api/swarming/v1/task/{task_id}/result")


def wait_state(master, task_id: str, *states: str) -> dict:
    return wait_for(lambda: (r := result(master, task_id))["state"] in states and r,
                    f"task {task_id} to be {'/'.join(states)}", TASK_DEADLINE_S)


def test_trigger_then_collect_prints_the_output_and_writes_the_summary(farm, tmp_path):
    [task_id] = trigger(farm, "-T", "hello", "--raw-cmd", "-e", "GREETING", "hello from a task",
                        "--", "sh", "-c", 'echo "$GREETING"; echo second line')
    summary = tmp_path / "summary.json"
    collected = swarming(farm, "collect", task_id, "--task-summary-json", str(summary),
                         "--task-output-stdout", "all")
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout == "hello from a task\nsecond line\n"
    [shard] = json.loads(summary.read_text())["shards"]
    assert (shard["task_id"], shard["state"], shard["exit_code"]) == (task_id, "COMPLETED", "0")
    assert shard["output"] == "hello from a task\nsecond line\n"
    assert shard["bot_id"] in SLAVES


class LiveOutput:
    """The stdout of a running process, read from its pipe as it comes, with a deadline."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.text = ""
        self.selector = selectors.DefaultSelector()
        self.selector.register(process.stdout, selectors.EVENT_READ)

    def wait_for_line(self, pattern: str, deadline_s: float = LIVE_DEADLINE_S) -> re.Match:
        """The first line matching ``pattern`` printed so far, reading more until the deadline."""
        deadline = time.monotonic() + deadline_s
        while True:
            match = re.search(pattern, self.text, re.M)
            if match:
                return match
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line {pattern!r} within {deadline_s:.0f} s; printed: {self.text!r}")
            if self.selector.select(timeout=min(left, 1.0)):
                chunk = os.read(self.process.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError(f"the output ended before {pattern!r}: {self.text!r} "
                                         f"(stderr: {self.process.stderr.read()!r})")
                self.text += chunk.decode()

    def rest(self) -> str:
        """The rest of the output, once the process has ended."""
        out, _ = self.process.communicate(timeout=CLI_TIMEOUT_S)
        self.text += out.decode()
        self.selector.close()
        return self.text


# Each shard says it started, then waits (at most a minute) for the file the test creates once it
# has seen that line in collect's output: only output printed live lets a shard finish.
SHARD_SCRIPT = """\
i=$GTEST_SHARD_INDEX
echo "shard $i of $GTEST_TOTAL_SHARDS started"
n=0
while [ ! -e "$GO_DIR/go-$i" ]; do
  n=$((n + 1)); [ $n -gt 600 ] && { echo "shard $i never saw go-$i"; exit 3; }
  sleep 0.1
done
echo "shard $i done"
"""


def test_a_sharded_run_prints_each_shards_output_live(farm, tmp_path):
    summary = tmp_path / "summary.json"
    process = subprocess.Popen(
        [os.path.join(BIN_DIR, "swarming"), "run", "-S", farm.url, "-d", "pool", "ci", "--shards", "3",
         "-T", "live", "-e", "GO_DIR", str(tmp_path), "--decorate", "--task-summary-json", str(summary),
         "--raw-cmd", "--", "sh", "-c", SHARD_SCRIPT],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env_for())
    try:
        live = LiveOutput(process)
        seen: set[int] = set()
        for _ in range(3):  # two shards run at once (two slaves), the third once one is done
            waiting = "".join(str(i) for i in range(3) if i not in seen)
            match = live.wait_for_line(rf"^\[shard ([{waiting}])\] shard \1 of 3 started$")
            seen.add(int(match.group(1)))
            (tmp_path / f"go-{match.group(1)}").touch()  # only now may that shard end
        text = live.rest()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, text
    for index in range(3):
        assert f"[shard {index}] shard {index} done\n" in text
        assert re.search(rf"^\[shard {index}\] [0-9a-f]+ ended COMPLETED, exit 0, on bs\d", text, re.M), text
    shards = json.loads(summary.read_text())["shards"]
    assert [s["name"] for s in shards] == [f"live:{i}:3" for i in range(3)]
    assert {s["bot_id"] for s in shards} == set(SLAVES)  # two slaves shared the three shards
    assert all(s["state"] == "COMPLETED" and s["exit_code"] == "0" for s in shards)


def test_collect_exits_with_the_exit_code_of_a_failing_shard(farm, tmp_path):
    script = 'echo "shard $GTEST_SHARD_INDEX"; exit $((GTEST_SHARD_INDEX * 3))'
    ran = swarming(farm, "run", "-d", "pool", "ci", "--shards", "2", "--dump-json", str(tmp_path / "t.json"),
                   "--raw-cmd", "--", "sh", "-c", script)
    assert ran.returncode == 3, ran.stderr
    assert sorted(ran.stdout.splitlines()[2:]) == ["shard 0", "shard 1"]  # after the two trigger lines
    again = swarming(farm, "collect", "--json", str(tmp_path / "t.json"), "--task-output-stdout", "none")
    assert (again.returncode, again.stdout) == (3, "")
    tasks = json.loads((tmp_path / "t.json").read_text())["tasks"]
    passed = next(t["task_id"] for t in tasks.values() if t["shard_index"] == 0)
    assert swarming(farm, "collect", passed).returncode == 0
    for dumped in tasks.values():  # each view_url is the task's page on this master
        assert dumped["view_url"] == f"{farm.url}/tasks/{dumped['task_id']}"
        status, page = farm.request("GET", f"/tasks/{dumped['task_id']}")
        assert status == 200 and dumped["task_id"].encode() in page


def test_collect_of_a_task_no_slave_can_run_is_a_failure(farm):
    [task_id] = trigger(farm, "-d", "os", "Plan9", "--raw-cmd", "--", "true")
    collected = swarming(farm, "collect", "--decorate", task_id)
    assert collected.returncode == 1
    assert f"[shard 0] {task_id} ended NO_RESOURCE" in collected.stdout


def test_collect_gives_up_after_its_timeout(farm):
    [task_id] = trigger(farm, "-d", "role", "nobody", "--wait-for-capacity", "--raw-cmd", "--", "true")
    collected = swarming(farm, "collect", "--timeout", "1", "--print-status-updates", task_id)
    assert collected.returncode == 1
    assert f"shard 0 (task {task_id}): PENDING" in collected.stderr
    assert "gave up waiting for shard 0" in collected.stderr
    assert swarming(farm, "cancel", task_id).stdout == f"{task_id}: canceled\n"


def test_query_pages_with_cursors_and_query_list_reads_the_discovery_document(farm):
    made = set(trigger(farm, "--tags", "batch:query", "--shards", "3", "--raw-cmd", "--", "true"))
    listed = swarming(farm, "query", "-L", "10", "tasks/list?tags=batch:query")
    assert listed.returncode == 0, listed.stderr
    assert {t["task_id"] for t in json.loads(listed.stdout)["items"]} == made
    # pages of 2 (instead of 250): the second page comes through the cursor of the first
    paged = subprocess.run(
        [sys.executable, "-c", "from buildfarm.common import swarmingclient, swarming\n"
         "swarmingclient.QUERY_PAGE = 2\nswarming.main()", "query", "-L", "3", "tasks/list?tags=batch:query"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env={**env_for(), "SWARMING_SERVER": farm.url})
    answer = json.loads(paged.stdout)
    assert {t["task_id"] for t in answer["items"]} == made and "cursor" not in answer
    two = json.loads(swarming(farm, "query", "-L", "2", "tasks/list?tags=batch:query").stdout)
    assert len(two["items"]) == 2
    methods = swarming(farm, "query-list")
    assert methods.returncode == 0, methods.stderr
    assert "swarming.tasks.new: POST tasks/new" in methods.stdout


def test_bots_lists_the_slaves_with_their_dimensions(farm):
    listed = swarming(farm, "bots")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == list(SLAVES)
    dimensions = json.loads(lines[1])
    assert dimensions["pool"] == ["ci"] and dimensions["role"] == ["bs1"] and dimensions["id"] == ["bs1"]
    assert swarming(farm, "bots", "-d", "role", "bs2", "--bare").stdout == "bs2\n"
    assert swarming(farm, "bots", "--dead-only", "--bare").stdout == ""


def test_cancel_kill_running_kills_a_running_task(farm, tmp_path):
    script = f"echo waiting; while [ ! -e {tmp_path}/never ]; do sleep 0.1; done"
    [task_id] = trigger(farm, "--raw-cmd", "--", "sh", "-c", script)
    wait_state(farm, task_id, "RUNNING")
    refused = swarming(farm, "cancel", task_id)
    assert (refused.returncode, refused.stdout) == (1, f"{task_id}: not canceled: it is running "
                                                       f"(see --kill-running)\n")
    killed = swarming(farm, "cancel", "--kill-running", task_id)
    assert (killed.returncode, killed.stdout) == (0, f"{task_id}: killed\n")
    assert wait_state(farm, task_id, "KILLED")["failure"] is True
    assert swarming(farm, "collect", task_id).returncode == 1


def test_reproduce_runs_a_task_from_its_isolated_inputs_here(farm, tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "hello.txt").write_text("hello\n")
    tree = archive(farm, tmp_path / "tree", tmp_path)
    script = 'cat hello.txt; echo "$GREETING $*"; exit 7'
    [task_id] = trigger(farm, "-s", tree, "-e", "GREETING", "hi", "--raw-cmd", "--", "sh", "-c", script, "sh")
    ran = swarming(farm, "collect", task_id)
    assert (ran.returncode, ran.stdout) == (7, "hello\nhi \n"), ran.stderr  # on a slave, from the hash
    here = swarming(farm, "reproduce", "--work", "w", "--cache", "c", task_id, "--", "again", cwd=tmp_path)
    assert here.returncode == 7, here.stderr
    assert here.stdout == "hello\nhi again\n"
    assert here.stderr.endswith("swarming: exit code 7\n")
    assert (tmp_path / "w" / "hello.txt").read_text() == "hello\n"
    again = swarming(farm, "reproduce", "--work", "w", task_id, cwd=tmp_path)
    assert again.returncode == 1 and "is not empty" in again.stderr


def archive(master, tree, cwd) -> str:
    """``isolateserver archive`` of the directory ``tree``: its hash."""
    argv = [os.path.join(BIN_DIR, "isolateserver"), "archive", "-I", master.url, str(tree)]
    archived = subprocess.run(argv, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env_for(cwd))
    assert archived.returncode == 0, archived.stderr
    return archived.stdout.split()[0]


def test_collect_downloads_each_shards_outputs_into_the_task_output_dir(farm, tmp_path):
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "input.txt").write_text("from the inputs\n")
    tree = archive(farm, tmp_path / "tree", tmp_path)
    script = 'cp input.txt "$1/copy.txt"; echo "shard $GTEST_SHARD_INDEX" > "$1/which.txt"'
    ids = trigger(farm, "-s", tree, "--shards", "2", "--raw-cmd", "--", "sh", "-c", script, "sh",
                  "${ISOLATED_OUTDIR}")
    out = tmp_path / "out"
    collected = swarming(farm, "collect", "--task-output-dir", str(out), *ids, cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    for index in range(2):
        assert (out / str(index) / "copy.txt").read_text() == "from the inputs\n"
        assert (out / str(index) / "which.txt").read_text() == f"shard {index}\n"
    shards = json.loads((out / "summary.json").read_text())["shards"]
    assert [s["task_id"] for s in shards] == ids
    assert all(len(s["outputs_ref"]["isolated"]) == 40 for s in shards)


def test_collect_of_a_deduplicated_task_prints_the_output_it_was_served_from(farm, tmp_path):
    argv = ("--idempotent", "-d", "role", "bs1", "--raw-cmd", "--", "sh", "-c", f"echo once {tmp_path.name}")
    [first] = trigger(farm, *argv)
    assert swarming(farm, "collect", first).stdout == f"once {tmp_path.name}\n"
    [second] = trigger(farm, *argv)
    collected = swarming(farm, "collect", "--decorate", second)
    assert collected.returncode == 0, collected.stderr
    assert collected.stdout.startswith(f"[shard 0] once {tmp_path.name}\n")
    assert f"deduped from {first[:-1]}" in collected.stdout  # the first task's try ran it


@pytest.mark.parametrize("argv, message", [
    (["trigger", "--raw-cmd", "--", "true"], "-d pool NAME is required"),
    (["trigger", "-d", "pool", "ci", "--priority", "300", "--raw-cmd", "--", "true"],
     "--priority must be 0..255"),
    (["trigger", "-d", "pool", "ci", "--", "true"], "are a command only with --raw-cmd"),
    (["collect", "XYZ"], "'XYZ' is not a task id"),
    (["collect", "--timeout", "soon", "1230"], "is not a number of seconds"),
    (["bots", "--dead-only", "--keep-dead"], "not allowed with argument"),
])
def test_bad_flags_are_one_line_and_status_2(farm, argv, message):
    done = swarming(farm, *argv)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    assert done.stderr.startswith("swarming: ")


def test_the_auth_token_is_sent_as_a_bearer_token(farm):
    done = swarming(farm, "trigger", "--auth-token", "carol-token", "-d", "pool", "ci",
                    "--raw-cmd", "--", "true")
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.split()[0]
    assert result(farm, task_id)["user"] == "carol"  # the server's name for the caller
    refused = swarming(farm, "bots", "--auth-token", "wrong")
    assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert "bots/list failed: HTTP 401" in refused.stderr


def test_collect_of_an_unknown_task_is_one_line(farm):
    done = swarming(farm, "collect", "123456710")  # a version-1 id no task has
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "HTTP 404: no task 123456710" in done.stderr


def test_an_unreachable_server_is_one_line(tmp_path):
    done = subprocess.run([os.path.join(BIN_DIR, "swarming"), "bots", "-S", "http://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, env=env_for())
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot connect to http://127.0.0.1:1" in done.stderr


def test_terminate_wait_returns_once_the_slave_has_shut_down(tmp_path):
    fleet = Fleet(str(tmp_path))
    try:
        master = fleet.master(config=config)
        fleet.slave(master, "bs1")
        master.wait_attached("bs1")
        wait_for(lambda: "bs1" in bot_ids(master), "bs1 to be a bot")
        done = swarming(master, "terminate", "--wait", "--timeout", "60", "bs1")
        assert done.returncode == 0, done.stderr
        terminating = re.fullmatch(r"bs1: terminating \(task ([0-9a-f]+)\)\nbs1: terminated\n", done.stdout)
        assert terminating, done.stdout
        assert master.slave("bs1")["attached"] is False
        status, body = master.request("GET", f"/_ah/api/swarming/v1/task/{terminating[1]}/result")
        assert status == 200 and json.loads(body)["state"] == "COMPLETED", body
    finally:
        fleet.stop_all()


TASK_IDS = re.compile(r"\b[0-9a-f]{12,20}\b")
SECONDS = re.compile(r"\b\d+\.\d s\b")
NOW = re.compile(r'"now": "[^"]+"')


def normalised(text: str) -> list[str]:
    """The lines of an example's output without what changes from run to run (task ids, which
    slave ran a shard, seconds, the server's time), sorted (shards end in any order)."""
    text = NOW.sub('"now": "NOW"', SECONDS.sub("S s", TASK_IDS.sub("ID", text)))
    return sorted(re.sub(r"on bs\d", "on BOT", text).splitlines())


def run_example(master, argv: list[str], cwd) -> subprocess.CompletedProcess:
    """A ``$ swarming ...`` line of docs/tasks.md (``docexamples.commands``), on ``master``."""
    assert argv[0] == "swarming", argv
    argv = [master.url if arg == DOC_URL else arg for arg in argv[1:]]
    done = swarming(master, *argv, cwd=cwd)
    assert done.returncode == 0, (argv, done.stderr)
    return done


def shown_output(text: str) -> str:
    """What a console example shows besides its command (its ``$ `` line and continuations)."""
    return "".join(line + "\n" for line in text.splitlines() if not line.startswith(("$ ", "    ")))


def test_the_cli_examples_of_the_docs_run_as_shown(farm, tmp_path):
    shown = {"trigger": docexamples.example("tasks.md", "cli-trigger"),
             "collect": docexamples.example("tasks.md", "cli-collect"),
             "query": docexamples.example("tasks.md", "cli-query"),
             "bots": docexamples.example("tasks.md", "cli-bots")}
    ran = {"trigger": docexamples.commands("tasks.md", "cli-trigger"),
           "collect": docexamples.commands("tasks.md", "cli-collect"),
           "query": docexamples.commands("tasks.md", "cli-query"),
           "bots": docexamples.commands("tasks.md", "cli-bots")}
    for name in ("trigger", "collect", "query", "bots"):  # in this order: collect reads trigger's tasks.json
        (argv,) = ran[name]
        done = run_example(farm, argv, tmp_path)
        assert normalised(done.stdout) == normalised(shown_output(shown[name])), (name, done.stdout)
    shards = json.loads((tmp_path / "summary.json").read_text())["shards"]
    assert [s["name"] for s in shards] == ["hello:0:2", "hello:1:2"]
