"""The ``swarming`` command line's own logic: help, flags, the ``tasks/new`` bodies built from them
(shards, optional dimensions), collect's live printing, summary JSON and exit status, and
reproduce's local command (its runs against a real master and slaves are in
tests/integration/test_swarming_cli_e2e.py)."""

from __future__ import annotations

import base64
import io
import json
import uuid

import pytest
from twisted.internet import defer, task

from buildfarm.common import swarming
from buildfarm.common.swarmingclient import SwarmingServerError, server_message
from fixtures import docexamples

URL = "http://127.0.0.1:8010"


def parsed(*argv: str):
    """The flags of ``swarming ARGV`` after the checks run before anything is sent."""
    args, status = swarming._parse(list(argv))
    assert status == 0 and args is not None
    return args


def bodies(*argv: str) -> list[tuple[str, dict]]:
    return swarming.trigger_bodies(parsed("trigger", "-S", URL, *argv), URL)


@pytest.fixture(autouse=True)
def no_environment(monkeypatch):
    for name in ("SWARMING_SERVER", "SWARMING_AUTH_TOKEN", "SWARMING_TASK_ID", "ISOLATE_SERVER"):
        monkeypatch.delenv(name, raising=False)


# -- help and flags ---------------------------------------------------------------------------

def test_help_lists_the_commands_as_the_docs_show(capsys):
    (argv,) = docexamples.commands("tasks.md", "cli-help")
    assert argv[0] == "swarming"
    assert swarming.run(argv[1:]) == 0
    shown = docexamples.example("tasks.md", "cli-help").split("\n", 1)[1]
    assert capsys.readouterr().out == shown


def test_help_of_a_command_shows_its_flags(capsys):
    assert swarming.run(["help", "trigger"]) == 0
    out = capsys.readouterr().out
    for flag in ("--dimension", "--optional-dimension", "--isolated", "--isolate-server", "--namespace",
                 "--raw-cmd", "--env", "--env-prefix", "--idempotent", "--hard-timeout", "--io-timeout",
                 "--expiration", "--priority", "--task-name", "--tags", "--user", "--named-cache", "--output",
                 "--secret-bytes-path", "--wait-for-capacity", "--shards", "--dump-json", "--swarming",
                 "--auth-token"):
        assert flag in out, flag
    assert swarming.run(["collect", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--json", "--timeout", "--decorate", "--print-status-updates", "--task-summary-json",
                 "--task-output-dir", "--task-output-stdout"):
        assert flag in out, flag


def test_no_command_lists_them_on_stderr_with_status_2(capsys):
    assert swarming.run([]) == 2
    assert "commands:" in capsys.readouterr().err


S = ("-S", URL)
RAW = ("--raw-cmd", "--", "true")


@pytest.mark.parametrize("argv, message", [
    (["trigger", "-d", "pool", "ci", *RAW], "-S/--swarming URL is required"),
    (["trigger", "-S", "ftp://x", "-d", "pool", "ci", *RAW],
     "-S 'ftp://x' is not an http:// or https:// URL"),
    (["trigger", *S, *RAW], "-d pool NAME is required, once"),
    (["trigger", *S, "-d", "pool", "a", "-d", "pool", "b", *RAW], "-d pool NAME is required, once"),
    (["trigger", *S, "-d", "pool", "ci", "-d", "bad key", "x", *RAW], "'bad key' is not a dimension key"),
    (["trigger", *S, "-d", "pool", "ci"], "give a command after -- (with --raw-cmd), or -s/--isolated HASH"),
    (["trigger", *S, "-d", "pool", "ci", "--", "true"], "are a command only with --raw-cmd"),
    (["trigger", *S, "-d", "pool", "ci", "--raw-cmd"], "--raw-cmd needs a command after --"),
    (["trigger", *S, "-d", "pool", "ci", "--priority", "256", *RAW], "--priority must be 0..255, not 256"),
    (["trigger", *S, "-d", "pool", "ci", "--tags", "notag", *RAW], "--tags 'notag' is not KEY:VALUE"),
    (["trigger", *S, "-d", "pool", "ci", "-e", "1X", "y", *RAW], "'1X' is not an environment variable name"),
    (["trigger", *S, "-d", "pool", "ci", "-s", "xyz"], "-s: 'xyz' is not a sha-1 digest"),
    (["trigger", *S, "-d", "pool", "ci", "--shards", "0", *RAW], "'0' is not a whole number >= 1"),
    (["trigger", *S, "-d", "pool", "ci", "--hard-timeout", "1h", *RAW],
     "'1h' is not a whole number of seconds"),
    (["trigger", *S, "-d", "pool", "ci", "--optional-dimension", "gpu", "nv", "0", *RAW],
     "'0' is not a whole number of seconds >= 1"),
    (["trigger", *S, "-d", "pool", "ci", "--optional-dimension", "gpu", "nv", "900", "--expiration", "600",
      *RAW], "900 s is not before --expiration 600 s"),
    (["trigger", *S, "-d", "pool", "ci", "--secret-bytes-path", "/nonexistent/secret", *RAW],
     "--secret-bytes-path: No such file or directory: /nonexistent/secret"),
    (["trigger", *S, "-d", "pool", "ci", "--shards", "2", "-e", "GTEST_SHARD_INDEX", "1", *RAW],
     "--shards sets GTEST_SHARD_INDEX"),
    (["collect", *S], "give either task ids or --json FILE"),
    (["collect", *S, "--json", "t.json", "1230"], "give either task ids or --json FILE"),
    (["collect", *S, "12G0"], "'12G0' is not a task id"),
    (["collect", *S, "--timeout", "-1", "1230"], "'-1' is not a number of seconds >= 0"),
    (["collect", *S, "--task-output-stdout", "file", "1230"], "invalid choice: 'file'"),
    (["collect", *S, "--json", "/nonexistent/t.json"], "--json: No such file or directory"),
    (["cancel", *S], "the following arguments are required: TASK_ID"),
    (["bots", *S, "--dead-only", "--keep-dead"], "not allowed with argument"),
    (["query", *S, "-L", "0", "tasks/list"], "'0' is not a whole number >= 1"),
    (["reproduce", *S, "nothex"], "'nothex' is not a task id"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["help", "frobnicate"], "no command 'frobnicate'"),
])
def test_bad_flags_are_one_line_and_status_2(argv, message, capsys):
    assert swarming.run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("swarming: ") and message in err, err


def test_a_dump_that_is_not_one_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "t.json").write_text('{"tasks": 3}')
    assert swarming.run(["collect", *S, "--json", str(tmp_path / "t.json")]) == 2
    assert "is not a trigger --dump-json file" in capsys.readouterr().err


def test_the_server_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SWARMING_SERVER", "http://127.0.0.1:9")
    monkeypatch.setenv("SWARMING_AUTH_TOKEN", "tok")
    args = parsed("bots")
    assert (args.swarming, args.auth_token) == ("http://127.0.0.1:9", "tok")


# -- the tasks/new bodies ----------------------------------------------------------------------

def test_the_request_body_is_what_the_flags_say(tmp_path, monkeypatch):
    (tmp_path / "secret").write_bytes(b"\x00key")
    monkeypatch.setenv("SWARMING_TASK_ID", "abc0")
    [(name, body)] = bodies(
        "-d", "pool", "ci", "-d", "gpu", "nvidia|amd", "-d", "os", "Linux", "-T", "unit tests",
        "-e", "PYTHONHASHSEED", "0", "--env-prefix", "PATH", "bin", "--env-prefix", "PATH", "tools",
        "--named-cache", "pip", "cache/pip", "--output", "report.txt", "--idempotent",
        "--hard-timeout", "1200", "--io-timeout", "300", "--grace-period", "10", "--expiration", "900",
        "--priority", "100",
        "--tags", "purpose:ci", "--user", "alice@example.org", "--relative-cwd", "src",
        "--secret-bytes-path", str(tmp_path / "secret"), "--wait-for-capacity",
        "--raw-cmd", "--", "python3", "-m", "pytest", "-q")
    assert name == "unit tests"
    uuid.UUID(body.pop("request_uuid"))
    [task_slice] = body.pop("task_slices")
    assert body == {"name": "unit tests", "parent_task_id": "abc0", "priority": 100, "realm": None,
                    "pool_task_template": "AUTO", "tags": ["purpose:ci"], "user": "alice@example.org"}
    assert (task_slice["expiration_secs"], task_slice["wait_for_capacity"]) == (900, True)
    assert task_slice["properties"] == {
        "command": ["python3", "-m", "pytest", "-q"], "extra_args": [], "relative_cwd": "src",
        "dimensions": [{"key": "gpu", "value": "nvidia|amd"}, {"key": "os", "value": "Linux"},
                       {"key": "pool", "value": "ci"}],
        "env": [{"key": "PYTHONHASHSEED", "value": "0"}],
        "env_prefixes": [{"key": "PATH", "value": ["bin", "tools"]}],
        "caches": [{"name": "pip", "path": "cache/pip"}], "cipd_input": None,
        "execution_timeout_secs": 1200, "grace_period_secs": 10, "idempotent": True, "io_timeout_secs": 300,
        "outputs": ["report.txt"], "inputs_ref": None,
        "secret_bytes": base64.b64encode(b"\x00key").decode()}


def test_unset_flags_give_swarming_pys_defaults_and_explicit_nulls():
    [(name, body)] = bodies("-d", "pool", "ci", "-d", "os", "Linux", *RAW)
    assert name == "None/os=Linux_pool=ci"  # as swarming.py names a task of an anonymous caller
    assert (body["user"], body["priority"], body["parent_task_id"], body["tags"]) == (None, 200, "", [])
    [task_slice] = body["task_slices"]
    properties = task_slice["properties"]
    assert task_slice["expiration_secs"] == 21600 and task_slice["wait_for_capacity"] is False
    assert (properties["execution_timeout_secs"], properties["io_timeout_secs"],
            properties["grace_period_secs"]) == (3600, 1200, 30)
    assert properties["inputs_ref"] is None and properties["secret_bytes"] is None
    assert properties["relative_cwd"] is None and properties["idempotent"] is False


def test_an_isolated_tree_with_extra_args_runs_the_trees_command():
    tree = "a" * 40
    [(name, body)] = bodies("-d", "pool", "ci", "-s", tree, "--", "--gtest_filter=Foo.*")
    properties = body["task_slices"][0]["properties"]
    assert properties["command"] is None and properties["extra_args"] == ["--gtest_filter=Foo.*"]
    assert properties["inputs_ref"] == {"isolated": tree, "isolatedserver": URL, "namespace": "default-gzip"}
    assert name == f"None/pool=ci/{tree}"
    [(_, other)] = bodies("-d", "pool", "ci", "-s", tree, "-I", "http://127.0.0.1:9",
                          "--raw-cmd", "--", "run.sh")
    assert other["task_slices"][0]["properties"]["inputs_ref"]["isolatedserver"] == "http://127.0.0.1:9"
    assert other["task_slices"][0]["properties"]["command"] == ["run.sh"]


def test_shards_each_get_their_index_and_the_total_in_their_env():
    made = bodies("-d", "pool", "ci", "-T", "suite", "-e", "A", "1", "--shards", "3", *RAW)
    assert [name for name, _ in made] == ["suite:0:3", "suite:1:3", "suite:2:3"]
    for index, (name, body) in enumerate(made):
        assert body["name"] == name
        assert body["task_slices"][0]["properties"]["env"] == [
            {"key": "A", "value": "1"}, {"key": "GTEST_SHARD_INDEX", "value": str(index)},
            {"key": "GTEST_TOTAL_SHARDS", "value": "3"}]
    assert len({body["request_uuid"] for _, body in made}) == 3


def test_one_shard_has_no_shard_variables():
    [(name, body)] = bodies("-d", "pool", "ci", "-T", "suite", *RAW)
    assert name == "suite" and body["task_slices"][0]["properties"]["env"] == []


def test_optional_dimensions_make_earlier_slices_with_expirations_as_deltas():
    made = bodies("-d", "pool", "ci", "--optional-dimension", "gpu", "nv", "60",
                  "--optional-dimension", "os", "Linux", "300", "--expiration", "600", *RAW)
    [(_, body)] = made
    slices = [(s["expiration_secs"], [(d["key"], d["value"]) for d in s["properties"]["dimensions"]])
              for s in body["task_slices"]]
    assert slices == [(60, [("gpu", "nv"), ("os", "Linux"), ("pool", "ci")]),
                      (240, [("os", "Linux"), ("pool", "ci")]),
                      (300, [("pool", "ci")])]


def test_the_last_slice_waits_at_least_a_minute():
    [(_, body)] = bodies("-d", "pool", "ci", "--optional-dimension", "gpu", "nv", "590",
                         "--expiration", "600", *RAW)
    assert [s["expiration_secs"] for s in body["task_slices"]] == [590, 60]


def test_collect_waits_for_the_longest_expiration_and_hard_timeout():
    [(_, body)] = bodies("-d", "pool", "ci", "--optional-dimension", "gpu", "nv", "60", "--expiration", "600",
                         "--hard-timeout", "100", *RAW)
    assert swarming.collect_timeout([body]) == 600 + 100 + 10


def test_trigger_prints_each_task_and_dumps_what_collect_reads(tmp_path):
    args = parsed("trigger", *S, "-d", "pool", "ci", "-T", "t", "--shards", "2", *RAW)
    server = ScriptedServer({})
    out = io.StringIO()
    dump = defer.ensureDeferred(swarming.trigger(server, args, out)).result
    assert out.getvalue() == "1a0 t:0:2\n2a0 t:1:2\n"
    assert dump == {"base_task_name": "t", "request": server.sent[0], "tasks": {
        "t:0:2": {"shard_index": 0, "task_id": "1a0", "view_url": f"{URL}/tasks/1a0"},
        "t:1:2": {"shard_index": 1, "task_id": "2a0", "view_url": f"{URL}/tasks/2a0"}}}
    (tmp_path / "t.json").write_text(json.dumps(dump))
    assert swarming._tasks_of_dump(str(tmp_path / "t.json")) == (["1a0", "2a0"], server.sent[0])


# -- collect ------------------------------------------------------------------------------------

class ScriptedServer:
    """Answers as a Swarming server would, from a script: for each task, the successive
    ``(state, output so far)`` its stdout polls see, then its result."""

    def __init__(self, script: dict[str, list[tuple[str, bytes]]], results: dict[str, dict] | None = None):
        self.script = {k: list(v) for k, v in script.items()}
        self.results = results or {}
        self.sent: list[dict] = []
        self.reads: list[tuple[str, int]] = []
        self.url = URL

    async def new_task(self, body: dict) -> dict:
        self.sent.append(body)
        return {"task_id": f"{len(self.sent)}a0", "request": body}

    async def stdout(self, task_id: str, offset: int = 0) -> dict:
        self.reads.append((task_id, offset))
        steps = self.script[task_id]
        state, output = steps.pop(0) if len(steps) > 1 else steps[0]
        return {"state": state, "output": output[offset:].decode("utf-8", "replace")}

    async def result(self, task_id: str, performance_stats: bool = False) -> dict:
        return {"task_id": task_id, "state": "COMPLETED", "exit_code": "0", **self.results.get(task_id, {})}


def collector(server, ids, clock, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    return swarming.Collector(server, ids, clock, out, err, **kwargs), out, err


def test_collect_prints_whole_lines_as_soon_as_they_arrive():
    clock = task.Clock()
    server = ScriptedServer({"a0": [("PENDING", b""), ("RUNNING", b"first\nsec"),
                                    ("RUNNING", b"first\nsecond\n"), ("COMPLETED", b"first\nsecond\nlast")]})
    job, out, _ = collector(server, ["a0"], clock)
    done = defer.ensureDeferred(job.collect())
    assert out.getvalue() == ""  # pending
    clock.advance(swarming.POLL_FIRST_S * swarming.POLL_GROWTH)
    assert out.getvalue() == "first\n"  # the partial line waits
    clock.advance(swarming.POLL_FIRST_S)
    assert out.getvalue() == "first\nsecond\n"
    clock.advance(swarming.POLL_FIRST_S)
    [shard] = done.result
    assert out.getvalue() == "first\nsecond\nlast\n"  # the rest once the task has ended
    assert shard.text == "first\nsecond\nlast" and shard.offset == len(b"first\nsecond\nlast")
    assert [offset for _, offset in server.reads] == [0, 0, 9, 13, 17]  # each read from where it stopped


def test_a_read_that_ends_inside_a_character_leaves_it_for_the_next():
    clock = task.Clock()
    text = "héllo\n".encode()
    server = ScriptedServer({"a0": [("RUNNING", text[:2]), ("COMPLETED", text)]})
    job, out, _ = collector(server, ["a0"], clock)
    done = defer.ensureDeferred(job.collect())
    clock.advance(swarming.POLL_MAX_S)
    assert done.result[0].text == "héllo\n" and out.getvalue() == "héllo\n"


def test_decorate_names_each_lines_shard_and_ends_each_shard_with_its_outcome():
    clock = task.Clock()
    server = ScriptedServer({"a0": [("COMPLETED", b"zero\n")], "b0": [("COMPLETED", b"one\n")]},
                            {"b0": {"exit_code": "2", "bot_id": "bs2", "duration": 1.5,
                                    "created_ts": "2026-12-04T10:00:00",
                                    "started_ts": "2026-12-04T10:00:03.5"}})
    job, out, _ = collector(server, ["a0", "b0"], clock, decorate=True)
    shards = defer.ensureDeferred(job.collect()).result
    assert out.getvalue().splitlines() == [
        "[shard 0] zero", "[shard 0] a0 ended COMPLETED, exit 0",
        "[shard 1] one", "[shard 1] b0 ended COMPLETED, exit 2, on bs2, pending 3.5 s, duration 1.5 s"]
    assert swarming.exit_status(shards) == 2


def test_status_updates_go_to_stderr_and_the_timeout_ends_the_wait():
    clock = task.Clock()
    server = ScriptedServer({"a0": [("PENDING", b"")]}, {"a0": {"state": "PENDING"}})
    job, out, err = collector(server, ["a0"], clock, timeout=5, print_status=True)
    done = defer.ensureDeferred(job.collect())
    clock.pump([swarming.POLL_MAX_S] * 5)
    [shard] = done.result
    assert shard.timed_out and swarming.exit_status([shard]) == 1
    assert err.getvalue().splitlines() == [
        "swarming: shard 0 (task a0): PENDING",
        "swarming: gave up waiting for shard 0 (task a0, PENDING) after the timeout"]


def test_output_for_the_summary_only_is_not_printed():
    server = ScriptedServer({"a0": [("COMPLETED", b"quiet\n")]})
    job, out, _ = collector(server, ["a0"], task.Clock(), to_console=False)
    shards = defer.ensureDeferred(job.collect()).result
    assert out.getvalue() == ""
    assert swarming.summary(shards, with_output=True)["shards"][0]["output"] == "quiet\n"


def test_a_deduplicated_task_shows_the_output_of_the_task_it_was_served_from():
    server = ScriptedServer({"a0": [("COMPLETED", b"")], "f1": [("COMPLETED", b"from before\n")]},
                            {"a0": {"deduped_from": "f1"}})
    job, out, _ = collector(server, ["a0"], task.Clock())
    defer.ensureDeferred(job.collect())
    assert out.getvalue() == "from before\n"


def test_a_shard_the_server_refuses_fails_the_collect_with_the_servers_message():
    class Refusing(ScriptedServer):
        async def stdout(self, task_id: str, offset: int = 0) -> dict:
            if task_id == "b0":
                raise SwarmingServerError("stdout failed: HTTP 404: no task b0 (http://x)", status=404)
            return await super().stdout(task_id, offset)

    job, _, _ = collector(Refusing({"a0": [("RUNNING", b"")]}), ["a0", "b0"], task.Clock())
    failures: list = []
    defer.ensureDeferred(job.collect()).addErrback(failures.append)
    [failure] = failures
    assert failure.check(SwarmingServerError) and "no task b0" in str(failure.value)


def shard(state: str | None, exit_code: str | None = None, **extra) -> swarming.Shard:
    result = None if state is None else {"task_id": "a0", "state": state, **extra}
    if result is not None and exit_code is not None:
        result["exit_code"] = exit_code
    return swarming.Shard(0, "a0", result=result)


@pytest.mark.parametrize("shards, status", [
    ([shard("COMPLETED", "0"), shard("COMPLETED", "0")], 0),
    ([shard("COMPLETED", "0"), shard("COMPLETED", "3")], 3),
    ([shard("COMPLETED", "-9")], 1),
    ([shard("COMPLETED", "300")], 1),
    ([shard("COMPLETED")], 1),
    ([shard("TIMED_OUT", "0")], 1),
    ([shard("EXPIRED")], 1),
    ([shard("BOT_DIED")], 1),
    ([shard("KILLED", "-15")], 1),
    ([shard("NO_RESOURCE")], 1),
])
def test_exit_status_is_zero_only_when_every_shard_completed_with_exit_0(shards, status):
    assert swarming.exit_status(shards) == status


def test_the_summary_is_shaped_as_swarming_pys():
    done = shard("COMPLETED", "0", bot_id="bs1")
    done.output = ["out\n"]
    assert swarming.summary([done, shard(None)], with_output=True) == {"shards": [
        {"task_id": "a0", "state": "COMPLETED", "exit_code": "0", "bot_id": "bs1", "output": "out\n"}, None]}
    assert "output" not in swarming.summary([done], with_output=False)["shards"][0]


# -- reproduce ----------------------------------------------------------------------------------

def test_reproduce_runs_the_command_with_its_env_cwd_and_extra_args():
    properties = {"command": ["python3", "run.py", "--out=${ISOLATED_OUTDIR}"], "extra_args": ["--fast"],
                  "relative_cwd": "src",
                  "env": [{"key": "MODE", "value": "ci"}, {"key": "DROP", "value": ""}],
                  "env_prefixes": [{"key": "PATH", "value": ["bin", "tools/bin"]}]}
    local = swarming.local_run(properties, "/w", "/o", ["-k", "x"],
                               base_env={"PATH": "/usr/bin", "DROP": "1"})
    assert local.argv == ["python3", "run.py", "--out=/o", "--fast", "-k", "x"]
    assert local.cwd == "/w/src"
    assert local.env == {"PATH": "/w/bin:/w/tools/bin:/usr/bin", "MODE": "ci"}


def test_reproduce_takes_the_command_of_the_isolated_when_the_request_has_none():
    local = swarming.local_run({"command": None, "extra_args": ["a"]}, "/w", "/o", [],
                               tree_command=("sh", "t.sh"), tree_cwd="sub", base_env={})
    assert (local.argv, local.cwd) == (["sh", "t.sh", "a"], "/w/sub")
    with pytest.raises(swarming.CommandFailed, match="has no command"):
        swarming.local_run({}, "/w", "/o", [], base_env={})


# -- the client's error messages -----------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    (b'{"error": {"code": 400, "message": "2 problems", "errors": [{"message": "name is required"}, '
     b'{"message": "priority must be 0..255"}]}}', "2 problems; name is required; priority must be 0..255"),
    (b'{"error": {"message": "no task 10"}}', "no task 10"),
    (b"<html>\n<b>Bad\n gateway</b>", "<html> <b>Bad gateway</b>"),
    (b"", "(empty body)"),
])
def test_server_errors_become_one_line(body, message):
    assert server_message(body) == message
