"""The build engine end to end: reconfig under load, locks under contention, crash safety on
both databases, and two masters sharing one PostgreSQL database."""

import json
import os
import signal
import threading
from collections import Counter

import pytest

from fixtures.daemons import pid_alive, run_cli, wait_for
from fixtures.postgres import PostgresServer

ENGINE_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(n, 'pass') for n in {slavenames!r}]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': {db_url!r}}}
c['collapseRequests'] = False
c['multiMaster'] = {multi!r}
c['changes'] = {{'secret': 's3cret'}}
{body}
"""

# Waits for a file named "go" beside the builder's workdir, then says done.
WAIT_FOR_GO = ("steps.ShellCommand(command=['sh', '-c', "
               "'echo waiting; while [ ! -e ../go ]; do sleep 0.05; done; echo done'])")
# First run: marks and hangs; later runs pass.
FIRST_RUN_HANGS = ("steps.ShellCommand(command=['sh', '-c', 'if [ -e ../marker ]; then echo second run; "
                   "else touch ../marker; echo first run; exec sleep 300; fi'])")


def engine_master(fleet, body: str, slavenames=("bs1",), db_url="sqlite:///state.sqlite", multi=False):
    return fleet.master(config=lambda pb_port, www_port: ENGINE_CFG.format(
        pb_port=pb_port, www_port=www_port, slavenames=list(slavenames), db_url=db_url, multi=multi,
        body=body))


def builders(*specs: tuple[str, str], extra: str = "") -> str:
    lines = ["c['builders'] = ["]
    for name, steps in specs:
        lines.append(f"    util.BuilderConfig(name={name!r}, slavenames=[s.name for s in c['slaves']],"
                     f" factory=util.BuildFactory([{steps}]){extra}),")
    lines.append("]")
    names = [name for name, _ in specs]
    lines.append(f"c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames={names!r})]")
    return "\n".join(lines)


def log_of(master, buildid: int, step: int = 0) -> str:
    return master.request("GET", f"/api/v1/builds/{buildid}/steps/{step}/logs/stdio")[1].decode()


def first_build(master, brid: int) -> int:
    return wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "a build")[0]


def test_reconfig_during_a_running_build_keeps_the_build_and_the_slave(fleet):
    master = engine_master(fleet, builders(("slow", WAIT_FOR_GO)))
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    running = first_build(master, master.force("slow"))
    wait_for(lambda: "waiting" in log_of(master, running), "the slow build to start")

    with open(os.path.join(master.basedir, "master.cfg"), "a") as f:
        f.write(builders(("slow", "steps.ShellCommand(command=['echo', 'changed'])"),
                         ("quick", "steps.ShellCommand(command=['echo', 'quick'])")) + "\n")
    result = run_cli("buildmaster", "reconfig", master.basedir)
    assert result.returncode == 0, result.stderr
    assert "configuration update complete: 2 builders" in result.stdout

    quick = master.wait_request_complete(master.force("quick"))
    assert quick["result"] == "success"
    assert master.get(f"/api/v1/builds/{running}")["complete"] is False
    open(os.path.join(slave.basedir, "slow", "go"), "w").close()
    done = wait_for(lambda: (b := master.get(f"/api/v1/builds/{running}"))["complete"] and b, "slow build")
    assert done["result"] == "success" and "done" in log_of(master, running)  # the old steps
    again = master.wait_request_complete(master.force("slow"))
    assert "changed" in log_of(master, again["buildids"][0])
    assert slave.log_text().count("attached to master") == 1  # never dropped


def test_reconfig_with_a_broken_config_keeps_the_running_one(fleet):
    master = engine_master(fleet, builders(("one", "steps.ShellCommand(command=['true'])")))
    fleet.slave(master)
    master.wait_attached("bs1")
    with open(os.path.join(master.basedir, "master.cfg"), "a") as f:
        f.write("c['builders'][0].slavenames = ['nobody']\n")
    result = run_cli("buildmaster", "reconfig", master.basedir)
    assert result.returncode == 1
    assert "names unknown slave 'nobody'" in result.stderr
    assert "keeps its configuration" in result.stderr
    assert master.wait_request_complete(master.force("one"))["result"] == "success"


def test_counting_lock_of_two_never_has_three_holders(fleet, tmp_path):
    trace = tmp_path / "trace"
    step = (f"steps.ShellCommand(command=['sh', '-c', 'echo start >> {trace}; sleep 0.4; "
            f"echo end >> {trace}'])")
    body = "lock = util.MasterLock('pool', maxCount=2)\nc['locks'] = [lock]\n" + builders(
        ("locked", step), extra=", locks=[lock.access('counting')]")
    master = engine_master(fleet, body, slavenames=("bs1", "bs2", "bs3"))
    for name in ("bs1", "bs2", "bs3"):
        fleet.slave(master, name)
        master.wait_attached(name)
    brids = [master.force("locked") for _ in range(6)]
    for brid in brids:
        assert master.wait_request_complete(brid, deadline_s=60)["result"] == "success"
    holders, most = 0, 0
    for line in trace.read_text().split():
        holders += 1 if line == "start" else -1
        most = max(most, holders)
    assert most == 2  # contention happened, and the lock held


def test_cancel_a_pending_request(fleet):
    master = engine_master(fleet, builders(("one", "steps.ShellCommand(command=['true'])")))
    brid = master.force("one")  # no slave: it stays pending
    pending = master.get("/api/v1/buildrequests?complete=false")["buildrequests"]
    assert [r["buildrequestid"] for r in pending] == [brid] and pending[0]["age"] >= 0
    status, body = master.request("POST", f"/api/v1/buildrequests/{brid}/cancel", {})
    assert status == 200 and json.loads(body)["result"] == "cancelled"
    status, _ = master.request("POST", f"/api/v1/buildrequests/{brid}/cancel", {})
    assert status == 409


def test_change_hook_refuses_a_wrong_secret_and_sendchange_works(fleet):
    echo_revision = "steps.ShellCommand(command=['echo', util.Interpolate('rev %(prop:revision)s')])"
    body = builders(("compile", echo_revision))
    body += ("\nc['schedulers'].append(schedulers.SingleBranchScheduler(name='main', "
             "builderNames=['compile'], branch='main'))")
    master = engine_master(fleet, body)
    fleet.slave(master)
    master.wait_attached("bs1")
    status, _ = master.request("POST", "/api/v1/changes", {"author": "me"}, user=None)
    assert status == 401  # neither the secret nor a user holding changes:add
    sent = run_cli("buildmaster", "sendchange", "--master", master.url, "--secret", "s3cret",
                   "--branch", "main", "--revision", "abc123", "--who", "dev", "src/a.c")
    assert sent.returncode == 0, sent.stderr
    build = wait_for(lambda: master.get("/api/v1/builds?complete=true")["builds"], "the change's build")[0]
    assert "rev abc123" in log_of(master, build["buildid"])
    wrong = run_cli("buildmaster", "sendchange", "--master", master.url, "--secret", "nope")
    assert wrong.returncode == 1 and "wrong or missing X-Buildfarm-Secret" in wrong.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_master_killed_mid_build_reruns_the_request_once(fleet, backend, request):
    db_url = "sqlite:///state.sqlite"
    if backend == "postgresql":
        db_url = request.getfixturevalue("db_url_postgresql")
    master = engine_master(fleet, builders(("crash", FIRST_RUN_HANGS)), db_url=db_url)
    fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force("crash")
    first = first_build(master, brid)
    wait_for(lambda: "first run" in log_of(master, first), "the command to start")
    pid = int(open(os.path.join(master.basedir, "twistd.pid")).read())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), "the master to die")
    run_cli("buildmaster", "start", master.basedir, check=True)
    done = master.wait_request_complete(brid, deadline_s=60)
    assert done["result"] == "success"
    results = [master.get(f"/api/v1/builds/{b}")["result"] for b in done["buildids"]]
    assert results == ["retry", "success"]
    assert master.get(f"/api/v1/builds/{first}")["state_string"] == "master restarted"
    assert "second run" in log_of(master, done["buildids"][1])


def test_two_masters_sharing_postgresql_never_run_a_request_twice(fleet, db_url_postgresql):
    # Each build takes a moment, so the queue outlasts the other master's 2 s poll.
    body = builders(("shared", "steps.ShellCommand(command=['sleep', '0.4'])"))
    first = engine_master(fleet, body, slavenames=("bs1", "bs2"), db_url=db_url_postgresql, multi=True)
    second = engine_master(fleet, body, slavenames=("bs1", "bs2"), db_url=db_url_postgresql, multi=True)
    fleet.slave(first, "bs1")
    fleet.slave(second, "bs2")
    first.wait_attached("bs1")
    second.wait_attached("bs2")
    brids = [first.force("shared") for _ in range(20)]
    builds_per_request, masters = [], Counter()
    for brid in brids:
        done = first.wait_request_complete(brid, deadline_s=90)
        assert done["result"] == "success"
        builds_per_request.append(len(done["buildids"]))
        masters[first.get(f"/api/v1/builds/{done['buildids'][0]}")["masterid"]] += 1
    assert builds_per_request == [1] * 20
    assert len(masters) == 2, masters  # both masters took work from the shared queue


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_slave_killed_mid_build_reruns_on_another_slave(fleet, backend, request):
    db_url = "sqlite:///state.sqlite"
    if backend == "postgresql":
        db_url = request.getfixturevalue("db_url_postgresql")
    hang_on_bs1 = ("steps.ShellCommand(command=['sh', '-c', util.Interpolate("
                   "'echo on %(prop:slavename)s; [ %(prop:slavename)s = bs2 ] || exec sleep 300')])")
    body = builders(("flaky", hang_on_bs1)) + (
        "\nc['builders'][0].nextSlave = lambda builder, free, request: "
        "next((sb for sb in free if sb.slave.name == 'bs1'), free[0])")
    master = engine_master(fleet, body, slavenames=("bs1", "bs2"), db_url=db_url)
    doomed = fleet.slave(master, "bs1")
    fleet.slave(master, "bs2")
    master.wait_attached("bs1")
    master.wait_attached("bs2")
    brid = master.force("flaky")
    first = first_build(master, brid)
    wait_for(lambda: "on bs1" in log_of(master, first), "the build to start on bs1")
    os.kill(doomed.pid, signal.SIGKILL)
    done = master.wait_request_complete(brid, deadline_s=60)
    assert done["result"] == "success"
    builds = [master.get(f"/api/v1/builds/{b}") for b in done["buildids"]]
    assert [(b["slavename"], b["result"]) for b in builds] == [("bs1", "retry"), ("bs2", "success")]


def test_checkconfig_reports_engine_problems_all_at_once(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text("""\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
declared = util.MasterLock('declared')
stray = util.MasterLock('stray')
c['locks'] = [declared]
c['builders'] = [util.BuilderConfig(name='b', slavenames=['bs1'], locks=[stray.access('exclusive')],
    factory=util.BuildFactory([steps.ShellCommand(command=['true'], colour='blue')]))]
c['schedulers'] = [schedulers.Nightly(name='n', builderNames=['b'], hour=25)]
""")
    result = run_cli("buildmaster", "checkconfig", str(cfg))
    assert result.returncode == 1
    assert "master.cfg:7: lock 'stray' is used but not declared in c['locks']" in result.stderr
    assert "master.cfg:8: ShellCommand got an unknown argument 'colour'" in result.stderr
    assert "master.cfg:9:" in result.stderr and "hour" in result.stderr
    assert "Traceback" not in result.stderr


def test_force_with_a_bad_parameter_is_400_naming_the_field(fleet):
    body = builders(("b", "steps.ShellCommand(command=['true'])")) + (
        "\nc['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b'], "
        "properties=[util.IntParameter(name='jobs', default=2)])]")
    master = engine_master(fleet, body)
    status, data = master.request("POST", "/api/v1/builders/b/force", {"properties": {"jobs": "many"}})
    assert status == 400 and json.loads(data)["error"].startswith("jobs:")


def test_database_outage_is_ridden_out_with_slaves_attached(fleet):
    server = PostgresServer.start_new()  # its own server: this test stops it
    try:
        name = server.create_database()
        master = engine_master(fleet, builders(("b", "steps.ShellCommand(command=['true'])")),
                               db_url=server.url(name))
        slave = fleet.slave(master)
        master.wait_attached("bs1")
        server.stop_server()
        brid = None

        def force():
            nonlocal brid
            brid = master.force("b")  # waits while the master retries the database

        forcing = threading.Thread(target=force)
        forcing.start()
        wait_for(lambda: "database unavailable" in master.log_text(), "the master to notice the outage")
        server.start()
        forcing.join(timeout=60)
        assert brid is not None
        assert master.wait_request_complete(brid, deadline_s=60)["result"] == "success"
        assert "database available again" in master.log_text()
        assert slave.log_text().count("attached to master") == 1
    finally:
        fleet.stop_all()
        server.stop()
