"""``Identity``: who a request comes from (an account or anonymous, and how it proved it);
``AuthError``: why a request may not do what it asks, with the HTTP status to answer."""

from dataclasses import dataclass

from buildfarm.master.auth.users import Account, has_scope

# How an identity was established.
BASIC = "basic"
BEARER = "bearer"
COOKIE = "cookie"
NONE = "none"
REMOTE_USER = "remote-user"  # a header set by a trusted fronting proxy (RemoteUserAuth)
HAWK = "hawk"  # an ``Authorization: Hawk`` header (a client's or temporary credentials)
BEWIT = "bewit"  # a Hawk-signed URL (``?bewit=``), GET only


@dataclass(frozen=True)
class Identity:
    """The caller of one request: ``account`` is None for an anonymous caller, whose scopes
    are the configured anonymous scopes; ``csrf_token`` is set for a cookie session."""

    account: Account | None
    method: str = NONE
    anonymous_scopes: tuple[str, ...] = ()
    csrf_token: str = ""
    session_id: str | None = None

    @property
    def name(self) -> str | None:
        return self.account.name if self.account is not None else None

    @property
    def audit_name(self) -> str:
        """The name written in the audit: the user, or ``anonymous``."""
        return self.name or "anonymous"

    @property
    def anonymous(self) -> bool:
        return self.account is None

    def may(self, scope: str, owner: str | None = None) -> bool:
        """Whether this caller holds ``scope``: its own scopes, or what anyone may do (being
        logged in never gives less than being anonymous); on a build whose ``owner`` it is,
        also its owner scopes (``RolesFromOwner``)."""
        if self.account is not None and self.account.has_scope(scope):
            return True
        if self.account is not None and owner is not None and owner == self.account.name \
                and has_scope(self.account.owner_scopes, scope):
            return True
        return has_scope(self.anonymous_scopes, scope)

    @property
    def browser_borne(self) -> bool:
        """Whether a browser may have attached these credentials on its own (a cookie, or
        cached HTTP basic credentials), so that another site could have made the request."""
        return self.method in (COOKIE, BASIC, REMOTE_USER)


class AuthError(Exception):
    """A refused request: 401 (no or wrong credentials), 403 (a missing scope, a foreign
    origin, a bad CSRF token) or 429 (too many failed logins; ``retry_after`` seconds).
    Each HTTP surface answers it in its own error format."""

    def __init__(self, status: int, message: str, scope: str | None = None,
                 retry_after: float | None = None, user: str | None = None, reason: str | None = None):
        super().__init__(message)
        self.reason = reason  # which check failed (a Hawk failure: master/auth/hawk.py's names)
        self.status = status
        self.message = message
        self.scope = scope
        self.retry_after = retry_after
        self.user = user  # the authenticated caller who was refused (403), if any

    def retry_after_header(self) -> bytes | None:
        """The ``Retry-After`` value (whole seconds, at least 1) of a 429."""
        if self.retry_after is None:
            return None
        return str(max(1, int(-(-self.retry_after // 1)))).encode()


# The read scopes, one per area; anonymous callers hold these by default when
# ``c['www']['allow_anonymous_read']`` holds (it does unless set to False).
READ_SCOPES = ("builds:read", "changes:read", "slaves:read", "metrics:read")
# Read scopes never granted to anonymous callers by default.
PRIVATE_READ_SCOPES = ("slaveapi:read", "audit:read")


def is_plain_read_scope(scope: str) -> bool:
    """Whether a granted scope only lets one read (``area:read``), not act nor see secrets."""
    parts = scope.split(":")
    return len(parts) == 2 and parts[1] == "read" and "*" not in scope
