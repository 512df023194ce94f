"""What a task gets on the slave, with real processes: a master with c['cas'] and a real
``buildslave`` in pool ci.  A tree archived with ``isolateserver`` runs as a task triggered
through ``/_ah/api/swarming/v1/tasks/new`` from its hash, in its ``relative_cwd``, reading its
secret bytes from ``$LUCI_CONTEXT`` and writing into a named cache; its outputs come back as a
hash that ``isolateserver download`` fetches; a second task, without inputs, sees the cache the
first one left; terminating the bot is a recorded task that completes once the slave is gone
(docs/tasks.md, "What a task gets on the slave")."""

import base64
import json
import os
import subprocess
import sys

from fixtures.daemons import CLI_TIMEOUT_S, TEST_PASSWORD, TEST_USER, has_exited, wait_for

V1 = "/_ah/api/swarming/v1"
TASK_DEADLINE_S = 90.0
SECRET = b"e2e secret \x01\x02 bytes"
CONFIG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['cas'] = {{'upload_secret': 'e2e-cas-secret'}}
c['builders'] = []
c['schedulers'] = []
"""
TOOL = """\
import base64, json, os
secret = base64.b64decode(json.load(open(os.environ["LUCI_CONTEXT"]))["swarming"]["secret_bytes"])
counter = os.path.join("..", "cache", "counter", "runs")
runs = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
open(counter, "w").write(str(runs))
open("report.txt", "w").write(open("data.txt").read().upper())
open(os.path.join(os.environ["ISOLATED_OUTDIR"], "secret.txt"), "wb").write(secret)
print("ran in", os.path.basename(os.getcwd()), "run", runs)
"""


def config(pb_port: int, www_port: int) -> str:
    return CONFIG.format(pb_port=pb_port, www_port=www_port)


def isolateserver(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "buildfarm.common.isolateserver", *args],
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)


def server_flags(master) -> list[str]:
    return ["-I", master.url, "--namespace", "default-gzip", "--user", TEST_USER, "--password", TEST_PASSWORD]


def call(master, method: str, path: str, body=None) -> dict:
    status, data = master.request(method, V1 + path, body)
    assert status == 200, f"{method} {path}: {status} {data!r}"
    return json.loads(data)


def trigger(master, name: str, **properties) -> str:
    props = {"dimensions": [{"key": "pool", "value": "ci"}], "execution_timeout_secs": "120",
             "io_timeout_secs": "60", "grace_period_secs": "5", **properties}
    body = {"name": name, "priority": "100", "task_slices": [{"expiration_secs": "300", "properties": props}]}
    return call(master, "POST", "/tasks/new", body)["task_id"]


def finished(master, task_id: str) -> dict:
    return wait_for(lambda: (r := call(master, "GET", f"/task/{task_id}/result"))["state"]
                    not in ("PENDING", "RUNNING") and r, f"task {task_id} to end", TASK_DEADLINE_S)


def test_a_task_from_a_hash_gets_its_secret_cache_and_cwd_and_its_outputs_come_back(fleet, tmp_path):
    master = fleet.master(config=config)
    slave = fleet.slave(master, "bs1")
    master.wait_attached("bs1")
    wait_for(lambda: master.request("GET", f"{V1}/bot/bs1/get")[0] == 200, "bs1 to be a bot")

    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "data.txt").write_text("from the tree\n")
    (tree / "src" / "tool.py").write_text(TOOL)
    archived = isolateserver("archive", *server_flags(master), "--no-digest-cache", str(tree))
    assert archived.returncode == 0, archived.stderr
    digest = archived.stdout.split()[0]

    secret = base64.b64encode(SECRET).decode()
    inputs = {"isolated": digest, "isolatedserver": master.url, "namespace": "default-gzip"}
    first = trigger(master, "from a hash", command=[sys.executable, "tool.py"], relative_cwd="src",
                    inputs_ref=inputs,
                    caches=[{"name": "counter", "path": "cache/counter"}],
                    outputs=["src/report.txt", "src/never-written.txt"], secret_bytes=secret)
    result = finished(master, first)
    assert result["state"] == "COMPLETED" and result["exit_code"] == "0", result
    stdout = call(master, "GET", f"/task/{first}/stdout")["output"]
    assert stdout == "ran in src run 1\n"

    outputs = result["outputs_ref"]
    assert outputs["namespace"] == "default-gzip" and len(outputs["isolated"]) == 40
    fetched = isolateserver("download", *server_flags(master), "-s", outputs["isolated"],
                            "-t", str(tmp_path / "outputs"), "--cache", str(tmp_path / "cache"))
    assert fetched.returncode == 0, fetched.stderr
    assert (tmp_path / "outputs" / "src" / "report.txt").read_text() == "FROM THE TREE\n"
    assert (tmp_path / "outputs" / "secret.txt").read_bytes() == SECRET  # the command read them
    assert not (tmp_path / "outputs" / "src" / "never-written.txt").exists()  # missing: ignored

    # without inputs, with the same cache: the second run of the slave sees what the first left
    second = trigger(master, "the cache", command=["cat", "cache/counter/runs"],
                     caches=[{"name": "counter", "path": "cache/counter"}])
    again = finished(master, second)
    assert again["state"] == "COMPLETED" and again["exit_code"] == "0", again
    assert call(master, "GET", f"/task/{second}/stdout")["output"] == "1"

    # a relative_cwd leaving the run directory is refused before anything runs
    status, refused = master.request("POST", V1 + "/tasks/new", {
        "name": "up", "task_slices": [{"expiration_secs": "300", "properties": {
            "command": ["true"], "relative_cwd": "../up", "dimensions": [{"key": "pool", "value": "ci"}]}}]})
    assert status == 400 and b"relative_cwd" in refused

    # the secret is in no log, request or output
    request = call(master, "GET", f"/task/{first}/request")
    assert request["task_slices"][0]["properties"]["secret_bytes"] == "<REDACTED>"
    for text in (master.log_text(), slave.log_text(), stdout, json.dumps(request)):
        assert secret not in text and "e2e secret" not in text
    assert os.listdir(os.path.join(slave.basedir, "cas-runs")) == []
    assert os.listdir(os.path.join(slave.basedir, "named-caches", "counter")) == ["runs"]



def test_terminating_a_bot_is_a_task_that_completes_once_the_slave_has_finished_and_gone(fleet, tmp_path):
    master = fleet.master(config=config)
    slave = fleet.slave(master, "bs1")
    master.wait_attached("bs1")
    wait_for(lambda: master.request("GET", f"{V1}/bot/bs1/get")[0] == 200, "bs1 to be a bot")
    release = tmp_path / "release"
    os.mkfifo(release)
    busy = trigger(master, "busy", command=["cat", str(release)])
    wait_for(lambda: call(master, "GET", f"/task/{busy}/result")["state"] == "RUNNING", "the task to run")

    terminate = call(master, "POST", "/bot/bs1/terminate", {})["task_id"]
    assert call(master, "GET", f"/task/{terminate}/result")["state"] == "RUNNING"
    assert call(master, "POST", "/bot/bs1/terminate", {})["task_id"] == terminate  # asked twice: one task
    assert not has_exited(slave.pid)  # its task runs on
    writer = wait_for(lambda: open_for_writing(release), "the task to open the fifo")
    os.write(writer, b"done\n")
    os.close(writer)

    assert finished(master, busy)["state"] == "COMPLETED"
    ended = finished(master, terminate)
    assert ended["state"] == "COMPLETED" and ended["name"] == "Terminate bs1" and ended["bot_id"] == "bs1"
    assert "swarming.terminate:1" in ended["tags"]
    wait_for(lambda: slave.pid is None or has_exited(slave.pid), "the slave to exit")
    listed = call(master, "GET", "/bot/bs1/tasks")["items"]
    assert [item["name"] for item in listed] == ["Terminate bs1", "busy"]


def open_for_writing(fifo) -> int | None:
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError:
        return None
