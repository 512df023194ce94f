"""The SlaveAPI end to end: a real master and slave, the API on its own port and under
/slaveapi/ of the web site, as an on-call engineer uses it (urllib, HTTP basic)."""

import os
import urllib.error
import urllib.request

from fixtures.daemons import pid_alive, run_cli, wait_for
from fixtures.slaveapi import SlaveAPIClient, start_slaveapi_master


def start(fleet):
    master, client = start_slaveapi_master(fleet)
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    return master, slave, client.base


def test_uptime_through_the_master_on_both_mounts_and_auth_refusals(fleet):
    master, _, api = start(fleet)
    oncall = SlaveAPIClient(api, "oncall", "s3cret")
    status, result = oncall.call("POST", "/slaves/bs1/actions/get_uptime", waittime="20")
    assert status == 200 and result["state"] == 2, result
    assert result["data"]["uptime"] > 0 and result["requested_by"] == "oncall"
    mounted = SlaveAPIClient(master.url + "/slaveapi", "viewer", "v1ew")
    path = f"/slaves/bs1/actions/buildslave_uptime?requestid={result['requestid']}"
    status, again = mounted.call("GET", path)
    assert status == 200 and again["data"] == result["data"]
    status, body = SlaveAPIClient(api, None, None).call("GET", "/slaves")
    assert status == 401 and body["error"] == "unauthorized"
    status, body = SlaveAPIClient(api, "viewer", "v1ew").call("POST", "/slaves/bs1/actions/reboot")
    assert status == 403 and "slaveapi:reboot:bs1" in body["msg"]


def test_disable_stops_the_slave_and_survives_a_master_restart(fleet):
    master, slave, api = start(fleet)
    oncall = SlaveAPIClient(api, "oncall", "s3cret")
    slave_pid = slave.pid
    status, result = oncall.call("POST", "/slaves/bs1/actions/disable", reason="bad disk", waittime="30")
    assert status == 200 and result["state"] == 2, result
    wait_for(lambda: not pid_alive(slave_pid), "the slave process to stop")
    page = oncall.call("GET", "/slaves/bs1")[1]
    assert (page["enabled"], page["disabled_reason"], page["disabled_by"], page["connected"]) == (
        False, "bad disk", "oncall", False)

    run_cli("buildmaster", "restart", master.basedir, check=True)
    wait_for(lambda: _answers(oncall), "the SlaveAPI after the restart")
    results = oncall.call("GET", "/results")[1]
    assert results["bs1"]["disable"][str(result["requestid"])]["state"] == 2
    run_cli("buildslave", "start", slave.basedir, check=True)
    master.wait_attached("bs1")
    brid = master.force()
    assert master.get(f"/api/v1/buildrequests/{brid}")["complete"] is False  # disabled: no build
    status, enabled = oncall.call("POST", "/slaves/bs1/actions/enable", waittime="10")
    assert enabled["state"] == 2
    assert master.wait_request_complete(brid)["result"] == "success"
    audit = oncall.call("GET", "/audit")[1]["audit"]
    assert [a["action"] for a in audit[:2]] == ["enable", "disable"]
    assert all(a["peer"] == "127.0.0.1" for a in audit)
    assert os.path.exists(os.path.join(master.basedir, "state.sqlite"))


def _answers(client) -> bool:
    try:
        return client.call("GET", "/slaves")[0] == 200
    except OSError:
        return False


def test_every_read_endpoint_and_bad_input_against_a_real_master(fleet):
    master, _, api = start(fleet)
    oncall = SlaveAPIClient(api, "oncall", "s3cret")
    brid = master.force()
    build = master.wait_request_complete(brid)
    assert build["result"] == "success"

    status, listing = oncall.call("GET", "/slaves?enabled=1")
    assert status == 200 and [s["name"] for s in listing["slaves"]] == ["bs1"]
    assert listing["slaves"][0]["connected"] is True
    assert oncall.call("GET", "/slaves?enabled=0")[1]["slaves"] == []
    status, page = oncall.call("GET", "/slaves/bs1")
    assert status == 200 and page["master_url"] and page["bug"] is None
    job = page["recent_jobs"][0]
    assert job["buildername"] == "runtests" and (job["result"], job["result_name"]) == (0, "success")
    assert job["endtime"] >= job["starttime"]

    status, activity = oncall.call("POST", "/slaves/bs1/actions/get_last_activity", waittime="20")
    assert status == 200 and activity["state"] == 2, activity
    assert activity["data"]["last_state"] == "ready" and activity["data"]["last_activity_seconds"] >= 0
    status, history = oncall.call("GET", "/slaves/bs1/actions/buildslave_last_activity")
    assert status == 200 and str(activity["requestid"]) in history["buildslave_last_activity"]
    status, everything = oncall.call("GET", "/results")
    assert everything["bs1"]["buildslave_last_activity"][str(activity["requestid"])]["state"] == 2

    assert oncall.call("GET", "/slaves/nosuch")[0] == 404
    assert oncall.call("POST", "/slaves/bs1/actions/explode")[0] == 404
    status, body = oncall.call("POST", "/slaves/bs1/actions/reboot", waittime="soon")
    assert status == 400 and "waittime" in body["msg"]
    status, body = oncall.call("POST", "/slaves/bs1/actions/disable", force="perhaps")
    assert status == 400 and "force" in body["msg"]
    huge = urllib.request.Request(api + "/slaves/bs1/actions/disable", data=b"x" * (1 << 20),
                                  method="POST", headers={"Authorization": f"Basic {oncall.auth}",
                                                          "Content-Type": "application/json"})
    try:
        urllib.request.urlopen(huge, timeout=60)
        raise AssertionError("a 1 MiB body was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 413
    assert oncall.call("GET", "/slaves/bs1")[1]["enabled"] is True  # nothing was disabled
    assert _answers(oncall)  # and the master is still up
