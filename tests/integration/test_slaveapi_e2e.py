"""The SlaveAPI end to end: a real master and slave, the API on its own port and under
/slaveapi/ of the web site, as an on-call engineer uses it (urllib, HTTP basic)."""

import base64
import json
import os
import urllib.error
import urllib.parse
import urllib.request

from fixtures.daemons import free_port, pid_alive, run_cli, wait_for

SLAVEAPI_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hi'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['users'] = [util.User('oncall', password='s3cret', scopes=['slaveapi:*']),
              util.User('viewer', password='v1ew', scopes=['slaveapi:read'])]
c['slaveapi'] = {{'port': {api_port}, 'shutdown_timeout': 30}}
"""


class SlaveAPIClient:
    def __init__(self, base: str, user: str | None, password: str | None):
        self.base = base
        self.auth = None if user is None else base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, **form) -> tuple[int, dict]:
        data = urllib.parse.urlencode(form).encode() if method == "POST" else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if self.auth:
            request.add_header("Authorization", f"Basic {self.auth}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())


def start(fleet):
    api_port = free_port()
    master = fleet.master(config=lambda pb_port, www_port: SLAVEAPI_CFG.format(
        pb_port=pb_port, www_port=www_port, api_port=api_port))
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    return master, slave, f"http://127.0.0.1:{api_port}"


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
