"""The Taskcluster-format API references made from the route declarations (master/http/
references.py, the ``buildfarm`` service of www/apireference.py): each validates against
Taskcluster's own reference schema (tests/fixtures/taskcluster/), the shipped copies equal what
the master serves, the schemas describe what the handlers really answer, and the routes under
``/api/buildfarm/v1/`` page with ``continuationToken``."""

import base64
import hashlib
import json
import pathlib
import zlib

import jsonschema
import pytest
import pytest_twisted
import taskcluster
import yaml
from klein import Klein
from taskcluster.generated.queue import Queue as OfficialQueue

from buildfarm.common import client
from buildfarm.common.results import SUCCESS
from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.cas.apireference import CAS
from buildfarm.master.http.references import (
    APIService,
    SchemaRegistry,
    manifest,
    reference,
    reference_route,
    scope_expression,
)
from buildfarm.master.http.routes import PUBLIC, APIEntry, RouteTable
from buildfarm.master.slaveapi.apireference import SLAVEAPI
from buildfarm.master.tasks.apireference import TASKS
from buildfarm.master.www.api import JSONAPI
from buildfarm.master.www.apireference import BUILDFARM
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, start_memory_master

SERVICES = CATALOG.services
NOW = 1_700_000_000.0  # a task id holds its creation time: the clock must be in its range
HERE = pathlib.Path(__file__).resolve().parent
TASKCLUSTER_SCHEMAS = HERE.parent / "fixtures" / "taskcluster"
SHIPPED = HERE.parents[1] / "common" / "references"
# Taskcluster's own services, whose client class is the official package's (taskcluster.Auth,
# taskcluster.Queue), not one of buildfarm.common.client's: their references ship all the same.
OFFICIAL_CLIENTS = frozenset({"auth", "queue", "object"})
OWN_SERVICES = tuple(s for s in SERVICES if s.name not in OFFICIAL_CLIENTS)
ADMIN = {"authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}
CFG = MASTER_CFG + """\
c['builders'] += [util.BuilderConfig(name=f'extra{i}', slavenames=['bs1'], factory=util.BuildFactory())
                  for i in range(4)]
"""


def taskcluster_schema(name: str) -> dict:
    return yaml.safe_load((TASKCLUSTER_SCHEMAS / f"{name}.yml").read_text())


def validate_reference(document: dict) -> None:
    # Taskcluster's reference schemas are draft-06 documents whose $schema is their own
    # metaschema (metadata-metaschema.json): validate with draft 6 itself.
    jsonschema.Draft6Validator(taskcluster_schema("api-reference-v0")).validate(document)


# -- generation ------------------------------------------------------------------------------

def test_every_served_reference_validates_against_taskclusters_reference_schema():
    for service in SERVICES:
        validate_reference(CATALOG.reference(service.name))


def test_the_manifest_validates_and_names_every_service():
    document = manifest("http://master:8010/", SERVICES)
    jsonschema.Draft6Validator(taskcluster_schema("manifest-v3")).validate(document)
    root = "http://master:8010/references"
    assert document == {"references": [f"{root}/{s.name}/v1/api.json" for s in SERVICES]}
    assert [s.name for s in SERVICES] == ["buildfarm", "slaveapi", "tasks", "cas", "auth", "queue", "object"]


def test_every_schema_a_reference_names_is_a_valid_json_schema_of_its_service():
    for service in SERVICES:
        for entry in CATALOG.reference(service.name)["entries"]:
            for kind in ("input", "output"):
                if kind in entry:
                    name = entry[kind].removeprefix("v1/").removesuffix(".json#")
                    document = service.schemas.document(name)
                    jsonschema.Draft6Validator.check_schema(document)
                    assert document["$id"] == f"/schemas/{service.name}/{entry[kind]}"


def test_a_klein_path_becomes_a_route_with_its_args_relative_to_the_service():
    assert reference_route("/api/buildfarm/v1/builds/<int:buildid>/steps/<int:number>/logs/<string:logname>",
                           "/api/buildfarm/v1") == ("/builds/<buildid>/steps/<number>/logs/<logname>",
                                                    ["buildid", "number", "logname"])
    assert scope_expression("builds:force:{name}") == "builds:force:<name>"


def test_the_buildfarm_reference_describes_force_build_and_its_scope():
    entries = {e["name"]: e for e in CATALOG.reference(BUILDFARM.name)["entries"]}
    assert entries["forceBuild"] == {
        "type": "function", "method": "post", "route": "/builders/<name>/force", "args": ["name"],
        "name": "forceBuild", "stability": "experimental", "title": "Force a build",
        "description": entries["forceBuild"]["description"], "category": "Builders",
        "scopes": "builds:force:<name>", "input": "v1/force-build-request.json#",
        "output": "v1/force-build-response.json#"}
    assert "scopes" not in entries["ping"]  # public: no credentials needed
    assert entries["listBuilders"]["query"] == ["continuationToken", "limit"]


def test_each_entry_of_a_reference_is_one_declared_route_of_a_catalog_table():
    # (tests/unit/test_authz_routes.py checks the other way: every klein rule in the layout
    # declares an entry)
    for service in SERVICES:
        declared = [r for table in CATALOG.tables for r in table.routes
                    if r.api is not None and r.api.service == service.name]
        entries = CATALOG.reference(service.name)["entries"]
        assert [e["name"] for e in entries] == [r.api.name for r in declared]
        assert all(r.api_path.startswith(service.prefix + "/") for r in declared)
    rules = {r.rule for r in JSONAPI.app.url_map.iter_rules()}
    assert all(r.path in rules for r in JSONAPI.routes.routes)


def test_an_api_entry_outside_its_services_prefix_is_refused():
    class Surface:
        app = Klein()
        routes = RouteTable(app, "test")

    with pytest.raises(ValueError, match="must lie under /api/svc/v1/"):
        Surface.routes.route("/api/v1/thing", "GET", scope=PUBLIC,
                             api=APIEntry("svc", "thing", "T", "D", "C"))


def test_a_reference_refuses_an_unknown_schema_and_a_duplicate_function_name():
    service = APIService("svc", "Svc", "A service.", SchemaRegistry("svc"))

    class Surface:
        app = Klein()
        routes = RouteTable(app, "test")

        @routes.route("/api/svc/v1/a", "GET", scope=PUBLIC,
                      api=APIEntry("svc", "a", "A", "D", "C", output="nope"))
        def a(self, request):
            return b""

    with pytest.raises(ValueError, match="no schema named 'nope'"):
        reference(service, [Surface.routes])

    class Twice:
        app = Klein()
        routes = RouteTable(app, "test")

        @routes.route("/api/svc/v1/a", "GET", scope=PUBLIC, api=APIEntry("svc", "same", "A", "D", "C"))
        @routes.route("/api/svc/v1/b", "GET", scope=PUBLIC, api=APIEntry("svc", "same", "B", "D", "C"))
        def a(self, request):
            return b""

    with pytest.raises(ValueError, match=r"declared twice: \['same'\]"):
        reference(service, [Twice.routes])


def test_an_unknown_stability_is_refused():
    with pytest.raises(ValueError, match="stability"):
        APIEntry("svc", "a", "A", "D", "C", stability="beta")


def test_the_shipped_references_equal_what_the_generator_makes():
    # contrib/references.py rewrites them; buildfarm.common.client reads them
    for service in SERVICES:
        shipped = json.loads((SHIPPED / f"{service.name}.json").read_text())
        assert shipped == json.loads(json.dumps(CATALOG.reference(service.name))), service.name
        if service.name not in OFFICIAL_CLIENTS:
            assert client.load_reference(service.name) == shipped


def test_the_client_classes_have_every_call_and_an_iterator_for_each_paged_one():
    classes = {"buildfarm": (client.Buildfarm, client.AsyncBuildfarm),
               "slaveapi": (client.SlaveAPI, client.AsyncSlaveAPI),
               "tasks": (client.Tasks, client.AsyncTasks), "cas": (client.CAS, client.AsyncCAS)}
    assert sorted(classes) == sorted(client.SERVICES)
    assert sorted(classes) == sorted(s.name for s in OWN_SERVICES)
    for service, pair in classes.items():
        reference = CATALOG.reference(service)
        paged = client.paged_calls(reference)
        for cls in pair:
            assert cls.serviceName == service
            for entry in reference["entries"]:
                assert callable(getattr(cls, entry["name"]))
                iterator = "iter" + entry["name"][0].upper() + entry["name"][1:]
                assert hasattr(cls, iterator) == (entry["name"] in paged), iterator
    assert client.paged_calls(CATALOG.reference("buildfarm"))["listBuilds"] == "continuationToken"
    assert client.paged_calls(CATALOG.reference("tasks")) == {
        "listTasks": "cursor", "listTaskRequests": "cursor", "listBots": "cursor", "listBotTasks": "cursor"}


def test_an_iterator_follows_the_page_token_until_a_page_has_none():
    pages = {None: {"items": [1, 2], "cursor": "c1", "now": "x"}, "c1": {"items": [3], "cursor": "c2"},
             "c2": {"items": [], "now": "y"}}
    asked = []

    def call(*args, query):
        asked.append((args, dict(query)))
        return pages[query.get("cursor")]

    assert list(client.iterate(call, "bot1", query={"limit": 2}, token="cursor")) == [1, 2, 3]
    assert asked == [(("bot1",), {"limit": 2}), (("bot1",), {"limit": 2, "cursor": "c1"}),
                     (("bot1",), {"limit": 2, "cursor": "c2"})]


def test_the_aio_class_is_an_async_client_though_taskclusters_aio_create_api_client_is_not():
    from taskcluster.aio.asyncclient import AsyncBaseClient
    from taskcluster.aio.asyncclient import createApiClient as create_async_api_client

    reference = client.load_reference("buildfarm")
    upstream = create_async_api_client("Buildfarm", {"reference": reference})
    assert not issubclass(upstream, AsyncBaseClient)  # 113.2.0: its awaits fail on a dict
    assert issubclass(client.AsyncBuildfarm, AsyncBaseClient)
    assert client.AsyncBuildfarm.funcinfo["forceBuild"]["route"] == "/builders/<name>/force"


# -- served by a real master in memory -------------------------------------------------------------

@pytest_twisted.async_yield_fixture
async def api(tmp_path):
    master = await start_memory_master(tmp_path, CFG, now=NOW)
    db = master.db
    builderid = master.botmaster.builders["linux"].builderid
    slaveid = await db.slaves.attached("bs1", master.masterid, {}, "1.0", 10.0)
    brid = await db.buildrequests.add(builderid, "test", {}, 10.0)
    await db.buildrequests.claim(brid, master.masterid, 11.0)
    buildid, _ = await db.builds.add(builderid, brid, slaveid, master.masterid, 11.0)
    stepid = await db.steps.add(buildid, 0, "compile", 12.0)
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append(logid, "hello\nworld\n")
    await db.logs.finish(logid)
    await db.steps.finish(stepid, SUCCESS, 13.0, "done")
    await db.builds.finish(buildid, SUCCESS, 14.0, "done")
    await db.buildrequests.complete(brid, SUCCESS, 14.0)
    resource = master.www.make_site().resource  # the whole web site, as a client reaches it

    async def get(path: str, **args):
        response = await render(resource, "GET", path, args=args, headers=ADMIN)
        return response.code, response.body

    async def post(path: str, body: dict):
        response = await render(resource, "POST", path, body=json.dumps(body).encode(),
                                headers={**ADMIN, "content-type": "application/json"})
        return response.code, response.body

    get.post = post
    get.ids = {"buildid": buildid, "brid": brid, "logid": logid}
    yield get
    await master.stopService()


def check(service, name: str, body: bytes) -> dict:
    """``body`` as JSON, validated against the output schema of the entry ``name``."""
    entry = next(e for e in CATALOG.reference(service.name)["entries"] if e["name"] == name)
    answer = json.loads(body)
    schema = service.schemas.document(entry["output"].removeprefix("v1/").removesuffix(".json#"))
    jsonschema.Draft6Validator(schema).validate(answer)
    return answer


@pytest_twisted.ensureDeferred
async def test_the_master_serves_the_references_the_manifest_and_the_schemas(api):
    code, body = await api("/references/buildfarm/v1/api.json")
    assert code == 200 and json.loads(body) == client.load_reference("buildfarm")
    code, body = await api("/references/manifest.json")
    assert code == 200 and json.loads(body)["references"][0].endswith("/references/buildfarm/v1/api.json")
    code, body = await api("/schemas/buildfarm/v1/force-build-request.json")
    assert code == 200 and json.loads(body)["$id"] == "/schemas/buildfarm/v1/force-build-request.json#"
    code, body = await api("/references/nosuch/v1/api.json")
    message = "no service named 'nosuch'"
    assert code == 404 and json.loads(body) == {"error": message, "message": message}
    code, body = await api("/schemas/buildfarm/v1/nosuch.json")
    message = "service 'buildfarm' has no schema 'nosuch'"
    assert code == 404 and json.loads(body) == {"error": message, "message": message}


@pytest_twisted.ensureDeferred
async def test_the_buildfarm_routes_answer_what_their_output_schemas_say(api):
    ids = api.ids
    for name, path in [("ping", "/api/buildfarm/v1/ping"),
                       ("listBuilders", "/api/buildfarm/v1/builders"),
                       ("builder", "/api/buildfarm/v1/builders/linux"),
                       ("listBuilds", "/api/buildfarm/v1/builds"),
                       ("listBuilderBuilds", "/api/buildfarm/v1/builders/linux/builds"),
                       ("build", f"/api/buildfarm/v1/builds/{ids['buildid']}"),
                       ("listBuildRequests", "/api/buildfarm/v1/buildrequests"),
                       ("buildRequest", f"/api/buildfarm/v1/buildrequests/{ids['brid']}"),
                       ("logLines", f"/api/buildfarm/v1/logs/{ids['logid']}"),
                       ("listSlaves", "/api/buildfarm/v1/slaves"),
                       ("slave", "/api/buildfarm/v1/slaves/bs1")]:
        code, body = await api(path)
        assert code == 200, (path, body)
        check(BUILDFARM, name, body)
    code, body = await api(f"/api/buildfarm/v1/builds/{ids['buildid']}/steps/0/logs/stdio")
    assert code == 200 and body == b"hello\nworld\n"


@pytest_twisted.ensureDeferred
async def test_a_list_pages_with_continuation_tokens_until_the_last_page(api):
    seen, token, pages = [], None, 0
    while True:
        args = {"limit": 2} if token is None else {"limit": 2, "continuationToken": token}
        code, body = await api("/api/buildfarm/v1/builders", **args)
        assert code == 200
        page = check(BUILDFARM, "listBuilders", body)
        seen += [b["name"] for b in page["builders"]]
        pages += 1
        token = page.get("continuationToken")
        if token is None:
            break
    assert pages == 3 and seen == ["linux", "extra0", "extra1", "extra2", "extra3"]


@pytest_twisted.ensureDeferred
async def test_a_bad_continuation_token_is_a_400_naming_it(api):
    code, body = await api("/api/buildfarm/v1/builds", continuationToken="nope")
    assert code == 400
    assert json.loads(body)["field"] == "continuationToken"


@pytest_twisted.ensureDeferred
async def test_the_api_v1_lists_keep_their_offsets_and_carry_no_continuation_token(api):
    code, body = await api("/api/v1/builds", limit=1, continuationToken="5")
    answer = json.loads(body)
    assert code == 200 and "continuationToken" not in answer and answer["meta"]["offset"] == 0


@pytest_twisted.ensureDeferred
async def test_the_slaveapi_is_served_at_api_slaveapi_v1_by_the_same_routes(api):
    for name, path in [("listSlaves", "/slaves"), ("slave", "/slaves/bs1"), ("results", "/results"),
                       ("audit", "/audit"), ("actionResults", "/slaves/bs1/actions/reboot")]:
        code, body = await api("/api/slaveapi/v1" + path)
        assert code == 200, (path, body)
        assert check(SLAVEAPI, name, body) == json.loads((await api("/slaveapi" + path))[1])
    code, body = await api("/api/slaveapi/v1/slaves/bs1/actions/nosuch")
    assert code == 404 and json.loads(body)["error"] == "not found"


NEW_TASK = {"name": "t", "priority": 100, "task_slices": [{"expiration_secs": 60, "properties": {
    "command": ["true"], "dimensions": [{"key": "pool", "value": "ci"}]}}]}


@pytest_twisted.ensureDeferred
async def test_the_swarming_api_is_served_at_api_tasks_v1_and_pages_with_its_cursor(api):
    task_ids = []
    for _ in range(3):
        code, body = await api.post("/api/tasks/v1/tasks/new", NEW_TASK)
        assert code == 200, body
        task_ids.append(check(TASKS, "newTask", body)["task_id"])
    task_id = task_ids[0]
    for name, path in [("taskResult", f"/task/{task_id}/result"), ("taskRequest", f"/task/{task_id}/request"),
                       ("taskStdout", f"/task/{task_id}/stdout"), ("countTasks", "/tasks/count"),
                       ("listTaskRequests", "/tasks/requests"), ("listBots", "/bots/list"),
                       ("countBots", "/bots/count"), ("botsDimensions", "/bots/dimensions"),
                       ("serverDetails", "/server/details")]:
        code, body = await api("/api/tasks/v1" + path)
        assert code == 200, (path, body)
        legacy = json.loads((await api("/_ah/api/swarming/v1" + path))[1])
        assert check(TASKS, name, body).keys() == legacy.keys()
    seen, cursor = [], None
    while True:
        code, body = await api("/api/tasks/v1/tasks/list", limit=2, **({"cursor": cursor} if cursor else {}))
        page = check(TASKS, "listTasks", body)
        seen += [t["task_id"] for t in page["items"]]
        cursor = page.get("cursor")
        if not cursor:
            break
    assert sorted(seen) == sorted(task_ids)
    code, body = await api("/api/tasks/v1/task/nosuch/result")
    assert code == 400 and "error" in json.loads(body)  # the Swarming API's own error shape


@pytest_twisted.ensureDeferred
async def test_the_isolate_api_is_served_at_api_cas_v1(api):
    content = b"hello, store"
    digest = hashlib.sha1(content).hexdigest()
    wanted = {"digest": digest, "size": len(content), "is_isolated": False}
    code, body = await api.post("/api/cas/v1/preupload", {"items": [wanted], "namespace": "default-gzip"})
    assert code == 200, body
    (wanted,) = check(CAS, "preupload", body)["items"]
    stored = base64.b64encode(zlib.compress(content)).decode()
    code, body = await api.post("/api/cas/v1/store_inline", {"upload_ticket": wanted["upload_ticket"],
                                                             "content": stored})
    assert code == 200 and check(CAS, "storeInline", body) == {"ok": True}
    code, body = await api.post("/api/cas/v1/retrieve", {"digest": digest, "namespace": "default-gzip"})
    assert code == 200 and base64.b64decode(check(CAS, "retrieve", body)["content"]) == zlib.compress(content)
    code, body = await api.post("/api/cas/v1/server_details", {})
    assert code == 200 and check(CAS, "serverDetails", body)["server_version"].startswith("buildfarm-")


# -- the queue against Taskcluster's Queue --------------------------------------------------

# Taskcluster's Queue functions the ``queue`` service does not serve yet (docs/taskcluster.md,
# "Not yet"): a change that serves one takes it off this list.
QUEUE_NOT_SERVED = frozenset({
    "changeTaskGroupPriority", "changeTaskPriority", "declareWorker", "heartbeat", "lbheartbeat",
    "listClaimedTasks", "listPendingTasks", "quarantineWorker", "statuses", "taskQueueCounts",
    "taskQueueCountsBatch", "tasks", "version"})


def test_the_queue_serves_taskclusters_own_functions_and_the_unserved_list_is_complete():
    official = OfficialQueue.funcinfo
    served = {e["name"]: e for e in CATALOG.reference("queue")["entries"]}
    for name, entry in served.items():
        assert name in official, f"{name} is not a function of Taskcluster's Queue"
        for key in ("method", "route", "args", "query"):
            assert entry.get(key, []) == official[name].get(key, []), (name, key)
    assert set(official) - set(served) == QUEUE_NOT_SERVED


# -- the queue's reference against the official client ---------------------------------------

WORKER_CALLS = ("claimWork", "claimTask", "reclaimTask", "reportCompleted", "reportFailed", "reportException")


def test_the_queues_worker_calls_are_the_official_clients_with_its_schema_names():
    official = taskcluster.Queue.funcinfo
    served = {e["name"]: e for e in CATALOG.reference("queue")["entries"]}
    for name in WORKER_CALLS:
        for key in ("method", "route", "args", "input", "output"):
            assert served[name].get(key) == official[name].get(key), (name, key)
    assert not set(WORKER_CALLS) & QUEUE_NOT_SERVED
