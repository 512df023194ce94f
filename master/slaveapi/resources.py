"""The SlaveAPI's HTTP layer, as a table of routes (documented in docs/slaveapi.md)::

    GET  /results                                 every result: {slave: {action: {requestid: result}}}
    GET  /slaves                                  ?purpose= ?environment= ?pool= ?enabled= ?master=
    GET  /slaves/<slave>                          one slave: settings, connection, recent jobs
    GET  /slaves/<slave>/actions/<action>         ?requestid=N: that result; else all of them
    POST /slaves/<slave>/actions/<action>         queue it; wait up to ?waittime=S; 200 or 202
    GET  /audit                                   who asked for what, newest first

The answers are those of the original SlaveAPI (compat.py holds its names and values).

Served on its own port and under ``/slaveapi/`` of the master's web site.  Each route
declares its scope (master/http/routes.py) and the master's ``auth`` service checks the
caller (HTTP basic, a bearer token or the web UI's session cookie): GETs need
``slaveapi:read``, a POST ``slaveapi:<action>:<slave>``.  Errors are ``{"error": ...,
"msg": ...}`` bodies (plus ``"scope"`` on a refusal) with the right status, made in one
place (``SlaveAPIError``, ``AuthError``).
"""

import json
import socket
from urllib.parse import unquote

from twisted.internet import defer
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.master.auth.identity import AuthError
from buildfarm.master.db.slaveapi import DEFAULT_SETTINGS
from buildfarm.master.fleet import SLAVEAPI_READ_SCOPE as READ_SCOPE
from buildfarm.master.fleet import BadArgument
from buildfarm.master.http.body import BadBody, json_object, read_body
from buildfarm.master.http.challenge import add_challenges, add_refusal_headers
from buildfarm.master.http.limits import MAX_URL_INT
from buildfarm.master.http.limits import SLAVEAPI_MAX_BODY_BYTES as MAX_BODY_BYTES
from buildfarm.master.http.routes import APIEntry, RouteTable, request_identity
from buildfarm.master.http.routing import bounded_klein, parse_url_int
from buildfarm.master.http.site import BodyRule, BoundedSite, slaveapi_error, slaveapi_error_body
from buildfarm.master.slaveapi import apireference as ref
from buildfarm.master.slaveapi.channels.interfaces import BUG_STATUS, ChannelError
from buildfarm.master.slaveapi.compat import (
    IGNORED_KEY,
    BadFilter,
    SlaveFilters,
    original_job,
    original_slave_fields,
    split_arguments,
)
from buildfarm.master.slaveapi.results import dictify_results
from buildfarm.master.status import SlaveStatus, one_slave_status, slave_statuses

log = Logger()

MAX_WAITTIME_S = 3600.0
RECENT_JOBS = 10
BUG_STATUS_DEADLINE_S = 5.0
DEFAULT_AUDIT_LIMIT = 100
REALM = "buildfarm SlaveAPI"
WAITTIME = "waittime"


class SlaveAPIError(Exception):
    """An error answered as ``{"error": <status name>, "msg": message}``."""

    def __init__(self, status: int, message: str, user: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.user = user  # who was refused (403)


def _api(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
         input: str | None = None, output: str | None = None) -> APIEntry:
    """An entry of the ``slaveapi`` service's reference (slaveapi/apireference.py)."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, query=query, input=input,
                    output=output)


class SlaveAPI:
    """The SlaveAPI resources of one ``ActionRunner``."""

    app = bounded_klein()
    routes = RouteTable(app, "slaveapi", api_base="")  # also served at /api/slaveapi/v1 (www/site.py)

    def __init__(self, runner):
        self.runner = runner
        self.master = runner.master

    def resource(self):
        """The twisted.web resource serving the SlaveAPI."""
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------

    @app.handle_errors(AuthError)
    def _auth_error(self, request, failure):
        error = failure.value
        add_refusal_headers(request, error, REALM)
        target = getattr(request, "_slaveapi_target", None)
        if error.status == 403 and error.user and target is not None:
            # The SlaveAPI's own audit (GET /audit) lists refusals of known callers too.
            d = defer.ensureDeferred(self.master.db.slaveapi.add_audit(
                self.runner.now(), error.user, _peer(request), *target, "denied", detail=error.message))
            d.addErrback(lambda f: log.failure("SlaveAPI: recording a refusal failed", f))
            d.addCallback(lambda _: _json_error(request, error.status, error.message, error.scope,
                                                _refusal_fields(error)))
            return d
        return _json_error(request, error.status, error.message, error.scope, _refusal_fields(error))

    @app.handle_errors(SlaveAPIError)
    def _api_error(self, request, failure):
        if failure.value.status == 401:
            add_challenges(request, REALM)
        return _json_error(request, failure.value.status, failure.value.message)

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return _json_error(request, 404, f"no such resource: {request.path.decode('utf-8', 'replace')}")

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return _json_error(request, 405, f"{request.method.decode()} is not allowed here")

    @app.handle_errors(Exception)
    def _internal_error(self, request, failure):
        log.failure("SlaveAPI request {path} failed", failure, path=request.path)
        return _json_error(request, 500, "internal error; see the master's twistd.log")

    async def _known_slave(self, name: str) -> None:
        if not await self.runner.knows(name):
            raise SlaveAPIError(404, f"no slave named {name!r}")

    def _action(self, name: str):
        action = self.runner.action(name)
        if action is None:
            known = ", ".join(sorted(self.runner.actions))
            raise SlaveAPIError(404, f"no action named {name!r} (actions: {known})")
        return action

    # -- routes ----------------------------------------------------------------------------

    @routes.route("/results", "GET", scope=READ_SCOPE, api=_api(
        "results", "Every result", "Every action's results: `{slave: {action: {requestid: result}}}`.",
        "Results", output=ref.RESULTS))
    async def results(self, request):
        return _json(request, dictify_results(await self.runner.results()))

    @routes.route("/audit", "GET", scope=READ_SCOPE, api=_api(
        "audit", "The audit", "Who asked for what, newest first (`slave` filters, `limit` bounds).",
        "Results", query=("slave", "limit"), output=ref.AUDIT))
    async def audit(self, request):
        limit = _int_arg(request, "limit", DEFAULT_AUDIT_LIMIT)
        rows = await self.master.db.slaveapi.get_audit(_arg(request, "slave"), limit=limit)
        return _json(request, {"audit": rows})

    @routes.route("/slaves", "GET", scope=READ_SCOPE, api=_api(
        "listSlaves", "List slaves", "Every slave the SlaveAPI knows; the query filters them.", "Slaves",
        query=("purpose", "environment", "pool", "enabled", "master"), output=ref.SLAVES))
    async def slaves(self, request):
        try:
            filters = SlaveFilters.from_args(request.args)
        except BadFilter as e:
            raise SlaveAPIError(400, str(e)) from None
        summaries = [summary for summary in await self._slave_summaries() if filters.match(summary)]
        return _json(request, {"slaves": summaries})

    async def _slave_summaries(self) -> list[dict]:
        rows = {row["name"]: row for row in await self.master.db.slaves.get_all(with_info=False)}
        settings = await self.master.db.slaveapi.get_all_settings()
        masters = await self.master.db.slaveapi.master_names()
        names = set(self.master.config.slaves) | set(self.runner.settings.slaves) | set(rows) | set(settings)
        statuses = await slave_statuses(self.master, names, rows, settings)
        return [self._summary(statuses[name], settings.get(name) or {"name": name, **DEFAULT_SETTINGS},
                              masters) for name in sorted(names)]

    def _summary(self, status: SlaveStatus, settings: dict, masters: dict[int, str]) -> dict:
        """A slave in the original's fields; ``connected`` and ``master`` from master/status.py."""
        location = self.runner.settings.slaves.get(status.name)
        return {
            "name": status.name,
            "enabled": settings["enabled"],
            "environment": settings["environment"],
            "purpose": location.purpose if location else None,
            "pool": location.pool if location else None,
            "connected": status.connected,
            "master": masters.get(status.masterid) if status.masterid is not None else None,
            "disabled_reason": settings["disabled_reason"],
        }

    @routes.route("/slaves/<string:slave>", "GET", scope=READ_SCOPE, api=_api(
        "slave", "Get a slave", "One slave: settings, connection, recent jobs, channels.", "Slaves",
        output=ref.SLAVE_RESPONSE))
    async def slave(self, request, slave):
        await self._known_slave(slave)
        db = self.master.db
        row = await db.slaves.get(slave)
        settings = await db.slaveapi.get_settings(slave)
        status = await one_slave_status(self.master, slave, row, settings)
        summary = self._summary(status, settings, await db.slaveapi.master_names())
        location = self.runner.settings.slaves.get(slave)
        live = self.master.botmaster.slaves.get(slave)
        info = live.info if live is not None else (row or {}).get("info") or {}
        jobs = await db.builds.get_all(slaveid=row["slaveid"], limit=RECENT_JOBS) if row else []
        ours = status.attached
        return _json(request, {
            **summary,
            **original_slave_fields(location, self.runner.settings.slaves),
            "basedir": info.get("basedir"),
            "notes": settings["notes"],
            "disabled_by": settings["disabled_by"],
            "disabled_at": settings["disabled_at"],
            "master_url": self._master_url() if ours else None,
            "bug": await self._bug(location),
            "recent_jobs": [original_job(build) for build in jobs],
            "channels": location.public_channels() if location else {},
            "last_connected_at": _int_time((row or {}).get("last_connected_at")),
            "last_disconnected_at": _int_time((row or {}).get("last_disconnected_at")),
        })

    async def _bug(self, location) -> dict | None:
        """The slave's bug (``{"id", "is_open"}``) from its bug tracker; None when it has none,
        or the tracker does not answer within ``BUG_STATUS_DEADLINE_S`` (the page is still served)."""
        channel = self.runner.channels.get("bugzilla")
        if location is None or channel is None or not channel.configured_for(location):
            return None
        try:
            return await channel.perform(BUG_STATUS, location, lambda line: None, self.runner.clock,
                                         BUG_STATUS_DEADLINE_S)
        except ChannelError as e:
            log.info("SlaveAPI: the bug of {slave} is not known: {why}", slave=location.name, why=str(e))
            return None

    def _master_url(self) -> str | None:
        """``c['buildbotURL']``; without it, this host's name and the www port.  No DNS look-up
        (``socket.getfqdn``) here: it would block the reactor on every page."""
        configured = self.master.config.buildbot_url
        if configured:
            return configured
        port = self.master.config.www_port
        number = port.split(":")[1] if port and port.startswith("tcp:") else None
        return f"http://{socket.gethostname()}:{number}/" if number and number.isdigit() else None

    @routes.route("/slaves/<string:slave>/actions/<string:action>", "GET", scope=READ_SCOPE, api=_api(
        "actionResults", "Results of an action", "The result `requestid`; without it, every result of "
        "the action on the slave.", "Actions", query=("requestid",), output=ref.ACTION_RESULTS))
    async def action_results(self, request, slave, action):
        """One result by ``requestid``; without one, or when it is not a request of this action
        on this slave, the whole history ``{<action's real name>: {requestid: result}}``, as the
        original answered (also for a slave nobody knows: actions asked of it are there)."""
        canonical = self._action(action).name
        requestid = _int_arg(request, "requestid", None)
        if requestid is not None:
            result = await self.runner.get(requestid)
            if result is not None and (result.slave, result.action) == (slave, canonical):
                return _json(request, result.to_dict())
        results = await self.runner.results(slave, canonical)
        return _json(request, {canonical: {str(r.requestid): r.to_dict() for r in results}})

    async def _canonical_action(self, request, slave: str, action: str) -> dict:
        """The scope's ``action``: the canonical name of an alias (``reboot`` for its aliases)."""
        chosen = self.runner.action(action)
        request._slaveapi_target = (slave, chosen.name if chosen else action)
        return {"action": chosen.name if chosen else action}

    @routes.route("/slaves/<string:slave>/actions/<string:action>", "POST",
                  scope="slaveapi:{action}:{slave}", resolve=_canonical_action, api=_api(
                      "doAction", "Do an action", "Queue the action on the slave and wait up to "
                      "`waittime` seconds: 200 with its result once it finished, 202 while it runs.",
                      "Actions", query=("waittime",), input=ref.ACTION_REQUEST, output=ref.ACTION_RESPONSE))
    async def do_action(self, request, slave, action):
        account = request_identity(request)
        chosen = self._action(action)
        given, waittime = self._action_args(request)
        given, ignored = split_arguments({arg.name for arg in chosen.args}, given)
        try:
            args = chosen.parse_args(given)
        except BadArgument as e:
            raise SlaveAPIError(400, str(e)) from None
        if ignored:
            args[IGNORED_KEY] = ignored  # the story says so (runner._before_run)
        result = await self.runner.submit(slave, chosen, args, account.audit_name, _peer(request))
        await self.runner.wait(result.requestid, waittime)
        result = await self.runner.get(result.requestid)
        return _json(request, result.to_dict(), 200 if result.finished else 202)

    def _action_args(self, request) -> tuple[dict, float]:
        """The action's arguments (form fields, query arguments, a JSON body) and waittime."""
        body = _read_body(request)
        given: dict = {}
        if _is_json(request):
            given = _json_object(body)
        for key, values in request.args.items():
            name = key.decode("utf-8", "replace")
            if name not in given:
                given[name] = values[-1].decode("utf-8", "replace")
        raw_wait = given.pop(WAITTIME, 0)
        try:
            waittime = float(raw_wait)
        except (TypeError, ValueError):
            raise SlaveAPIError(400, f"waittime must be a number of seconds, not {raw_wait!r}") from None
        if not 0 <= waittime <= MAX_WAITTIME_S:
            raise SlaveAPIError(400, f"waittime must be between 0 and {MAX_WAITTIME_S:g} seconds")
        return given, waittime


def make_site(runner) -> BoundedSite:
    """The twisted.web Site of the SlaveAPI's own port."""
    rule = BodyRule("/", MAX_BODY_BYTES, slaveapi_error_body)
    return BoundedSite(runner.resource(), [], rule, runner.master.config.www_limits, runner.clock)


def _json(request, value, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


def _refusal_fields(error: AuthError) -> dict:
    """What a refusal adds to ``{"error", "msg", "message"}``: a missing scope's ``required``
    and ``unsatisfied``."""
    return error.scope_fields()


def _json_error(request, status: int, message: str, scope: str | None = None,
                fields: dict | None = None) -> bytes:
    body = slaveapi_error(status, message)
    if scope is not None:
        body["scope"] = scope
    body.update(fields or {})  # a missing scope: required and unsatisfied (AuthError.scope_fields)
    return _json(request, body, status)


def _arg(request, name: str) -> str | None:
    values = request.args.get(name.encode())
    return unquote(values[-1].decode("utf-8", "replace")) if values else None


def _int_arg(request, name: str, default: int | None) -> int | None:
    value = _arg(request, name)
    if value is None:
        return default
    number = parse_url_int(value)
    if number is None:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise SlaveAPIError(400, f"{name} must be an integer from 0 to {MAX_URL_INT}, not {shown!r}")
    return number


def _peer(request) -> str:
    return getattr(request.getClientAddress(), "host", None) or "?"


def _is_json(request) -> bool:
    content_type = request.requestHeaders.getRawHeaders(b"content-type", [b""])[-1]
    return content_type.split(b";")[0].strip().lower() == b"application/json"


def _read_body(request) -> bytes:
    try:
        return read_body(request, MAX_BODY_BYTES)
    except BadBody as e:
        raise SlaveAPIError(e.status, e.message) from None


def _json_object(raw: bytes) -> dict:
    try:
        return json_object(raw, "a JSON object of action arguments")
    except BadBody as e:
        raise SlaveAPIError(e.status, e.message) from None


def _int_time(value: float | None) -> int | None:
    return None if value is None else int(value)
