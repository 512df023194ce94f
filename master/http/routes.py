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
``failed`` (the status the handler answered).
"""

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from klein import Klein
from twisted.internet import defer

from buildfarm.master.auth.identity import AuthError, Identity
from buildfarm.master.auth.service import DONE, FAILED, REFUSED, peer_of

PUBLIC = "<public>"
READ_METHODS = frozenset({"GET", "HEAD"})
ANY_METHOD = "*"  # a branch that hands the request to another app, which checks it itself


@dataclass(frozen=True)
class Route:
    """One declared route: who may call it."""

    surface: str
    method: str
    path: str
    scope: str  # a template like "builds:stop:{builder}", or PUBLIC
    write: bool
    endpoint: str

    @property
    def public(self) -> bool:
        return self.scope == PUBLIC


class RouteTable:
    """The routes of one klein app and the scopes they need."""

    def __init__(self, app: Klein, surface: str):
        self.app = app
        self.surface = surface
        self.routes: list[Route] = []

    def route(self, path: str, method: str, *, scope: str,
              resolve: Callable[..., Awaitable[dict]] | None = None, **kwargs):
        """Declare ``method path`` needing ``scope`` (a template over the route's arguments
        and ``resolve``'s answer); extra ``kwargs`` go to klein's ``app.route``."""
        if method == ANY_METHOD and scope != PUBLIC:
            raise ValueError(f"{path}: a route taking any method must be PUBLIC (it delegates)")
        write = method not in READ_METHODS and method != ANY_METHOD
        endpoint = f"{method} {path}"
        entry = Route(self.surface, method, path, scope, write, endpoint)

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
            if entry.write:
                await self._audit(auth, request, e.user or who, scope or entry.scope, REFUSED, e.status,
                                  e.message)
            raise
        except Exception as e:
            if entry.write:
                await self._audit(auth, request, who, scope or entry.scope, FAILED, _status_of(e), str(e))
            raise
        if not entry.write:
            return await _call(handler, instance, request, args)
        try:
            answer = await _call(handler, instance, request, args)
        except Exception as e:
            await self._audit(auth, request, who, scope, FAILED, _status_of(e), str(e))
            raise
        status = request.code
        await self._audit(auth, request, who, scope, DONE if status < 400 else FAILED, status)
        return answer

    async def _audit(self, auth, request, user: str, scope: str, outcome: str, status: int,
                     detail: str = "") -> None:
        path = request.path.decode("utf-8", "replace") if isinstance(request.path, bytes) else request.path
        await auth.audit(self.surface, user, peer_of(request), request.method.decode("ascii", "replace"),
                         path, scope, outcome, status, detail)


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
