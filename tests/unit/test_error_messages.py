"""buildfarm's own surfaces answer every error (400, 404, 409, 413 ...) with a top-level
``message`` beside their own keys, so that the official client's exception text is the
server's message, not "Unknown Server Error": through buildfarm.common.client's ``Buildfarm``,
``SlaveAPI``, ``Tasks`` and ``CAS`` against a real master on a loopback port (the blocking
client runs in a thread)."""

import json

import pytest
import pytest_twisted
from taskcluster.exceptions import TaskclusterRestFailure
from twisted.internet import threads

from buildfarm.common import client
from buildfarm.master.http.endpoints import error_body
from buildfarm.master.http.site import json_error_body, slaveapi_error_body
from fixtures.daemons import free_port
from fixtures.inprocessmaster import make_basedir, start_master

TOKEN = "tester-token-0123456789"


@pytest_twisted.async_yield_fixture
async def options(tmp_path):
    basedir = make_basedir(str(tmp_path), {"port": f"tcp:{free_port()}:interface=127.0.0.1"})
    with open(f"{basedir}/master.cfg", "a") as f:
        f.write(f"c['clients'] = [{{'clientId': 'tester', 'accessToken': {TOKEN!r}, "
                "'scopes': ['*']}]\n")
    master = await start_master(basedir)
    yield {"rootUrl": f"http://127.0.0.1:{master.www.port.getHost().port}", "maxRetries": 0,
           "credentials": {"clientId": "tester", "accessToken": TOKEN}}
    await master.stopService()


async def refused(call) -> TaskclusterRestFailure:
    """The client's exception of ``call()``, run in a thread while the reactor serves."""
    with pytest.raises(TaskclusterRestFailure) as caught:
        await threads.deferToThread(call)
    return caught.value


@pytest_twisted.ensureDeferred
async def test_the_json_api_errors_carry_their_message(options):
    api = client.Buildfarm(options)
    e = await refused(lambda: api.builder("nope"))
    assert (e.status_code, str(e)) == (404, "no builder named 'nope'")
    assert e.body["error"] == "no builder named 'nope'"
    e = await refused(lambda: api.forceBuild("linux", {"bogus": 1}))
    assert e.status_code == 400 and str(e) == "unknown field 'bogus' (allowed: reason, properties)"
    assert e.body["field"] == "bogus"
    e = await refused(lambda: api.stopBuild(12345, {}))
    assert e.status_code == 404 and str(e) == "no build 12345"


@pytest_twisted.ensureDeferred
async def test_the_slaveapi_errors_carry_their_message(options):
    api = client.SlaveAPI(options)
    e = await refused(lambda: api.doAction("bs1", "no_such_action", {}))
    assert e.status_code in (400, 404) and str(e) == e.body["msg"] and "no_such_action" in str(e)
    assert e.body["error"] in ("bad request", "not found")


@pytest_twisted.ensureDeferred
async def test_the_tasks_api_errors_carry_their_message(options):
    api = client.Tasks(options)
    e = await refused(lambda: api.taskResult("zz"))
    assert e.status_code == 400 and str(e) == e.body["error"]["message"]
    assert str(e).startswith("task id must be 2 to 17 lower-case hex digits")
    e = await refused(lambda: api.taskResult("1234510"))
    assert (e.status_code, str(e), e.body["error"]["errors"][0]["reason"]) == (404, "no task 1234510",
                                                                                 "notFound")


@pytest_twisted.ensureDeferred
async def test_the_cas_api_errors_carry_their_message(options):
    api = client.CAS(options)
    body = {"digest": "not-a-digest", "namespace": {"namespace": "default-gzip"}}
    e = await refused(lambda: api.retrieve(body))
    assert e.status_code == 400 and str(e) == e.body["error"]["message"] and "digest" in str(e)


def test_the_refusals_made_before_any_handler_carry_the_message_too():
    assert json.loads(json_error_body(413, "too big")[1]) == {"error": "too big", "message": "too big"}
    assert json.loads(slaveapi_error_body(413, "too big")[1]) == {
        "error": "request entity too large", "msg": "too big", "message": "too big"}
    assert json.loads(error_body(413, "too big"))["message"] == "too big"
