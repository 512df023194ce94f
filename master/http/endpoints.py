"""What Google's Cloud Endpoints answered, for the APIs that serve its clients unchanged (the
Isolate and Swarming v1 APIs): the JSON error shape, and the sign-in paths those clients call
before anything else when run without ``--auth-disabled``.

The master does not sign them in with Google OAuth.  ``GET /auth/api/v1/server/oauth_config``
and ``.../accounts/self`` answer a 404 whose body is JSON saying what to use instead: the
clients do not retry that (they retry a non-JSON 404 on an /api/ path for minutes) and stop
at once with the message.  One route serves both services (the Isolate API's app holds it).
"""

import json

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
               problems: list[str] | None = None) -> bytes:
    """An Endpoints error body: ``{"error": {code, message, errors: [{message, reason, domain}]}}``,
    one entry in ``errors`` per problem (the message alone when there is no list)."""
    details = [{"message": p, "reason": reason, "domain": "global"} for p in (problems or [message])]
    return json.dumps({"error": {"code": status, "message": message, "errors": details}}).encode()
