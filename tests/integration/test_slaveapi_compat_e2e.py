"""The original SlaveAPI's contract (mozilla/build-slaveapi and the fleet scripts that called
it), replayed end to end against a real master and real slaves: field names, ``text``
values, argument spellings, unknown request ids and slaves, aliases, the slave filters.
Called as those scripts did: form-encoded POSTs, and ``requests`` with a ``.netrc`` entry."""

import requests

from fixtures.slaveapi import SlaveAPIClient, start_slaveapi_master

PENDING, RUNNING, SUCCESS, FAILURE = range(4)
WAIT_S = "30"
ORIGINAL_RESULT_FIELDS = {"state", "text", "request_timestamp", "start_timestamp", "finish_timestamp",
                          "requestid"}
INVENTORY = {
    "bs1": {"fqdn": "bs1.build.scl3.example.com", "environment": "prod", "purpose": "build",
            "pool": "build-pool"},
    "bs2": {"environment": "staging", "purpose": "tests", "pool": "tests-pool"},
}


def start(fleet):
    master, oncall = start_slaveapi_master(fleet, INVENTORY, slavenames=("bs1", "bs2"))
    for name in ("bs1", "bs2"):
        fleet.slave(master, name)
        master.wait_attached(name)
    return master, oncall


def test_text_holds_the_original_values_and_history_is_keyed_by_real_names(fleet):
    _, oncall = start(fleet)

    status, uptime = oncall.call("POST", "/slaves/bs1/actions/get_uptime", waittime=WAIT_S)
    assert status == 200 and uptime["state"] == SUCCESS, uptime
    assert set(uptime) >= ORIGINAL_RESULT_FIELDS
    assert int(uptime["text"]) == uptime["text"] == uptime["data"]["uptime"] > 0  # scripts: int(text)
    assert "has been up for" in uptime["story"]

    status, activity = oncall.call("POST", "/slaves/bs1/actions/get_last_activity", waittime=WAIT_S)
    assert status == 200 and activity["state"] == SUCCESS, activity
    assert set(activity["text"]) == {"last_state", "last_activity_seconds", "uptime"}
    assert activity["text"]["last_state"] == "ready" and activity["text"]["last_activity_seconds"] >= 0

    status, history = oncall.call("GET", "/slaves/bs1/actions/get_uptime")
    assert status == 200 and list(history) == ["buildslave_uptime"]
    assert history["buildslave_uptime"][str(uptime["requestid"])]["text"] == uptime["text"]
    results = oncall.call("GET", "/results")[1]
    assert set(results["bs1"]) == {"buildslave_uptime", "buildslave_last_activity"}
    assert results["bs1"]["buildslave_last_activity"][str(activity["requestid"])]["state"] == SUCCESS

    # An unknown requestid, or one of another action or slave: the action's whole history.
    for path in ("/slaves/bs1/actions/get_uptime?requestid=987654321",
                 f"/slaves/bs1/actions/buildslave_uptime?requestid={activity['requestid']}"):
        status, body = oncall.call("GET", path)
        assert status == 200 and list(body["buildslave_uptime"]) == [str(uptime["requestid"])], (path, body)
    status, body = oncall.call("GET", f"/slaves/bs2/actions/get_uptime?requestid={uptime['requestid']}")
    assert status == 200 and body == {"buildslave_uptime": {}}
    status, body = oncall.call("GET", f"/slaves/bs1/actions/get_uptime?requestid={uptime['requestid']}")
    assert status == 200 and body["requestid"] == uptime["requestid"] and body["text"] == uptime["text"]


def test_arguments_as_the_original_took_them_and_an_unknown_slave_fails_in_its_result(fleet):
    master, oncall = start(fleet)

    status, body = oncall.call("POST", "/slaves/bs2/actions/disable", reason="bad disk", force="y",
                               colour="red", waittime=WAIT_S)
    assert status == 200 and body["state"] == FAILURE, body  # forced: a reboot, and it has no channel
    story = body["text"].splitlines()
    assert story[0] == "ignored the argument 'colour': disable takes comment, force, reason"
    assert "reboot command over ssh: skipped (the slave has no ssh channel)" in story
    page = oncall.call("GET", "/slaves/bs2")[1]
    assert (page["enabled"], page["disabled_reason"]) == (False, "bad disk")

    create = "/slaves/bs1/actions/aws_create_instance"
    status, body = oncall.call("POST", create, instance_type="BUILD", arch="64", email="me@example.com",
                               bug="1234", disambig="2", waittime=WAIT_S)
    assert status == 200 and body["state"] == FAILURE, body  # accepted; it ran, and failed for want of aws
    assert body["text"].splitlines() == [
        "arch 64: the instance's image and type come from the slave's 'build' aws settings",
        "no AWS settings for this slave"]
    status, body = oncall.call("POST", create, instance_type="build", arch="32", bug="1")
    assert status == 400 and body["msg"] == "arch: 32-bit instances are not used for building"
    status, body = oncall.call("POST", create, instance_type="huge")
    assert status == 400 and body["msg"].startswith("instance_type: must be one of build, test")

    status, body = SlaveAPIClient(oncall.base, "viewer", "v1ew").call("POST", "/slaves/ghost/actions/reboot")
    assert status == 403 and "slaveapi:reboot:ghost" in body["msg"]  # authorized first
    status, ghost = oncall.call("POST", "/slaves/ghost/actions/reboot", waittime=WAIT_S)
    assert status == 200 and ghost["state"] == FAILURE, ghost
    assert "no slave named 'ghost'" in ghost["text"]
    status, again = oncall.call("GET", f"/slaves/ghost/actions/reboot?requestid={ghost['requestid']}")
    assert status == 200 and again["text"] == ghost["text"]
    assert str(ghost["requestid"]) in oncall.call("GET", "/results")[1]["ghost"]["reboot"]
    assert oncall.call("GET", "/slaves/ghost")[0] == 404
    assert "ghost" not in [s["name"] for s in oncall.call("GET", "/slaves")[1]["slaves"]]
    assert master.wait_attached("bs1")  # nothing happened to the real slaves


def test_slave_filters_and_page_fields_read_by_a_script_with_a_netrc(fleet, tmp_path, monkeypatch):
    master, oncall = start(fleet)
    build = master.wait_request_complete(master.force())
    assert build["result"] == "success"
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login viewer password v1ew\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))

    def names(query: str) -> list[str]:
        answer = requests.get(f"{oncall.base}/slaves?{query}", timeout=30)
        assert answer.status_code == 200, answer.text
        return [slave["name"] for slave in answer.json()["slaves"]]

    assert names("") == ["bs1", "bs2"]
    assert names("purpose=build") == ["bs1"]
    assert names("pool=tests-pool") == ["bs2"]
    assert names("purpose=build&purpose=tests") == ["bs1", "bs2"]
    assert names("purpose=build&pool=tests-pool") == []
    assert names("environment=staging") == ["bs2"]
    assert names("enabled=1") == ["bs1", "bs2"]

    page = requests.get(f"{oncall.base}/slaves/bs1", timeout=30).json()
    assert (page["fqdn"], page["domain"], page["colo"]) == (
        "bs1.build.scl3.example.com", "build.scl3.example.com", "scl3")
    assert (page["ipmi"], page["pdu"], page["buildbotslave"]) == (None, None, None)
    assert page["master_url"] == master.url + "/"
    assert {"enabled", "basedir", "notes", "bug", "ip", "recent_jobs"} <= set(page)
    (job,) = page["recent_jobs"]
    assert (job["buildername"], job["buildnumber"], job["result"]) == ("runtests", job["number"], 0)
    assert isinstance(job["starttime"], int) and job["endtime"] >= job["starttime"]
    assert requests.post(f"{oncall.base}/slaves/bs1/actions/reboot", timeout=30).status_code == 403
