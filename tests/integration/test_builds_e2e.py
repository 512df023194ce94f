"""Real master and slave daemons on loopback, driven as a user would: CLIs and HTTP."""

import os
import signal

from fixtures.daemons import pid_alive, run_cli, wait_for

RETRY, SUCCESS = 5, 0

# First run: says so, leaves a marker and hangs; any later run finds the marker and passes.
FIRST_RUN_HANGS = ["sh", "-c", "if [ -e ../marker ]; then echo second run; "
                   "else touch ../marker; echo first run; exec sleep 300; fi"]


def explain(master, request) -> str:
    """The steps and logs of a request's builds, for an assertion message."""
    lines = []
    for buildid in request["buildids"]:
        for step in master.get(f"/api/v1/builds/{buildid}")["steps"]:
            lines.append(f"build {buildid} step {step['number']}: {step['state_string']}")
            for log in step["logs"]:
                lines.append(master.request("GET", log["url"])[1].decode(errors="replace")[-2000:])
    return "\n".join(lines)


def test_forced_build_runs_and_its_log_is_served(fleet):
    master = fleet.master()
    fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force(reason="e2e", properties={"colour": "blue"})
    request = master.wait_request_complete(brid)
    assert request["results"] == SUCCESS and request["result"] == "success"
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    assert build["slavename"] == "bs1"
    assert build["properties"]["colour"] == "blue"
    assert build["complete"] and build["started_at"] <= build["complete_at"]
    step = build["steps"][0]
    assert step["result"] == "success" and step["logs"][0]["name"] == "stdio"
    status, text = master.request("GET", f"/api/v1/builds/{build['buildid']}/steps/0/logs/stdio")
    assert status == 200
    assert b"\nhello\n" in text
    assert b"program finished with exit code 0" in text
    listed = master.get("/api/v1/builds?builder=runtests&complete=true")["builds"]
    assert [b["buildid"] for b in listed] == [build["buildid"]]
    slave = master.slave("bs1")
    assert slave["version"] and "runtests" in slave["builders"]


def test_failing_command_makes_a_failed_build(fleet):
    master = fleet.master(command=["sh", "-c", "echo oops >&2; exit 3"])
    fleet.slave(master)
    master.wait_attached("bs1")
    request = master.wait_request_complete(master.force())
    assert request["result"] == "failure"
    status, text = master.request("GET", f"/api/v1/builds/{request['buildids'][0]}/steps/0/logs/stdio")
    assert b"oops" in text and b"exit code 3" in text


def test_request_waits_for_a_slave_and_runs_when_one_attaches(fleet):
    master = fleet.master()
    brid = master.force()
    assert master.get(f"/api/v1/buildrequests/{brid}")["claimed"] is False
    fleet.slave(master)
    assert master.wait_request_complete(brid)["result"] == "success"


def test_slave_killed_mid_build_ends_retry_and_request_reruns_after_it_returns(fleet):
    master = fleet.master(command=FIRST_RUN_HANGS)
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    brid = master.force()
    first = wait_for(lambda: master.get(f"/api/v1/buildrequests/{brid}")["buildids"], "the first build")[0]
    wait_for(lambda: b"first run" in master.request(
        "GET", f"/api/v1/builds/{first}/steps/0/logs/stdio")[1], "the command to start")
    pid = slave.pid
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), "the slave to die")
    build = wait_for(lambda: (b := master.get(f"/api/v1/builds/{first}"))["complete"] and b,
                     "the build to end")
    assert build["result"] == "retry" and build["results"] == RETRY
    request = master.get(f"/api/v1/buildrequests/{brid}")
    assert request["complete"] is False and request["claimed"] is False
    run_cli("buildslave", "start", slave.basedir, check=True)
    request = master.wait_request_complete(brid)
    assert request["result"] == "success", explain(master, request)
    assert len(request["buildids"]) == 2
    status, text = master.request("GET", f"/api/v1/builds/{request['buildids'][1]}/steps/0/logs/stdio")
    assert b"second run" in text


def test_slave_reattaches_by_itself_after_master_restart(fleet):
    master = fleet.master()
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    slave_pid = slave.pid
    run_cli("buildmaster", "restart", master.basedir, check=True)
    master.wait_attached("bs1")
    assert slave.pid == slave_pid
    assert master.wait_request_complete(master.force())["result"] == "success"
    assert slave.log_text().count("attached to master") >= 2


def test_wrong_password_is_refused_and_retried(fleet):
    master = fleet.master()
    slave = fleet.slave(master, "bs1", "wrong")
    wait_for(lambda: slave.log_text().count("login refused") >= 2, "two refused logins")
    wait_for(lambda: master.log_text().count("login refused for slave 'bs1': wrong password") >= 2,
             "the master to log each refusal")
    assert "Traceback" not in master.log_text()
    assert master.slave("bs1")["connected"] is False
    assert pid_alive(slave.pid)
