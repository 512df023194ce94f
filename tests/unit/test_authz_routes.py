"""Authorization on every route of every HTTP surface, walked from the klein route tables of
a real ``BuildMaster`` built in memory (tests/fixtures/memorymaster.py): the JSON
API, the pages, the SlaveAPI on its own resource and under ``/slaveapi/`` of the web site.

Each route is tried anonymously, with a wrong password, as a read-only user, as an
authorized user, and as browser-borne writes from another site (cookie and cached basic
credentials); each gets the expected status, a refused write changes nothing in the
database, and every write leaves an audit row."""

import base64
import json
import re
from urllib.parse import parse_qs

import pytest
import pytest_twisted

from buildfarm.common.results import SUCCESS
from buildfarm.master.auth.ratelimit import LoginLimiter
from buildfarm.master.auth.sessions import COOKIE_NAME
from buildfarm.master.authapi.api import AuthAPI
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.browse import CASBrowser
from buildfarm.master.http.routes import ANY_METHOD, PUBLIC
from buildfarm.master.slaveapi.resources import SlaveAPI
from buildfarm.master.tasks import ids, records
from buildfarm.master.tasks.api import SwarmingAPI
from buildfarm.master.tasks.model import request_from_json
from buildfarm.master.www.api import JSONAPI
from buildfarm.master.www.changehook import ChangeHookAPI
from buildfarm.master.www.ui.app import WebUI
from fixtures.mastercfg import ISSUE_EXAMPLE
from fixtures.memoryhttp import MemoryRequest, render_request
from fixtures.memorymaster import start_memory_master

HERE = "http://localhost:8010"
EVIL = "http://evil.example"
READER_SCOPES = ["builds:read", "changes:read", "slaves:read", "metrics:read", "slaveapi:read", "audit:read"]
MASTER_CFG = ISSUE_EXAMPLE + """\
c['changes'] = {'secret': 'hook-secret'}
c['users'] = [util.User('admin', password='adm1n', scopes=['*']),
              util.User('reader', password='r3ad', scopes=%r)]
""" % (READER_SCOPES,)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Farm:
    """A real BuildMaster in memory, with a finished build, its log and a waiting request."""

    def __init__(self, basedir):
        self.basedir = basedir

    async def start(self):
        self.master = await start_memory_master(self.basedir, MASTER_CFG)
        # The walk makes hundreds of wrong-password calls from one address: the login limits
        # (their own tests are in test_auth_*.py) would answer most of them 429, not 401.
        self.master.auth.login_limiter = LoginLimiter(self.master.reactor, per_user=10**6, per_source=10**6)
        self.master.auth.reconfigService(self.master.config)
        db = self.master.db
        builderid = self.master.botmaster.builders["runtests"].builderid
        slaveid = await db.slaves.attached("bs1", self.master.masterid, {"environ": {"A": "1"}}, "1.0", 10.0)
        await db.slaves.detached("bs1", self.master.masterid, 20.0)
        done = await db.buildrequests.add(builderid, "test", {}, 10.0)
        await db.buildrequests.claim(done, self.master.masterid, 11.0)
        self.buildid, _ = await db.builds.add(builderid, done, slaveid, self.master.masterid, 11.0)
        stepid = await db.steps.add(self.buildid, 0, "compile", 12.0)
        self.logid = await db.logs.add(stepid, "stdio")
        await db.logs.append(self.logid, "hello\n")
        await db.logs.finish(self.logid)
        await db.steps.finish(stepid, SUCCESS, 13.0, "done")
        await db.builds.finish(self.buildid, SUCCESS, 14.0, "done")
        await db.buildrequests.complete(done, SUCCESS, 14.0)
        self.brid = await db.buildrequests.add(builderid, "waiting", {}, 15.0)
        self.task_id = await finished_task(db)
        self.site = self.master.www.make_site()
        return self

    async def stop(self):
        await self.master.stopService()

    def values(self, path: str) -> dict:
        """Sample values of a route's arguments."""
        return {"name": "bs1" if "slaves/" in path else ("style.css" if "static/" in path else "runtests"),
                "slave": "bs1", "action": "get_uptime", "brid": self.brid, "buildid": self.buildid,
                "number": 0, "logname": "stdio", "slug": "stdio", "logid": self.logid, "changeid": 1,
                "namespace": "default-gzip",  # /browse's scope: the query's namespace, by default this
                "task_id": self.task_id, "pool": "ci"}

    async def state(self) -> tuple:
        """What a write could change: requests (and the waiting one's state), changes,
        SlaveAPI results, slave settings."""
        db = self.master.db
        waiting = await db.buildrequests.get(self.brid)
        return (await db.buildrequests.count(), waiting["complete"], await db.changes.count(),
                len(await db.slaveapi.get_results()), await db.slaveapi.get_all_settings())

    async def request(self, resource, method: str, path: str, headers: dict,
                      form: bool = False) -> tuple[int, bytes]:
        """One request as twisted.web would hand it over (``form``: an empty form post, else
        a JSON one); query arguments land in ``request.args`` as they do for real."""
        bare, _, query = path.partition("?")
        request = MemoryRequest(method, bare, "10.9.8.7")
        request.uri = path.encode()
        body = b"" if form else b"{}" if method == "POST" else b""
        content_type = b"application/x-www-form-urlencoded" if form else b"application/json"
        request.requestHeaders.setRawHeaders(b"content-type", [content_type])
        request.args = {k.encode(): [v.encode() for v in vs] for k, vs in parse_qs(query).items()}
        for name, value in headers.items():
            request.requestHeaders.setRawHeaders(name.encode(), [value.encode()])
        request.parseCookies()  # what twisted.web does when a request arrives
        request.gotLength(len(body))
        request.content.write(body)
        request.content.seek(0)
        response = await render_request(resource, request)
        return response.code, response.body


async def finished_task(db) -> str:
    """A task of pool ci that ran and ended (the task pages' routes: its live output ends at once)."""
    request = request_from_json({"name": "t", "task_slices": [{"expiration_secs": 60, "properties": {
        "command": ["true"], "dimensions": [{"key": "pool", "value": "ci"}]}}]})
    request_id = (1 << 20) | 1
    await db.tasks.create(records.new_task(request, request_id, 16.0))
    try_number = await db.tasks.start_run(request_id, "bs1", 17.0)
    await db.tasks.finish_run(request_id, try_number, "COMPLETED", 18.0, exit_code=0, duration=1.0)
    return ids.summary_id(request_id)


def concrete(path: str, values: dict) -> str:
    return re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), path)


def expected_scope(template: str, values: dict) -> str:
    return template.format(**{**values, "builder": "runtests", "action": "buildslave_uptime"})


SURFACES = [("api", JSONAPI, ""), ("pages", WebUI, ""), ("slaveapi", SlaveAPI, ""),
            ("slaveapi", SlaveAPI, "/slaveapi"), ("change_hook", ChangeHookAPI, ""),
            ("browse", CASBrowser, "")]
HTML_SURFACES = ("pages", "browse")




def test_every_klein_rule_of_every_surface_declares_its_scope():
    # The Isolate API (master/cas/api.py) takes its scopes' namespace from each request's body or
    # ticket, the Swarming API (master/tasks/api.py) its pool from the request's body, the task
    # or the bot: the walk below cannot make those, so tests/unit/test_cas_api.py and
    # tests/unit/test_swarming_api.py try their callers.
    # The Auth API (master/authapi/api.py): tests/integration/test_taskcluster_authapi_e2e.py.
    for _, app_class, _ in [*SURFACES, ("cas", IsolateAPI, ""), ("swarming", SwarmingAPI, ""),
                            ("auth", AuthAPI, "")]:
        table = app_class.routes
        for rule in app_class.app.url_map.iter_rules():
            endpoint = rule.endpoint.removesuffix("_branch")
            declared = table.rule_for(endpoint)
            assert declared is not None, f"{app_class.__name__}: {rule.rule} declares no scope"
            methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
            assert declared.method == ANY_METHOD or methods == {declared.method}, rule
            # a route in Taskcluster's layout (/api/<service>/v<n>/..., or under the base the
            # site mounts there) is in its service's reference: it declares an APIEntry of that
            # service (master/http/references.py); a branch delegates to an app checked here too
            layout = re.match(r"/api/([a-z][a-z0-9_-]*)/v\d+/", rule.rule)
            mounted = table.api_base is not None and rule.rule.startswith(table.api_base + "/")
            if declared.method != ANY_METHOD and (layout is not None or mounted):
                assert declared.api is not None, f"{rule.rule} is in no API reference"
                assert layout is None or declared.api.service == layout.group(1), rule.rule
        assert all(r.scope == PUBLIC or ":" in r.scope for r in table.routes)


def test_a_route_without_a_declared_scope_is_caught():
    from klein import Klein

    from buildfarm.master.http.routes import RouteTable

    class Surface:
        app = Klein()
        routes = RouteTable(app, "test")

        @routes.route("/declared", "GET", scope="builds:read")
        def declared(self, request):
            return b""

        @app.route("/sneaky", methods=["POST"])
        def sneaky(self, request):
            return b""

    rules = Surface.app.url_map.iter_rules()
    missing = [r.rule for r in rules if Surface.routes.rule_for(r.endpoint) is None]
    assert missing == ["/sneaky"]


@pytest_twisted.async_yield_fixture
async def farm(tmp_path):
    farm = await Farm(tmp_path).start()
    yield farm
    await farm.stop()


def callers(farm) -> dict[str, dict]:
    admin_session = farm.master.auth.sessions.create("admin")
    cookie = f"{COOKIE_NAME.decode()}={admin_session.sid}"
    token = admin_session.csrf_token
    return {
        "anonymous": {},
        "wrong password": {"authorization": basic("admin", "nope")},
        "reader": {"authorization": basic("reader", "r3ad")},
        "admin": {"authorization": basic("admin", "adm1n")},
        "admin cookie, same site": {"cookie": cookie, "origin": HERE, "x-csrf-token": token},
        "admin cookie, no token": {"cookie": cookie, "origin": HERE},
        "admin cookie, token in the query": {"cookie": cookie, "origin": HERE, "query": token},
        "admin cookie, other site": {"cookie": cookie, "origin": EVIL, "x-csrf-token": token},
        "admin cookie, no origin": {"cookie": cookie, "x-csrf-token": token},
        "admin basic, other site": {"authorization": basic("admin", "adm1n"), "origin": EVIL},
        "admin basic, other referer": {"authorization": basic("admin", "adm1n"), "referer": EVIL + "/x"},
    }


def expectation(caller: str, scope: str, write: bool, anonymous_scopes) -> str:
    """``"ok"`` (any answer but 401/403), ``"401"`` or ``"403"``."""
    from buildfarm.master.auth.users import has_scope

    if caller == "anonymous":
        return "ok" if has_scope(anonymous_scopes, scope) else "401"
    if caller == "wrong password":
        return "401"
    if caller == "reader":
        return "ok" if has_scope([*READER_SCOPES, *anonymous_scopes], scope) else "403"
    if caller in ("admin", "admin cookie, same site") or not write:
        return "ok"
    return "403"


@pytest_twisted.ensureDeferred
async def test_every_route_answers_each_caller_as_its_scope_says_and_refusals_change_nothing(farm):
    anonymous_scopes = farm.master.auth.anonymous_scopes
    tried = 0
    for surface, app_class, prefix in SURFACES:
        resource = farm.site.resource if prefix or surface != "slaveapi" else farm.master.slaveapi.resource()
        for route in app_class.routes.routes:
            if route.public:
                continue
            values = farm.values(route.path)
            path = prefix + concrete(route.path, values)
            scope = expected_scope(route.scope, values)
            for caller, headers in callers(farm).items():
                headers = dict(headers)
                query_token = headers.pop("query", None)
                if query_token is not None:
                    if not route.write:
                        continue
                    path_asked = f"{path}?csrf_token={query_token}"
                else:
                    path_asked = path
                want = expectation(caller, scope, route.write, anonymous_scopes)
                before = await farm.state()
                audited = await farm.master.db.audit.count()
                status, body = await farm.request(resource, route.method, path_asked, headers,
                                                  form=surface == "pages")
                where = f"{caller}: {route.method} {path_asked} ({scope}) -> {status} {body[:200]!r}"
                tried += 1
                if want == "ok":
                    assert status not in (401, 403, 500), where
                else:
                    assert status == int(want), where
                    assert await farm.state() == before, "a refused call changed something: " + where
                    if surface not in HTML_SURFACES:
                        answer = json.loads(body)
                        if caller == "reader":
                            assert answer["scope"] == scope, where
                if route.write:
                    rows = await farm.master.db.audit.get_all(limit=1)
                    assert await farm.master.db.audit.count() == audited + 1, where
                    assert rows[0]["path"] == path and rows[0]["status"] == status, (where, rows[0])
                    assert rows[0]["outcome"] == ("refused" if want != "ok" else rows[0]["outcome"]), rows[0]
                    assert rows[0]["peer"] == "10.9.8.7" and rows[0]["method"] == "POST"
    assert tried > 300


@pytest_twisted.ensureDeferred
async def test_with_no_anonymous_scopes_the_json_api_answers_401_like_the_pages(farm):
    farm.master.auth.anonymous_scopes = ()
    for path in ("/api/v1", "/api/v1/builds", "/metrics", "/", f"/builds/{farm.buildid}"):
        status, _ = await farm.request(farm.site.resource, "GET", path, {})
        assert status == 401, path
    status, body = await farm.request(farm.site.resource, "GET", "/api/v1/builds",
                                      {"authorization": basic("reader", "r3ad")})
    assert status == 200 and json.loads(body)["builds"][0]["buildid"] == farm.buildid


@pytest_twisted.ensureDeferred
async def test_a_forced_build_belongs_to_the_caller_and_a_body_owner_naming_another_is_refused(farm):
    site = farm.site.resource
    status, body = await farm.request(site, "POST", "/api/v1/builders/runtests/force",
                                      {"authorization": basic("admin", "adm1n")})
    assert status == 200, body
    brid = json.loads(body)["buildrequestid"]
    row = await farm.master.db.buildrequests.get(brid)
    assert "admin" in json.dumps(row)
    request_count = await farm.master.db.buildrequests.count()
    request = MemoryRequest("POST", "/api/v1/builders/runtests/force")
    request.requestHeaders.setRawHeaders(b"authorization", [basic("admin", "adm1n").encode()])
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/json"])
    payload = json.dumps({"owner": "mallory"}).encode()
    request.gotLength(len(payload))
    request.content.write(payload)
    request.content.seek(0)
    finished = request.notifyFinish()
    site.render(request)
    await finished
    assert request.code == 400
    assert json.loads(b"".join(request.body_written))["field"] == "owner"
    assert await farm.master.db.buildrequests.count() == request_count


@pytest_twisted.ensureDeferred
async def test_the_change_hook_takes_its_secret_header_and_refuses_a_wrong_one(farm):
    site = farm.site.resource
    status, _ = await farm.request(site, "POST", "/api/v1/changes", {"x-buildfarm-secret": "wrong"})
    assert status == 401 and await farm.master.db.changes.count() == 0
    status, body = await farm.request(site, "POST", "/api/v1/changes", {"x-buildfarm-secret": "hook-secret"})
    assert status == 200, body
    rows = await farm.master.db.audit.get_all(limit=2)
    assert [(r["user"], r["outcome"], r["status"]) for r in rows] == [("change-hook", "done", 200),
                                                                      ("anonymous", "refused", 401)]


@pytest_twisted.ensureDeferred
async def test_the_audit_is_readable_with_audit_read_only(farm):
    site, reader = farm.site.resource, {"authorization": basic("reader", "r3ad")}
    await farm.request(site, "POST", f"/api/v1/buildrequests/{farm.brid}/cancel", reader)
    status, body = await farm.request(site, "GET", "/api/v1/audit", reader)
    assert status == 200
    (row,) = json.loads(body)["audit"]
    assert (row["user"], row["outcome"], row["status"], row["scope"], row["surface"]) == (
        "reader", "refused", 403, "builds:cancel:runtests", "api")
    status, _ = await farm.request(site, "GET", "/api/v1/audit", {})
    assert status == 401


@pytest.mark.parametrize("caller, shown", [("admin", True), ("reader", False)])
@pytest_twisted.ensureDeferred
async def test_the_environment_shows_only_with_its_scope(farm, caller, shown):
    password = {"admin": "adm1n", "reader": "r3ad"}[caller]
    status, body = await farm.request(farm.site.resource, "GET", "/api/v1/slaves/bs1",
                                      {"authorization": basic(caller, password)})
    assert status == 200
    assert ("environ" in json.loads(body)["info"]) is shown
