"""Build grants: short-lived credentials a build step hands its slave for the Isolate API.

A step that runs ``run_isolated`` or ``isolate_archive`` on a slave mints a grant for one
namespace and the scopes the command needs (``cas:read:<ns>``, and ``cas:write:<ns>`` for
outputs), valid until an expiry the step computes from its timeouts.  The slave sends it as
``Authorization: Bearer <grant>``; the Isolate API's route table (master/cas/api.py, through
`GrantingView`) accepts it for exactly those scopes and nothing else, and never looks it up
among the users' tokens.

A grant is ``bfgrant1.<base64url JSON>.<base64url HMAC-SHA256>``: the JSON names the
namespace (``n``), the scopes (``s``), the expiry (``x``, the master clock's seconds) and who
it was made for (``w``, shown in the audit).  The MAC key is derived from the store's secret
(``c['cas']['upload_secret']``) with a purpose label, so an upload ticket is never a grant nor
the other way round.  Tampering with any field, a grant of another master, or an expired one
is a 401.  The build registers every grant it mints with its secret redactor, so a grant is
shown as ``<cas-grant>`` in logs (master/secrets/redactor.py).
"""

import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from zope.interface import implementer

from buildfarm.master.auth.identity import BEARER, AuthError, Identity
from buildfarm.master.auth.users import Account
from buildfarm.master.cas.tickets import b64url, unb64url
from buildfarm.master.http.interfaces import IHTTPMaster

PREFIX = "bfgrant1."
PURPOSE = b"buildfarm cas build grant v1"
MAX_GRANT_CHARS = 2048
GRANT_ACCOUNT_SOURCE = "a build grant (master/cas/grants.py)"
REDACTION_NAME = "cas-grant"
SCOPE_KINDS = ("read", "write")


class BadGrant(ValueError):
    """A grant this master did not mint, one that was changed, or one that expired."""


@dataclass(frozen=True)
class Grant:
    """What a grant allows: ``scopes`` on ``namespace`` until ``expires`` (master seconds)."""

    namespace: str
    scopes: tuple[str, ...]
    expires: float
    holder: str  # who it was minted for, e.g. "build 12 step 3"


def grant_key(secret: bytes) -> bytes:
    """The MAC key of grants under the store's secret (a separate key per purpose)."""
    return hmac.new(secret, PURPOSE, hashlib.sha256).digest()


def scopes_for(namespace: str, kinds: tuple[str, ...]) -> tuple[str, ...]:
    """``("cas:read:<ns>", ...)`` for ``kinds`` among read and write."""
    unknown = [k for k in kinds if k not in SCOPE_KINDS]
    if unknown or not kinds:
        raise ValueError(f"a grant's kinds are read and/or write, not {kinds!r}")
    return tuple(f"cas:{kind}:{namespace}" for kind in kinds)


def mint(secret: bytes, namespace: str, kinds: tuple[str, ...], ttl_s: float, clock,
         holder: str) -> str:
    """A grant of ``kinds`` (read, write) on ``namespace`` valid ``ttl_s`` seconds from now."""
    if ttl_s <= 0:
        raise ValueError(f"a grant's lifetime must be positive, not {ttl_s!r}")
    payload = {"n": namespace, "s": list(scopes_for(namespace, kinds)),
               "x": int(clock.seconds() + ttl_s + 0.999), "w": holder}
    body = b64url(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())
    return f"{PREFIX}{body}.{b64url(_mac(secret, body))}"


def is_grant(token: str) -> bool:
    """Whether ``token`` claims to be a grant (then it is checked as one and only as one)."""
    return token.startswith(PREFIX)


def check(secret: bytes | Iterable[bytes], token: str, clock) -> Grant:
    """The `Grant` ``token`` stands for; `BadGrant` if it was not minted under ``secret`` (or
    one of several), was changed, or has expired."""
    if not isinstance(token, str) or len(token) > MAX_GRANT_CHARS or not is_grant(token):
        raise BadGrant("not a build grant of this master")
    body, _, mac = token[len(PREFIX):].partition(".")
    try:
        given = unb64url(mac)
    except (ValueError, binascii.Error):
        raise BadGrant("not a build grant of this master") from None
    candidates = [secret] if isinstance(secret, bytes) else list(secret)
    if not any(hmac.compare_digest(given, _mac(key, body)) for key in candidates):
        raise BadGrant("the build grant's signature does not match: it was changed, or minted by "
                       "another master (or before its c['cas']['upload_secret'] changed)")
    try:
        fields = json.loads(unb64url(body))
        grant = Grant(str(fields["n"]), tuple(str(s) for s in fields["s"]), float(fields["x"]),
                      str(fields["w"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise BadGrant("not a build grant of this master") from None
    if any(not _scope_on(scope, grant.namespace) for scope in grant.scopes):
        raise BadGrant("the build grant names scopes outside its namespace")
    if clock.seconds() >= grant.expires:
        raise BadGrant("the build grant has expired (the step that minted it ran too long)")
    return grant


def _scope_on(scope: str, namespace: str) -> bool:
    return scope in scopes_for(namespace, SCOPE_KINDS)


def _mac(secret: bytes, body: str) -> bytes:
    return hmac.new(grant_key(secret), body.encode("ascii"), hashlib.sha256).digest()



def _bearer(request) -> str | None:
    """The bearer token of ``request``'s Authorization header, if it has one."""
    header = request.getHeader(b"authorization")
    if not header:
        return None
    text = header.decode("latin-1") if isinstance(header, bytes) else header
    scheme, _, token = text.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class GrantingAuth:
    """The master's auth service as the Isolate API uses it: a request carrying a build grant
    is identified by the grant alone (an account holding exactly the grant's scopes); any other
    request goes to ``auth`` unchanged."""

    def __init__(self, auth, secrets: Callable[[], Iterable[bytes]], clock):
        self.auth = auth
        self._secrets = secrets  # read at each check: the secrets as they are now
        self.clock = clock

    def _grant_identity(self, request) -> Identity | None:
        token = _bearer(request)
        if token is None or not is_grant(token):
            return None
        try:
            grant = check(self._secrets(), token, self.clock)
        except BadGrant as e:
            raise AuthError(401, str(e)) from None
        account = Account(f"build-grant:{grant.holder}", list(grant.scopes), source=GRANT_ACCOUNT_SOURCE)
        return Identity(account, BEARER)

    async def identify(self, request) -> Identity:
        """Who ``request`` comes from: a grant's holder, or whoever ``auth`` says."""
        identity = self._grant_identity(request)
        if identity is None:
            return await self.auth.identify(request)
        request._buildfarm_identity = identity  # what routes.request_identity reads
        return identity

    async def authorize(self, request, scope: str | None, write: bool, owner: str | None = None) -> Identity:
        """A grant's holder may act under its scopes only (403 naming the scope otherwise)."""
        identity = self._grant_identity(request)
        if identity is None:
            return await self.auth.authorize(request, scope, write, owner)
        if scope is not None and not identity.may(scope):
            raise AuthError(403, f"the build grant does not give the scope {scope!r}", scope,
                            user=identity.name)
        return identity

    async def audit(self, *args, **kwargs) -> None:
        """Writes are audited by the master's auth service, grants' holders by their name."""
        await self.auth.audit(*args, **kwargs)


@implementer(IHTTPMaster)
class GrantingView:
    """The master as the Isolate API's route table sees it: its ``config``, and its ``auth``
    wrapped in a `GrantingAuth`.  A grant is accepted under the secret of the master's running
    configuration (what the steps mint with, also after a reconfig) or ``api_secret`` (the
    secret the Isolate API was made with)."""

    def __init__(self, master, api_secret: Callable[[], bytes], clock):
        self._master = master
        self.auth = GrantingAuth(master.auth, lambda: (master.config.cas.upload_secret, api_secret()), clock)

    @property
    def config(self):
        return self._master.config
