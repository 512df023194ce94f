"""The JSON API under ``/api/v1/``, as a table of routes (documented in docs/api.md).

Handlers are plain async methods returning JSON-able values; ``APIError`` (and unmatched
routes) become ``{"error": ...}`` bodies with the right status in one place.
"""

import hmac
import json

from klein import Klein
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.common.results import result_name
from buildfarm.common.version import VERSION
from buildfarm.master.schedulers.forcesched import ForceParameterError
from buildfarm.master.schedulers.manager import NotForceable, UnknownBuilder

log = Logger()

MAX_BODY_BYTES = 1024 * 1024
FORCE_FIELDS = frozenset({"reason", "properties", "owner"})
STOP_FIELDS = frozenset({"reason"})
CHANGE_TEXT_FIELDS = ("author", "committer", "comments", "branch", "revision", "repository", "project",
                      "codebase", "category")
CHANGE_FIELDS = frozenset(CHANGE_TEXT_FIELDS) | {"files", "when_timestamp", "properties"}
SECRET_HEADER = b"x-buildfarm-secret"


class APIError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def with_result_name(row: dict) -> dict:
    """Add the lower-case ``result`` name beside the integer ``results``."""
    return {**row, "result": result_name(row.get("results"))}


class JSONAPI:
    """The master's JSON API."""

    app = Klein()

    def __init__(self, master):
        self.master = master

    def resource(self):
        """The twisted.web resource serving this API."""
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------

    @app.handle_errors(APIError)
    def _api_error(self, request, failure):
        return self._json_error(request, failure.value.status, failure.value.message)

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
    def _json_error(request, status: int, message: str) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"error": message}).encode()

    @staticmethod
    def _json(request, value, status: int = 200) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode()

    @staticmethod
    def _arg(request, name: str) -> str | None:
        values = request.args.get(name.encode())
        return values[-1].decode("utf-8", "replace") if values else None

    def _bool_arg(self, request, name: str) -> bool | None:
        value = self._arg(request, name)
        if value is None:
            return None
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise APIError(400, f"{name} must be true or false, not {value!r}")

    def _int_arg(self, request, name: str, default: int | None, minimum: int = 0) -> int | None:
        value = self._arg(request, name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < minimum:
            raise APIError(400, f"{name} must be an integer >= {minimum}, not {value!r}")
        return int(value)

    def _list_filters(self, request) -> dict:
        """The filters and paging of a list endpoint: ?builder=, ?complete=, ?limit=, ?offset=."""
        builder = self._arg(request, "builder")
        return {
            "builderid": self._builder_id(builder) if builder else None,
            "complete": self._bool_arg(request, "complete"),
            "limit": self._int_arg(request, "limit", None, 1),
            "offset": self._int_arg(request, "offset", 0),
        }

    def _builder_id(self, name: str) -> int:
        builder = self.master.botmaster.builders.get(name)
        if builder is None:
            raise APIError(404, f"no builder named {name!r}")
        return builder.builderid

    # -- routes ----------------------------------------------------------------------------

    @app.route("/api/v1", methods=["GET"])
    @app.route("/api/v1/", methods=["GET"])
    def index(self, request):
        return self._json(request, {
            "version": VERSION,
            "title": self.master.config.title,
            "endpoints": ["/api/v1/builders", "/api/v1/buildrequests", "/api/v1/builds",
                          "/api/v1/slaves"],
        })

    @app.route("/api/v1/builders", methods=["GET"])
    def builders(self, request):
        return self._json(request, {"builders": [self._builder_json(b) for b in
                                                 self.master.botmaster.builders.values()]})

    @app.route("/api/v1/builders/<string:name>", methods=["GET"])
    def builder(self, request, name):
        self._builder_id(name)
        return self._json(request, self._builder_json(self.master.botmaster.builders[name]))

    def _builder_json(self, builder) -> dict:
        return {
            "builderid": builder.builderid,
            "name": builder.name,
            "slavenames": builder.config.slavenames,
            "tags": builder.config.tags,
            "attached_slaves": sorted(builder.slavebuilders),
        }

    @app.route("/api/v1/builders/<string:name>/force", methods=["POST"])
    async def force(self, request, name):
        body = self._json_body(request)
        unknown = sorted(set(body) - FORCE_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r} (allowed: reason, properties, owner)")
        reason, properties, owner = body.get("reason"), body.get("properties", {}), body.get("owner")
        if reason is not None and not isinstance(reason, str):
            raise APIError(400, "reason must be a string")
        if owner is not None and not isinstance(owner, str):
            raise APIError(400, "owner must be a string")
        if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
            raise APIError(400, "properties must be an object of name: value")
        try:
            brid = await self.master.scheduler.force(name, reason, properties, owner)
        except UnknownBuilder as e:
            raise APIError(404, str(e)) from None
        except NotForceable as e:
            raise APIError(400, str(e)) from None
        except ForceParameterError as e:
            raise APIError(400, f"{e.field}: {e.message}") from None
        return self._json(request, {"buildrequestid": brid})

    @app.route("/api/v1/changes", methods=["POST"])
    async def add_change(self, request):
        secret = self.master.config.change_secret
        if not secret:
            raise APIError(403, "the change hook is off: set c['changes'] = {'secret': ...} in master.cfg")
        given = request.requestHeaders.getRawHeaders(SECRET_HEADER, [b""])[-1]
        if not hmac.compare_digest(given, secret.encode()):
            raise APIError(403, "wrong or missing X-Buildfarm-Secret")
        change = self._change_fields(self._json_body(request))
        changeid = await self.master.scheduler.add_change(**change)
        return self._json(request, {"changeid": changeid})

    def _change_fields(self, body: dict) -> dict:
        unknown = sorted(set(body) - CHANGE_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r}")
        for name in CHANGE_TEXT_FIELDS:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise APIError(400, f"{name} must be a string")
        files = body.get("files", [])
        if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
            raise APIError(400, "files must be a list of strings")
        properties = body.get("properties", {})
        if not isinstance(properties, dict):
            raise APIError(400, "properties must be an object")
        when = body.get("when_timestamp")
        if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
            raise APIError(400, "when_timestamp must be epoch seconds")
        now = self.master.reactor.seconds()
        change = {k: body[k] for k in CHANGE_TEXT_FIELDS if body.get(k) is not None}
        change.setdefault("author", "unknown")
        change.setdefault("comments", "")
        return {**change, "files": files, "properties": properties,
                "when_timestamp": float(when if when is not None else now), "created_at": now}

    @app.route("/api/v1/buildrequests/<int:brid>/cancel", methods=["POST"])
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
        raw = request.content.read(MAX_BODY_BYTES + 1) if request.content else b""
        if len(raw) > MAX_BODY_BYTES:
            raise APIError(413, f"request body over {MAX_BODY_BYTES} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, f"request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise APIError(400, "request body must be a JSON object")
        return body

    @app.route("/api/v1/buildrequests", methods=["GET"])
    async def buildrequests(self, request):
        rows = await self.master.db.buildrequests.get_all(**self._list_filters(request))
        now = self.master.reactor.seconds()
        for row in rows:
            row["age"] = None if row["complete"] else now - row["submitted_at"]
        return self._json(request, {"buildrequests": [with_result_name(r) for r in rows]})

    @app.route("/api/v1/buildrequests/<int:brid>", methods=["GET"])
    async def buildrequest(self, request, brid):
        row = await self.master.db.buildrequests.get(brid)
        if row is None:
            raise APIError(404, f"no build request {brid}")
        return self._json(request, with_result_name(row))

    @app.route("/api/v1/builds", methods=["GET"])
    async def builds(self, request):
        rows = await self.master.db.builds.get_all(**self._list_filters(request))
        return self._json(request, {"builds": [with_result_name(r) for r in rows]})

    @app.route("/api/v1/builds/<int:buildid>", methods=["GET"])
    async def build(self, request, buildid):
        build = await self.master.db.builds.get(buildid)
        if build is None:
            raise APIError(404, f"no build {buildid}")
        steps = []
        for step in await self.master.db.steps.get_all(buildid):
            logs = await self.master.db.logs.get_all(step["stepid"])
            for entry in logs:
                entry["url"] = f"/api/v1/builds/{buildid}/steps/{step['number']}/logs/{entry['slug']}"
            steps.append(with_result_name({**step, "logs": logs}))
        return self._json(request, with_result_name({**build, "steps": steps}))

    @app.route("/api/v1/builds/<int:buildid>/stop", methods=["POST"])
    async def stop_build(self, request, buildid):
        body = self._json_body(request)
        unknown = sorted(set(body) - STOP_FIELDS)
        if unknown:
            raise APIError(400, f"unknown field {unknown[0]!r} (allowed: reason)")
        reason = body.get("reason", "stopped through the API")
        if not isinstance(reason, str):
            raise APIError(400, "reason must be a string")
        build = self.master.botmaster.running_build(buildid)
        if build is None:
            if await self.master.db.builds.get(buildid) is None:
                raise APIError(404, f"no build {buildid}")
            raise APIError(409, f"build {buildid} is not running")
        build.stop(reason)
        return self._json(request, {"buildid": buildid, "stopping": True, "reason": reason})

    @app.route("/api/v1/builds/<int:buildid>/steps/<int:number>/logs/<string:logname>",
               methods=["GET"])
    async def log_text(self, request, buildid, number, logname):
        db = self.master.db
        step = await db.steps.get(buildid, number)
        if step is None:
            raise APIError(404, f"build {buildid} has no step {number}")
        logs = await db.logs.get_all(step["stepid"])
        entry = next((lg for lg in logs if logname in (lg["slug"], lg["name"])), None)
        if entry is None:
            raise APIError(404, f"step {number} of build {buildid} has no log {logname!r}")
        text = await db.logs.get_text(entry["logid"])
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return text.encode("utf-8")

    @app.route("/slaveapi/", branch=True)
    def slaveapi(self, request):
        """The SlaveAPI, mounted in the main web site too (it authenticates on its own)."""
        return self.master.slaveapi.resource()

    @app.route("/api/v1/slaves/<string:name>/shutdown", methods=["POST"])
    def shutdown_slave(self, request, name):
        if name not in self.master.config.slaves:
            raise APIError(404, f"no slave named {name!r}")
        if name not in self.master.botmaster.slaves:
            raise APIError(409, f"slave {name!r} is not attached")
        slave = self.master.botmaster.request_slave_shutdown(name)
        return self._json(request, {"name": name, "shutting_down": True,
                                    "running_builds": self.master.botmaster.builds_running_on(slave)})

    @app.route("/api/v1/slaves", methods=["GET"])
    async def slaves(self, request):
        known = {row["name"]: row for row in await self.master.db.slaves.get_all()}
        attached = self.master.botmaster.slaves
        result = []
        for name in sorted(set(self.master.config.slaves) | set(known)):
            row = known.get(name, {})
            live = attached.get(name)
            result.append({
                "name": name,
                "configured": name in self.master.config.slaves,
                "connected": live is not None,
                "shutting_down": bool(live and live.shutting_down),
                "version": live.version if live else row.get("version"),
                "info": live.info if live else row.get("info") or {},
                "builders": sorted(live.remote_builders) if live else [],
                "last_connected_at": row.get("last_connected_at"),
                "last_disconnected_at": row.get("last_disconnected_at"),
            })
        return self._json(request, {"slaves": result})
