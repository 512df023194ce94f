"""``AuthService``: the master's ``auth`` service, asked by every HTTP surface who a request
comes from and whether it may do what it asks.

It holds the users of ``c['users']`` (their credentials checked by the ``Authenticator``),
the web UI's login sessions (``SessionStore``) and the scopes anonymous callers get
(``c['www']['anonymous_scopes']``).  A surface calls ``authorize(request, scope, write)``
and turns an ``AuthError`` into its own error format; no surface parses credentials itself.

Rules (docs/security.md, "Who may do what"):

- credentials come from ``Authorization: Basic`` / ``Bearer`` / ``Hawk``, a bewit-signed URL
  (GET) or the session cookie; wrong credentials are a 401 (a Hawk failure's ``reason`` says
  which check failed: master/auth/hawk.py), a 429 with ``retry_after`` when too many failed
  from one address;
- a caller lacking the scope gets a 401 when anonymous, a 403 naming the scope otherwise;
- a write carried by credentials a browser attaches on its own (the cookie, cached basic
  credentials) needs a same-origin ``Origin`` (or, without one, ``Referer``); a cookie
  write with neither is refused, and also needs the session's CSRF token from the form
  body or the ``X-CSRF-Token`` header (never from the query string).
"""

import hmac
import re
from collections import OrderedDict
from urllib.parse import parse_qs, urlsplit

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from buildfarm.master.auth.authenticator import Authenticator, Unauthenticated
from buildfarm.master.auth.clients import ClientStore
from buildfarm.master.auth.hawk import HawkCaller, HawkFailure, HawkVerifier, NonceCache
from buildfarm.master.auth.identity import (
    BASIC,
    BEARER,
    BEWIT,
    COOKIE,
    HAWK,
    NONE,
    REMOTE_USER,
    AuthError,
    Identity,
)
from buildfarm.master.auth.nonces import SharedNonceStore
from buildfarm.master.auth.ratelimit import Limited, LoginLimiter
from buildfarm.master.auth.roles import RoleStore
from buildfarm.master.auth.scopes import ExpansionTooLarge, Expression, describe
from buildfarm.master.auth.sessions import COOKIE_NAME, Session, SessionStore
from buildfarm.master.auth.users import Account
from buildfarm.master.auth.webusers import MAX_REMOTE_ACCOUNTS, WebAuth

log = Logger()

CSRF_FIELD = "csrf_token"
CSRF_HEADER = b"x-csrf-token"
FORM_TYPE = b"application/x-www-form-urlencoded"
MULTIPART_TYPE = b"multipart/form-data"
CHANGE_SECRET_HEADER = b"x-buildfarm-secret"
SECRET = "secret"  # how the change hook's caller authenticates
CHANGE_HOOK_ACCOUNT = Account("change-hook", ["changes:add"])
CLIENT_SWEEP_INTERVAL_S = 3600  # how often expired clients with deleteOnExpiration are deleted
HAWK_SCHEME = b"hawk"
BEWIT_IN_QUERY = re.compile(rb"[?&]bewit=")
HAWK_SOURCE = "Hawk"
# Audit outcomes.
DONE = "done"
REFUSED = "refused"
FAILED = "failed"


class AuthService(service.Service):
    """Users, sessions and anonymous scopes; identifies and authorizes requests."""

    name = "auth"

    def __init__(self, clock: IReactorTime, accounts: list[Account] = (),
                 anonymous_scopes: tuple[str, ...] | list[str] = (), db=None,
                 change_secret: str | None = None, run_slowly=None, iterations: int | None = None,
                 web_auth: WebAuth | None = None, clients=(), clients_key: bytes | None = None,
                 roles=(), shared_nonces: bool = False):
        """``clients`` are master.cfg's (``(Client, Secret)`` pairs), ``clients_key`` the key
        database clients' tokens are encrypted under (master/auth/clients.py).  ``run_slowly``
        (where PBKDF2 runs; a thread by default) and ``iterations`` (what every password check
        costs; see authenticator.py) are for tests.  ``roles`` are master.cfg's (master/auth/roles.py).
        With ``shared_nonces`` (``c['multiMaster']``) Hawk's nonces are kept in the database,
        shared with the other masters (master/auth/nonces.py)."""
        self.clock = clock
        self._authenticator_options = {"iterations": iterations}
        if run_slowly is not None:
            self._authenticator_options["run_slowly"] = run_slowly
        self._run_slowly = run_slowly if run_slowly is not None else threads.deferToThread
        self.db = db
        self.change_secret = change_secret
        self.anonymous_scopes = tuple(anonymous_scopes)
        self.web_auth = web_auth if web_auth is not None else WebAuth()
        self._remote_accounts: OrderedDict[tuple, Account] = OrderedDict()
        # Failed logins are remembered across reconfigs: every new Authenticator gets this limiter.
        self.login_limiter = LoginLimiter(clock)
        self.authenticator = self._make_authenticator(list(accounts))
        # Login sessions live as long as the process: a reconfig or a web port change keeps them.
        self.sessions = SessionStore(clock)
        # The Taskcluster-style clients (master/auth/interfaces.py ``IClientStore``) and how a
        # client's own scopes expand (``IScopeExpander``: the roles).
        self.clients = ClientStore(clock, db, accounts=list(accounts), configured=list(clients),
                                   master_key=clients_key)
        # c['roles'] and the database's roles (master/auth/roles.py): every caller's scopes are
        # expanded through them.
        self.roles = RoleStore(clock, db, roles)
        self.scope_expander = self.roles
        self.hawk = HawkVerifier(clock, self.clients, lambda: self.scope_expander,
                                 run_slowly=self._run_slowly)
        self._share_nonces(shared_nonces)
        self._sweeper: task.LoopingCall | None = None

    def startService(self):  # noqa: N802 - Twisted's name
        """Sweep expired clients (hourly); read the database's roles before any request is
        served (then every 30 s)."""
        super().startService()
        if self.db is not None:
            self._sweeper = task.LoopingCall(lambda: defer.ensureDeferred(self._sweep_clients()))
            self._sweeper.clock = self.clock
            self._sweeper.start(CLIENT_SWEEP_INTERVAL_S, now=True)
        self.hawk.nonces.start()
        return defer.ensureDeferred(self.roles.start())

    def stopService(self):  # noqa: N802 - Twisted's name
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None
        self.hawk.nonces.stop()
        self.roles.stop()
        return super().stopService()

    async def _sweep_clients(self) -> None:
        """Delete the expired clients that asked for it (never raises: the loop goes on)."""
        try:
            gone = await self.clients.delete_expired()
        except Exception:
            log.failure("deleting expired clients failed")
            return
        if gone:
            log.info("deleted expired clients {clients}", clients=", ".join(gone))

    def _make_authenticator(self, accounts: list[Account]) -> Authenticator:
        """The one place that builds the authenticator."""
        return Authenticator(accounts, self.clock, self.login_limiter, **self._authenticator_options)

    def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Take the users and anonymous scopes of a new configuration; sessions of users who
        are gone end at once."""
        accounts = list(config.users)
        self.authenticator = self._make_authenticator(accounts)
        self.clients.configure(list(getattr(config, "clients", ())), accounts)
        clients_key = getattr(config, "clients_key", None)
        if clients_key is not None:
            self.clients.set_master_key(clients_key.reveal().encode())
        self.anonymous_scopes = tuple(config.www_anonymous_scopes)
        self.change_secret = config.change_secret
        self.web_auth = getattr(config, "web_auth", None) or WebAuth()
        self.roles.configure(getattr(config, "roles", ()))
        self._share_nonces(bool(getattr(config, "multi_master", False)))
        self._remote_accounts.clear()
        names = {a.name for a in accounts}
        for user in {s.user for s in list(self.sessions._sessions.values())} - names:
            self.sessions.drop_user(user)

    def _share_nonces(self, shared: bool) -> None:
        """Keep Hawk's nonces in the shared database (several masters) or in this process."""
        wanted = SharedNonceStore if shared and self.db is not None else NonceCache
        if isinstance(self.hawk.nonces, wanted):
            return
        self.hawk.nonces.stop()
        if wanted is SharedNonceStore:
            self.hawk.nonces = SharedNonceStore(self.clock, self.db, self.hawk.skew_s)
        else:
            self.hawk.nonces = NonceCache(self.clock, self.hawk.skew_s)
        if self.running:
            self.hawk.nonces.start()

    @property
    def accounts(self) -> dict[str, Account]:
        return self.authenticator.accounts

    # -- the authenticator and the session store, each called from one place ----------------

    async def _authenticate(self, header: bytes, peer: str) -> Account:
        return await self.authenticator.authenticate(header, peer)

    async def check_password(self, name: str, password: str, peer: str) -> Account:
        """The account of a login form's user name and password (``Unauthenticated`` otherwise,
        ``RateLimited`` with ``retry_after`` after too many failures)."""
        return await self.authenticator.check_password(name, password, peer)

    def _session(self, sid: str | None) -> Session | None:
        return self.sessions.get(sid)

    # -- identification ----------------------------------------------------------------------

    async def identify(self, request) -> Identity:
        """Who ``request`` comes from (cached on the request); ``AuthError`` 401/429 when it
        carries credentials that do not prove an account."""
        cached = getattr(request, "_buildfarm_identity", None)
        if cached is not None:
            return cached
        identity = await self._identify(request)
        request._buildfarm_identity = identity
        return identity

    async def _identify(self, request) -> Identity:
        header = request.getHeader(b"authorization")
        if header and _scheme(header) == HAWK_SCHEME:
            return await self._hawk(request, self.hawk.verify_header, HAWK)
        if not header and BEWIT_IN_QUERY.search(request.uri or b""):
            return await self._hawk(request, self.hawk.verify_bewit, BEWIT)
        if header:
            try:
                account = await self._authenticate(header.encode("latin-1") if isinstance(header, str)
                                                   else header, peer_of(request))
            except Unauthenticated as e:
                retry_after = getattr(e, "retry_after", None)
                raise AuthError(429 if retry_after is not None else 401, str(e),
                                retry_after=retry_after) from None
            scheme = header.split(None, 1)[0].lower() if header.strip() else b""
            method = BEARER if scheme in (b"bearer", "bearer") else BASIC
            return Identity(account, method, self.anonymous_scopes, expand=self.roles.expand_now)
        hook_secret = request.getHeader(CHANGE_SECRET_HEADER)
        if hook_secret is not None:
            return self._change_hook(hook_secret)
        remote = self.web_auth.remote_user
        if remote is not None and request.getHeader(remote.header) is not None:
            return await self._remote_user(request, remote)
        session = self._session(session_id(request))
        if session is not None:
            account = self.accounts.get(session.user)
            if account is not None:
                return Identity(account, COOKIE, self.anonymous_scopes, session.csrf_token, session.sid,
                                expand=self.roles.expand_now)
            self.sessions.drop_user(session.user)
        return Identity(None, NONE, self.anonymous_scopes, expand=self.roles.expand_now)

    async def _hawk(self, request, verify, method: str) -> Identity:
        """A Hawk header or bewit: the client (or temporary credentials) it proves, with the
        scopes it holds for this request.  Failures count against the caller's address and
        the client id it names as failed logins do (a user's password signs Hawk too)."""
        peer = peer_of(request)
        named: list[str] = []

        def attempt(client_id: str) -> None:
            self.login_limiter.begin(client_id, peer)
            named.append(client_id)

        try:
            caller: HawkCaller = await verify(request, attempt)
        except Limited as e:
            log.warn("Hawk: refused a request from {peer}: too many failures {why}", peer=peer, why=str(e))
            raise AuthError(429, f"too many failed logins {e}", retry_after=e.retry_after) from None
        except HawkFailure as e:
            log.info("Hawk: refused a request from {peer}: {why}", peer=peer, why=str(e))
            if not named:  # a header too broken to name a client counts against its source
                try:
                    self.login_limiter.begin(None, peer)
                except Limited:
                    pass
            raise AuthError(401, str(e), reason=e.reason) from None
        except ExpansionTooLarge as e:  # the client's scopes, through today's roles
            raise unexpandable(named[0] if named else "this client", e) from None
        self.login_limiter.succeeded(named[0] if named else None, peer)
        source = HAWK_SOURCE if caller.issuer is None else f"temporary credentials issued by {caller.issuer}"
        account = Account(caller.client_id, list(caller.scopes), source=source)
        return Identity(account, method, self.anonymous_scopes, expand=self.roles.expand_now)

    def _change_hook(self, given: bytes) -> Identity:
        """The change hook's caller: the shared secret of ``c['changes']`` grants ``changes:add``."""
        given = given.encode("latin-1") if isinstance(given, str) else given
        if not self.change_secret or not hmac.compare_digest(given, self.change_secret.encode()):
            raise AuthError(401, "wrong or missing X-Buildfarm-Secret (or the change hook has no secret: "
                                 "set c['changes'] = {'secret': ...} in master.cfg)")
        return Identity(CHANGE_HOOK_ACCOUNT, SECRET, self.anonymous_scopes, expand=self.roles.expand_now)

    async def _remote_user(self, request, remote) -> Identity:
        """The user a trusted fronting proxy names in RemoteUserAuth's header; the header from
        any other address is refused (anyone could send it)."""
        peer = peer_of(request)
        header = remote.header.decode("latin-1")
        if not self.web_auth.trusts(peer):
            raise AuthError(403, f"the {header} header is only accepted from the trusted proxies "
                                 f"(c['www']['trusted_proxies']), not from {peer}")
        value = request.getHeader(remote.header)
        details = remote.details(value.encode("latin-1") if isinstance(value, str) else value)
        if details is None:
            raise AuthError(403, f"the {header} header does not match RemoteUserAuth's headerRegex")
        key = tuple(sorted((k, str(v)) for k, v in details.items()))
        account = self._remote_accounts.get(key)
        if account is None:
            # Deciding every endpoint of every builder takes milliseconds: a thread does it.
            account = await self._run_slowly(self.web_auth.account_for, details,
                                             "c['www']['auth'] RemoteUserAuth")
            self._remote_accounts[key] = account
            while len(self._remote_accounts) > MAX_REMOTE_ACCOUNTS:
                self._remote_accounts.popitem(last=False)
        return Identity(account, REMOTE_USER, self.anonymous_scopes, expand=self.roles.expand_now)

    def describe(self, identity: Identity) -> dict:
        """``GET /api/v1/auth/whoami``: the caller, how it authenticated, its roles and scopes,
        and where each scope comes from; ``expanded_scopes``: every scope it holds, expanded
        through the roles (``assume:<role>``)."""
        account = identity.account
        scopes = [{"scope": s, "origin": "anonymous scopes (c['www']['anonymous_scopes'] or the default)"}
                  for s in self.anonymous_scopes]
        try:
            expanded = identity.scopes  # what it holds: its own and the anonymous ones, through the roles
        except ExpansionTooLarge as e:
            raise unexpandable(identity.name or "anonymous", e) from None
        if account is None:
            return {"user": None, "authenticated": False, "method": identity.method, "source": None,
                    "roles": [], "scopes": scopes, "owner_scopes": [], "expanded_scopes": expanded}
        authz = self.web_auth.authz
        roles = sorted(authz.roles(account.details)) if authz is not None and account.details else []
        mine = [{"scope": s, "origin": account.origin_of(s)} for s in account.scopes]
        held = set(account.scopes)
        return {"user": account.name, "authenticated": True, "method": identity.method,
                "source": account.source, "roles": roles,
                "scopes": mine + [s for s in scopes if s["scope"] not in held],
                "owner_scopes": [{"scope": s, "origin": account.origin_of(s)} for s in account.owner_scopes],
                "expanded_scopes": expanded}

    def anonymous(self) -> Identity:
        return Identity(None, NONE, self.anonymous_scopes, expand=self.roles.expand_now)

    # -- authorization -----------------------------------------------------------------------

    async def authorize(self, request, scope: Expression | None, write: bool,
                        owner: str | None = None) -> Identity:
        """The caller of ``request`` if it may act under ``scope`` (a scope or an ``AllOf``/``AnyOf``
        expression; None: anyone may) on something ``owner`` owns (a build: its owner scopes
        count); ``AuthError`` otherwise, naming what is required and what is lacking."""
        identity = await self.identify(request)
        if scope is not None:
            self.require(identity, scope, owner)
        if write:
            self.check_browser_write(request, identity)
        return identity

    def require(self, identity: Identity, required: Expression, owner: str | None = None) -> None:
        """``AuthError`` (401 for an anonymous caller, 403 otherwise) unless ``identity`` holds
        ``required`` (its scopes expanded through the roles)."""
        try:
            lacking = identity.missing(required, owner)
        except ExpansionTooLarge as e:
            raise unexpandable(identity.name or "anonymous", e) from None
        if lacking is None:
            return
        single = required if isinstance(required, str) else None
        text = repr(single) if single is not None else describe(required)
        if identity.anonymous:
            raise AuthError(401, f"authentication required: anonymous callers lack the scope {text}"
                            + _lacking_text(required, lacking), single, required=required,
                            unsatisfied=lacking)
        raise AuthError(403, f"user {identity.name!r} lacks the scope {text}"
                        + _lacking_text(required, lacking), single, user=identity.name, required=required,
                        unsatisfied=lacking)

    def check_browser_write(self, request, identity: Identity) -> None:
        """A write carried by browser-attached credentials must come from this very site
        and, for a cookie session, carry the session's CSRF token."""
        if not identity.browser_borne:
            return
        if identity.method == COOKIE and not _csrf_matches(identity.csrf_token, csrf_token_of(request)):
            raise AuthError(403, "bad CSRF token: this form is stale or came from another site (send "
                                 "the form's csrf_token field or an X-CSRF-Token header)", user=identity.name)
        same = same_origin(request)
        if same is False or (same is None and identity.method == COOKIE):
            raise AuthError(403, "this request was sent from another site (or without an Origin or "
                                 "Referer); refused (cross-site request forgery protection)",
                            user=identity.name)

    # -- audit -------------------------------------------------------------------------------

    async def audit(self, surface: str, user: str, peer: str, method: str, path: str, scope: str | None,
                    outcome: str, status: int, detail: str = "") -> None:
        """Record one write: who, from where, what, and how it ended (never raises)."""
        if self.db is None:
            return
        try:
            await self.db.audit.add(int(self.clock.seconds()), surface, user, peer, method, path,
                                    scope or "", outcome, status, detail)
        except Exception:
            log.failure("audit: recording {method} {path} by {user} failed", method=method, path=path,
                        user=user)


def _lacking_text(required: Expression, lacking: Expression) -> str:
    """What a refusal adds when only part of an expression is lacking."""
    return "" if lacking == required else f" (lacking {describe(lacking)})"


# -- request helpers -----------------------------------------------------------------------

def _scheme(header) -> bytes:
    header = header.encode("latin-1") if isinstance(header, str) else header
    return header.strip().split(None, 1)[0].lower() if header.strip() else b""


def peer_of(request) -> str:
    """The client's address."""
    return getattr(request.getClientAddress(), "host", None) or "?"


def session_id(request) -> str | None:
    value = request.getCookie(COOKIE_NAME)
    return value.decode("ascii", "replace") if value else None


def same_origin(request) -> bool | None:
    """Whether the request's Origin (or, lacking one, Referer) is this site; None when the
    request carries neither (not a browser, or a browser that hid it)."""
    host = request.getHeader(b"host")
    origin = request.getHeader(b"origin")
    source = origin if origin is not None else request.getHeader(b"referer")
    if source is None:
        return None
    if isinstance(source, str):
        source = source.encode("latin-1")
    if host is None or source == b"null":
        return False
    host = host.decode("latin-1") if isinstance(host, bytes) else host
    return urlsplit(source.decode("latin-1")).netloc == host


def csrf_token_of(request) -> str | None:
    """The CSRF token of a request: the ``X-CSRF-Token`` header, or the ``csrf_token`` field
    of a form body; a token in the query string does not count (URLs leak into logs)."""
    header = request.getHeader(CSRF_HEADER)
    if header:
        return header.decode("utf-8", "replace") if isinstance(header, bytes) else header
    content_type = (request.getHeader(b"content-type") or b"")
    if isinstance(content_type, str):
        content_type = content_type.encode("latin-1")
    kind = content_type.split(b";")[0].strip().lower()
    if kind == FORM_TYPE and request.content is not None:
        request.content.seek(0)
        body = request.content.read()
        request.content.seek(0)
        values = parse_qs(body.decode("utf-8", "replace")).get(CSRF_FIELD)
        return values[-1] if values else None
    if kind == MULTIPART_TYPE:
        in_query = CSRF_FIELD in parse_qs(urlsplit(request.uri.decode("latin-1")).query)
        values = (request.args or {}).get(CSRF_FIELD.encode())
        if values and not in_query:
            return values[-1].decode("utf-8", "replace")
    return None


def _csrf_matches(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(given.encode(), expected.encode())


def unexpandable(who: str, error: ExpansionTooLarge) -> AuthError:
    """The refusal of a caller whose scopes the roles expand past the limits (a chain of
    parameterized roles fed a long scope): a 403 naming it, never a 500."""
    return AuthError(403, f"the scopes of {who!r} cannot be expanded through the roles: {error}",
                     user=None if who == "anonymous" else who)
