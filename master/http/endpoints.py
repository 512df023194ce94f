"""What Google's Cloud Endpoints answered, for the APIs that serve its clients unchanged (the
Isolate and Swarming v1 APIs): the JSON error shape, and the sign-in paths those clients call
before anything else when run without ``--auth-disabled``.

The master does not sign them in with Google OAuth.  ``GET /auth/api/v1/server/oauth_config``
and ``.../accounts/self`` answer a 404 whose body is JSON saying what to use instead: the
clients do not retry that (they retry a non-JSON 404 on an /api/ path for minutes) and stop
at once with the message.  One route serves both services (the Isolate API's app holds it).
"""

import json

from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.master.auth.identity import AuthError
from buildfarm.master.http.challenge import add_refusal_headers

log = Logger()
AUTH_REALM = "buildfarm"

SIGN_IN_PREFIX = "/auth/api/v1"  # where swarming.py and isolateserver.py sign in (not served)
NO_OAUTH = ("this server does not sign Swarming's and Isolate's clients in with OAuth: run swarming.py or "
            "isolateserver.py with --auth-disabled (what c['www']['anonymous_scopes'] grants to anonymous "
            "callers), or buildfarm's own clients with --token or --user and --password")


class EndpointsError(Exception):
    """An error answered in the Endpoints shape with ``status``."""

    def __init__(self, status: int, message: str, reason: str = "badRequest",
                 problems: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.problems = problems


def error_body(status: int, message: str, reason: str = "badRequest",
               problems: list[str] | None = None, extra: dict | None = None) -> bytes:
    """An Endpoints error body: ``{"error": {code, message, errors: [{message, reason, domain}]}}``,
    one entry in ``errors`` per problem (the message alone when there is no list); ``extra``
    joins the ``error`` object (a missing scope's ``required`` and ``unsatisfied``).  ``message``
    is also beside ``error``, where Taskcluster's client reads its exception's text
    (``buildfarm.common.client``); Swarming's and Isolate's clients read ``error``."""
    details = [{"message": p, "reason": reason, "domain": "global"} for p in (problems or [message])]
    body = {"error": {"code": status, "message": message, "errors": details, **(extra or {})},
            "message": message}
    return json.dumps(body).encode()


def endpoints_error(request, status: int, message: str, reason: str = "badRequest",
                    problems: list[str] | None = None, extra: dict | None = None) -> bytes:
    """Answer ``request`` with ``status`` and the Endpoints error body."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return error_body(status, message, reason, problems, extra)


def add_endpoints_error_handlers(app, surface: str) -> None:
    """Give the Klein ``app`` of an Endpoints API the answers they all share: its
    ``EndpointsError``s, a refused caller (401/403 with the challenge headers), an unknown path
    (404) or method (405), and any other failure (500, logged with ``surface``).  Klein asks the
    handlers in the order they were added and the last one here takes every Exception: call it
    after the API's own handlers."""

    @app.handle_errors(EndpointsError)
    def endpoints_failure(_api, request, failure):
        e = failure.value
        return endpoints_error(request, e.status, e.message, e.reason, e.problems)

    @app.handle_errors(AuthError)
    def refused(_api, request, failure):
        e = failure.value
        add_refusal_headers(request, e, AUTH_REALM)
        return endpoints_error(request, e.status, e.message, "forbidden" if e.status == 403 else "required",
                               extra=e.scope_fields())

    @app.handle_errors(NotFound)
    def not_found(_api, request, failure):
        return endpoints_error(request, 404, f"no such resource: {request.path.decode('utf-8', 'replace')}",
                               "notFound")

    @app.handle_errors(MethodNotAllowed)
    def bad_method(_api, request, failure):
        method = request.method.decode("ascii", "replace")
        return endpoints_error(request, 405, f"{method} is not allowed here")

    @app.handle_errors(Exception)
    def internal_error(_api, request, failure):
        log.failure("{surface} request {path} failed", failure, surface=surface, path=request.path)
        return endpoints_error(request, 500, "internal error", "backendError")
