"""What the services served in Taskcluster's own shapes (the Auth service, master/authapi/, and
the Queue, master/queue/) answer alike: JSON, and every error as Taskcluster's body
``{code, message, requestInfo}`` (plus the fields an error adds: a refusal's ``required`` and
``unsatisfied``, its ``reason``), whose ``message`` the official client shows.

``add_taskcluster_error_handlers`` registers once the answers they share: a refused caller
(401/403 with the challenge headers), a bad body, an unknown path or method, any other failure.
"""

import json

from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.master.auth.identity import AuthError
from buildfarm.master.auth.interfaces import iso
from buildfarm.master.http.body import BadBody
from buildfarm.master.http.challenge import add_refusal_headers

log = Logger()

REALM = "buildfarm"
# Taskcluster's error codes, by HTTP status.
ERROR_CODES = {400: "InputError", 401: "AuthenticationFailed", 403: "InsufficientScopes",
               404: "ResourceNotFound", 405: "MethodNotAllowed", 409: "RequestConflict",
               413: "InputTooLarge", 429: "TooManyRequests", 500: "InternalServerError"}


def json_answer(request, value, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(value).encode()


def error_answer(request, status: int, message: str, now: float, extra: dict | None = None) -> bytes:
    """Taskcluster's error body for ``status`` at ``now`` (the service's clock)."""
    body = {"code": ERROR_CODES.get(status, "Error"), "message": message,
            "requestInfo": {"method": request.method.decode("ascii", "replace"),
                            "path": request.path.decode("utf-8", "replace"), "time": iso(now)}}
    body.update(extra or {})
    return json_answer(request, body, status)


def add_taskcluster_error_handlers(app, surface: str, clock_of) -> None:
    """Give the Klein ``app`` of a Taskcluster-shaped service the answers they share;
    ``clock_of(api)`` is the service's clock.  Klein asks the handlers in the order they were
    added and the last one here takes every Exception: call it after the service's own."""

    def error(api, request, status: int, message: str, extra: dict | None = None) -> bytes:
        return error_answer(request, status, message, clock_of(api).seconds(), extra)

    @app.handle_errors(AuthError)
    def refused(api, request, failure):
        e = failure.value
        add_refusal_headers(request, e, REALM)
        extra = e.scope_fields()
        if e.reason is not None:
            extra["reason"] = e.reason
        return error(api, request, e.status, e.message, extra)

    @app.handle_errors(BadBody)
    def bad_body(api, request, failure):
        return error(api, request, failure.value.status, failure.value.message)

    @app.handle_errors(NotFound)
    def not_found(api, request, failure):
        return error(api, request, 404, f"no such endpoint: {request.path.decode('utf-8', 'replace')}")

    @app.handle_errors(MethodNotAllowed)
    def bad_method(api, request, failure):
        return error(api, request, 405, f"{request.method.decode('ascii', 'replace')} is not allowed here")

    @app.handle_errors(Exception)
    def internal(api, request, failure):
        log.failure("{surface} request {path} failed", failure, surface=surface, path=request.path)
        return error(api, request, 500, "internal error; see the master's twistd.log")
