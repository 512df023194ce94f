"""What a task gets from the slave's ``run_isolated`` (slave/commands/isolated.py and
slave/commands/namedcaches.py): a run without an input tree, ``relative_cwd``, secret bytes in a
LUCI_CONTEXT file, named caches kept between runs and never shared at once, and listed outputs
archived with the out directory.  Real processes against the real Isolate API on a loopback
port (the fixtures of test_run_isolated.py)."""
# ruff: noqa: F811 - the fixtures imported from test_run_isolated are the tests' parameters

import base64
import fcntl
import json
import os
import sys

import pytest
import pytest_twisted
from test_run_isolated import (  # noqa: F401 - pytest fixtures
    NS,
    download,
    eventually,
    master,
    runs_left,
    said,
    served,
    tree_with_command,
)
from twisted.internet import reactor, task

from buildfarm.slave.commands.base import CommandError
from buildfarm.slave.commands.isolated import LOCK_POLL_S, RunIsolated
from buildfarm.slave.commands.namedcaches import CACHES_DIR
from fixtures.slavecommand import CommandRun

SECRET = b"\x00top secret\xff"


def task_args(served, isolated=None, **extra) -> dict:
    return {"isolated": isolated, "namespace": NS, "server": served.url, "auth_header": served.auth(),
            "io_timeout": None, **extra}


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


async def run_task(tmp_path, served, clock=None, **args) -> CommandRun:
    return await CommandRun(tmp_path, RunIsolated, clock=clock or reactor, **task_args(served, **args)).run()


@pytest_twisted.ensureDeferred
async def test_a_run_without_inputs_starts_in_an_empty_dir_and_its_listed_outputs_come_back(served, tmp_path):
    code = ("import os\n"
            "assert os.listdir('.') == [], os.listdir('.')\n"
            "os.makedirs('reports')\n"
            "open('reports/junit.xml', 'w').write('<ok/>')\n"
            "open('summary.txt', 'w').write('all good')\n"
            "open(os.path.join(os.environ['ISOLATED_OUTDIR'], 'direct.txt'), 'w').write('direct')\n")
    run = await run_task(tmp_path, served, command=python(code),
                         outputs=["summary.txt", "reports", "never/written.txt"])
    assert run.rc == 0, run.text("stderr") + run.text("header")
    assert "output never/written.txt was not found (ignored)" in run.text("header")
    await download(served, run.value("isolated_output"), tmp_path / "got")
    assert (tmp_path / "got" / "summary.txt").read_text() == "all good"
    assert (tmp_path / "got" / "reports" / "junit.xml").read_text() == "<ok/>"
    assert (tmp_path / "got" / "direct.txt").read_text() == "direct"
    assert "download" not in run.value("isolate_stats")  # nothing was fetched
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_only_missing_outputs_give_no_output_hash(served, tmp_path):
    run = await run_task(tmp_path, served, command=["true"], outputs=["missing.txt"])
    assert run.rc == 0
    assert "output missing.txt was not found (ignored)" in run.text("header")
    assert "isolated_output" not in {k for u in run.updates for k in u}


@pytest_twisted.ensureDeferred
async def test_relative_cwd_is_made_inside_the_run_dir_and_overrides_the_trees(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"src/lib/a.txt": "A", "other/b.txt": "B"},
                                     command=["true"], relative_cwd="other")
    run = await run_task(tmp_path, served, isolated=digest, relative_cwd="src/lib",
                         command=["/bin/sh", "-c", "cat a.txt; echo; pwd"])
    assert run.rc == 0, run.text("stderr") + run.text("header")
    out, cwd = run.text("stdout").splitlines()
    assert out == "A" and cwd.endswith("/run/src/lib")
    empty = await run_task(tmp_path, served, relative_cwd="new/dir", command=["pwd"])
    assert empty.rc == 0 and empty.text("stdout").strip().endswith("/run/new/dir")


@pytest.mark.parametrize("args, says", [
    ({"relative_cwd": "../up"}, "'relative_cwd' must stay inside the run directory"),
    ({"relative_cwd": "/abs"}, "'relative_cwd' must be a relative path"),
    ({"outputs": ["a/../../b"]}, "'outputs' must stay inside the run directory"),
    ({"caches": [{"name": "Bad-Name", "path": "c"}]}, "'caches' has a bad cache name 'Bad-Name'"),
    ({"caches": [{"name": "a", "path": "../c"}]}, "'caches' must stay inside the run directory"),
    ({"caches": [{"name": "a", "path": "c"}, {"name": "b", "path": "c"}]}, "'caches' puts two caches at 'c'"),
    ({"command": None}, "needs an isolated hash, a command, or both"),
])
def test_bad_task_arguments_are_refused_before_anything_runs(served, tmp_path, args, says):
    with pytest.raises(CommandError, match=says):
        CommandRun(tmp_path, RunIsolated, **task_args(served, **{"command": ["true"], **args}))
    assert runs_left(tmp_path) == []


def test_bad_secret_bytes_are_refused_without_showing_them(served, tmp_path):
    with pytest.raises(CommandError) as refused:
        CommandRun(tmp_path, RunIsolated, **task_args(served, command=["true"], secret_bytes="hunter2"))
    assert "hunter2" not in str(refused.value) and "the value is not shown" in str(refused.value)


@pytest_twisted.ensureDeferred
async def test_secret_bytes_reach_the_command_in_luci_context_and_never_a_header(served, tmp_path):
    code = ("import json, os, stat, sys\n"
            "path = os.environ['LUCI_CONTEXT']\n"
            "print(path)\n"
            "print(oct(stat.S_IMODE(os.stat(path).st_mode)))\n"
            "print(json.load(open(path))['swarming']['secret_bytes'])\n")
    run = await run_task(tmp_path, served, command=python(code), secret_bytes=SECRET,
                         env={"VISIBLE": "1"})
    assert run.rc == 0, run.text("stderr") + run.text("header")
    path, mode, given = run.text("stdout").splitlines()
    assert base64.b64decode(given) == SECRET
    assert mode == "0o600"
    assert not os.path.exists(path)  # removed after the run
    encoded = base64.b64encode(SECRET).decode()
    but_stdout = [{k: v for k, v in u.items() if k != "stdout"} for u in run.updates]
    every_update = json.dumps(but_stdout, default=str)
    assert encoded not in every_update and "top secret" not in every_update


@pytest_twisted.ensureDeferred
async def test_a_run_without_secret_bytes_gets_no_luci_context_of_the_slave(served, tmp_path, monkeypatch):
    monkeypatch.setenv("LUCI_CONTEXT", "/the/slave/s/own")
    run = await run_task(tmp_path, served, command=python("import os; print(os.environ.get('LUCI_CONTEXT'))"))
    assert run.text("stdout") == "None\n"


@pytest_twisted.ensureDeferred
async def test_a_named_cache_is_kept_and_the_next_run_sees_it(served, tmp_path):
    caches = [{"name": "pip", "path": "cache/pip"}]
    first = await run_task(tmp_path, served, caches=caches, command=python(
        "open('cache/pip/wheel', 'w').write('built once')"))
    assert first.rc == 0, first.text("stderr") + first.text("header")
    assert "named cache pip at cache/pip (new)" in first.text("header")
    assert (tmp_path / CACHES_DIR / "pip" / "wheel").read_text() == "built once"
    second = await run_task(tmp_path, served, caches=caches, command=["cat", "cache/pip/wheel"])
    assert second.rc == 0 and second.text("stdout") == "built once"
    assert "named cache pip at cache/pip (kept from an earlier run)" in second.text("header")
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_a_cache_at_a_path_the_tree_has_is_a_clear_failure(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"c/x": "x"}, command=["true"])
    run = await run_task(tmp_path, served, isolated=digest, caches=[{"name": "a", "path": "c"}])
    assert run.rc != 0
    assert "named cache 'a'" in run.text("stderr") and "already in the run directory" in run.text("stderr")
    assert runs_left(tmp_path) == []


async def eventually_open_for_writing(fifo) -> int:
    """The write end of ``fifo``, once the command has opened its read end."""
    opened: list[int] = []

    def tryOpen() -> bool:
        try:
            opened.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    await eventually(tryOpen, "the command to open the fifo")
    return opened[0]


@pytest_twisted.ensureDeferred
async def test_two_runs_of_one_slave_never_share_a_named_cache_at_once(served, tmp_path):
    caches = [{"name": "shared", "path": "c"}]
    release = tmp_path / "release"
    os.mkfifo(release)  # the first run holds the cache until the test writes to it
    clock = task.Clock()
    holds = python(f"open('c/first', 'w').write('1'); open({str(release)!r}).read()")
    holder = CommandRun(tmp_path, RunIsolated, clock=reactor,
                        **task_args(served, caches=caches, command=holds))
    held = holder.command.start()
    await eventually(lambda: any((tmp_path / "cas-runs").glob("run-*/run/c/first")),
                     "the first run to hold the cache")
    waiter = CommandRun(tmp_path, RunIsolated, clock=clock, **task_args(served, caches=caches,
                                                                          command=["ls", "c"]))
    waited = waiter.command.start()
    await eventually(lambda: said(waiter, "waiting for named cache 'shared'", "header"), "the wait")
    clock.advance(LOCK_POLL_S * 3)
    assert not waited.called
    writer = await eventually_open_for_writing(release)
    os.close(writer)
    await eventually(lambda: held.called, "the first run to end")
    await eventually(lambda: (clock.advance(LOCK_POLL_S), waited.called)[1], "the second run to end")
    assert holder.rc == waiter.rc == 0
    assert waiter.text("stdout") == "first\n"


@pytest_twisted.ensureDeferred
async def test_an_interrupt_ends_the_wait_for_a_named_cache(served, tmp_path):
    (tmp_path / CACHES_DIR).mkdir()
    held = os.open(tmp_path / CACHES_DIR / "x.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        clock = task.Clock()
        run = CommandRun(tmp_path, RunIsolated, clock=clock,
                         **task_args(served, caches=[{"name": "x", "path": "x"}], command=["true"]))
        done = run.command.start()
        await eventually(lambda: said(run, "waiting for named cache 'x'", "header"), "the wait")
        run.command.interrupt("stop")
        clock.advance(LOCK_POLL_S)
        await eventually(lambda: done.called, "the run to end")
    finally:
        os.close(held)
    assert "interrupted while waiting for named cache 'x'" in run.text("stderr")
    assert runs_left(tmp_path) == []
