"""The Swarming v1 API (master/tasks/api.py) rendered in memory on a real in-memory master
(its auth service and database): what each route answers, the types the contract records
(int64 as strings, naive UTC timestamps, enum states), errors in the Endpoints shape, and who
may call what.  Task results are written with the db layer (the engine is a recording fake of
its three calls, checked against ``ITaskEngine`` with ``verifyObject``)."""

import base64
import json
import re

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import capturedLogs
from zope.interface import implementer
from zope.interface.verify import verifyObject

from buildfarm.master.http.routes import AUDIT_EACH, AUDIT_NONE, PUBLIC
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.api import BOT_DEAD_AFTER_S, PREFIX, SwarmingAPI
from buildfarm.master.tasks.interfaces import ITaskEngine, UnknownBot, UnknownTask
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, memory_master_fixture, with_fast_password_checks

NOW = 1_700_000_000.0
NO_ANONYMOUS = "c['www'] = {'port': 8010, 'anonymous_scopes': []}"
CFG = MASTER_CFG.replace("c['www'] = {'port': 8010}", NO_ANONYMOUS) + """
c['users'] += [util.User('ci', password='c1', scopes=['tasks:create:ci', 'tasks:read', 'tasks:cancel:ci',
                                                     'bots:read', 'bots:terminate:ci']),
               util.User('reader', password='r3ad', scopes=['tasks:read', 'bots:read'])]
"""
ADMIN = "Basic " + base64.b64encode(b"admin:adm1n").decode()
CI = "Basic " + base64.b64encode(b"ci:c1").decode()
READER = "Basic " + base64.b64encode(b"reader:r3ad").decode()
NAIVE_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?")
master = memory_master_fixture(CFG, now=NOW)


@implementer(ITaskEngine)
class RecordingEngine:
    """The engine's three calls, recorded (task ids as the hex summary id, for the asserts);
    ``submitted`` fires with the stored result, ``cancel`` with ``cancel_answer``; unknown
    tasks and bots fail as the interface says."""

    def __init__(self, db):
        self.db = db
        self.calls = []
        self.cancel_answer = (True, False)

    async def _submitted(self, request_id):
        return await self.db.tasks.get_result(request_id)

    def submitted(self, task_id):
        self.calls.append(("submitted", ids.summary_id(task_id)))
        return defer.ensureDeferred(self._submitted(task_id))

    async def _cancel(self, request_id):
        if await self.db.tasks.get_result(request_id) is None:
            raise UnknownTask(request_id)
        return self.cancel_answer

    def cancel(self, task_id, kill_running):
        self.calls.append(("cancel", ids.summary_id(task_id), kill_running))
        return defer.ensureDeferred(self._cancel(task_id))

    def add_end_listener(self, listener):
        self.calls.append(("add_end_listener",))

    def terminate_bot(self, name):
        self.calls.append(("terminate_bot", name))
        return defer.fail(UnknownBot(name)) if name == "vanished" else defer.succeed("deadbeef10")


@pytest.fixture
def api(master):
    with_fast_password_checks(master)
    master.tasks = RecordingEngine(master.db)
    verifyObject(ITaskEngine, master.tasks)
    counter = iter(range(1, 1 << 16))
    return SwarmingAPI(master, master.reactor, random_bits=lambda bits: next(counter), cursor_key=b"k" * 32)


async def call(api, method: str, name: str, body=None, auth: str | None = CI, args: dict | None = None):
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    response = await render(api.resource(), method, f"{PREFIX}/{name}", args=args, body=raw,
                            headers={"Authorization": auth} if auth else {})
    assert response.body, "an empty body counts as a failure for Swarming's clients"
    return response.code, json.loads(response.body)


def new_body(**changes) -> dict:
    """A body as swarming.py trigger sends it (explicit nulls)."""
    body = {
        "name": "hello", "parent_task_id": "", "priority": 100, "realm": None, "request_uuid": None,
        "resultdb": {"enable": False}, "pool_task_template": "AUTO", "tags": ["purpose:test"], "user": None,
        "task_slices": [{"expiration_secs": 3600, "wait_for_capacity": False, "properties": {
            "command": ["echo", "hi"], "relative_cwd": None,
            "dimensions": [{"key": "os", "value": "Linux"}, {"key": "pool", "value": "ci"}],
            "env": [], "env_prefixes": [], "caches": [], "cipd_input": None,
            "containment": {"containment_type": "NONE"}, "execution_timeout_secs": 3600,
            "grace_period_secs": 30, "idempotent": False, "io_timeout_secs": 1200, "outputs": [],
            "inputs_ref": None, "secret_bytes": None}}],
    }
    body.update(changes)
    return body


async def new_task(api, auth=CI, **changes) -> str:
    code, answer = await call(api, "POST", "tasks/new", new_body(**changes), auth=auth)
    assert code == 200, answer
    return answer["task_id"]


async def run_to_end(master, task_id: str, output: bytes = b"hi\n", exit_code: int = 0, slave: str = "bs1"):
    """What the engine would do: the task runs on ``slave``, prints ``output`` and ends."""
    request_id, _ = ids.parse_task_id(task_id)
    try_number = await master.db.tasks.start_run(request_id, slave, NOW + 1)
    await master.db.tasks.append_output(request_id, try_number, 0, output)
    await master.db.tasks.finish_run(request_id, try_number, "COMPLETED", NOW + 3.5, exit_code=exit_code,
                                     duration=2.5)


# -- tasks/new -----------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_tasks_new_stores_the_task_tells_the_engine_and_answers_its_id_and_request(api, master):
    code, answer = await call(api, "POST", "tasks/new", new_body())
    assert code == 200
    task_id = answer["task_id"]
    assert re.fullmatch(r"[0-9a-f]+0", task_id)
    assert api.engine.calls == [("submitted", task_id)]
    assert answer["task_result"]["state"] == "PENDING" and answer["task_result"]["task_id"] == task_id
    request = answer["request"]
    assert request["priority"] == "100" and request["user"] == "ci"  # null user: the caller's name
    assert request["task_slices"][0]["properties"]["execution_timeout_secs"] == "3600"
    assert NAIVE_UTC.fullmatch(request["created_ts"])
    assert (await master.db.tasks.get_result(ids.parse_task_id(task_id)[0]))["state"] == "PENDING"


@pytest_twisted.ensureDeferred
async def test_tasks_new_lists_every_problem_in_the_endpoints_error_shape(api):
    body = new_body(priority=300)
    body["task_slices"][0]["properties"]["execution_timeout_secs"] = 1
    code, answer = await call(api, "POST", "tasks/new", body)
    assert code == 400
    messages = [e["message"] for e in answer["error"]["errors"]]
    assert any(m.startswith("priority") for m in messages)
    assert any(m.startswith("properties.execution_timeout_secs") for m in messages)
    assert answer["error"]["code"] == 400 and api.engine.calls == []


@pytest_twisted.ensureDeferred
async def test_tasks_new_refuses_a_body_that_is_not_json(api):
    code, answer = await call(api, "POST", "tasks/new", b"{not json")
    assert code == 400 and "error" in answer


@pytest_twisted.ensureDeferred
async def test_the_same_request_uuid_from_the_same_user_answers_the_first_task(api):
    first = await new_task(api, request_uuid="3f1c2a0e-aaaa-4bbb-8ccc-000000000001")
    again = await new_task(api, request_uuid="3f1c2a0e-aaaa-4bbb-8ccc-000000000001", name="other")
    assert again == first
    assert api.engine.calls == [("submitted", first)]


@pytest_twisted.ensureDeferred
async def test_a_priority_below_20_is_raised_to_20_without_the_high_priority_scope(api):
    code, answer = await call(api, "POST", "tasks/new", new_body(priority=5))
    assert answer["request"]["priority"] == "20"
    code, answer = await call(api, "POST", "tasks/new", new_body(priority=5), auth=ADMIN)
    assert answer["request"]["priority"] == "5"  # admin holds tasks:high_priority:ci


@pytest_twisted.ensureDeferred
async def test_tasks_new_needs_the_create_scope_of_the_requests_pool(api):
    body = new_body()
    body["task_slices"][0]["properties"]["dimensions"][1]["value"] = "release"
    code, answer = await call(api, "POST", "tasks/new", body)
    assert code == 403 and "tasks:create:release" in answer["error"]["message"]
    code, answer = await call(api, "POST", "tasks/new", new_body(), auth=None)
    assert code == 401
    code, answer = await call(api, "POST", "tasks/new", new_body(), auth=READER)
    assert code == 403


@pytest_twisted.ensureDeferred
async def test_slices_of_different_pools_are_refused(api):
    body = new_body()
    second = json.loads(json.dumps(body["task_slices"][0]))
    second["properties"]["dimensions"][1]["value"] = "other"
    body["task_slices"].append(second)
    code, answer = await call(api, "POST", "tasks/new", body, auth=ADMIN)
    assert code == 400 and "same pool" in answer["error"]["message"]


# -- one task --------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_result_of_a_finished_task_has_the_contracts_types(api, master):
    task_id = await new_task(api)
    await run_to_end(master, task_id, exit_code=0)
    args = {"include_performance_stats": "true"}
    code, result = await call(api, "GET", f"task/{task_id}/result", args=args)
    assert code == 200
    assert result["state"] == "COMPLETED" and result["task_id"] == task_id
    assert result["exit_code"] == "0" and result["duration"] == 2.5 and result["bot_id"] == "bs1"
    assert result["try_number"] == "1" and result["run_id"] == task_id[:-1] + "1"
    for field in ("created_ts", "started_ts", "completed_ts"):
        assert NAIVE_UTC.fullmatch(result[field]), field


@pytest_twisted.ensureDeferred
async def test_result_of_one_try_by_its_run_id(api, master):
    task_id = await new_task(api)
    await run_to_end(master, task_id)
    code, result = await call(api, "GET", f"task/{task_id[:-1]}1/result")
    assert code == 200 and result["task_id"] == task_id[:-1] + "1" and result["state"] == "COMPLETED"
    code, answer = await call(api, "GET", f"task/{task_id[:-1]}2/result")
    assert code == 404


@pytest_twisted.ensureDeferred
async def test_result_of_an_unknown_or_malformed_id_is_a_json_404_or_400(api):
    code, answer = await call(api, "GET", "task/12345670/result")
    assert code in (400, 404) and "error" in answer
    unknown = ids.summary_id(ids.new_request_id(api.reactor, lambda bits: 1))
    code, answer = await call(api, "GET", f"task/{unknown}/result")
    assert code == 404 and answer["error"]["errors"][0]["reason"] == "notFound"
    code, answer = await call(api, "GET", "task/XYZ/result")
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_stdout_is_plain_text_with_offset_and_length(api, master):
    task_id = await new_task(api)
    code, answer = await call(api, "GET", f"task/{task_id}/stdout")
    assert (code, answer) == (200, {"output": "", "state": "PENDING"})
    await run_to_end(master, task_id, output="héllo wörld\n".encode())
    code, answer = await call(api, "GET", f"task/{task_id}/stdout")
    assert answer == {"output": "héllo wörld\n", "state": "COMPLETED"}
    code, answer = await call(api, "GET", f"task/{task_id}/stdout", args={"offset": "7", "length": "6"})
    assert answer["output"] == "wörld"
    code, answer = await call(api, "GET", f"task/{task_id}/stdout", args={"offset": "-1"})
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_a_no_resource_result_says_why_without_an_error_key(api, master):
    task_id = await new_task(api)
    request_id, _ = ids.parse_task_id(task_id)
    why = "no slave could run a task with dimensions os:Linux, pool:ci; nearest: bs1 lacks os:Linux"
    assert await master.db.tasks.end_pending(request_id, "NO_RESOURCE", NOW + 1, error=why)
    code, result = await call(api, "GET", f"task/{task_id}/result")
    assert code == 200 and result["state"] == "NO_RESOURCE" and result["error_message"] == why
    assert "error" not in result  # Swarming's clients take a 200 body with "error" for a failed call


@pytest_twisted.ensureDeferred
async def test_the_stdout_of_a_deduplicated_task_is_its_twins(api, master):
    first = await new_task(api)
    await run_to_end(master, first, output=b"the twin's output\n")
    second = await new_task(api)
    request_id, _ = ids.parse_task_id(second)
    assert await master.db.tasks.end_pending(request_id, "COMPLETED", NOW + 5, deduped_from=first,
                                             exit_code=0, try_number=0)
    code, answer = await call(api, "GET", f"task/{second}/stdout")
    assert (code, answer) == (200, {"output": "the twin's output\n", "state": "COMPLETED"})


@pytest_twisted.ensureDeferred
async def test_request_shows_the_request_with_secrets_redacted(api):
    body = new_body()
    body["task_slices"][0]["properties"]["secret_bytes"] = base64.b64encode(b"s3cret").decode()
    code, answer = await call(api, "POST", "tasks/new", body)
    code, request = await call(api, "GET", f"task/{answer['task_id']}/request", auth=READER)
    assert code == 200 and request["name"] == "hello"
    assert request["task_slices"][0]["properties"]["secret_bytes"] == "<REDACTED>"


@pytest_twisted.ensureDeferred
async def test_cancel_goes_through_the_engine_and_answers_ok_and_was_running(api):
    task_id = await new_task(api)
    api.engine.cancel_answer = (True, True)
    code, answer = await call(api, "POST", f"task/{task_id[:-1]}1/cancel", {"kill_running": True})
    assert (code, answer) == (200, {"ok": True, "was_running": True})
    assert api.engine.calls[-1] == ("cancel", task_id, True)
    code, answer = await call(api, "POST", f"task/{task_id}/cancel", {"kill_running": "yes"})
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_cancel_needs_the_cancel_scope_of_the_tasks_pool(api):
    task_id = await new_task(api)
    code, answer = await call(api, "POST", f"task/{task_id}/cancel", {}, auth=READER)
    assert code == 403 and "tasks:cancel:ci" in answer["error"]["message"]
    assert [c[0] for c in api.engine.calls] == ["submitted"]


@pytest_twisted.ensureDeferred
async def test_cancel_without_an_engine_is_a_503_not_a_traceback(api, master):
    task_id = await new_task(api)
    master.tasks = None
    code, answer = await call(api, "POST", f"task/{task_id}/cancel", {})
    assert code == 503 and "engine" in answer["error"]["message"]


# -- many tasks ------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_tasks_list_pages_with_signed_cursors_newest_first(api, master):
    made = []
    for i in range(5):
        master.reactor.advance(1)
        made.append(await new_task(api, name=f"t{i}"))
    seen, cursor = [], None
    while True:
        args = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        code, page = await call(api, "GET", "tasks/list", args=args, auth=READER)
        assert code == 200
        seen += [item["task_id"] for item in page["items"]]
        cursor = page.get("cursor")
        if not cursor or not page["items"]:
            break
    assert seen == made[::-1]


@pytest_twisted.ensureDeferred
async def test_a_forged_cursor_is_refused(api):
    code, answer = await call(api, "GET", "tasks/list", args={"cursor": "WzEsMl0.00"}, auth=READER)
    assert code == 400 and "cursor" in answer["error"]["message"]
    cursor = api.cursors.issue("bots", "bs1")
    code, answer = await call(api, "GET", "tasks/list", args={"cursor": cursor}, auth=READER)
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_tasks_list_filters_by_state_and_tags_and_count_agrees(api, master):
    done = await new_task(api, tags=["purpose:test", "shard:1"])
    failed = await new_task(api, tags=["purpose:test", "shard:2"])
    pending = await new_task(api, tags=["purpose:other"])
    await run_to_end(master, done, exit_code=0)
    await run_to_end(master, failed, exit_code=3)

    async def ids_of(**args):
        code, page = await call(api, "GET", "tasks/list", args=args)
        assert code == 200
        return {item["task_id"] for item in page["items"]}

    assert await ids_of(state="COMPLETED_SUCCESS") == {done}
    assert await ids_of(state="COMPLETED_FAILURE") == {failed}
    assert await ids_of(state="PENDING") == {pending}
    assert await ids_of(tags="purpose:test") == {done, failed}
    assert await ids_of(sort="COMPLETED_TS") == {done, failed}
    code, count = await call(api, "GET", "tasks/count", args={"state": "COMPLETED"})
    assert count["count"] == "2" and NAIVE_UTC.fullmatch(count["now"])
    code, answer = await call(api, "GET", "tasks/list", args={"state": "SOMETIMES"})
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_tasks_requests_lists_the_requests(api):
    task_id = await new_task(api)
    code, page = await call(api, "GET", "tasks/requests", auth=READER)
    assert [(r["task_id"], r["name"], r["priority"]) for r in page["items"]] == [(task_id, "hello", "100")]


@pytest_twisted.ensureDeferred
async def test_tasks_cancel_cancels_the_pending_tasks_with_the_tags_in_one_pool(api):
    first = await new_task(api, tags=["pool:ci", "batch:7"])
    second = await new_task(api, tags=["pool:ci", "batch:7"])
    await new_task(api, tags=["pool:ci", "batch:8"])
    code, answer = await call(api, "POST", "tasks/cancel", {"tags": ["pool:ci", "batch:7"]})
    assert code == 200 and answer["matched"] == "2"
    assert {c[1] for c in api.engine.calls if c[0] == "cancel"} == {first, second}
    code, answer = await call(api, "POST", "tasks/cancel", {"tags": ["batch:7"]})
    assert code == 400


# -- bots --------------------------------------------------------------------------------------

async def two_bots(master):
    await master.db.tasks.set_bot("bs1", {"id": ["bs1"], "os": ["Linux"], "pool": ["ci"], "gpu": ["none"]},
                                  NOW - 2 * BOT_DEAD_AFTER_S, version="1.0")
    await master.db.tasks.set_bot("bs2", {"id": ["bs2"], "os": ["Linux"], "pool": ["ci"], "gpu": ["nv"]}, NOW,
                                  version="1.0")


@pytest_twisted.ensureDeferred
async def test_bots_list_filters_by_dimensions_and_death(api, master):
    await two_bots(master)
    code, page = await call(api, "GET", "bots/list", auth=READER)
    assert [b["bot_id"] for b in page["items"]] == ["bs1", "bs2"]
    bs2 = page["items"][1]
    assert {"key": "gpu", "value": ["nv"]} in bs2["dimensions"] and bs2["is_dead"] is False
    assert NAIVE_UTC.fullmatch(bs2["last_seen_ts"])
    code, page = await call(api, "GET", "bots/list", args={"is_dead": "TRUE"}, auth=READER)
    assert [b["bot_id"] for b in page["items"]] == ["bs1"]
    code, page = await call(api, "GET", "bots/list", args={"dimensions": "gpu:nv", "is_dead": "NONE"})
    assert [b["bot_id"] for b in page["items"]] == ["bs2"]
    code, answer = await call(api, "GET", "bots/list", args={"is_dead": "MAYBE"})
    assert code == 400


@pytest_twisted.ensureDeferred
async def test_bots_list_pages_by_cursor(api, master):
    await two_bots(master)
    code, page = await call(api, "GET", "bots/list", args={"limit": "1"})
    assert [b["bot_id"] for b in page["items"]] == ["bs1"]
    code, page = await call(api, "GET", "bots/list", args={"limit": "1", "cursor": page["cursor"]})
    assert [b["bot_id"] for b in page["items"]] == ["bs2"] and "cursor" not in page


@pytest_twisted.ensureDeferred
async def test_bots_count_dimensions_and_get(api, master):
    await two_bots(master)
    code, count = await call(api, "GET", "bots/count")
    assert (count["count"], count["dead"], count["busy"]) == ("2", "1", "0")
    code, dims = await call(api, "GET", "bots/dimensions")
    assert {"key": "gpu", "value": ["none", "nv"]} in dims["bots_dimensions"]
    code, bot = await call(api, "GET", "bot/bs2/get")
    assert code == 200 and bot["bot_id"] == "bs2" and bot["version"] == "1.0"
    code, answer = await call(api, "GET", "bot/nobody/get")
    assert code == 404 and answer["error"]["errors"][0]["reason"] == "notFound"


@pytest_twisted.ensureDeferred
async def test_bot_tasks_lists_what_the_bot_ran(api, master):
    await two_bots(master)
    task_id = await new_task(api)
    await run_to_end(master, task_id, slave="bs2")
    code, page = await call(api, "GET", "bot/bs2/tasks")
    assert [(t["task_id"], t["state"]) for t in page["items"]] == [(task_id[:-1] + "1", "COMPLETED")]
    code, page = await call(api, "GET", "bot/bs1/tasks")
    assert page["items"] == []


@pytest_twisted.ensureDeferred
async def test_terminate_goes_through_the_engine_with_the_bots_pool_scope(api, master):
    await two_bots(master)
    code, answer = await call(api, "POST", "bot/bs2/terminate", {})
    assert (code, answer) == (200, {"task_id": "deadbeef10"})
    assert api.engine.calls == [("terminate_bot", "bs2")]
    code, answer = await call(api, "POST", "bot/bs2/terminate", {}, auth=READER)
    assert code == 403 and "bots:terminate:ci" in answer["error"]["message"]
    code, answer = await call(api, "POST", "bot/nobody/terminate", {})
    assert code == 404
    await master.db.tasks.set_bot("vanished", {"pool": ["ci"]}, NOW)  # known to the db, not the engine
    code, answer = await call(api, "POST", "bot/vanished/terminate", {})
    assert code == 404 and answer["error"]["errors"][0]["reason"] == "notFound"


@pytest_twisted.ensureDeferred
async def test_delete_forgets_the_bot(api, master):
    await two_bots(master)
    code, answer = await call(api, "POST", "bot/bs1/delete", {})
    assert (code, answer) == (200, {"deleted": True})
    assert await master.db.tasks.get_bot("bs1") is None


# -- the server, scopes, audit, mounting -------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_server_details_is_public(api):
    code, answer = await call(api, "GET", "server/details", auth=None)
    assert code == 200 and answer["server_version"].startswith("buildfarm-")


def test_every_route_declares_its_scope_and_only_the_writes_are_audited():
    scopes = {r.endpoint: (r.scope, r.audit) for r in SwarmingAPI.routes.routes}
    assert scopes[f"POST {PREFIX}/tasks/new"] == ("tasks:create:{pool}", AUDIT_EACH)
    assert scopes[f"POST {PREFIX}/task/<string:task_id>/cancel"] == ("tasks:cancel:{pool}", AUDIT_EACH)
    assert scopes[f"POST {PREFIX}/tasks/cancel"] == ("tasks:cancel:{pool}", AUDIT_EACH)
    assert scopes[f"POST {PREFIX}/bot/<string:bot_id>/terminate"] == ("bots:terminate:{pool}", AUDIT_EACH)
    assert scopes[f"GET {PREFIX}/server/details"] == (PUBLIC, AUDIT_NONE)
    reads = {scope for endpoint, (scope, _) in scopes.items()
             if endpoint.startswith("GET") and scope != PUBLIC}
    assert reads == {"tasks:read", "bots:read"}


@pytest_twisted.ensureDeferred
async def test_writes_and_refusals_leave_audit_rows_and_reads_none(api, master):
    task_id = await new_task(api)
    await call(api, "POST", "tasks/new", new_body(), auth=READER)
    await call(api, "GET", f"task/{task_id}/result")
    await call(api, "GET", "bots/list", auth=None)
    rows = list(reversed(await master.db.audit.get_all(surface="swarming")))
    assert [(r["user"], r["path"], r["outcome"], r["status"], r["scope"]) for r in rows] == [
        ("ci", f"{PREFIX}/tasks/new", "done", 200, "tasks:create:ci"),
        ("reader", f"{PREFIX}/tasks/new", "refused", 403, "tasks:create:ci")]


@pytest_twisted.ensureDeferred
async def test_the_site_sends_swarming_paths_to_this_api_and_the_rest_of_ah_to_isolate(api, master):
    site = master.www.make_site()
    response = await render(site.resource, "GET", f"{PREFIX}/server/details")
    assert response.code == 200 and json.loads(response.body)["server_version"].startswith("buildfarm-")
    response = await render(site.resource, "POST", "/_ah/api/isolateservice/v1/server_details", body=b"{}")
    assert response.code == 200 and "expiry_secs" in json.loads(response.body)


@pytest_twisted.ensureDeferred
async def test_the_sign_in_paths_answer_one_json_404_for_both_clients(master):
    site = master.www.make_site()
    for path in ("/auth/api/v1/server/oauth_config", "/auth/api/v1/accounts/self"):
        response = await render(site.resource, "GET", path)
        assert response.code == 404 and response.header("content-type") == "application/json"
        message = json.loads(response.body)["error"]["message"]
        assert "swarming.py" in message and "isolateserver.py" in message and "--auth-disabled" in message


@pytest_twisted.ensureDeferred
async def test_the_discovery_documents_describe_every_swarming_method_for_query_list(master):
    site = master.www.make_site()
    response = await render(site.resource, "GET", "/_ah/api/discovery/v1/apis")
    items = json.loads(response.body)["items"]
    assert [i["id"] for i in items] == ["swarming:v1"]
    url = items[0]["discoveryRestUrl"]
    assert url == "http://localhost:8010/_ah/api/discovery/v1/apis/swarming/v1/rest"
    response = await render(site.resource, "GET", url.removeprefix("http://localhost:8010"))
    document = json.loads(response.body)
    assert document["servicePath"] == "swarming/v1/" and document["description"]
    result = document["resources"]["task"]["methods"]["result"]
    assert (result["path"], result["httpMethod"]) == ("task/{task_id}/result", "GET")
    assert result["description"].startswith("A TaskResult")
    assert set(document["resources"]["bots"]["methods"]) == {"list", "count", "dimensions"}


BIG = "9" * 23


@pytest.mark.parametrize("method, name, args, body", [
    ("GET", f"task/{BIG}/result", None, None),
    ("GET", f"task/{'1' * 15}10/stdout", {"offset": BIG}, None),
    ("GET", "tasks/list", {"limit": BIG}, None),
    ("GET", "tasks/list", {"limit": "0"}, None),
    ("GET", "tasks/list", {"start": "1e400"}, None),
    ("GET", "tasks/list", {"end": "nan"}, None),
    ("GET", "tasks/list", {"tags": "nocolon"}, None),
    ("GET", "tasks/list", {"sort": "NAME"}, None),
    ("GET", "bots/list", {"dimensions": ":x"}, None),
    ("GET", "bots/list", {"cursor": "%%%"}, None),
    ("GET", "bot/bs1/tasks", {"cursor": "x.y"}, None),
    ("POST", "tasks/new", None, b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("POST", "tasks/new", None, b'{"name": "\\ud800", "task_slices": []}'),
    ("POST", "tasks/new", None, b"[]"),
    ("POST", "tasks/cancel", None, {"tags": ["pool:ci"], "limit": BIG}),
    ("POST", "tasks/cancel", None, {"tags": ["pool:ci"], "start": "soon"}),
])
@pytest_twisted.ensureDeferred
async def test_bad_values_answer_a_json_4xx_never_a_500(api, method, name, args, body):
    code, answer = await call(api, method, name, body, auth=ADMIN, args=args)
    assert 400 <= code < 500 and answer["error"]["message"], (code, answer)


@pytest_twisted.ensureDeferred
async def test_a_wrong_method_and_an_unknown_path_are_json_errors(api):
    code, answer = await call(api, "GET", "tasks/new")
    assert code == 405 and answer["error"]["code"] == 405
    code, answer = await call(api, "GET", "tasks/nothing")
    assert code == 404 and answer["error"]["errors"][0]["reason"] == "notFound"


@pytest_twisted.ensureDeferred
async def test_a_failing_engine_call_still_answers_the_stored_pending_task(api, master):
    def broken(task_id):
        return defer.fail(RuntimeError("engine hiccup"))

    master.tasks.submitted = broken
    with capturedLogs() as logs:
        code, answer = await call(api, "POST", "tasks/new", new_body())
    assert code == 200 and answer["task_result"]["state"] == "PENDING"
    assert [type(e["log_failure"].value) for e in logs if "log_failure" in e] == [RuntimeError]
