"""The JSON API under ``/api/v1/`` and ``/metrics``, as a table of routes (docs/api.md).

Handlers are plain async methods returning JSON-able values; ``APIError`` and
``BadParameter`` (and unmatched routes) become ``{"error": ...}`` bodies, with ``"field"``
naming the request field at fault, and the right status, in one place.  List endpoints page
with ``limit``/``offset`` (www/paging.py) and answer ``{"<items>": [...], "meta": {...}}``;
the data of the pages comes from www/apidata.py.
"""

import json
from functools import partial

from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.common.version import VERSION
from buildfarm.master.auth.identity import AuthError
from buildfarm.master.http.body import BadBody, json_object, read_body
from buildfarm.master.http.challenge import add_refusal_headers
from buildfarm.master.http.flow import send_text
from buildfarm.master.http.references import APIService, UnknownService
from buildfarm.master.http.routes import ANY_METHOD, PUBLIC, APIEntry, RouteTable, request_identity
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.http.site import json_error
from buildfarm.master.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from buildfarm.master.schedulers.forcesched import ForceParameterError
from buildfarm.master.schedulers.manager import NotForceable, UnknownBuilder
from buildfarm.master.www import apidata, apireference, changesources
from buildfarm.master.www.apidata import with_result_name
from buildfarm.master.www.apireference import BUILDFARM, PAGED_QUERY
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.paging import (
    BadParameter,
    Page,
    parse_bool,
    parse_choice,
    parse_int,
    parse_page,
    parse_result,
)
from buildfarm.master.www.ui import taskpages, views

log = Logger()

MAX_BODY_BYTES = 1024 * 1024
FORCE_FIELDS = frozenset({"reason", "properties", "owner"})  # owner: only the caller
STOP_FIELDS = frozenset({"reason"})
CHANGE_TEXT_FIELDS = ("author", "committer", "comments", "branch", "revision", "repository", "project",
                      "codebase", "category")
CHANGE_FIELDS = frozenset(CHANGE_TEXT_FIELDS) | {"files", "when_timestamp", "properties"}
MAX_WHEN_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z: dates past it cannot be shown
AUTH_REALM = "buildfarm"
DEFAULT_AUDIT_LIMIT = 100
# Lines of a log one JSON answer carries: by default, and at most.
LOG_LINES_DEFAULT = 1000
LOG_LINES_MAX = 100_000
TAIL_LINES_DEFAULT = 100
# Lines read from the database at a time while a whole log downloads.
DOWNLOAD_BATCH_LINES = 20_000
# A slave id no row has: a configured slave that never attached has no builds.
NO_ROW_ID = -1
ENDPOINTS = ("/api/v1/overview", "/api/v1/builders", "/api/v1/buildrequests", "/api/v1/builds",
             "/api/v1/changes", "/api/v1/changesources", "/api/v1/slaves", "/api/v1/logs/<logid>",
             "/api/v1/audit", "/metrics")
BUILDFARM_API = BUILDFARM.prefix  # /api/buildfarm/v1: the same data in Taskcluster's layout
CONTINUATION = "continuationToken"
WATERFALL_PAGE = 1000  # builds of a waterfall answer, by default and at most
MAX_WATERFALL_PAGE = 5000


def _api(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
         input: str | None = None, output: str | None = None, stability: str = "experimental") -> APIEntry:
    """An entry of the ``buildfarm`` service's reference (www/apireference.py)."""
    return APIEntry(BUILDFARM.name, name, title, description, category, stability, query, input, output)


def _root_url(request) -> str:
    """The URL the caller reached this master at (its Host header), when no
    ``c['buildbotURL']`` says it."""
    host = (request.getHeader(b"host") or b"localhost").decode("ascii", "replace")
    return f"{'https' if request.isSecure() else 'http'}://{host}"


def _under_buildfarm_api(request) -> bool:
    return request.path.startswith(BUILDFARM_API.encode() + b"/")


class APIError(Exception):
    """An error answered as ``{"error": message}`` (plus ``"field"`` when a request field or
    query parameter is at fault) with an HTTP status."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


class JSONAPI:
    """The master's JSON API."""

    app = bounded_klein()
    routes = RouteTable(app, "api")

    def __init__(self, master: IWebMaster):
        self.master = master
        # the builders' trends, cached (dropped as a build of theirs finishes)
        self.trends = views.TrendsCache(master.db, master.reactor, mq=master.mq)
        # the charts over time, cached (dropped as the master records a sample)
        self.charts = views.SampledCharts(master.db, master.reactor, master.sampler)

    def resource(self):
        """The twisted.web resource serving this API."""
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------

    @app.handle_errors(APIError)
    def _api_error(self, request, failure):
        error = failure.value
        return self._json_error(request, error.status, error.message, error.field)

    @app.handle_errors(AuthError)
    def _auth_error(self, request, failure):
        error = failure.value
        add_refusal_headers(request, error, AUTH_REALM)
        request.setResponseCode(error.status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(json_error(error.message, **error.scope_fields())).encode()

    @app.handle_errors(BadParameter)
    def _bad_parameter(self, request, failure):
        error = failure.value
        return self._json_error(request, 400, f"{error.field} {error.message}", error.field)

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return self._json_error(request, 404, f"no such resource: {request.path.decode()}")

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return self._json_error(request, 405, f"{request.method.decode()} is not allowed here")

    @app.handle_errors(Exception)
    def _internal_error(self, request, failure):
        log.failure("API request {path} failed", failure, path=request.path)
        return self._json_error(request, 500, "internal error; see the master's twistd.log")

    @staticmethod
    def _json_error(request, status: int, message: str, field: str | None = None) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        body = json_error(message) if field is None else json_error(message, field=field)
        return json.dumps(body).encode()

    @staticmethod
    def _json(request, value, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        # default=str: a configured value JSON cannot carry (a force default) shows as text
        return json.dumps(value, default=str).encode()

    @staticmethod
    def _args(request) -> dict[str, str]:
        """The query parameters, ``{name: last value}``; under ``/api/buildfarm/v1/`` a
        ``continuationToken`` (the offset of the next item, as the previous page answered)
        stands for ``offset``."""
        args = {k.decode("utf-8", "replace"): v[-1].decode("utf-8", "replace")
                for k, v in (request.args or {}).items() if v}
        if CONTINUATION in args and _under_buildfarm_api(request):
            args["offset"] = str(parse_int(args, CONTINUATION, 0))
            del args[CONTINUATION]
        return args

    def _page_of(self, request, key: str, items: list, total: int, page: Page) -> bytes:
        """The answer of a list endpoint: ``{key: items, "meta": {total, limit, offset, next}}``,
        plus, under ``/api/buildfarm/v1/``, ``continuationToken`` while more items follow."""
        meta = page.meta(total, request.path.decode("utf-8", "replace"), self._args(request))
        body = {key: items, "meta": meta}
        if _under_buildfarm_api(request) and page.offset + page.limit < total:
            body[CONTINUATION] = str(page.offset + page.limit)
        return self._json(request, body)

    async def _builder_id(self, name: str, field: str | None = None) -> int:
        """The id of a builder the configuration or the database knows (404 otherwise)."""
        builder = self.master.botmaster.builders.get(name)
        if builder is not None:
            return builder.builderid
        row = await self.master.db.builders.get_by_name(name)
        if row is None:
            raise APIError(404, f"no builder named {name!r}", field)
        return row["builderid"]

    async def _slave_id(self, name: str, field: str | None = None) -> int:
        """The database id of a slave (``NO_ROW_ID`` for a configured one that never attached)."""
        row = await self.master.db.slaves.get(name)
        if row is not None:
            return row["slaveid"]
        if name in self.master.config.slaves:
            return NO_ROW_ID
        raise APIError(404, f"no slave named {name!r}", field)

    async def _filters(self, args: dict[str, str], allowed: tuple[str, ...]) -> dict:
        """The ``allowed`` ones of ``?builder=``, ``?slave=``, ``?result=``, ``?complete=`` as
        arguments of the database's ``get_all``/``count``."""
        filters = {"complete": parse_bool(args, "complete"), "results": parse_result(args)}
        if "builder" in allowed and "builder" in args:
            filters["builderid"] = await self._builder_id(args["builder"], field="builder")
        if "slave" in allowed and "slave" in args:
            filters["slaveid"] = await self._slave_id(args["slave"], field="slave")
        return filters

    # -- routes ----------------------------------------------------------------------------

    @routes.route("/api/v1", "GET", scope="builds:read")
    @routes.route("/api/v1/", "GET", scope="builds:read")
    def index(self, request):
        return self._json(request, {
            "version": VERSION,
            "title": self.master.config.title,
            "titleURL": self.master.config.title_url,
            "buildbotURL": self.master.config.buildbot_url,
            "endpoints": list(ENDPOINTS),
        })

    # -- references (Taskcluster's layout: docs/taskcluster.md) -----------------------------

    @routes.route("/references/manifest.json", "GET", scope=PUBLIC)
    def references_manifest(self, request):
        """The URL of every service's reference."""
        root_url = self.master.config.buildbot_url or _root_url(request)
        return self._json(request, self.master.api_catalog.manifest(root_url))

    @routes.route("/references/<string:service>/v1/api.json", "GET", scope=PUBLIC)
    def api_reference(self, request, service):
        """A service's API reference, made from its route declarations."""
        return self._json(request, self.master.api_catalog.reference(self._service(service).name))

    @routes.route("/references/<string:service>/v1/exchanges.json", "GET", scope=PUBLIC)
    def exchanges_reference(self, request, service):
        """A service's exchange reference, made from its declared exchanges (master/mq/)."""
        try:
            prefix = self.master.config.mq.exchange_prefix
            document = self.master.api_catalog.exchanges_reference(service, prefix)
        except UnknownService:
            raise APIError(404, f"no service named {service!r} publishes exchanges") from None
        return self._json(request, document)

    @routes.route("/schemas/<string:service>/v1/<string:name>.json", "GET", scope=PUBLIC)
    def api_schema(self, request, service, name):
        """One JSON schema of a service's inputs and outputs, or of an exchange's messages."""
        try:
            document = self.master.api_catalog.schema_document(service, name)
        except UnknownService:
            raise APIError(404, f"no service named {service!r}") from None
        if document is None:
            raise APIError(404, f"service {service!r} has no schema {name!r}")
        return self._json(request, document)

    def _service(self, name: str) -> APIService:
        try:
            return self.master.api_catalog.service(name)
        except UnknownService:
            raise APIError(404, f"no service named {name!r}") from None

    @routes.route(f"{BUILDFARM_API}/ping", "GET", scope=PUBLIC, api=_api(
        "ping", "Ping", "Answers `{\"alive\": true}` while the master serves.", "Monitoring",
        output=apireference.PING))
    def ping(self, request):
        return self._json(request, {"alive": True})

    @routes.route(f"{BUILDFARM_API}/builders", "GET", scope="builds:read", api=_api(
        "listBuilders", "List builders", "The configured builders, paged with `continuationToken`.",
        "Builders", query=PAGED_QUERY, output=apireference.LIST_BUILDERS))
    def list_builders(self, request):
        args = self._args(request)
        page = parse_page(args)
        builders = [apidata.builder_summary(b) for b in self.master.botmaster.builders.values()]
        return self._page_of(request, "builders", page.slice(builders), len(builders), page)

    @routes.route("/api/v1/auth/whoami", "GET", scope=PUBLIC)
    async def whoami(self, request):
        """The caller: user, how it authenticated, roles, scopes and where each comes from."""
        identity = await self.master.auth.identify(request)
        return self._json(request, self.master.auth.describe(identity))

    @routes.route("/api/v1/overview", "GET", scope="builds:read")
    async def overview(self, request):
        return self._json(request, await apidata.overview(self.master))

    @routes.route("/api/v1/builders", "GET", scope="builds:read")
    def builders(self, request):
        return self._json(request, {"builders": [apidata.builder_summary(b) for b in
                                                 self.master.botmaster.builders.values()]})

    @routes.route("/api/v1/builders/<string:name>", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builders/<string:name>", "GET", scope="builds:read", api=_api(
        "builder", "Get a builder", "A builder: its slaves, force form, running and last builds.",
        "Builders", output=apireference.BUILDER_RESPONSE))
    async def builder(self, request, name):
        return self._json(request, await apidata.builder_detail(self.master, self._configured_builder(name)))

    def _configured_builder(self, name: str, field: str | None = None):
        builder = self.master.botmaster.builders.get(name)
        if builder is None:
            raise APIError(404, f"no builder named {name!r}", field)
        return builder

    @routes.route("/api/v1/builders/<string:name>/builds", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builders/<string:name>/builds", "GET", scope="builds:read", api=_api(
        "listBuilderBuilds", "List a builder's builds", "The builds of one builder, newest first; "
        "`slave`, `result` and `complete` filter them.", "Builds",
        query=("slave", "result", "complete", *PAGED_QUERY), output=apireference.LIST_BUILDS))
    async def builder_builds(self, request, name):
        builderid = await self._builder_id(name)
        return await self._builds_page(request, {"builderid": builderid}, ("slave",))

    @routes.route("/api/v1/builders/<string:name>/force", "POST", scope="builds:force:{name}")
    @routes.route(f"{BUILDFARM_API}/builders/<string:name>/force", "POST", scope="builds:force:{name}",
                  api=_api("forceBuild", "Force a build", "Ask for a build of the builder now (its "
                           "force scheduler's parameters as `properties`); answers the build request's id.",
                           "Builders", input=apireference.FORCE_REQUEST, output=apireference.FORCE_RESPONSE))
    async def force(self, request, name):
        body = self._json_body(request)
        unknown = sorted(set(body) - FORCE_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r} (allowed: reason, properties)", unknown[0])
        reason, properties = body.get("reason"), body.get("properties", {})
        # The owner is whoever authenticated; a body naming someone else is refused.
        owner = request_identity(request).name
        if "owner" in body and body["owner"] != owner:
            raise APIError(400, "owner is the authenticated user; do not name another one", "owner")
        if reason is not None and not isinstance(reason, str):
            raise APIError(400, "reason must be a string", "reason")
        if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
            raise APIError(400, "properties must be an object of name: value", "properties")
        try:
            brid = await self.master.scheduler.force(name, reason, properties, owner)
        except UnknownBuilder as e:
            raise APIError(404, str(e)) from None
        except NotForceable as e:
            raise APIError(400, str(e)) from None
        except ForceParameterError as e:
            raise APIError(400, f"{e.field}: {e.message}", e.field) from None
        return self._json(request, {"buildrequestid": brid})

    @routes.route("/api/v1/changes", "POST", scope="changes:add")
    async def add_change(self, request):
        change = self._change_fields(self._json_body(request))
        changeid = await self.master.scheduler.add_change(**change)
        return self._json(request, {"changeid": changeid})

    def _change_fields(self, body: dict) -> dict:
        unknown = sorted(set(body) - CHANGE_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r}", unknown[0])
        for name in CHANGE_TEXT_FIELDS:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise APIError(400, f"{name} must be a string", name)
        files = body.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise APIError(400, "files must be a list of strings", "files")
        properties = body.get("properties", {})
        if not isinstance(properties, dict):
            raise APIError(400, "properties must be an object", "properties")
        when = body.get("when_timestamp")
        if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)
                                 or not 0 <= when <= MAX_WHEN_TIMESTAMP):
            raise APIError(400, f"when_timestamp must be epoch seconds from 0 to {MAX_WHEN_TIMESTAMP}",
                           "when_timestamp")
        now = self.master.reactor.seconds()
        change = {k: body[k] for k in CHANGE_TEXT_FIELDS if body.get(k) is not None}
        change.setdefault("author", "unknown")
        change.setdefault("comments", "")
        return {**change, "files": files, "properties": properties,
                "when_timestamp": float(when if when is not None else now), "created_at": now}

    async def _request_builder(self, request, brid: int) -> dict:
        """The builder of a build request, for its scope (404 when there is no such request)."""
        row = await self.master.db.buildrequests.get(brid)
        if row is None:
            raise APIError(404, f"no build request {brid}")
        return {"builder": row["buildername"]}

    async def _build_builder(self, request, buildid: int) -> dict:
        """The builder of a build, for its scope, and its owner (who forced it), whose owner
        scopes count (404 when there is no such build)."""
        build = await self.master.db.builds.get(buildid)
        if build is None:
            raise APIError(404, f"no build {buildid}")
        return {"builder": build["buildername"], "owner": await apidata.build_owner(self.master.db, build)}

    @routes.route("/api/v1/buildrequests/<int:brid>/cancel", "POST", scope="builds:cancel:{builder}",
                  resolve=_request_builder)
    @routes.route(f"{BUILDFARM_API}/buildrequests/<int:brid>/cancel", "POST", scope="builds:cancel:{builder}",
                  resolve=_request_builder, api=_api(
                      "cancelBuildRequest", "Cancel a build request", "Cancel a request no build "
                      "took yet (409 once it runs: stop its build).", "Build requests",
                      input=apireference.EMPTY_REQUEST, output=apireference.BUILD_REQUEST_RESPONSE))
    async def cancel_buildrequest(self, request, brid):
        db = self.master.db
        if await db.buildrequests.get(brid) is None:
            raise APIError(404, f"no build request {brid}")
        if not await db.buildrequests.cancel(brid, self.master.reactor.seconds()):
            raise APIError(409, f"build request {brid} is already running or finished: stop its build")
        row = await db.buildrequests.get(brid)
        self.master.botmaster.tell_schedulers(row)
        return self._json(request, with_result_name(row))

    def _json_body(self, request) -> dict:
        try:
            return json_object(read_body(request, MAX_BODY_BYTES))
        except BadBody as e:
            raise APIError(e.status, e.message) from None

    @routes.route("/api/v1/changes", "GET", scope="changes:read")
    async def changes(self, request):
        page = parse_page(self._args(request))
        db = self.master.db
        rows = await db.changes.get_all(limit=page.limit, offset=page.offset)
        return self._page_of(request, "changes", rows, await db.changes.count(), page)

    @routes.route("/api/v1/changes/<int:changeid>", "GET", scope="changes:read")
    async def change(self, request, changeid):
        row = await self.master.db.changes.get(changeid)
        if row is None:
            raise APIError(404, f"no change {changeid}")
        return self._json(request, row)

    # -- change sources --------------------------------------------------------------------

    @routes.route("/api/v1/changesources", "GET", scope="changes:read")
    def changesources(self, request):
        return self._json(request, {"changesources": changesources.all_sources(self.master)})

    # <path:...>: a poller's name is often its repository URL; its slashes arrive escaped as
    # %2F, which twisted.web unescapes before klein routes.
    @routes.route("/api/v1/changesources/<path:name>/poll", "POST", scope="changes:poll:{name}")
    async def poll_changesource(self, request, name):
        """Poll now; 200 with the poller once the poll finished, 202 if it still runs after
        ``changesources.POLL_WAIT_S``."""
        try:
            source = changesources.poller_named(self.master, name)
        except changesources.NotAPoller as e:
            raise APIError(400, str(e)) from None
        if source is None:
            raise APIError(404, f"no change source named {name!r}")
        try:
            finished = await changesources.poll_within(source, self.master.reactor)
        except RuntimeError as e:  # stopped by a reconfig in between
            raise APIError(409, str(e)) from None
        return self._json(request, {"changesource": changesources.source_json(source), "finished": finished},
                          200 if finished else 202)

    @routes.route("/api/v1/buildrequests", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/buildrequests", "GET", scope="builds:read", api=_api(
        "listBuildRequests", "List build requests", "Build requests, newest first; `builder`, "
        "`result` and `complete` filter them.", "Build requests",
        query=("builder", "result", "complete", *PAGED_QUERY), output=apireference.LIST_BUILD_REQUESTS))
    async def buildrequests(self, request):
        args = self._args(request)
        page = parse_page(args)
        filters = await self._filters(args, ("builder",))
        db, now = self.master.db, self.master.reactor.seconds()
        rows = await db.buildrequests.get_all(**filters, limit=page.limit, offset=page.offset)
        for row in rows:
            row["age"] = None if row["complete"] else now - row["submitted_at"]
        total = await db.buildrequests.count(**filters)
        return self._page_of(request, "buildrequests", [with_result_name(r) for r in rows], total, page)

    @routes.route("/api/v1/buildrequests/<int:brid>", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/buildrequests/<int:brid>", "GET", scope="builds:read", api=_api(
        "buildRequest", "Get a build request", "One build request.", "Build requests",
        output=apireference.BUILD_REQUEST_RESPONSE))
    async def buildrequest(self, request, brid):
        row = await self.master.db.buildrequests.get(brid)
        if row is None:
            raise APIError(404, f"no build request {brid}")
        return self._json(request, with_result_name(row))

    @routes.route("/api/v1/builds", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builds", "GET", scope="builds:read", api=_api(
        "listBuilds", "List builds", "Builds, newest first; `builder`, `slave`, `result` and `complete` "
        "filter them.", "Builds", query=("builder", "slave", "result", "complete", *PAGED_QUERY),
        output=apireference.LIST_BUILDS))
    async def builds(self, request):
        return await self._builds_page(request, {}, ("builder", "slave"))

    async def _builds_page(self, request, fixed: dict, allowed: tuple[str, ...]) -> bytes:
        args = self._args(request)
        page = parse_page(args)
        filters = {**await self._filters(args, allowed), **fixed}
        db, now = self.master.db, self.master.reactor.seconds()
        rows = await db.builds.get_all(**filters, limit=page.limit, offset=page.offset)
        total = await db.builds.count(**filters)
        site_url = self.master.config.buildbot_url
        return self._page_of(request, "builds", [apidata.build_summary(r, now, site_url) for r in rows],
                             total, page)

    @routes.route("/api/v1/builds/<int:buildid>", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builds/<int:buildid>", "GET", scope="builds:read", api=_api(
        "build", "Get a build", "A build with its steps and each step's logs (their `logid`).", "Builds",
        output=apireference.BUILD_RESPONSE))
    async def build(self, request, buildid):
        build = await self.master.db.builds.get(buildid)
        if build is None:
            raise APIError(404, f"no build {buildid}")
        return self._json(request, await apidata.build_detail(self.master, build))

    @routes.route("/api/v1/builds/<int:buildid>/stop", "POST", scope="builds:stop:{builder}",
                  resolve=_build_builder)
    @routes.route(f"{BUILDFARM_API}/builds/<int:buildid>/stop", "POST", scope="builds:stop:{builder}",
                  resolve=_build_builder, api=_api(
                      "stopBuild", "Stop a build", "Stop a running build (409 when it is not running).",
                      "Builds", input=apireference.STOP_REQUEST, output=apireference.STOP_RESPONSE))
    async def stop_build(self, request, buildid):
        body = self._json_body(request)
        unknown = sorted(set(body) - STOP_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r} (allowed: reason)", unknown[0])
        reason = body.get("reason", "stopped through the API")
        if not isinstance(reason, str):
            raise APIError(400, "reason must be a string", "reason")
        build = self.master.botmaster.running_build(buildid)
        if build is None:
            if await self.master.db.builds.get(buildid) is None:
                raise APIError(404, f"no build {buildid}")
            raise APIError(409, f"build {buildid} is not running")
        build.stop(reason)
        return self._json(request, {"buildid": buildid, "stopping": True, "reason": reason})

    @routes.route("/api/v1/builds/<int:buildid>/steps/<int:number>/logs/<string:logname>", "GET",
                  scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builds/<int:buildid>/steps/<int:number>/logs/<string:logname>", "GET",
                  scope="builds:read", api=_api(
                      "buildLog", "Get a step's log", "A log of a build's step (by its name or slug) as "
                      "text/plain, whole (no output schema: the client answers "
                      "`{\"response\": <requests.Response>}`).",
                      "Logs"))
    async def log_text(self, request, buildid, number, logname):
        """The whole log as text, read from the database in batches of lines."""
        db = self.master.db
        step = await db.steps.get(buildid, number)
        if step is None:
            raise APIError(404, f"build {buildid} has no step {number}")
        logs = await db.logs.get_all(step["stepid"])
        entry = next((lg for lg in logs if logname in (lg["slug"], lg["name"])), None)
        if entry is None:
            raise APIError(404, f"step {number} of build {buildid} has no log {logname!r}")
        return await self._send_whole_log(request, entry, attachment=False)

    # -- logs ------------------------------------------------------------------------------

    async def _log(self, logid: int) -> dict:
        entry = await self.master.db.logs.get(logid)
        if entry is None:
            raise APIError(404, f"no log {logid}")
        return entry

    @routes.route("/api/v1/logs/<int:logid>", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/logs/<int:logid>", "GET", scope="builds:read", api=_api(
        "logLines", "Get lines of a log", f"Lines `offset` .. `offset + limit - 1` of a log (numbered "
        f"from 0; `limit` at most {LOG_LINES_MAX}) as JSON.", "Logs", query=("offset", "limit"),
        output=apireference.LOG_LINES))
    async def log_lines(self, request, logid):
        """Lines ``offset`` .. ``offset + limit - 1`` of a log (numbered from 0) as JSON."""
        args = self._args(request)
        limit = parse_int(args, "limit", LOG_LINES_DEFAULT, 1, LOG_LINES_MAX)
        page = Page(limit, parse_int(args, "offset", 0))
        entry = await self._log(logid)
        last = page.offset + page.limit - 1
        if last == entry["num_lines"] - 1:
            last += 1  # the page that reaches the end also carries a last line without newline
        text = await self.master.db.logs.get_text_range(logid, page.offset, last)
        meta = page.meta(entry["num_lines"], request.path.decode(), args)
        return await self._log_answer(request, entry, page.offset, text, meta)

    @routes.route("/api/v1/logs/<int:logid>/tail", "GET", scope="builds:read")
    async def log_tail(self, request, logid):
        """The last ``lines`` lines of a log (and the unfinished line after them, if any)."""
        lines = parse_int(self._args(request), "lines", TAIL_LINES_DEFAULT, 1, LOG_LINES_MAX)
        entry = await self._log(logid)
        first = max(0, entry["num_lines"] - lines)
        text = await self.master.db.logs.get_text_range(logid, first, entry["num_lines"])
        got = text.splitlines(keepends=True)
        if len(got) > lines:  # the unfinished last line counts as one of them
            first, text = first + 1, "".join(got[1:])
        return await self._log_answer(request, entry, first, text, None)

    async def _log_answer(self, request, entry: dict, first_line: int, text: str, meta: dict | None) -> bytes:
        size = (await self.master.db.logs.get_sizes([entry["logid"]]))[entry["logid"]]
        body = {"log": apidata.log_json(entry, size), "first_line": first_line, "text": text}
        if meta is not None:
            body["meta"] = meta
        return self._json(request, body)

    @routes.route("/api/v1/logs/<int:logid>/raw", "GET", scope="builds:read")
    async def log_raw(self, request, logid):
        """The whole log as a text/plain download."""
        return await self._send_whole_log(request, await self._log(logid), attachment=True)

    async def _send_whole_log(self, request, entry: dict, attachment: bool) -> bytes:
        """Write the log in batches of lines, each once the client took the previous one, so
        a huge log never sits whole in memory (a client that goes away cancels this)."""
        filename = f"log-{entry['logid']}-{entry['slug']}.txt" if attachment else None
        return await send_text(request, partial(self.master.db.logs.get_text_range, entry["logid"]),
                               entry["num_lines"], DOWNLOAD_BATCH_LINES, filename)

    # -- slaves ----------------------------------------------------------------------------

    @routes.route("/slaveapi/", ANY_METHOD, scope=PUBLIC, branch=True)
    def slaveapi(self, request):
        """The SlaveAPI, mounted in the main web site too (its own routes declare their scopes)."""
        return self.master.slaveapi.resource()

    @routes.route("/api/v1/slaves/<string:name>/shutdown", "POST", scope="slaves:shutdown:{name}")
    @routes.route(f"{BUILDFARM_API}/slaves/<string:name>/shutdown", "POST", scope="slaves:shutdown:{name}",
                  api=_api("shutdownSlave", "Shut a slave down", "Ask an attached slave to shut down "
                           "once its builds end.", "Slaves", input=apireference.EMPTY_REQUEST,
                           output=apireference.SHUTDOWN_RESPONSE))
    def shutdown_slave(self, request, name):
        if name not in self.master.config.slaves:
            raise APIError(404, f"no slave named {name!r}")
        if name not in self.master.botmaster.slaves:
            raise APIError(409, f"slave {name!r} is not attached")
        slave = self.master.botmaster.request_slave_shutdown(name)
        return self._json(request, {"name": name, "shutting_down": True,
                                    "running_builds": self.master.botmaster.builds_running_on(slave)})

    @routes.route("/api/v1/slaves", "GET", scope="slaves:read")
    @routes.route(f"{BUILDFARM_API}/slaves", "GET", scope="slaves:read", api=_api(
        "listSlaves", "List slaves", "Configured and attached slaves; `state` and `builder` filter them.",
        "Slaves", query=("state", "builder", *PAGED_QUERY), output=apireference.LIST_SLAVES))
    async def slaves(self, request):
        args = self._args(request)
        page = parse_page(args)
        state = parse_choice(args, "state", apidata.SLAVE_STATES)
        builder = args.get("builder")
        if builder is not None:
            wanted = set(self._configured_builder(builder, "builder").config.slavenames)
        slaves = [s for s in await apidata.slave_summaries(self.master)
                  if (state is None or s["state"] == state) and (builder is None or s["name"] in wanted)]
        shown = await apidata.add_infos(self.master, page.slice(slaves), request_identity(request).may)
        return self._page_of(request, "slaves", shown, len(slaves), page)

    @routes.route("/api/v1/slaves/<string:name>", "GET", scope="slaves:read")
    @routes.route(f"{BUILDFARM_API}/slaves/<string:name>", "GET", scope="slaves:read", api=_api(
        "slave", "Get a slave", "One slave: its state, builders and builds.", "Slaves",
        output=apireference.SLAVE_RESPONSE))
    async def slave(self, request, name):
        detail = await apidata.slave_detail(self.master, name, request_identity(request).may)
        if detail is None:
            raise APIError(404, f"no slave named {name!r}")
        return self._json(request, detail)

    # -- metrics ---------------------------------------------------------------------------

    # -- audit -----------------------------------------------------------------------------

    @routes.route("/api/v1/audit", "GET", scope="audit:read")
    async def audit(self, request):
        """Every write asked of an HTTP surface, newest first (``?user=``, ``?surface=``)."""
        args = self._args(request)
        page = parse_page(args)
        user, surface = args.get("user"), args.get("surface")
        rows = await self.master.db.audit.get_all(user, surface, limit=page.limit, offset=page.offset)
        return self._page_of(request, "audit", rows, await self.master.db.audit.count(user, surface), page)

    @routes.route("/metrics", "GET", scope="metrics:read")
    async def metrics(self, request):
        """The Prometheus text exposition of the master's metrics (master/metrics.py)."""
        text = await self.master.metrics.render(self.master)
        request.setHeader(b"content-type", METRICS_CONTENT_TYPE)
        return text

    # -- views (the data of the grid, console and waterfall pages: www/ui/views.py) --------

    @routes.route("/api/v1/views/grid", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/views/grid", "GET", scope="builds:read", api=_api(
        "gridView", "Grid of changes and builds", "The grid page's rows: changes newest first, each "
        "with its builds by builder; `branch`, `tag` and `builder` filter, `limit` changes a page "
        "(default 25, at most 100).", "Views", query=("branch", "tag", "builder", *PAGED_QUERY),
        output=apireference.GRID_VIEW))
    async def grid_view(self, request):
        args = self._args(request)
        try:
            flt = views.parse_grid_filter(partial(_view_values, request, args), count_name="limit")
        except views.BadViewFilter as e:
            raise APIError(400, str(e), e.field) from None
        view = await views.grid_view(self.master.db, self.master.botmaster.builders, flt)
        body = views.grid_json(view)
        following = flt.offset + flt.changes
        more = following < view["total"]
        path = request.path.decode("utf-8", "replace")
        # (Page.meta's next URL would keep one value of the repeated tag and builder)
        meta = {"total": view["total"], "limit": flt.changes, "offset": flt.offset,
                "next": f"{path}?{flt.query('limit', offset=following)}" if more else None}
        if more and _under_buildfarm_api(request):
            body[CONTINUATION] = str(following)
        return self._json(request, {**body, "meta": meta})

    @routes.route("/api/v1/views/waterfall", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/views/waterfall", "GET", scope="builds:read", api=_api(
        "waterfallView", "Builds on a time axis", "The waterfall page's data: each builder's builds that "
        "ran between `from` and `to` (UTC times or epoch seconds; or `range` 1h, 6h, 24h up to now), "
        "oldest first; `tag` and `builder` filter; `limit` builds a page (default 1000).", "Views",
        query=("from", "to", "range", "tag", "builder", *PAGED_QUERY), output=apireference.WATERFALL_VIEW))
    async def waterfall_view(self, request):
        args = self._args(request)
        page = Page(parse_int(args, "limit", WATERFALL_PAGE, 1, MAX_WATERFALL_PAGE),
                    parse_int(args, "offset", 0))
        now = self.master.reactor.seconds()
        try:
            flt = views.parse_waterfall_filter(partial(_view_values, request, args), now)
        except views.BadViewFilter as e:
            raise APIError(400, str(e), e.field) from None
        view = await views.waterfall_view(self.master.db, self.master.botmaster.builders, flt, now)
        body, total = views.waterfall_json(view, page.limit, page.offset)
        following = page.offset + page.limit
        path = request.path.decode("utf-8", "replace")
        more = following < total
        next_url = f"{path}?{flt.query(limit=str(page.limit), offset=str(following))}" if more else None
        body["meta"] = {"total": total, "limit": page.limit, "offset": page.offset, "next": next_url}
        if more and _under_buildfarm_api(request):
            body[CONTINUATION] = str(following)
        return self._json(request, body)

    @routes.route("/api/v1/builders/<string:name>/trends", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/builders/<string:name>/trends", "GET", scope="builds:read", api=_api(
        "builderTrends", "A builder's trends", "The series behind the builder page's charts over the last 30 "
        "UTC days: per day the finished builds, how many succeeded, the p50 and p90 duration and the "
        "median queue wait and running time; the slowest steps by p90. Read at most once a minute.",
        "Views", output=apireference.BUILDER_TRENDS))
    async def builder_trends(self, request, name):
        builder = self._configured_builder(name)
        return self._json(request, views.trends_json(name, await self.trends.get(builder.builderid)))

    @routes.route("/api/v1/views/fleet", "GET", scope="builds:read")
    @routes.route(f"{BUILDFARM_API}/views/fleet", "GET", scope="builds:read", api=_api(
        "fleetView", "The fleet and the queue over time", "The series behind the overview's charts, as the "
        "master samples them each minute: slaves by state and the queue over 24 hours, SlaveAPI actions by "
        "outcome per day over 7 days.", "Views", output=apireference.FLEET_VIEW))
    async def fleet_view(self, request):
        view = await self.charts.fleet()
        series = {name: [{"at": at, "value": value} for at, value in points]
                  for name, points in sorted(view["series"].items())}
        return self._json(request, {"from": view["from"], "to": view["to"], "series": series,
                                    "actions_per_day": view["actions_per_day"]})

    @routes.route("/api/v1/views/tasks", "GET", scope="tasks:read")
    async def tasks_view(self, request):
        """The series behind the tasks chart on /tasks (docs/api.md "Views")."""
        view = await self.charts.tasks()
        return self._json(request, {"from": view["from"], "to": view["to"],
                                    "series": views.series_json(view["series"])})

    @routes.route("/api/v1/views/bots/states", "GET", scope="bots:read")
    async def bot_states_view(self, request):
        """The series behind the bots-by-state chart on /bots (docs/api.md "Views"): ``bots.<state>``
        at each sampling minute over 24 hours, paged by sampling minute (``limit``, ``offset``)."""
        args = self._args(request)
        page = Page(parse_int(args, "limit", views.DEFAULT_SERIES_PAGE, 1, views.MAX_SERIES_PAGE),
                    parse_int(args, "offset", 0))
        view = await self.charts.bot_states()
        series, total = views.series_page(view["series"], page.limit, page.offset)
        body = {"from": view["from"], "to": view["to"], "series": series,
                "meta": page.meta(total, request.path.decode("utf-8", "replace"), args)}
        return self._json(request, body)

    @routes.route("/api/v1/views/bots", "GET", scope="bots:read")
    async def bots_view(self, request):
        """The figures behind the bots chart on /bots: ``?key=`` the dimension grouped by
        (``pool`` unless given), ``?dimension=key:value`` (repeated) the bots kept."""
        key = self._args(request).get("key", "").strip()[:taskpages.MAX_FILTER_CHARS]
        key = key or taskpages.DEFAULT_GROUP_KEY
        try:
            wanted = taskpages.parse_pairs([v.decode("utf-8", "replace")
                                            for v in (request.args or {}).get(b"dimension", [])])
        except taskpages.BadFilter as e:
            raise APIError(400, str(e), "dimension") from None
        view = await taskpages.fleet_view(self.master, key, wanted)
        return self._json(request, {"key": key, "dimension": view["wanted"], "bots": len(view["bots"]),
                                    "groups": taskpages.bot_state_counts(view["groups"])})


def _view_values(request, args: dict[str, str], name: str) -> list[str]:
    """Every value of a view's query parameter: ``tag`` and ``builder`` repeat, the others
    are ``args``' (where ``continuationToken`` stands for ``offset``)."""
    if name in ("tag", "builder"):
        return [v.decode("utf-8", "replace") for v in (request.args or {}).get(name.encode(), [])]
    return [args[name]] if name in args else []
