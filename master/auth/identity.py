"""``Identity``: who a request comes from (an account or anonymous, and how it proved it);
``AuthError``: why a request may not do what it asks, with the HTTP status to answer."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

from buildfarm.master.auth.scopes import Expression, ScopeSet, unsatisfied
from buildfarm.master.auth.users import Account

# Every caller implicitly holds this (Taskcluster's rule): a role named "anonymous" grants to all.
ANONYMOUS_ROLE_SCOPE = "assume:anonymous"

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
    # Expands scopes through the roles (``RoleStore.expand_now``); None: no roles.
    expand: Callable[[Iterable[str]], list[str]] | None = field(default=None, compare=False, repr=False)

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

    def _expanded(self, scopes: Iterable[str]) -> list[str]:
        return self.expand(scopes) if self.expand is not None else list(scopes)

    @cached_property
    def scopes(self) -> list[str]:
        """What this caller holds: its own scopes and the anonymous ones (being logged in never
        gives less than being anonymous) and ``assume:anonymous``, expanded through the roles."""
        own = list(self.account.scopes) if self.account is not None else []
        return self._expanded(own + list(self.anonymous_scopes) + [ANONYMOUS_ROLE_SCOPE])

    @cached_property
    def _held(self) -> ScopeSet:
        return ScopeSet(self.scopes)

    @cached_property
    def _held_as_owner(self) -> ScopeSet:
        """On a build this caller owns: its scopes and its owner scopes (``RolesFromOwner``)."""
        owner_scopes = self.account.owner_scopes if self.account is not None else []
        return ScopeSet(self.scopes + self._expanded(owner_scopes)) if owner_scopes else self._held

    def _set_for(self, owner: str | None) -> ScopeSet:
        if self.account is not None and owner is not None and owner == self.account.name:
            return self._held_as_owner
        return self._held

    def may(self, scope: str, owner: str | None = None) -> bool:
        """Whether this caller holds ``scope`` (on a build whose ``owner`` it is, its owner
        scopes count too)."""
        return self._set_for(owner).has(scope)

    def missing(self, required: Expression, owner: str | None = None) -> Expression | None:
        """The part of the scope expression ``required`` this caller does not hold (None: it
        holds it all); master/auth/scopes.py ``unsatisfied``."""
        return unsatisfied(self._set_for(owner), required)

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
                 retry_after: float | None = None, user: str | None = None, reason: str | None = None,
                 required: Expression | None = None, unsatisfied: Expression | None = None):
        super().__init__(message)
        self.reason = reason  # which check failed (a Hawk failure: master/auth/hawk.py's names)
        self.status = status
        self.message = message
        self.scope = scope
        self.retry_after = retry_after
        self.user = user  # the authenticated caller who was refused (403), if any
        # A missing scope: the scope expression the call needs, and the part the caller lacks.
        self.required = required if required is not None else scope
        self.unsatisfied = unsatisfied

    def scope_fields(self) -> dict:
        """What a JSON error body adds for a missing scope: ``scope`` (the one scope, when the
        requirement is one), ``required`` (the expression) and ``unsatisfied`` (what is
        lacking); empty for other refusals."""
        fields: dict = {}
        if self.scope is not None:
            fields["scope"] = self.scope
        if self.unsatisfied is not None:
            fields["required"] = self.required
            fields["unsatisfied"] = self.unsatisfied
        return fields

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
