"""The SlaveAPI's Mozpool and Bugzilla channels end to end: a real master and slave, the
local stand-ins of Bugzilla's and Mozpool's REST APIs as real HTTP servers, the SlaveAPI
driven over HTTP as an on-call engineer does (urllib, HTTP basic)."""

import os

import pytest

from fixtures.bugzilla import BugzillaServer
from fixtures.daemons import BIN_DIR, free_port, pid_alive, run_cli, wait_for
from fixtures.mozpool import MozpoolServer
from fixtures.slaveapi import start_slaveapi_master

API_KEY = "bz-0123456789abcdef"
HUMAN_KEY = "bz-human-key"
PRODUCT, COMPONENT = "Release Engineering", "Buildduty"
MOZPOOL_USER, MOZPOOL_PASSWORD = "relengbot", "mozpool-pw"
DEVICE = "panda-0042"
ACTION_WAIT_S = "90"



@pytest.fixture
def bugzilla(tmp_path):
    server = BugzillaServer.start_new(str(tmp_path / "bugzilla"), {API_KEY: "slaveapi@example.com",
                                                                  HUMAN_KEY: "oncall@example.com"},
                                      {PRODUCT: [COMPONENT]})
    yield server
    server.stop()


def secret_file(fleet, name: str, value: str) -> dict:
    """A secret in a file of the test's directory, as master.cfg names it."""
    path = os.path.join(fleet.root, name)
    with open(path, "w") as f:
        f.write(value)
    return {"file": path}


def bugzilla_settings(fleet, bugzilla, key_in_file: bool = True) -> dict:
    key = secret_file(fleet, "bugzilla-api-key", API_KEY) if key_in_file else API_KEY
    return {"url": bugzilla.url, "api_key": key, "product": PRODUCT, "component": COMPONENT}


def start(fleet, inventory: dict):
    """A master whose SlaveAPI has ``inventory`` for bs1, and bs1 attached to it."""
    master, client = start_slaveapi_master(fleet, {"bs1": inventory})
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    return master, slave, client


def act(oncall, action: str, **form) -> dict:
    """POST the action and wait for its result (a finished one: 200)."""
    status, result = oncall.call("POST", f"/slaves/bs1/actions/{action}", waittime=ACTION_WAIT_S, **form)
    assert status == 200, (status, result)
    return result


def test_disable_comments_and_reopens_the_bug_and_holds_builds_until_enable(fleet, bugzilla):
    bug_id = bugzilla.file_bug(HUMAN_KEY, product=PRODUCT, component=COMPONENT, alias="bs1",
                               summary="bs1 problem tracking")
    closed = {"status": "RESOLVED", "resolution": "FIXED"}
    status, _ = bugzilla.rest("PUT", f"/bug/{bug_id}", HUMAN_KEY, closed)
    assert status == 200
    master, slave, oncall = start(fleet, {"bugzilla": bugzilla_settings(fleet, bugzilla, key_in_file=False)})
    assert oncall.call("GET", "/slaves/bs1")[1]["bug"] == {"id": bug_id, "is_open": False}
    slave_pid = slave.pid

    result = act(oncall, "disable", reason="bad disk", comment="see the smart log")
    assert result["state"] == 2, result["text"]
    wait_for(lambda: not pid_alive(slave_pid), "the buildslave to stop gracefully")
    assert bugzilla.comments(bug_id)[-1] == "bs1 was disabled by oncall: bad disk\n\nsee the smart log"
    assert bugzilla.bug(bug_id)["status"] == "REOPENED"
    writes = [(c["method"], c["path"], c["headers"]) for c in bugzilla.calls() if c["method"] != "GET"]
    assert writes[-2:] == [("POST", f"/rest/bug/{bug_id}/comment", {"X-BUGZILLA-API-KEY": API_KEY}),
                           ("PUT", f"/rest/bug/{bug_id}", {"X-BUGZILLA-API-KEY": API_KEY})]
    page = oncall.call("GET", "/slaves/bs1")[1]
    assert (page["enabled"], page["disabled_reason"], page["bug"]) == (False, "bad disk",
                                                                       {"id": bug_id, "is_open": True})
    assert page["channels"]["bugzilla"]["api_key"] == "(secret)"

    run_cli("buildslave", "start", slave.basedir, check=True)
    master.wait_attached("bs1")
    brid = master.force()
    oncall.call("GET", "/slaves/bs1")  # a round trip through the master after the request was queued
    request = master.get(f"/api/v1/buildrequests/{brid}")
    assert request["complete"] is False and request["claimed_at"] is None, request  # disabled: no build
    assert act(oncall, "enable")["state"] == 2
    assert master.wait_request_complete(brid)["result"] == "success"


def test_reboot_through_mozpool_is_verified_by_the_slave_attaching_again(fleet, tmp_path):
    power = tmp_path / "power-cycle.sh"  # the device's power: written once the slave exists
    mozpool = MozpoolServer.start_new(str(tmp_path / "mozpool"), {DEVICE: f"sh {power}"},
                                      MOZPOOL_USER, MOZPOOL_PASSWORD)
    try:
        inventory = {"mozpool": {"url": mozpool.url, "device": DEVICE, "username": MOZPOOL_USER,
                                 "password": secret_file(fleet, "mozpool-password", MOZPOOL_PASSWORD)}}
        master, slave, oncall = start(fleet, inventory)
        tool = os.path.join(BIN_DIR, "buildslave")
        power.write_text(f"{tool} stop {slave.basedir}\n{tool} start {slave.basedir}\n")
        slave_pid = slave.pid

        result = act(oncall, "reboot")
        assert result["state"] == 2, result["text"]
        lines = result["text"].splitlines()
        assert "reboot command over ssh: skipped (the slave has no ssh channel)" in lines
        assert f"Mozpool accepted the power cycle of device {DEVICE}" in lines
        assert any(line.startswith("verified: bs1 attached again") for line in lines), lines
        assert slave.pid != slave_pid and not pid_alive(slave_pid)
        posts = [c for c in mozpool.calls() if c["method"] == "POST"]
        assert [(c["path"], c["body"]) for c in posts] == [(f"/api/device/{DEVICE}/power-cycle/", {})]
        assert posts[0]["headers"]["Authorization"].startswith("Basic ")
        assert MOZPOOL_PASSWORD not in result["text"]
        master.wait_attached("bs1")
    finally:
        mozpool.stop()


def test_reboot_without_a_working_channel_files_a_bug_asking_for_a_manual_reboot(fleet, bugzilla):
    closed_port = free_port()
    inventory = {"mozpool": {"url": f"http://127.0.0.1:{closed_port}"},
                 "bugzilla": bugzilla_settings(fleet, bugzilla)}
    _, slave, oncall = start(fleet, inventory)

    result = act(oncall, "reboot")
    assert result["state"] == 3, result["text"]
    lines = result["text"].splitlines()
    assert any(line.startswith("power cycle through Mozpool: failed: cannot reach Mozpool") for line in lines)
    bug = bugzilla.bug("bs1")
    assert lines[-1] == f"no reboot method worked; asked for a manual reboot in bug {bug['id']}"
    assert (bug["summary"], bug["product"], bug["component"], bug["is_open"]) == (
        "bs1 needs a manual reboot", PRODUCT, COMPONENT, True)
    assert "Please reboot it by hand" in bugzilla.comments(bug["id"])[0]
    assert pid_alive(slave.pid)  # nothing touched the machine
