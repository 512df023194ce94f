"""Routes that declare the scope they need next to their path.

``RouteTable(app, surface)`` wraps a klein app: ``@routes.route(path, "POST",
scope="builds:force:{name}")`` registers the handler with klein *and* records
``(method, path, scope, write)`` in the table, and the handler only runs once the master's
``auth`` service (master/auth/service.py) authorized the caller.  The scope is a template
filled with the route's arguments and, when a ``resolve`` coroutine is given, with what it
looks up (a build id -> its builder).  ``scope=PUBLIC`` is an explicit declaration that
anyone may call the route (the login form, static files); a route without a declaration
cannot exist, and a test walks every klein rule to check that.

Every write (any method but GET/HEAD) of a non-public route is audited: who, from where,
what (method, path, scope) and the outcome: ``done``, ``refused`` (401/403/429) or
``failed`` (the status the handler answered); ``audit=`` declares a route that is audited
otherwise:

- ``AUDIT_EACH`` (every write's default): every call, one row as it ends;
- ``AUDIT_REFUSED``: a read or a check sent as a POST (the Isolate API's ``retrieve`` and
  ``preupload``): only a refused call leaves a row;
- ``AUDIT_BATCHED``: a refused or failed call leaves its row at once; the calls that succeed
  are summed, per caller, address and scope, into one row per batch (``AuditBatch``: at most
  ``AUDIT_BATCH_CALLS`` calls or ``AUDIT_BATCH_WINDOW_S`` seconds), for writes that come by
  the thousand (the store's items: content-addressed, verified, the same whoever sends them).
  The app's instance holds its ``audit_batch``.

A route that belongs to a Taskcluster-style service also carries ``api=APIEntry(...)``: its
function name, title, description, stability, query parameters and the names of its input and
output schemas (in its service's ``SchemaRegistry``).  Its path must lie under
``/api/<service>/v1/``, or under the table's ``api_base`` for an app that the web site mounts
at ``/api/<service>/v1/`` (the Swarming API's ``/_ah/api/swarming/v1`` is served at
``/api/tasks/v1`` too: www/site.py); that one declaration serves the route *and* makes its
entry of the service's reference (master/http/references.py), so no second list of routes
exists.
"""

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from klein import Klein
from twisted.internet import defer

from buildfarm.master.auth.identity import AuthError, Identity
from buildfarm.master.auth.service import DONE, FAILED, REFUSED, peer_of

PUBLIC = "<public>"
READ_METHODS = frozenset({"GET", "HEAD"})
ANY_METHOD = "*"  # a branch that hands the request to another app, which checks it itself
AUDIT_NONE = "none"  # reads (GET/HEAD) and public routes
AUDIT_EACH = "each"
AUDIT_REFUSED = "refused"
AUDIT_BATCHED = "batched"
AUDIT_BATCH_CALLS = 1000  # successful calls summed into one audit row at most
AUDIT_BATCH_WINDOW_S = 10.0  # a batch's row is written at most this long after its first call


STABILITIES = ("deprecated", "experimental", "stable")


@dataclass(frozen=True)
class APIEntry:
    """What a route adds to its service's Taskcluster-format API reference."""

    service: str  # the serviceName: the route lives under /api/<service>/v1/
    name: str  # the client's function name (camelCase, stable)
    title: str
    description: str
    category: str
    stability: str = "experimental"
    query: tuple[str, ...] = ()  # optional query-string parameters
    input: str | None = None  # a schema name in the service's SchemaRegistry
    output: str | None = None  # a schema name (none for an answer that is not JSON)

    def __post_init__(self):
        if self.stability not in STABILITIES:
            raise ValueError(f"{self.name}: stability must be one of {STABILITIES}")


def api_prefix(service: str, version: str = "v1") -> str:
    """Where a service's routes live: Taskcluster's ``/api/<service>/<version>``."""
    return f"/api/{service}/{version}"


@dataclass(frozen=True)
class Route:
    """One declared route: who may call it."""

    surface: str
    method: str
    path: str
    scope: str  # a template like "builds:stop:{builder}", or PUBLIC
    write: bool
    endpoint: str
    audit: str = AUDIT_EACH  # AUDIT_NONE, AUDIT_EACH, AUDIT_REFUSED or AUDIT_BATCHED
    # A public route that checks its caller's credentials itself (the Auth API's test client):
    # the table does not identify the caller first (a failure would count as a failed login).
    identify: bool = True
    api: APIEntry | None = None  # its entry in its service's API reference
    api_path: str | None = None  # where Taskcluster's layout serves it: /api/<service>/v1/...

    @property
    def public(self) -> bool:
        return self.scope == PUBLIC


class RouteTable:
    """The routes of one klein app and the scopes they need."""

    def __init__(self, app: Klein, surface: str, api_base: str | None = None):
        """``api_base``: the path in this app that the web site serves at ``/api/<service>/v1``
        (None: the app's API routes are declared under ``/api/<service>/v1`` themselves)."""
        self.app = app
        self.surface = surface
        self.api_base = api_base
        self.routes: list[Route] = []

    def route(self, path: str, method: str, *, scope: str,
              resolve: Callable[..., Awaitable[dict]] | None = None, audit: str | None = None,
              identify: bool = True, api: APIEntry | None = None, **kwargs):
        """Declare ``method path`` needing ``scope`` (a template over the route's arguments
        and ``resolve``'s answer), audited as ``audit`` says (a write's default:
        ``AUDIT_EACH``), described in its service's reference by ``api``; extra ``kwargs`` go
        to klein's ``app.route``.  ``identify=False``: a public route that checks credentials
        itself."""
        if not identify and scope != PUBLIC:
            raise ValueError(f"{path}: identify=False is for PUBLIC routes")
        api_path = None
        if api is not None:
            base = api_prefix(api.service) if self.api_base is None else self.api_base
            if not path.startswith(base + "/"):
                raise ValueError(f"{path}: the API entry {api.name} must lie under {base}/")
            api_path = api_prefix(api.service) + path.removeprefix(base)
        if method == ANY_METHOD and scope != PUBLIC:
            raise ValueError(f"{path}: a route taking any method must be PUBLIC (it delegates)")
        write = method not in READ_METHODS and method != ANY_METHOD
        if audit is None:
            audit = AUDIT_EACH if write and scope != PUBLIC else AUDIT_NONE
        elif audit not in (AUDIT_EACH, AUDIT_REFUSED, AUDIT_BATCHED) or not write or scope == PUBLIC:
            raise ValueError(f"{path}: audit={audit!r} is for the writes of non-public routes "
                             f"(AUDIT_EACH, AUDIT_REFUSED or AUDIT_BATCHED)")
        endpoint = f"{method} {path}"
        entry = Route(self.surface, method, path, scope, write, endpoint, audit, identify, api, api_path)

        def decorator(handler):
            @functools.wraps(handler)
            async def guarded(instance, request, **args):
                return await self._run(entry, resolve, handler, instance, request, args)

            self.routes.append(entry)
            if method != ANY_METHOD:
                kwargs["methods"] = [method]
            self.app.route(path, endpoint=endpoint, **kwargs)(guarded)
            return handler

        return decorator

    def rule_for(self, endpoint: str) -> Route | None:
        return next((r for r in self.routes if r.endpoint == endpoint), None)

    async def _run(self, entry: Route, resolve, handler, instance, request, args: dict):
        auth = instance.master.auth
        if entry.public:
            try:
                if entry.identify:
                    await auth.identify(request)  # so that pages show who is logged in
            except AuthError:
                pass
            return await _call(handler, instance, request, args)
        who = "anonymous"
        scope: str | None = None
        try:
            identity: Identity = await auth.identify(request)
            who = identity.audit_name
            values = dict(args)
            if resolve is not None:
                values.update(await resolve(instance, request, **args))
            scope = entry.scope.format(**values)
            await auth.authorize(request, scope, entry.write, owner=values.get("owner"))
        except AuthError as e:
            if entry.audit != AUDIT_NONE:  # a refusal is always audited
                await self._audit(auth, request, e.user or who, scope or entry.scope, REFUSED, e.status,
                                  e.message)
            raise
        except Exception as e:
            if entry.audit in (AUDIT_EACH, AUDIT_BATCHED):
                await self._audit(auth, request, who, scope or entry.scope, FAILED, _status_of(e), str(e))
            raise
        if entry.audit in (AUDIT_NONE, AUDIT_REFUSED):
            return await _call(handler, instance, request, args)
        try:
            answer = await _call(handler, instance, request, args)
        except Exception as e:
            await self._audit(auth, request, who, scope, FAILED, _status_of(e), str(e))
            raise
        status = request.code
        if status < 400 and entry.audit == AUDIT_BATCHED:
            await instance.audit_batch.add(auth, self.surface, who, peer_of(request), scope, entry.endpoint)
        else:
            await self._audit(auth, request, who, scope, DONE if status < 400 else FAILED, status)
        return answer

    async def _audit(self, auth, request, user: str, scope: str, outcome: str, status: int,
                     detail: str = "") -> None:
        path = request.path.decode("utf-8", "replace") if isinstance(request.path, bytes) else request.path
        await auth.audit(self.surface, user, peer_of(request), request.method.decode("ascii", "replace"),
                         path, scope, outcome, status, detail)


class AuditBatch:
    """The successful calls of ``AUDIT_BATCHED`` routes, summed per (surface, user, address,
    scope) until one row says them all: ``<n> calls from <first> to <last>: <endpoint> <n>,
    ...``, outcome ``done``, status 200, the method ``BATCH`` and the path of the surface's
    common prefix.  A batch is written when it holds ``max_calls`` calls, ``window_s`` seconds
    after its first call (``clock``'s timer), and by ``flush`` (the owner's stop)."""

    def __init__(self, clock, prefix: str, window_s: float = AUDIT_BATCH_WINDOW_S,
                 max_calls: int = AUDIT_BATCH_CALLS):
        self.clock = clock
        self.prefix = prefix
        self.window_s = window_s
        self.max_calls = max_calls
        self.pending: dict[tuple[str, str, str, str], _Batch] = {}

    def add(self, auth, surface: str, user: str, peer: str, scope: str, endpoint: str) -> defer.Deferred:
        """Count one call; fires once its batch's row is written if this call filled it (at
        once otherwise)."""
        key = (surface, user, peer, scope)
        batch = self.pending.get(key)
        if batch is None:
            now = self.clock.seconds()
            batch = self.pending[key] = _Batch(auth, now, now)
            batch.timer = self.clock.callLater(self.window_s, self._write, key)
        batch.last = self.clock.seconds()
        batch.calls[endpoint] = batch.calls.get(endpoint, 0) + 1
        if sum(batch.calls.values()) >= self.max_calls:
            return self._write(key)
        return defer.succeed(None)

    def _write(self, key) -> defer.Deferred:
        batch = self.pending.pop(key, None)
        if batch is None:
            return defer.succeed(None)
        if batch.timer is not None and batch.timer.active():
            batch.timer.cancel()
        surface, user, peer, scope = key
        total = sum(batch.calls.values())
        detail = (f"{total} calls from {_utc(batch.first)} to {_utc(batch.last)}: "
                  + ", ".join(f"{endpoint} {n}" for endpoint, n in sorted(batch.calls.items())))
        return defer.ensureDeferred(batch.auth.audit(surface, user, peer, "BATCH", self.prefix, scope, DONE,
                                                     200, detail))

    async def flush(self) -> None:
        """Write every batch now (``auth.audit`` never raises)."""
        for key in list(self.pending):
            await self._write(key)


@dataclass
class _Batch:
    auth: object
    first: float
    last: float
    calls: dict = field(default_factory=dict)
    timer: object = None


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


async def _call(handler, instance, request, args: dict):
    answer = handler(instance, request, **args)
    if inspect.isawaitable(answer):
        answer = await defer.ensureDeferred(answer) if inspect.iscoroutine(answer) else await answer
    return answer


def _status_of(error: Exception) -> int:
    """The HTTP status a surface answers for ``error`` (its ``status``, or 500)."""
    status = getattr(error, "status", None)
    if isinstance(status, int):
        return status
    code = getattr(error, "code", None)  # werkzeug's HTTPException
    return code if isinstance(code, int) else 500


def request_identity(request) -> Identity:
    """The identity the route table established for this request."""
    return request._buildfarm_identity
