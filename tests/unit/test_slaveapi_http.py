"""The SlaveAPI over HTTP, in memory: klein resources rendering in-memory requests against a
real master built in memory (tests/fixtures/memorymaster.py: real database on SQLite and
PostgreSQL, real BotMaster with scripted slave connections, auth service, MemoryReactorClock)."""

import base64
import json

import pytest
import pytest_twisted
from klein import Klein
from twisted.internet import task
from twisted.web.server import NOT_DONE_YET
from zope.interface.verify import verifyObject

from buildfarm.common.results import SUCCESS as BUILD_SUCCESS
from buildfarm.master.auth.passwords import hash_password
from buildfarm.master.fleet import ActionState
from buildfarm.master.slaveapi.interfaces import IActionHost, ISlaveAPIMaster
from fixtures.memoryhttp import MemoryRequest
from fixtures.memorymaster import attach_slave, start_memory_master, with_fast_password_checks

PEER = "10.1.2.3"
NOW = 1_700_000_000
REBOOTER_HASH = hash_password("h4sh", iterations=1000)

# Slaves bs1 and bs2 (builder linux), the SlaveAPI settings given, and three SlaveAPI users.
SLAVEAPI_MASTER_CFG = """\
from buildfarm.master.plugins import slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave(name, 'pass') for name in {slaves!r}]
c['protocols'] = {{'pb': {{'port': 9989}}}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames={slaves!r},
                 factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])]))]
c['www'] = {www!r}
c['db'] = {{'db_url': {db_url!r}}}
c['slaveapi'] = {slaveapi!r}
c['users'] = [
    util.User('oncall', password='s3cret', scopes=['slaveapi:*']),
    util.User('viewer', password='v1ew', scopes=['slaveapi:read']),
    util.User('rebooter', password_hash={rebooter_hash!r}, tokens=['tok-123'],
              scopes=['slaveapi:read', 'slaveapi:reboot:*']),
]
"""


class Harness:
    """A real master in memory (its database at ``db_url`` under ``basedir``) with its
    ActionRunner and SlaveAPI resource; ``request`` renders one in-memory request."""

    def __init__(self, db_url: str, basedir, slaveapi_cfg: dict | None = None,
                 slaves: tuple[str, ...] = ("bs1", "bs2"), www: dict | None = None):
        self.cfg = SLAVEAPI_MASTER_CFG.format(slaves=list(slaves), db_url=db_url, slaveapi=slaveapi_cfg or {},
                                              rebooter_hash=REBOOTER_HASH, www=www or {"port": 8010})
        self.basedir = basedir
        self.master = self.runner = self.resource = self.clock = None

    async def start(self):
        self.master = await start_memory_master(self.basedir, self.cfg, now=NOW)
        with_fast_password_checks(self.master)
        self.clock = self.master.reactor
        self.runner = self.master.slaveapi
        self.resource = self.runner.resource()
        return self

    async def stop(self) -> None:
        await self.master.stopService()

    async def attach(self, name: str = "bs1", **connection):
        """A slave attaching to the master (a scripted connection: fixtures/memorymaster.py)."""
        return await attach_slave(self.master, name, **connection)

    async def request(self, method: str, path: str, user: str | None = "oncall", password=None,
                      args: dict | None = None, body: bytes = b"", headers: dict | None = None,
                      resource=None):
        """``(status, JSON body, request)`` of one request."""
        request = MemoryRequest(method, path, PEER)
        request.args = {k.encode(): [str(v).encode()] for k, v in (args or {}).items()}
        request.gotLength(len(body))
        request.content.write(body)
        request.content.seek(0)
        if user is not None:
            secret = password or {"oncall": "s3cret", "viewer": "v1ew", "rebooter": "h4sh"}.get(user, "x")
            token = base64.b64encode(f"{user}:{secret}".encode())
            request.requestHeaders.setRawHeaders(b"authorization", [b"Basic " + token])
        for name, value in (headers or {}).items():
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        finished = request.notifyFinish()
        rendered = (resource or self.resource).render(request)
        if rendered is not NOT_DONE_YET:
            request.write(rendered)
            request.finish()
        await finished
        raw = b"".join(request.body_written)
        return request.code, json.loads(raw) if raw else None, request

    async def get(self, path: str, **kwargs):
        status, body, _ = await self.request("GET", path, **kwargs)
        assert status == 200, (status, body)
        return body


@pytest_twisted.async_yield_fixture
async def api(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path).start()
    yield harness
    await harness.runner.wait_idle()
    await harness.stop()


def test_the_master_provides_what_the_slaveapi_sees_of_it(api):
    assert verifyObject(ISlaveAPIMaster, api.master)
    assert api.runner.master is api.master
    assert verifyObject(IActionHost, api.runner)  # what an action sees of the runner


def test_no_slaveapi_module_probes_the_master_or_its_runner():
    """The seam is typed: no ``getattr``/``hasattr`` on the master, its config or the runner."""
    import ast
    import pathlib

    import buildfarm.master.slaveapi as package

    probes = []
    for path in sorted(pathlib.Path(package.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and node.args):
                probed = ast.unparse(node.args[0])
                if "master" in probed or "runner" in probed:
                    probes.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert probes == []


# -- authentication and scopes ----------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_no_credentials_is_401_with_both_challenges(api):
    status, body, request = await api.request("GET", "/slaves", user=None)
    assert status == 401 and body["error"] == "unauthorized"
    challenges = request.responseHeaders.getRawHeaders(b"www-authenticate")
    assert [c.split()[0] for c in challenges] == [b"Basic", b"Bearer"]


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_is_401(api):
    status, body, _ = await api.request("GET", "/slaves", user="oncall", password="nope")
    assert status == 401 and "wrong user name or password" in body["msg"]


@pytest_twisted.ensureDeferred
async def test_an_unknown_user_is_401(api):
    status, _, _ = await api.request("GET", "/slaves", user="mallory")
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_a_viewer_reads_but_a_post_is_403_naming_the_scope(api):
    assert (await api.get("/slaves", user="viewer"))["slaves"]
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/reboot", user="viewer")
    assert status == 403 and body["error"] == "forbidden"
    assert "slaveapi:reboot:bs1" in body["msg"]
    audit = (await api.get("/audit"))["audit"]
    assert (audit[0]["user"], audit[0]["action"], audit[0]["outcome"]) == ("viewer", "reboot", "denied")


@pytest_twisted.ensureDeferred
async def test_a_password_hash_and_a_bearer_token_both_authenticate(api):
    assert await api.get("/slaves", user="rebooter")
    status, _, _ = await api.request("GET", "/slaves", user=None,
                                      headers={"Authorization": "Bearer tok-123"})
    assert status == 200
    status, _, _ = await api.request("GET", "/slaves", user=None, headers={"Authorization": "Bearer nope"})
    assert status == 401


@pytest_twisted.ensureDeferred
async def test_a_wildcard_scope_covers_one_action_on_every_slave_only(api):
    status, body, _ = await api.request("POST", "/slaves/bs2/actions/reboot", user="rebooter",
                                        args={"waittime": 5})
    assert status == 200 and body["state"] == ActionState.FAILURE
    status, body, _ = await api.request("POST", "/slaves/bs2/actions/disable", user="rebooter")
    assert status == 403 and "slaveapi:disable:bs2" in body["msg"]


# -- errors -------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_an_unknown_action_and_the_page_of_an_unknown_slave_are_404(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/explode")
    assert status == 404 and "explode" in body["msg"]
    status, body, _ = await api.request("GET", "/slaves/nobody")
    assert status == 404


@pytest_twisted.ensureDeferred
async def test_a_malformed_waittime_is_400_naming_it(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/reboot", args={"waittime": "soon"})
    assert status == 400 and "waittime" in body["msg"]


@pytest_twisted.ensureDeferred
async def test_bad_action_arguments_are_400_naming_the_field(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/aws_create_instance",
                                        args={"instance_type": "huge"})
    assert status == 400 and body["msg"].startswith("instance_type:")
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/aws_create_instance",
                                        args={"instance_type": "build", "bug": "twelve"})
    assert status == 400 and body["msg"].startswith("bug:")
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/disable", args={"force": "perhaps"})
    assert status == 400 and body["msg"].startswith("force:")


@pytest_twisted.ensureDeferred
async def test_a_huge_body_is_413(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/disable", body=b"x" * 100_000,
                                        headers={"Content-Type": "application/json"})
    assert status == 413 and body["error"] == "request entity too large"


@pytest_twisted.ensureDeferred
async def test_a_json_body_that_is_not_an_object_is_400(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/disable", body=b"[1]",
                                        headers={"Content-Type": "application/json"})
    assert status == 400


# -- actions ------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_post_answers_the_result_with_its_requestid_and_who_asked(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/reboot", args={"waittime": "5"})
    assert status == 200
    assert set(body) >= {"state", "text", "request_timestamp", "start_timestamp", "finish_timestamp",
                         "requestid", "requested_by"}
    assert body["state"] == ActionState.FAILURE and body["requested_by"] == "oncall"
    assert body["requested_from"] == PEER
    assert "slave has no ssh channel" in body["text"] and "slave has no bmc channel" in body["text"]
    assert body["text"].endswith("no reboot method worked")
    assert body["request_timestamp"] == body["finish_timestamp"] == 1_700_000_000


@pytest_twisted.ensureDeferred
async def test_without_waittime_a_slow_action_answers_202_then_finishes(api):
    slave = await api.attach("bs1", obey_shutdown=False)
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/shutdown_buildslave")
    assert status == 202 and body["state"] in (ActionState.PENDING, 1)
    requestid = body["requestid"]
    again = await api.get("/slaves/bs1/actions/shutdown_buildslave", args={"requestid": requestid})
    assert again["requestid"] == requestid and again["finish_timestamp"] == 0
    await _until(lambda: "shutdown" in slave.calls)
    slave.drop()
    await api.runner.wait_idle()
    done = await api.get("/slaves/bs1/actions/shutdown_buildslave", args={"requestid": requestid})
    assert done["state"] == ActionState.SUCCESS and "disconnected" in done["text"]


@pytest_twisted.ensureDeferred
async def test_a_second_post_of_a_running_action_returns_the_same_request(api):
    slave = await api.attach("bs1", obey_shutdown=False)
    _, first, _ = await api.request("POST", "/slaves/bs1/actions/shutdown_buildslave")
    _, second, _ = await api.request("POST", "/slaves/bs1/actions/shutdown_buildslave", user="oncall")
    assert second["requestid"] == first["requestid"]
    await _until(lambda: "shutdown" in slave.calls)
    slave.drop()
    await api.runner.wait_idle()
    audit = (await api.get("/audit"))["audit"]
    assert [a["requestid"] for a in audit] == [first["requestid"]] * 2
    assert {a["outcome"] for a in audit} == {"success"}


@pytest_twisted.ensureDeferred
async def test_shutdown_times_out_with_what_the_master_saw(api):
    slave = await api.attach("bs1", obey_shutdown=False)
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/shutdown_buildslave")
    await _until(lambda: "shutdown" in slave.calls)
    api.clock.advance(api.runner.settings.shutdown_timeout + 1)
    await api.runner.wait_idle()
    result = await api.get("/slaves/bs1/actions/shutdown_buildslave", args={"requestid": body["requestid"]})
    assert result["state"] == ActionState.FAILURE
    assert "did not disconnect within 300 s: it is still attached, shutting down, with 0 builds running" \
        in result["text"]


@pytest_twisted.ensureDeferred
async def test_shutdown_of_a_detached_slave_fails_at_once(api):
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/shutdown_buildslave", args={"waittime": 5})
    assert body["state"] == ActionState.FAILURE and "not attached" in body["text"]


@pytest_twisted.ensureDeferred
async def test_uptime_of_a_detached_slave_fails_saying_no_channel(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/get_uptime", args={"waittime": 5})
    assert status == 200 and body["state"] == ActionState.FAILURE and "no channel" in body["text"]
    assert "buildslave_uptime" in (await api.get("/results"))["bs1"]


@pytest_twisted.ensureDeferred
async def test_disable_records_why_and_who_and_stops_the_slave(api):
    slave = await api.attach("bs1")
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/disable",
                                        args={"reason": "bad disk", "comment": "see bug 1", "waittime": 5})
    assert status == 200 and body["state"] == ActionState.SUCCESS, body
    assert not api.runner.is_enabled("bs1") and api.runner.is_enabled("bs2")
    page = await api.get("/slaves/bs1")
    assert (page["enabled"], page["disabled_reason"], page["disabled_by"]) == (False, "bad disk", "oncall")
    assert "see bug 1" in page["notes"]
    assert slave.calls.count("shutdown") == 1 and "bs1" not in api.master.botmaster.slaves
    assert [s["name"] for s in (await api.get("/slaves", args={"enabled": "0"}))["slaves"]] == ["bs1"]


@pytest_twisted.ensureDeferred
async def test_disable_with_force_fails_for_want_of_a_reboot_channel_but_stays_disabled(api):
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/disable",
                                   body=json.dumps({"force": True, "waittime": 5}).encode(),
                                   headers={"Content-Type": "application/json"})
    assert body["state"] == ActionState.FAILURE and "no reboot method worked" in body["text"]
    assert not api.runner.is_enabled("bs1")


@pytest_twisted.ensureDeferred
async def test_enable_undoes_disable(api):
    await api.request("POST", "/slaves/bs1/actions/disable", args={"reason": "x", "waittime": 5})
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/enable", args={"waittime": 5})
    assert body["state"] == ActionState.SUCCESS and api.runner.is_enabled("bs1")
    page = await api.get("/slaves/bs1")
    assert page["enabled"] is True and page["disabled_reason"] is None


@pytest_twisted.ensureDeferred
async def test_last_activity_of_an_attached_idle_slave_is_ready(api):
    await api.attach("bs1")  # its attach is recorded now; 50 s later it is idle
    api.clock.advance(50)
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/get_last_activity", args={"waittime": 5})
    assert body["state"] == ActionState.SUCCESS
    assert body["data"] == {"last_state": "ready", "last_activity_seconds": 50, "uptime": 50}


@pytest_twisted.ensureDeferred
async def test_last_activity_of_a_slave_that_left_is_stopped(api):
    now = api.clock.seconds()
    await api.master.db.slaves.attached("bs1", api.master.masterid, {}, None, now - 100)
    await api.master.db.slaves.detached("bs1", api.master.masterid, now - 30)
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/buildslave_last_activity",
                                   args={"waittime": 5})
    assert body["data"] == {"last_state": "stopped", "last_activity_seconds": 30, "uptime": None}


@pytest_twisted.ensureDeferred
async def test_aws_actions_fail_without_aws_settings(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/aws_create_instance",
                                        args={"instance_type": "test", "bug": "123", "waittime": 5})
    assert status == 200 and body["state"] == ActionState.FAILURE
    assert "no AWS settings for this slave" in body["text"]


# -- reading ------------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_results_are_grouped_by_slave_action_and_requestid(api):
    _, one, _ = await api.request("POST", "/slaves/bs1/actions/reboot", args={"waittime": 5})
    _, two, _ = await api.request("POST", "/slaves/bs2/actions/get_uptime", args={"waittime": 5})
    results = await api.get("/results", user="viewer")
    assert results["bs1"]["reboot"][str(one["requestid"])]["state"] == ActionState.FAILURE
    assert set(results["bs2"]["buildslave_uptime"]) == {str(two["requestid"])}
    by_alias = await api.get("/slaves/bs2/actions/get_uptime")
    assert list(by_alias) == ["buildslave_uptime"] and str(two["requestid"]) in by_alias["buildslave_uptime"]


@pytest_twisted.ensureDeferred
async def test_a_requestid_of_another_slave_or_action_answers_the_history(api):
    _, one, _ = await api.request("POST", "/slaves/bs1/actions/reboot", args={"waittime": 5})
    _, two, _ = await api.request("POST", "/slaves/bs2/actions/reboot", args={"waittime": 5})
    history = await api.get("/slaves/bs2/actions/reboot", args={"requestid": one["requestid"]})
    assert list(history["reboot"]) == [str(two["requestid"])]
    history = await api.get("/slaves/bs1/actions/get_uptime", args={"requestid": one["requestid"]})
    assert history == {"buildslave_uptime": {}}
    history = await api.get("/slaves/bs1/actions/reboot", args={"requestid": 999999})
    assert list(history["reboot"]) == [str(one["requestid"])]


@pytest_twisted.ensureDeferred
async def test_slave_page_shows_jobs_newest_first_and_channels_without_secrets(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("BS1_IPMI", "ipmi-pass-xyz")
    inventory = {"slaves": {"bs1": {"fqdn": "bs1.example.com", "ip": "10.0.0.11", "environment": "prod",
                                    "bmc": {"fqdn": "bs1-mgmt", "username": "admin",
                                            "password": {"env": "BS1_IPMI"}},
                                    "ssh": {"username": "cltbld", "password": "ssh-pass-abc"}}}}
    harness = await Harness(db_url, tmp_path, inventory).start()
    db = harness.master.db
    try:
        builderid = await db.builders.find_or_create("linux")
        await harness.attach("bs1", info={"basedir": "/b/bs1"})  # attached here
        slaveid = (await db.slaves.get("bs1"))["slaveid"]
        for started in (100.0, 200.0):
            brid = await db.buildrequests.add(builderid, "r", {}, started)
            buildid, _ = await db.builds.add(builderid, brid, slaveid, harness.master.masterid, started)
            await db.builds.finish(buildid, BUILD_SUCCESS, started + 5.5, "done")
        status, _, request = await harness.request("GET", "/slaves/bs1", user="viewer")
        page = json.loads(b"".join(request.body_written))
        assert status == 200
        assert (page["fqdn"], page["ip"], page["environment"], page["basedir"]) == (
            "bs1.example.com", "10.0.0.11", "prod", "/b/bs1")
        master_name = harness.master.name_in_database
        assert page["connected"] is True and page["master"] == master_name and page["bug"] is None
        jobs = page["recent_jobs"]
        assert [(j["starttime"], j["endtime"], j["result"], j["result_name"]) for j in jobs] == [
            (200, 205, 0, "success"), (100, 105, 0, "success")]
        assert page["recent_jobs"][0]["buildername"] == "linux"
        assert page["channels"]["bmc"] == {"fqdn": "bs1-mgmt", "username": "admin", "password": "(secret)"}
        raw = b"".join(request.body_written)
        assert b"ipmi-pass-xyz" not in raw and b"ssh-pass-abc" not in raw
        prod = await harness.get("/slaves", args={"environment": "prod"})
        assert [s["name"] for s in prod["slaves"]] == ["bs1"]
        ours = await harness.get("/slaves", args={"master": master_name})
        assert [s["name"] for s in ours["slaves"]] == ["bs1"]
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_mounted_under_slaveapi_in_another_klein_site(api):
    site = Klein()

    @site.route("/slaveapi/", branch=True)
    def slaveapi(request):
        return api.resource

    status, body, _ = await api.request("GET", "/slaveapi/slaves", resource=site.resource())
    assert status == 200 and [s["name"] for s in body["slaves"]] == ["bs1", "bs2"]


async def _until(predicate, tries: int = 200):
    from twisted.internet import reactor

    for _ in range(tries):
        if predicate():
            return
        await task.deferLater(reactor, 0.01, lambda: None)
    pytest.fail("condition never became true")


# -- as the original SlaveAPI answered (compat.py) -------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_an_action_on_an_unknown_slave_is_queued_and_fails_saying_why(api):
    status, body, _ = await api.request("POST", "/slaves/nobody/actions/reboot", user="viewer")
    assert status == 403  # the scope is checked first
    status, body, _ = await api.request("POST", "/slaves/nobody/actions/reboot", args={"waittime": 5})
    assert status == 200 and body["state"] == ActionState.FAILURE, body
    assert "no slave named 'nobody'" in body["text"]
    again = await api.get("/slaves/nobody/actions/reboot", args={"requestid": body["requestid"]})
    assert again["state"] == ActionState.FAILURE and again["requestid"] == body["requestid"]
    assert str(body["requestid"]) in (await api.get("/results"))["nobody"]["reboot"]
    assert (await api.request("GET", "/slaves/nobody"))[0] == 404
    assert "nobody" not in [s["name"] for s in (await api.get("/slaves"))["slaves"]]


@pytest_twisted.ensureDeferred
async def test_an_argument_the_action_does_not_take_is_ignored_and_said(api):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/enable",
                                        args={"colour": "red", "waittime": 5})
    assert status == 200 and body["state"] == ActionState.SUCCESS, body
    assert body["text"].splitlines()[0] == "ignored the argument 'colour': enable takes comment"


@pytest.mark.parametrize("spelling", ["y", "Y", "yes", "1", "true", "TRUE"])
@pytest_twisted.ensureDeferred
async def test_disable_force_takes_every_spelling_the_original_took(api, spelling):
    status, body, _ = await api.request("POST", "/slaves/bs1/actions/disable",
                                        args={"force": spelling, "waittime": 5})
    assert status == 200, body
    assert "reboot command over ssh: skipped" in body["text"]  # forced: a reboot, not a shutdown


@pytest_twisted.ensureDeferred
async def test_uptime_and_last_activity_text_is_the_value_the_original_answered(api):
    await api.attach("bs1")  # its attach is recorded now; 50 s later it is idle
    api.clock.advance(50)
    _, body, _ = await api.request("POST", "/slaves/bs1/actions/get_last_activity", args={"waittime": 5})
    assert body["text"] == {"last_state": "ready", "last_activity_seconds": 50, "uptime": 50}
    assert body["text"] == body["data"] and "attached and idle" in body["story"]


INVENTORY = {"slaves": {
    "bs1": {"fqdn": "bs1.build.scl3.example.com", "ip": "10.0.0.11", "purpose": "build", "pool": "build-pool",
            "bmc": {"fqdn": "bs1-mgmt.build.scl3.example.com", "username": "admin", "password": "x"},
            "pdu": {"fqdn": "pdu1.scl3.example.com", "outlet": "AA12"}, "buildbotslave": "foopy1"},
    "bs2": {"purpose": "try", "pool": "try-pool"},
    "foopy1": {"fqdn": "foopy1.build.mtv1.example.com", "ip": "10.0.1.1", "purpose": "build"},
}}


@pytest_twisted.ensureDeferred
async def test_slaves_are_filtered_by_purpose_environment_pool_and_enabled(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path, INVENTORY).start()
    try:
        async def names(**args):
            return [s["name"] for s in (await harness.get("/slaves", args=args))["slaves"]]

        assert await names() == ["bs1", "bs2", "foopy1"]
        assert await names(purpose="build") == ["bs1", "foopy1"]
        assert await names(purpose="build", pool="build-pool") == ["bs1"]
        assert await names(pool="try-pool") == ["bs2"]
        assert await names(purpose="nothing") == []
        assert await names(enabled="y") == ["bs1", "bs2", "foopy1"]
        assert await names(enabled="0") == []
        listing = await harness.get("/slaves")
        assert [(s["purpose"], s["pool"]) for s in listing["slaves"]] == [
            ("build", "build-pool"), ("try", "try-pool"), ("build", None)]
        status, body, _ = await harness.request("GET", "/slaves", args={"enabled": "perhaps"})
        assert status == 400 and body["msg"].startswith("enabled:")
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_a_filter_given_several_times_matches_any_of_its_values(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path, INVENTORY).start()
    try:
        request = MemoryRequest("GET", "/slaves", PEER)
        request.args = {b"purpose": [b"try", b"nothing"], b"pool": [b"try-pool", b"build-pool"]}
        request.requestHeaders.setRawHeaders(b"authorization", [b"Basic " + base64.b64encode(b"viewer:v1ew")])
        finished = request.notifyFinish()
        rendered = harness.resource.render(request)
        if rendered is not NOT_DONE_YET:
            request.write(rendered)
            request.finish()
        await finished
        assert [s["name"] for s in json.loads(b"".join(request.body_written))["slaves"]] == ["bs2"]
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_slave_page_has_the_original_machine_fields(db_url, tmp_path):
    harness = await Harness(db_url, tmp_path, INVENTORY).start()
    try:
        page = await harness.get("/slaves/bs1", user="viewer")
        assert (page["fqdn"], page["domain"], page["ip"], page["colo"]) == (
            "bs1.build.scl3.example.com", "build.scl3.example.com", "10.0.0.11", "scl3")
        assert page["ipmi"] == {"fqdn": "bs1-mgmt.build.scl3.example.com"}
        assert page["pdu"] == {"fqdn": "pdu1.scl3.example.com", "port": "AA12"}
        assert page["buildbotslave"] == {"fqdn": "foopy1.build.mtv1.example.com",
                                         "domain": "build.mtv1.example.com", "ip": "10.0.1.1",
                                         "colo": "mtv1", "ipmi": None, "pdu": None}
        assert (page["purpose"], page["pool"]) == ("build", "build-pool")
        bare = await harness.get("/slaves/bs2", user="viewer")
        assert {k: bare[k] for k in ("domain", "colo", "ipmi", "pdu", "buildbotslave")} == dict.fromkeys(
            ("domain", "colo", "ipmi", "pdu", "buildbotslave"))
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_master_url_is_buildbot_url_and_no_dns_lookup_runs_on_the_reactor(db_url, tmp_path,
                                                                                monkeypatch):
    import socket

    def no_dns(*args):
        raise AssertionError("socket.getfqdn() ran on the reactor")

    monkeypatch.setattr(socket, "getfqdn", no_dns)
    harness = await Harness(db_url, tmp_path).start()
    harness.master.config.buildbot_url = "https://ci.example.com/"
    try:
        await harness.attach("bs1")
        page = await harness.get("/slaves/bs1", user="viewer")
        assert page["master_url"] == "https://ci.example.com/"
    finally:
        await harness.stop()


@pytest_twisted.ensureDeferred
async def test_master_url_without_buildbot_url_is_this_host_and_the_www_port(api):
    import socket

    slave = await api.attach("bs1", info={"basedir": "/b/bs1", "environ": {"AWS_SECRET": "hidden"}})
    status, page, request = await api.request("GET", "/slaves/bs1", user="viewer")
    assert status == 200 and page["master_url"] == f"http://{socket.gethostname()}:8010/"
    assert page["basedir"] == "/b/bs1" and b"hidden" not in b"".join(request.body_written)
    slave.drop()
    await _until(lambda: "bs1" not in api.master.botmaster.slaves)
    assert (await api.get("/slaves/bs1"))["master_url"] is None  # not attached here


@pytest_twisted.ensureDeferred
async def test_the_slaveapi_port_serves_with_the_configured_http_limits(db_url, tmp_path):
    from buildfarm.master.slaveapi.resources import make_site

    harness = await Harness(db_url, tmp_path, www={"port": 8010, "idle_timeout": 7}).start()
    try:
        site = make_site(harness.runner)
        assert site.limits.idle_timeout_s == 7 and site.timeOut == 7
    finally:
        await harness.stop()
