"""Every step type on a buildfarm master, run by a stock buildbot-worker 4.3 and by our
own slave: the same builders, the bytes checked on disk."""

import hashlib
import os
import time

import pytest

from fixtures.daemons import pid_alive, wait_for

PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # several blocks and a ragged end
GREETING = "hello from the master\n"

TRANSFER_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('w1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
transfers = util.BuildFactory([
    steps.StringDownload({greeting!r}, workerdest='greeting.txt'),
    steps.FileDownload(mastersrc='payload.bin', workerdest='payload.bin', mode=0o640),
    steps.ShellCommand(command=['sh', '-c', 'mkdir -p tree/sub && echo a > tree/a.txt && '
                                'echo b > tree/sub/b.txt && ls -l payload.bin greeting.txt']),
    steps.MakeDirectory(dir='build/made'),
    steps.CopyDirectory(src='build/tree', dest='build/tree-copy'),
    steps.FileUpload(workersrc='payload.bin', masterdest='uploads/payload.bin'),
    steps.FileUpload(workersrc='greeting.txt', masterdest='uploads/greeting.txt'),
    steps.DirectoryUpload(workersrc='tree-copy', masterdest='uploads/tree', compress='gz'),
    steps.RemoveDirectory(dir='build/made'),
    steps.ShellCommand(command=['sh', '-c', 'test ! -e made && test -d tree-copy/sub']),
])
too_big = util.BuildFactory([
    steps.FileUpload(workersrc='../runtests-big', masterdest='uploads/big.bin', maxsize=1000),
])
hang = util.BuildFactory([steps.ShellCommand(command=['sleep', '300'])])
c['builders'] = [
    util.BuilderConfig(name='transfers', slavenames=['w1'], factory=transfers),
    util.BuilderConfig(name='hang', slavenames=['w1'], factory=hang),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['transfers', 'hang'])]
c['www'] = {{'port': {www_port}}}
"""


def transfer_config(pb_port, www_port):
    return TRANSFER_CFG.format(pb_port=pb_port, www_port=www_port, greeting=GREETING)


@pytest.fixture(params=["stock buildbot-worker 4.3", "buildfarm buildslave"])
def setup(request, fleet):
    master = fleet.master(config=transfer_config, files={"payload.bin": PAYLOAD})
    if request.param.startswith("stock"):
        slave = fleet.stock_worker(master, "w1")
    else:
        slave = fleet.slave(master, "w1")
    master.wait_attached("w1")
    return master, slave


def test_every_step_type_passes_and_the_bytes_arrive_intact(setup):
    master, slave = setup
    request = master.wait_request_complete(master.force("transfers"), deadline_s=60)
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    assert [(s["name"], s["result"]) for s in build["steps"]] == [
        ("string_download", "success"), ("download", "success"), ("shell", "success"),
        ("MakeDirectory", "success"), ("CopyDirectory", "success"), ("upload", "success"),
        ("upload", "success"), ("upload", "success"), ("RemoveDirectory", "success"),
        ("shell", "success"),
    ], build["steps"]
    assert request["result"] == "success"
    build_dir = os.path.join(slave.basedir, "transfers", "build")
    with open(os.path.join(build_dir, "payload.bin"), "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(PAYLOAD).digest()
    assert oct(os.stat(os.path.join(build_dir, "payload.bin")).st_mode & 0o777) == "0o640"
    uploads = os.path.join(master.basedir, "uploads")
    with open(os.path.join(uploads, "payload.bin"), "rb") as f:
        assert f.read() == PAYLOAD
    with open(os.path.join(uploads, "greeting.txt")) as f:
        assert f.read() == GREETING
    with open(os.path.join(uploads, "tree", "sub", "b.txt")) as f:
        assert f.read() == "b\n"
    assert sorted(os.listdir(uploads)) == ["greeting.txt", "payload.bin", "tree"]


def test_stopping_a_build_kills_the_command_and_cancels_the_build(setup):
    master, slave = setup
    brid = master.force("hang")
    buildid = wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "the build")[0]
    wait_for(lambda: master.get(f"/api/v1/builds/{buildid}")["steps"], "the step to start")
    stopped_at = time.monotonic()
    status, _ = master.request("POST", f"/api/v1/builds/{buildid}/stop", {"reason": "enough"})
    assert status == 200
    build = wait_for(lambda: (b := master.get(f"/api/v1/builds/{buildid}"))["complete"] and b,
                     "the build to end", deadline_s=20)
    assert time.monotonic() - stopped_at < 10
    assert build["result"] == "cancelled"
    assert build["steps"][0]["result"] == "cancelled"
    request = master.get(f"/api/v1/buildrequests/{brid}")
    assert request["complete"] and request["result"] == "cancelled"
    status, _ = master.request("POST", f"/api/v1/builds/{buildid}/stop", {})
    assert status == 409


def test_graceful_shutdown_from_the_master_stops_the_slave(setup):
    master, slave = setup
    pid = slave.pid
    status, _ = master.request("POST", "/api/v1/slaves/w1/shutdown", {})
    assert status == 200
    wait_for(lambda: not pid_alive(pid), "the slave process to exit", deadline_s=20)
    wait_for(lambda: not master.slave("w1")["connected"], "the master to see it go")


