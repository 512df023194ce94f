"""``IsolateArchive`` then ``RunIsolated`` in builds of a real master in memory, their commands
run by a real slave builder in process, against the real Isolate API on a loopback port that
checks the build grants the steps mint (master/cas/grants.py) with the master's c['cas'] secret."""

import os

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from buildfarm.common import cascache, isolateclient
from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.cas import grants
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.plugins import steps, util
from fixtures.memorymaster import memory_master_fixture
from fixtures.stepslave import ONE_SLAVE_CFG, builder_dir, log_texts, run_step, slave_step_run

master = memory_master_fixture(ONE_SLAVE_CFG + "c['cas'] = {'upload_secret': 'pipeline-secret'}\n")


@pytest.fixture
def server_url(master, tmp_path):
    pool = ThreadPool(minthreads=1, maxthreads=4, name="isolate-pipeline-test")
    pool.start()
    store = FileStore(str(tmp_path / "store"), reactor, pool)
    api = IsolateAPI(master, store, master.config.cas, master.reactor, pool)
    port = reactor.listenTCP(0, Site(api.resource()), interface="127.0.0.1")
    yield f"http://127.0.0.1:{port.getHost().port}"
    port.stopListening()
    pool.stop()


def write_tree(root: str, files: dict[str, str]) -> None:
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(content)


async def fetch(master, url: str, digest: str, target) -> None:
    secret = master.config.cas.upload_secret
    token = grants.mint(secret, "default-gzip", ("read",), 60, master.reactor, "test")
    server = isolateclient.IsolateServer(url, "default-gzip", reactor=reactor,
                                         headers={"Authorization": f"Bearer {token}"})
    cache = cascache.DiskCache(str(target) + "-cache", cascache.CachePolicies(), reactor)
    try:
        await isolateclient.download_tree(server, digest, str(target), cache, reactor=reactor)
    finally:
        await server.close()


@pytest_twisted.ensureDeferred
async def test_a_tree_archived_by_one_step_runs_from_its_hash_in_the_next(master, tmp_path, server_url):
    write_tree(os.path.join(builder_dir(tmp_path, master, "linux"), "build", "dist"),
               {"test.sh": 'echo ran; tr a-z A-Z < input.txt > "$ISOLATED_OUTDIR/report.txt"\n',
                "input.txt": "all good"})
    archive_run = await slave_step_run(master, tmp_path, "linux")
    archived = await run_step(steps.IsolateArchive(path="dist", server=server_url), archive_run)
    digest = archive_run.properties.getProperty("isolated")
    assert archived == (SUCCESS, f"isolate_archive: {digest[:12]}")

    run = await slave_step_run(master, tmp_path, "linux", properties={"isolated": digest})
    step = steps.RunIsolated(isolated=util.Property("isolated"), command=["sh", "test.sh"], server=server_url,
                             hard_timeout=60)
    assert await run_step(step, run) == (SUCCESS, "run_isolated")
    output = run.properties.getProperty("isolated_output")
    await fetch(master, server_url, output, tmp_path / "outputs")
    assert (tmp_path / "outputs" / "report.txt").read_text() == "ALL GOOD"
    logs = await log_texts(master, run)
    assert "ran\n" in logs["stdio"]
    assert logs["isolate"].startswith("download: 3 items checked, 0 hits, 3 misses, 3 items downloaded")
    assert "upload: " in logs["isolate"]
    assert grants.PREFIX not in logs["stdio"] + logs["isolate"]


@pytest_twisted.ensureDeferred
async def test_the_grant_a_step_mints_is_redacted_from_its_build(master, tmp_path, server_url):
    run = await slave_step_run(master, tmp_path, "linux")
    header = steps.RunIsolated(isolated="a" * 40).credentials(run)
    token = header.split()[1]
    assert token.startswith(grants.PREFIX)
    assert run.properties.redactor.redact(f"x {token} y") == "x <cas-grant> y"
    grant = grants.check(master.config.cas.upload_secret, token, master.reactor)
    assert grant.scopes == ("cas:read:default-gzip", "cas:write:default-gzip")
    assert grant.expires == master.reactor.seconds() + 3600 + 30 + 3600


@pytest_twisted.ensureDeferred
async def test_a_failing_command_fails_the_step_and_still_returns_its_outputs(master, tmp_path, server_url):
    write_tree(os.path.join(builder_dir(tmp_path, master, "linux"), "build", "t"), {"a": "a"})
    run = await slave_step_run(master, tmp_path, "linux")
    await run_step(steps.IsolateArchive(path="t", server=server_url, property="tree"), run)
    step = steps.RunIsolated(isolated=util.Property("tree"), server=server_url, output_property="out",
                             command=["sh", "-c", 'echo partial > "$ISOLATED_OUTDIR/log"; exit 3'])
    assert await run_step(step, run) == (FAILURE, "run_isolated (failure)")
    assert len(run.properties.getProperty("out")) == 40


@pytest_twisted.ensureDeferred
async def test_without_a_server_or_a_web_port_the_slave_can_reach_the_step_says_so(master, tmp_path):
    run = await slave_step_run(master, tmp_path, "linux")
    assert await run_step(steps.RunIsolated(isolated="a" * 40), run) == (FAILURE, "run_isolated (failure)")
    logs = await log_texts(master, run)
    assert "the step has no server= and the master has no web port" in logs["stdio"]


@pytest_twisted.ensureDeferred
async def test_a_property_that_is_not_set_fails_the_step_clearly(master, tmp_path, server_url):
    run = await slave_step_run(master, tmp_path, "linux")
    step = steps.RunIsolated(isolated=util.Property("isolated"), server=server_url)
    assert (await run_step(step, run))[0] == FAILURE
    logs = await log_texts(master, run)
    assert "RunIsolated has no tree to run: isolated rendered to None" in logs["stdio"]


@pytest_twisted.ensureDeferred
async def test_a_slave_without_the_command_fails_the_step_saying_so(master, tmp_path, server_url):
    run = await slave_step_run(master, tmp_path, "linux")
    run.build.slavebuilder.slave.commands.pop("run_isolated")  # a stock buildbot-worker's list
    assert (await run_step(steps.RunIsolated(isolated="a" * 40, server=server_url), run))[0] == FAILURE
    logs = await log_texts(master, run)
    assert "this slave has no 'run_isolated' command" in logs["stdio"]
