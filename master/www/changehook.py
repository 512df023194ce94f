"""``/change_hook/<dialect>``: webhooks from GitHub, GitLab, Bitbucket and plain form POSTs.

The dialects configured in ``c['www']['change_hook_dialects']`` are served on the web port
(master/changes/hooks.py reads their requests).  These routes authenticate by the dialect's
secret (GitHub's HMAC signature, GitLab's token), not by a user session, so the route table
declares them public and this module audits every request itself, as the table audits other
writes: ``change_hook:<dialect>``, ``done`` / ``refused`` (403) / ``failed`` (400, 404).
The changes a request reports go where every change goes: ``SchedulerManager.add_change``,
which stores them and offers them to the schedulers.
"""

import json

from twisted.internet import threads
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.master.auth.service import DONE, FAILED, REFUSED, peer_of
from buildfarm.master.changes.hooks import (
    POLLER_DIALECT,
    HookError,
    HookRefused,
    HookRequest,
    changes_from,
    pollers_to_poll,
)
from buildfarm.master.changes.interfaces import IPollingChangeSource
from buildfarm.master.changes.manager import source_name
from buildfarm.master.http.body import BadBody, read_body
from buildfarm.master.http.routes import PUBLIC, RouteTable
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.www.interfaces import IWebMaster

log = Logger()

MAX_HOOK_BODY_BYTES = 5 * 1024 * 1024  # GitHub caps its payloads at 25 MB; pushes are far smaller
HOOK_USER = "change-hook"  # the audit log's "who" for a request proved by a dialect's secret
SURFACE = "change_hook"


class ChangeHookAPI:
    """The klein app of ``/change_hook/<dialect>``."""

    app = bounded_klein()
    routes = RouteTable(app, SURFACE)

    def __init__(self, master: IWebMaster):
        self.master = master

    def resource(self):
        """The twisted.web resource serving the hooks."""
        return self.app.resource()

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return _json_error(request, 404, f"no such resource: {request.path.decode('utf-8', 'replace')}")

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return _json_error(request, 405, "change hooks take POST only")

    @app.handle_errors(Exception)
    def _internal_error(self, request, failure):
        log.failure("change hook {path} failed", failure, path=request.path)
        return _json_error(request, 500, "internal error; see the master's twistd.log")

    # Public in the route table: the dialect's secret is the credential, checked in `_changes`.
    @routes.route("/change_hook/<dialect>", "POST", scope=PUBLIC)
    async def change_hook(self, request, dialect):
        scope = f"change_hook:{dialect}"
        try:
            if dialect == POLLER_DIALECT:
                return await self._poll(request, scope)
            changes = await self._changes(request, dialect)
        except HookError as e:
            outcome = REFUSED if isinstance(e, HookRefused) else FAILED
            status = e.status
            log.warn("change hook {dialect}: {outcome} {status} from {peer}: {why}", dialect=dialect,
                     outcome=outcome, status=status, peer=peer_of(request), why=e.message)
            await self._audit(request, scope, outcome, status, e.message)
            return _json_error(request, status, e.message)
        now = self.master.reactor.seconds()
        changeids = [await self.master.scheduler.add_change(**_with_times(change, now)) for change in changes]
        await self._audit(request, scope, DONE, 200, f"{len(changeids)} change(s)")
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"changeids": changeids}).encode()

    async def _poll(self, request, scope: str) -> bytes:
        """Buildbot's ``poller`` dialect: the pollers asked for start a poll now; answered at
        once (202, as Buildbot does) with their names."""
        options = self._options(POLLER_DIALECT)
        pollers = [s for s in self.master.changes.sources if IPollingChangeSource.providedBy(s)]
        args = {k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}
        names = pollers_to_poll(options, HookRequest({}, b"", args), [source_name(s) for s in pollers])
        for source in pollers:
            if source_name(source) in names:
                source.poll_now().addErrback(_poll_refused, source_name(source))
        await self._audit(request, scope, DONE, 202, f"polling {len(names)} poller(s)")
        request.setResponseCode(202)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps({"polling": names}).encode()

    def _options(self, dialect: str) -> dict:
        dialects = self.master.config.change_hook_dialects
        if dialect not in dialects:
            raise _NoSuchDialect(f"no change hook dialect {dialect!r} is configured "
                                 f"(c['www']['change_hook_dialects'])")
        return dialects[dialect]

    async def _changes(self, request, dialect: str) -> list[dict]:
        options = self._options(dialect)
        try:
            body = read_body(request, MAX_HOOK_BODY_BYTES)
        except BadBody as e:
            error = HookError(e.message)
            error.status = e.status
            raise error from None
        headers = {name.decode("latin-1").lower(): values[-1].decode("utf-8", "replace")
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        args = {k.decode("utf-8", "replace"): [v.decode("utf-8", "replace") for v in vs]
                for k, vs in (request.args or {}).items()}
        # Checking the signature and parsing a payload of megabytes takes tens of milliseconds:
        # in a thread, not on the reactor.
        return await threads.deferToThread(changes_from, dialect, options, HookRequest(headers, body, args))

    async def _audit(self, request, scope: str, outcome: str, status: int, detail: str) -> None:
        path = request.path.decode("utf-8", "replace")
        await self.master.auth.audit(SURFACE, HOOK_USER, peer_of(request), "POST", path, scope, outcome,
                                     status, detail)


def _poll_refused(failure, name: str) -> None:
    """A poller the hook asked to poll stopped in between (a reconfig)."""
    log.warn("change hook poller: {name}: {why}", name=name, why=failure.getErrorMessage())


class _NoSuchDialect(HookError):
    status = 404


def _with_times(change: dict, now: float) -> dict:
    """A change as ``add_change`` takes it: no empty optional fields, its times set."""
    change = {k: v for k, v in change.items() if v is not None}
    change.setdefault("when_timestamp", now)
    change["created_at"] = now
    return change


def _json_error(request, status: int, message: str) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"error": message}).encode()
