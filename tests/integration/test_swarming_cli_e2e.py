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
