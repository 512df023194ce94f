"""Swarming's own Python client (luci-py's ``swarming.py``, late 2021) against a real master,
replayed from the recorded contract (/work/shared/SWARMING-ISOLATE-API.md, "Swarming", "Common
to every request", "How the clients authenticate"): ``RecordedSwarmingClient`` below sends
exactly what that client was observed to send and checks what it was observed to read, with
``--auth-disabled`` (no ``Authorization`` header; docs/tasks.md's example grants the scopes to
anonymous callers).

The master runs no slave here: what a slave would have done (run a task, print, end; be seen
with dimensions) is written into the master's database with the db layer (``master.db.tasks``)
from the test.  Cancel and terminate go through the task engine: while the master has none they
answer a JSON 503; once it runs, ``{ok, was_running}`` and ``{task_id}``.
"""

import http.client
import json
import os
import re
import uuid
from urllib.parse import quote, urlsplit

import pytest
import pytest_twisted
from twisted.internet import reactor

from buildfarm.master.db.connector import DBConnector
from fixtures.daemons import Fleet, wait_for
from tests.fixtures import docexamples

V1 = "/_ah/api/swarming/v1"
USER_AGENT = "swarming.py/1.0"
REQUESTS_HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate", "Accept": "*/*",
                    "Connection": "keep-alive"}
JSON_TYPE = "application/json; charset=UTF-8"
NAIVE_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?")  # what --decorate parses
QUERY_PAGE = 250  # query's limit=min(250, L)
CONFIG = """\
c = BuildmasterConfig = {{}}
c['slaves'] = []
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
{example}
"""


class RecordedSwarmingClient:
    """What ``swarming.py --auth-disabled -S URL`` sends and reads."""

    def __init__(self, server: str):
        self.server = server

    def http(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        parts = urlsplit(self.server)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        headers = dict(REQUESTS_HEADERS)
        raw = None
        if body is not None:  # compact sorted JSON
            raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            headers["Content-Type"] = JSON_TYPE
        try:
            connection.request(method, path, body=raw, headers=headers)
            response = connection.getresponse()
            status, data = response.status, response.read()
            content_type = response.headers.get("Content-Type", "")
        finally:
            connection.close()
        assert data.strip(), f"an empty body (HTTP {status}) counts as a failure"
        assert content_type.startswith("application/json"), (status, content_type)
        answer = json.loads(data)
        assert isinstance(answer, dict)
        return status, answer

    def trigger(self, name: str, dimensions: dict, command: list[str], wait_for_capacity: bool = False,
                **extra) -> dict:
        """``trigger --raw-cmd -d k v ... -- command`` (``--wait-for-capacity``): the body with its
        explicit nulls."""
        body = {
            "name": name, "parent_task_id": "", "priority": 200, "realm": None,
            "request_uuid": str(uuid.uuid4()), "resultdb": {"enable": False}, "pool_task_template": "AUTO",
            "tags": [], "user": None,
            "task_slices": [{"expiration_secs": 21600, "wait_for_capacity": wait_for_capacity, "properties": {
                "command": command, "relative_cwd": None,
                "dimensions": [{"key": k, "value": v} for k, v in sorted(dimensions.items())],
                "env": [], "env_prefixes": [], "caches": [],
                "cipd_input": {"client_package": None, "packages": [], "server": None},
                "containment": {"containment_type": "NONE"}, "execution_timeout_secs": 3600,
                "grace_period_secs": 30, "idempotent": False, "io_timeout_secs": 1200, "outputs": [],
                "inputs_ref": None, "secret_bytes": None}}],
        }
        body.update(extra)
        status, answer = self.http("POST", f"{V1}/tasks/new", body)
        assert status == 200, answer
        assert isinstance(answer["task_id"], str) and re.fullmatch(r"[0-9a-f]+", answer["task_id"])
        int(answer["request"]["priority"])  # the client compares it with int()
        return answer

    def poll_result(self, task_id: str) -> dict:
        """One of collect's polls, with the checks the client makes on what it reads."""
        status, result = self.http("GET", f"{V1}/task/{task_id}/result?include_performance_stats=true")
        assert status == 200 and "error" not in result, result
        assert result["state"] in ("PENDING", "RUNNING", "COMPLETED", "TIMED_OUT", "EXPIRED", "CANCELED",
                                   "KILLED", "BOT_DIED", "NO_RESOURCE")
        assert result["task_id"] == task_id
        if "duration" in result:
            assert isinstance(result["duration"], (int, float))
        for field in ("created_ts", "started_ts", "abandoned_ts"):
            if field in result:
                assert NAIVE_UTC.fullmatch(result[field]), (field, result[field])  # a Z crashes --decorate
        return result

    def stdout(self, task_id: str) -> str:
        status, answer = self.http("GET", f"{V1}/task/{task_id}/stdout")
        assert status == 200 and isinstance(answer["output"], str)
        return answer["output"]

    def query(self, what: str, limit: int = 200) -> dict:
        """``query X -L limit``: pages while the answer has a cursor and items, merged."""
        separator = "&" if "?" in what else "?"
        status, first = self.http("GET", f"{V1}/{what}{separator}limit={min(QUERY_PAGE, limit)}")
        assert status == 200, first
        page = first
        while page.get("cursor") and page.get("items") and len(first["items"]) < limit:
            remaining = limit - len(first["items"])
            status, page = self.http("GET", f"{V1}/{what}{separator}cursor={quote(page['cursor'])}"
                                            f"&limit={min(QUERY_PAGE, remaining)}")
            assert status == 200, page
            first["items"] += page.get("items", [])
        first.pop("cursor", None)
        return first

    def bots(self, *dimensions: str, is_dead: str = "FALSE", is_busy: str = "NONE") -> list[dict]:
        """``bots [-d k v]``: bots/list, paged without limit."""
        query = f"is_dead={is_dead}&is_busy={is_busy}"
        query += "".join(f"&dimensions={quote(d)}" for d in dimensions)
        status, page = self.http("GET", f"{V1}/bots/list?{query}")
        items = list(page.get("items", []))
        while page.get("cursor") and page.get("items"):
            status, page = self.http("GET", f"{V1}/bots/list?{query}&cursor={quote(page['cursor'])}")
            items += page.get("items", [])
        for bot in items:
            assert bot["bot_id"] and all(isinstance(d["value"], list) for d in bot["dimensions"])
        return items


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    fleet = Fleet(str(tmp_path_factory.mktemp("swarming-contract")))
    example = docexamples.example("tasks.md", "swarming-anonymous")
    started = fleet.master(config=lambda pb_port, www_port: CONFIG.format(
        pb_port=pb_port, www_port=www_port, example=example))
    wait_for(lambda: started.request("GET", f"{V1}/server/details", user=None)[0] == 200,
             "the master's web port")
    yield started
    fleet.stop_all()


@pytest.fixture
def client(master):
    return RecordedSwarmingClient(master.url)


@pytest_twisted.async_yield_fixture
async def db(master):
    """The master's own database, through the db layer (what a slave would make it write)."""
    connector = DBConnector("sqlite:///state.sqlite", master.basedir, reactor)
    await connector.setup()
    yield connector.tasks
    await connector.stopService()


async def ran(db, task_id: str, output: bytes, exit_code: int, slave: str = "bs1") -> None:
    request_id = int(task_id[:-1], 16)
    now = reactor.seconds()
    try_number = await db.start_run(request_id, slave, now)
    await db.append_output(request_id, try_number, 0, output)
    await db.finish_run(request_id, try_number, "COMPLETED", now + 1.25, exit_code=exit_code, duration=1.25)


@pytest_twisted.ensureDeferred
async def test_trigger_then_collect_reads_a_pending_then_a_finished_task(client, db):
    # this master has no slave: only a task waiting for capacity stays PENDING (the engine ends
    # any other NO_RESOURCE at once, as Swarming does); the test then plays the slave's part
    answer = client.trigger("None/os=Linux_pool=ci", {"os": "Linux", "pool": "ci"}, ["echo", "hi"],
                            wait_for_capacity=True)
    task_id = answer["task_id"]
    assert answer["request"]["user"] is None  # --auth-disabled, no --user: a null user is kept
    assert client.poll_result(task_id)["state"] == "PENDING"
    await ran(db, task_id, "héllo\n".encode(), exit_code=0)
    result = client.poll_result(task_id)
    assert (result["state"], int(result["exit_code"]), result["bot_id"]) == ("COMPLETED", 0, "bs1")
    assert client.stdout(task_id) == "héllo\n"  # v1: plain text, not base64


@pytest_twisted.ensureDeferred
async def test_a_failed_task_gives_collect_its_exit_code(client, db):
    task_id = client.trigger("fails", {"pool": "ci"}, ["false"], wait_for_capacity=True)["task_id"]
    await ran(db, task_id, b"", exit_code=3)
    result = client.poll_result(task_id)
    assert result["failure"] is True and int(result["exit_code"]) == 3


def test_a_task_no_slave_could_run_ends_no_resource_at_once(client):
    task_id = client.trigger("nowhere", {"pool": "ci", "os": "Plan9"}, ["true"])["task_id"]
    result = client.poll_result(task_id)
    assert result["state"] == "NO_RESOURCE" and result["failure"] is True, result


def test_a_bad_request_is_a_400_the_client_does_not_retry(client):
    body_status, answer = client.http("POST", f"{V1}/tasks/new", {"name": "x", "task_slices": []})
    assert body_status == 400 and answer["error"]["errors"]


def test_an_unknown_task_is_a_json_404(client):
    status, answer = client.http("GET", f"{V1}/task/{'1' * 15}10/result")
    assert status in (400, 404) and answer["error"]["message"]


def test_query_pages_through_every_task_with_cursors(client):
    made = {client.trigger(f"q{i}", {"pool": "ci"}, ["true"], tags=["batch:query"])["task_id"]
            for i in range(5)}
    listed = client.query("tasks/list?tags=batch%3Aquery", limit=5)
    assert {t["task_id"] for t in listed["items"]} == made
    status, small = client.http("GET", f"{V1}/tasks/list?tags=batch%3Aquery&limit=2")
    assert len(small["items"]) == 2 and small["cursor"]
    count = client.query("tasks/count?tags=batch%3Aquery")
    assert count["count"] == "5"


@pytest_twisted.ensureDeferred
async def test_bots_with_dimension_filters(client, db):
    now = reactor.seconds()
    await db.set_bot("gpu1", {"id": ["gpu1"], "os": ["Linux"], "pool": ["ci"], "gpu": ["nv"]}, now)
    await db.set_bot("cpu1", {"id": ["cpu1"], "os": ["Linux"], "pool": ["ci"]}, now)
    assert [b["bot_id"] for b in client.bots("gpu:nv")] == ["gpu1"]
    assert {b["bot_id"] for b in client.bots("os:Linux", "pool:ci")} >= {"gpu1", "cpu1"}


def test_cancel_and_terminate_answer_json_through_the_engine(client, master):
    task_id = client.trigger("to-cancel", {"pool": "ci"}, ["sleep", "60"])["task_id"]
    status, answer = client.http("POST", f"{V1}/task/{task_id}/cancel", {"kill_running": False})
    if status == 200:
        assert set(answer) == {"ok", "was_running"}
    else:  # no engine in this master yet
        assert status == 503 and "engine" in answer["error"]["message"]
    status, answer = client.http("POST", f"{V1}/bot/nobody/terminate", {})
    assert status in (401, 404)  # anonymous callers hold no bots:terminate scope; unknown bot


@pytest.mark.parametrize("path", ["/auth/api/v1/server/oauth_config", "/auth/api/v1/accounts/self"])
def test_the_sign_in_of_a_client_without_auth_disabled_is_a_json_404(client, path):
    status, answer = client.http("GET", path)
    assert status == 404 and "--auth-disabled" in answer["error"]["message"]


def test_query_list_reads_the_discovery_documents(client):
    status, apis = client.http("GET", "/_ah/api/discovery/v1/apis")
    urls = [i["discoveryRestUrl"] for i in apis["items"] if i["id"] != "discovery:v1"]
    assert urls
    status, document = client.http("GET", urlsplit(urls[0]).path)
    assert document["servicePath"] == "swarming/v1/" and document["description"]
    methods = [m for r in document["resources"].values() for m in r["methods"].values()]
    assert all({"id", "path", "httpMethod", "description"} <= set(m) for m in methods)


def test_the_master_log_has_no_traceback(master):
    assert "Traceback" not in master.log_text()
    assert os.path.exists(os.path.join(master.basedir, "state.sqlite"))
