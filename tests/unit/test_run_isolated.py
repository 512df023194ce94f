"""The slave's ``run_isolated`` and ``isolate_archive`` commands (slave/commands/isolated.py), run
as a SlaveBuilder runs them, against the real Isolate API (master/cas/api.py on a real file store)
served on a loopback port, with a build grant as their credentials: real trees, real processes,
timers on an injected clock."""

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from buildfarm.common import cascache, isolateclient
from buildfarm.master.cas import grants
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.settings import CASSettings
from buildfarm.slave.commands.isolated import (
    CACHE_DIR,
    CACHE_LOCK,
    ISOLATE_ERROR_RC,
    LOCK_POLL_S,
    RUNS_DIR,
    IsolateArchive,
    RunIsolated,
    makeRunDir,
    substitute,
    sweepStaleRuns,
)
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture
from fixtures.slavecommand import CommandRun

SECRET = b"g" * 32
NS = "default-gzip"
DEADLINE_S = 20.0
master = memory_master_fixture(MASTER_CFG)


class Served:
    """The real API on 127.0.0.1:<port>, and credentials for it."""

    def __init__(self, master, port):
        self.master = master
        self.port = port
        self.url = f"http://127.0.0.1:{port.getHost().port}"

    def auth(self, kinds=("read", "write"), namespace=NS) -> str:
        return "Bearer " + grants.mint(SECRET, namespace, kinds, 3600, self.master.reactor, "test")

    def client(self, namespace=NS) -> isolateclient.IsolateServer:
        return isolateclient.IsolateServer(self.url, namespace, reactor=reactor,
                                           headers={"Authorization": self.auth()})


@pytest.fixture
def served(master, tmp_path):
    pool = ThreadPool(minthreads=1, maxthreads=4, name="run-isolated-test")
    pool.start()
    settings = CASSettings(inline_max_bytes=100, retrieve_inline_max_bytes=1000, upload_secret=SECRET)
    store = FileStore(str(tmp_path / "store"), reactor, pool)
    api = IsolateAPI(master, store, settings, master.reactor, pool)
    port = reactor.listenTCP(0, Site(api.resource()), interface="127.0.0.1")
    yield Served(master, port)
    port.stopListening()
    pool.stop()


async def archive(served, *paths) -> list[str]:
    server = served.client()
    try:
        result = await isolateclient.archive(server, [str(p) for p in paths], reactor=reactor)
    finally:
        await server.close()
    return [digest for digest, _ in result.items]


async def tree_with_command(served, root, files: dict[str, str], command=None, relative_cwd=None,
                            read_only=None) -> str:
    """The hash of an .isolated holding ``files`` (through an include) and the run settings."""
    tree = root / "tree"
    for rel, content in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text(content)
    [files_hash] = await archive(served, tree)
    doc = {"algo": "sha-1", "version": "1.4", "includes": [files_hash]}
    if command is not None:
        doc["command"] = command
    if relative_cwd is not None:
        doc["relative_cwd"] = relative_cwd
    if read_only is not None:
        doc["read_only"] = read_only
    root_file = root / "root.isolated"
    root_file.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")))
    [root_hash] = await archive(served, root_file)
    return root_hash


async def download(served, digest, target) -> None:
    server = served.client()
    cache = cascache.DiskCache(str(target) + "-cache", cascache.CachePolicies(), reactor)
    try:
        await isolateclient.download_tree(server, digest, str(target), cache, reactor=reactor)
    finally:
        await server.close()


def run_args(served, isolated, **extra) -> dict:
    return {"isolated": isolated, "namespace": NS, "server": served.url, "auth_header": served.auth(),
            "io_timeout": None, **extra}


async def eventually(check, what: str) -> None:
    end = reactor.seconds() + DEADLINE_S
    while not check():
        assert reactor.seconds() < end, f"timed out waiting for {what}"
        await task.deferLater(reactor, 0.02, lambda: None)


def said(run, text: str, key: str = "stdout") -> bool:
    """Whether the command sent ``text`` (its buffered output flushed first: the batcher's
    delay runs on the test's clock)."""
    run.command.flushStatus()
    return text in run.text(key)


def runs_left(tmp_path) -> list[str]:
    runs = tmp_path / RUNS_DIR
    return os.listdir(runs) if runs.exists() else []


@pytest_twisted.ensureDeferred
async def test_the_trees_command_runs_in_its_relative_cwd_and_its_outputs_come_back(served, tmp_path):
    script = ("import os, sys\n"
              "open(os.path.join(sys.argv[1], 'result.txt'), 'w').write(open('data.txt').read().upper())\n")
    digest = await tree_with_command(served, tmp_path, {"sub/data.txt": "hello", "sub/write.py": script},
                                     command=[sys.executable, "write.py", "${ISOLATED_OUTDIR}"],
                                     relative_cwd="sub")
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == 0, run.text("stderr") + run.text("header")
    output = run.value("isolated_output")
    await download(served, output, tmp_path / "outputs")
    assert (tmp_path / "outputs" / "result.txt").read_text() == "HELLO"
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_the_step_command_overrides_the_trees_with_the_outdir_substituted(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a.txt": "A"}, command=["false"])
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(
        served, digest, command=["/bin/sh", "-c", 'cat a.txt > "$ISOLATED_OUTDIR/$1"; echo "$2"', "sh"],
        extra_args=["copy.txt", "out=${ISOLATED_OUTDIR}"], env={"EXTRA": "1"})).run()
    assert run.rc == 0, run.text("stderr")
    assert "out=" + str(tmp_path / RUNS_DIR) in run.text("stdout")
    await download(served, run.value("isolated_output"), tmp_path / "outputs")
    assert (tmp_path / "outputs" / "copy.txt").read_text() == "A"


@pytest_twisted.ensureDeferred
async def test_a_read_only_tree_is_mapped_read_only_and_the_run_dir_is_deleted_after(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a.txt": "A"}, read_only=1,
                                     command=["/bin/sh", "-c", "stat -c '%a %h' a.txt"])
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == 0
    assert run.text("stdout") == "444 2\n"  # read-only, and a hardlink to the slave's cache
    assert "no outputs" in run.text("header")
    assert "isolated_output" not in {k for u in run.updates for k in u}
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_a_second_run_of_the_same_hash_fetches_nothing(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {f"f{i}.txt": str(i) for i in range(20)},
                                     command=["true"])
    first = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    second = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert first.rc == second.rc == 0
    cold = first.value("isolate_stats")["download"]
    warm = second.value("isolate_stats")["download"]
    assert cold["downloaded"] == 22 and cold["misses"] == 22  # 20 files, 2 .isolated
    assert warm["downloaded"] == 0 and warm["misses"] == 0 and warm["hits"] == warm["checked"] == 22
    assert "downloaded 0 items" in second.text("header")


@pytest_twisted.ensureDeferred
async def test_two_runs_at_once_share_the_cache_safely(served, tmp_path):
    first = await tree_with_command(served, tmp_path / "one", {f"a{i}": f"a{i}" for i in range(30)},
                                    command=["true"])
    second = await tree_with_command(served, tmp_path / "two", {f"b{i}": f"b{i}" for i in range(30)},
                                     command=["true"])
    runs = [CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest))
            for digest in (first, second)]
    await defer.gatherResults([defer.ensureDeferred(r.run()) for r in runs])
    assert [r.rc for r in runs] == [0, 0]
    cache = cascache.DiskCache(str(tmp_path / CACHE_DIR), cascache.CachePolicies(), reactor)
    assert len(cache) == 64 and all(cache.has(d) for d in cache.digests())


def trap_term(marker: str) -> list[str]:
    """A shell that says ``ready``, reports SIGTERM and goes on until SIGKILL."""
    return ["/bin/sh", "-c", f"trap 'echo {marker}' TERM; echo ready; while :; do sleep 0.05; done"]


@pytest.mark.parametrize("limit, reason", [("hard_timeout", "timeout"),
                                           ("io_timeout", "timeout_without_output")])
@pytest_twisted.ensureDeferred
async def test_a_timeout_sends_sigterm_then_sigkill_after_the_grace_period(served, tmp_path, limit, reason):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=trap_term("got-TERM"))
    clock = task.Clock()
    run = CommandRun(tmp_path, RunIsolated, clock=clock, **run_args(
        served, digest, **{"hard_timeout": None, limit: 10, "grace_period": 5}))
    done = run.command.start()
    await eventually(lambda: said(run, "ready"), "the command to start")
    clock.advance(10)
    await eventually(lambda: said(run, "got-TERM"), "SIGTERM")
    clock.advance(4.9)
    assert not done.called  # still in its grace period
    clock.advance(0.2)
    await eventually(lambda: done.called, "SIGKILL")
    assert run.rc == -1 and run.value("failure_reason") == reason
    assert f"process killed by signal {int(signal.SIGKILL)}" in run.text("header")
    await eventually(lambda: runs_left(tmp_path) == [], "the run dir to go")


@pytest_twisted.ensureDeferred
async def test_an_interrupt_kills_the_command_after_its_grace_period(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=trap_term("got-TERM"))
    clock = task.Clock()
    run = CommandRun(tmp_path, RunIsolated, clock=clock, **run_args(served, digest, grace_period=3))
    done = run.command.start()
    await eventually(lambda: said(run, "ready"), "the command to start")
    run.command.interrupt("stop it")
    await eventually(lambda: said(run, "got-TERM"), "SIGTERM")
    clock.advance(3.1)
    await eventually(lambda: done.called, "SIGKILL")
    assert run.rc == -1 and "command interrupted: stop it, attempting to kill" in run.text("header")
    await eventually(lambda: runs_left(tmp_path) == [], "the run dir to go")


@pytest_twisted.ensureDeferred
async def test_an_unknown_hash_is_a_clear_failure(served, tmp_path):
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, "0" * 40)).run()
    assert run.rc == ISOLATE_ERROR_RC
    assert "run_isolated failed:" in run.text("stderr") and "0" * 40 in run.text("stderr")
    assert "Traceback" not in run.text("stderr") + run.text("header")
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_an_unreachable_server_is_a_clear_failure(served, tmp_path):
    args = run_args(served, "0" * 40, server="http://127.0.0.1:1")
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **args).run()
    assert run.rc == ISOLATE_ERROR_RC and "127.0.0.1:1" in run.text("stderr")
    assert "Traceback" not in run.text("stderr")


@pytest_twisted.ensureDeferred
async def test_a_grant_without_the_scope_is_a_clear_failure(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["true"])
    args = run_args(served, digest, auth_header=served.auth(namespace="sha256-gzip"))
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **args).run()
    assert run.rc == ISOLATE_ERROR_RC and "403" in run.text("stderr")
    assert args["auth_header"].split()[1] not in run.text("stderr") + run.text("header")


@pytest_twisted.ensureDeferred
async def test_a_full_disk_is_a_clear_failure_with_the_numbers(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a" * 1000}, command=["true"])
    args = run_args(served, digest, cache_policies={"min_free_space": 2 ** 62})
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **args).run()
    assert run.rc == ISOLATE_ERROR_RC and "not enough space" in run.text("stderr")
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_a_tree_without_a_command_needs_one_from_the_step(served, tmp_path):
    [digest] = await archive(served, _write(tmp_path / "plain", {"a": "a"}))
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == ISOLATE_ERROR_RC and "has no command and the step gives none" in run.text("stderr")


def test_bad_arguments_are_refused_naming_them(tmp_path):
    with pytest.raises(Exception, match="'isolated' must be a lower-case hex digest"):
        CommandRun(tmp_path, RunIsolated, isolated="XYZ", server="http://x")
    with pytest.raises(Exception, match="'cache_policies' has unknown keys"):
        CommandRun(tmp_path, RunIsolated, isolated="a" * 40, server="http://x", cache_policies={"size": 1})
    with pytest.raises(Exception, match="'server' must be an http"):
        CommandRun(tmp_path, RunIsolated, isolated="a" * 40, server="file:///x")


def test_the_outdir_and_executable_suffix_are_substituted():
    assert substitute("${ISOLATED_OUTDIR}/x${EXECUTABLE_SUFFIX}", "/o") == "/o/x"
    assert substitute("${HOME}", "/o") == "${HOME}"


def _write(root, files: dict[str, str]):
    for rel, content in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    return root


@pytest_twisted.ensureDeferred
async def test_isolate_archive_reports_the_hash_of_a_build_dir_without_the_blacklisted(served, tmp_path):
    build = _write(tmp_path / "builder" / "build" / "out", {"bin/tool": "#!/bin/sh\n", "x.pyc": "junk"})
    os.chmod(build / "bin" / "tool", 0o755)
    run = await CommandRun(tmp_path, IsolateArchive, clock=reactor, path="out", namespace=NS,
                           server=served.url, auth_header=served.auth(), blacklist=[r"\.pyc$"]).run()
    assert run.rc == 0, run.text("stderr")
    await download(served, run.value("isolated"), tmp_path / "copy")
    assert (tmp_path / "copy" / "bin" / "tool").read_text() == "#!/bin/sh\n"
    assert os.stat(tmp_path / "copy" / "bin" / "tool").st_mode & stat.S_IXUSR
    assert not (tmp_path / "copy" / "x.pyc").exists()
    assert run.value("isolate_stats")["upload"]["uploaded"] == 2  # the file and the .isolated


@pytest_twisted.ensureDeferred
async def test_isolate_archive_of_a_missing_directory_is_a_clear_failure(served, tmp_path):
    run = await CommandRun(tmp_path, IsolateArchive, clock=reactor, path="nothing", namespace=NS,
                           server=served.url, auth_header=served.auth()).run()
    assert run.rc == ISOLATE_ERROR_RC and "is not a directory" in run.text("stderr")


@pytest_twisted.ensureDeferred
async def test_a_run_waits_for_the_cache_another_holds_and_an_interrupt_ends_the_wait(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["true"])
    holder = os.open(tmp_path / CACHE_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another run (or isolateserver download) is fetching
    try:
        clock = task.Clock()
        run = CommandRun(tmp_path, RunIsolated, clock=clock, **run_args(served, digest))
        done = run.command.start()
        await eventually(lambda: said(run, "waiting for the slave's cache", "header"), "the wait")
        clock.advance(LOCK_POLL_S * 5)
        assert not done.called
        run.command.interrupt("stop")
        clock.advance(LOCK_POLL_S)
        await eventually(lambda: done.called, "the run to end")
    finally:
        os.close(holder)
    assert run.rc == ISOLATE_ERROR_RC
    assert "interrupted while waiting for the slave's cache" in run.text("stderr")
    assert runs_left(tmp_path) == []


@pytest_twisted.ensureDeferred
async def test_a_run_goes_on_once_the_cache_is_free(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["true"])
    holder = os.open(tmp_path / CACHE_LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(holder, fcntl.LOCK_EX)
    clock = task.Clock()
    run = CommandRun(tmp_path, RunIsolated, clock=clock, **run_args(served, digest))
    done = run.command.start()
    await eventually(lambda: said(run, "waiting for the slave's cache", "header"), "the wait")
    os.close(holder)
    clock.advance(LOCK_POLL_S)
    await eventually(lambda: done.called, "the run to end")
    assert run.rc == 0


KILLED_MID_RUN = """
import os, signal, sys
from buildfarm.slave.commands.isolated import makeRunDir
rundir, _ = makeRunDir(sys.argv[1])
tree = os.path.join(rundir, "run", "sub")
os.makedirs(tree)
for name in ("a.txt", "b.txt"):
    with open(os.path.join(tree, name), "w") as f:
        f.write(name)
    os.chmod(os.path.join(tree, name), 0o444)
os.chmod(tree, 0o555)  # read_only 2 maps whole directories read-only
print(rundir, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def killed_slave_run(basedir) -> str:
    """The run directory of a slave process SIGKILLed mid-run (read-only files inside)."""
    child = subprocess.run([sys.executable, "-c", KILLED_MID_RUN, str(basedir)], capture_output=True,
                           text=True, timeout=DEADLINE_S)
    assert child.returncode == -signal.SIGKILL, child.stderr
    return child.stdout.strip()


def test_a_sweep_removes_the_run_dirs_of_a_killed_slave_but_not_a_live_run(tmp_path):
    stale = killed_slave_run(tmp_path)
    lockless = tmp_path / RUNS_DIR / "run-before-run-locks"
    (lockless / "run").mkdir(parents=True)
    live, lock = makeRunDir(str(tmp_path))  # another builder's run of this slave, in progress
    try:
        os.makedirs(os.path.join(live, "run"))
        assert sorted(sweepStaleRuns(str(tmp_path))) == sorted([stale, str(lockless)])
        assert runs_left(tmp_path) == [os.path.basename(live)]
        assert os.path.isdir(os.path.join(live, "run"))
    finally:
        os.close(lock)
    assert sweepStaleRuns(str(tmp_path)) == [live]  # once its run is gone, it is stale too


def test_a_sweep_without_run_dirs_does_nothing(tmp_path):
    assert sweepStaleRuns(str(tmp_path)) == []


@pytest_twisted.ensureDeferred
async def test_a_run_sweeps_what_a_killed_slave_left_and_not_a_run_in_progress(served, tmp_path):
    stale = killed_slave_run(tmp_path)
    live, lock = makeRunDir(str(tmp_path))
    try:
        digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["true"])
        run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
        assert run.rc == 0, run.text("stderr")
        assert not os.path.exists(stale)
        assert runs_left(tmp_path) == [os.path.basename(live)]
    finally:
        os.close(lock)


@pytest_twisted.ensureDeferred
async def test_a_command_missing_from_the_path_is_a_clear_failure_not_a_traceback(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["no-such-command-here", "x"])
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == ISOLATE_ERROR_RC
    assert "the command 'no-such-command-here' is not found on the PATH" in run.text("stderr")
    assert "Traceback" not in run.text("stderr") + run.text("header")
    assert runs_left(tmp_path) == []


@pytest.mark.parametrize("command, says", [
    (["./missing.sh"], "the command './missing.sh' is not in the tree"),
    (["./run.sh"], "the command './run.sh' is not executable"),
])
@pytest_twisted.ensureDeferred
async def test_a_tree_command_missing_or_not_executable_is_a_clear_failure(served, tmp_path, command, says):
    digest = await tree_with_command(served, tmp_path, {"run.sh": "#!/bin/sh\necho hi\n"}, command=command)
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == ISOLATE_ERROR_RC and says in run.text("stderr")
    assert "Traceback" not in run.text("stderr")


@pytest_twisted.ensureDeferred
async def test_an_executable_of_the_tree_runs_by_its_relative_path(served, tmp_path):
    tree = _write(tmp_path / "exe", {"bin/run.sh": "#!/bin/sh\necho from-the-tree\n"})
    os.chmod(tree / "bin" / "run.sh", 0o755)
    [digest] = await archive(served, tree)
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor,
                           **run_args(served, digest, command=["./bin/run.sh"])).run()
    assert run.rc == 0 and run.text("stdout") == "from-the-tree\n"


@pytest_twisted.ensureDeferred
async def test_a_runs_lock_that_cannot_be_opened_is_a_clear_failure_not_a_traceback(served, tmp_path):
    digest = await tree_with_command(served, tmp_path, {"a": "a"}, command=["true"])
    (tmp_path / RUNS_DIR).mkdir()
    (tmp_path / "cas-runs.lock").mkdir()  # the sweep logs it and goes on; making the run dir fails
    run = await CommandRun(tmp_path, RunIsolated, clock=reactor, **run_args(served, digest)).run()
    assert run.rc == ISOLATE_ERROR_RC
    assert "cas-runs.lock" in run.text("stderr") and "Traceback" not in run.text("stderr")
