"""``WebAuth``: what ``c['www']['auth']`` and ``c['www']['authz']`` give, as buildfarm
accounts and scopes (master/auth/webauth.py, master/auth/authz.py).

``configure_web_auth`` validates both keys against ``c['users']`` and the builders, and says
what the configuration grants, one line per user and scope, for ``buildmaster checkconfig``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from buildfarm.master.auth.authz import READ, Authz, Endpoint
from buildfarm.master.auth.identity import READ_SCOPES
from buildfarm.master.auth.users import Account
from buildfarm.master.auth.webauth import (
    AuthBase,
    HTPasswdAuth,
    NoAuth,
    RemoteUserAuth,
    UserPasswordAuth,
)

# A RemoteUserAuth header is believed from these addresses unless c['www']['trusted_proxies'] says.
DEFAULT_TRUSTED_PROXIES = ("127.0.0.1", "::1")
# How many remote users' accounts are kept (their scopes are computed once per name).
MAX_REMOTE_ACCOUNTS = 4096


@dataclass
class WebAuth:
    """The accounts of ``www['auth']`` (UserPasswordAuth, HTPasswdAuth) with the scopes
    ``www['authz']`` grants them, and the RemoteUserAuth header, if any."""

    accounts: list[Account] = field(default_factory=list)
    remote_user: RemoteUserAuth | None = None
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED_PROXIES
    authz: Authz | None = None
    builders: tuple[str, ...] = ()
    kind: str | None = None  # the auth class's name

    def account_for(self, details: dict, source: str) -> Account:
        """An account for user ``details`` (``username``, ``email``, ``groups``) holding
        what ``www['authz']`` grants (Buildbot's default ``Authz()``, everything, if none)."""
        authz = self.authz if self.authz is not None else Authz()
        grants = authz.grants(details, self.builders)
        scopes = _unique(g.scope for g in grants if not g.owner_only)
        owner_scopes = _unique(g.scope for g in grants if g.owner_only)
        origins = {g.scope: g.origin() for g in grants}
        return Account(details["username"], scopes, origins=origins, owner_scopes=owner_scopes,
                       source=source, details=dict(details))

    def trusts(self, peer: str) -> bool:
        """Whether ``peer`` is one of the proxies whose RemoteUserAuth header is believed."""
        return peer in self.trusted_proxies


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


def configure_web_auth(www: dict, users: list[Account], builders: list[str],
                       basedir: str | None) -> tuple[WebAuth, list[str], list[str]]:
    """The ``WebAuth`` of ``c['www']``, its errors, and the lines explaining who holds what."""
    auth, authz = www.get("auth"), www.get("authz")
    web = WebAuth(builders=tuple(builders))
    errors: list[str] = []
    if authz is not None:
        if isinstance(authz, Authz):
            problems = authz.problems()
            errors += problems
            # A broken Authz decides nothing; the configuration fails to load anyway.
            web.authz = None if problems else authz
        else:
            errors.append(f"c['www']['authz'] must be util.Authz(...), not {authz!r}")
    proxies = www.get("trusted_proxies")
    if proxies is not None:
        bad = [p for p in proxies if not _is_address(p)] if isinstance(proxies, list | tuple) else [proxies]
        if bad:
            errors.append(f"c['www']['trusted_proxies'] must be a list of IP addresses; not {bad!r}")
        else:
            web.trusted_proxies = tuple(str(ipaddress.ip_address(p)) for p in proxies)
    if auth is None or isinstance(auth, NoAuth):
        return web, errors, _explain(web, users)
    if not isinstance(auth, AuthBase):
        errors.append(f"c['www']['auth'] must be util.UserPasswordAuth, util.HTPasswdAuth or "
                      f"util.RemoteUserAuth, not {auth!r}")
        return web, errors, []
    web.kind = type(auth).__name__
    source = f"c['www']['auth'] {web.kind}"
    if isinstance(auth, RemoteUserAuth):
        errors += auth.problems()
        web.remote_user = auth
    elif isinstance(auth, UserPasswordAuth | HTPasswdAuth):
        entries, problems = auth.entries(basedir)
        errors += problems
        taken = {u.name for u in users}
        for name, credential in entries:
            if name in taken:
                errors.append(f"user {name!r} is in both c['users'] and c['www']['auth']: "
                              "keep it in one of them")
                continue
            taken.add(name)
            account = web.account_for({"username": name, "email": name}, source)
            if isinstance(auth, UserPasswordAuth):
                account.password = credential
            else:
                account.htpasswd_hash = credential
            web.accounts.append(account)
    return web, errors, _explain(web, users)


def _is_address(value) -> bool:
    try:
        ipaddress.ip_address(value)
    except (ValueError, TypeError):
        return False
    return True


def anonymous_may_read(web: WebAuth) -> bool:
    """Whether Buildbot's Authz lets a caller without roles read (False: ``www['authz']``
    keeps reading to some roles, and anonymous callers should not read by default)."""
    return web.authz is None or web.authz.decide(Endpoint(READ), ()).allowed


def _explain(web: WebAuth, users: list[Account]) -> list[str]:
    """One line per user and scope, for a configuration that uses ``www['auth']`` or
    ``www['authz']`` (nothing otherwise)."""
    if web.kind is None and web.authz is None:
        return []
    lines = []
    for account in users:
        for scope in account.scopes:
            lines.append(f"user {account.name!r} (c['users']): {scope} from c['users']")
    for account in web.accounts:
        for scope in account.scopes:
            lines.append(f"user {account.name!r} ({account.source}): {scope} from {account.origin_of(scope)}")
        for scope in account.owner_scopes:
            lines.append(f"user {account.name!r} ({account.source}): {scope} on their own builds only, "
                         f"from {account.origin_of(scope)}")
        if not account.scopes and not account.owner_scopes:
            lines.append(f"user {account.name!r} ({account.source}): no scopes")
    if web.remote_user is not None:
        lines.append(f"users named by the {web.remote_user.header.decode('latin-1')} header of requests from "
                     f"{', '.join(web.trusted_proxies)}: scopes from c['www']['authz'] by their details")
    open_to_all = [g.scope for g in (web.authz or Authz()).grants({}, web.builders)
                   if g.scope not in READ_SCOPES and not g.owner_only]
    if open_to_all:
        lines.append("Buildbot would let callers without credentials do what no allow rule refuses: "
                     f"{', '.join(open_to_all)}; buildfarm does not "
                     "(give c['www']['anonymous_scopes'] for that)")
    if web.authz is not None and users:
        lines.append("c['users'] keep their own scopes: c['www']['authz'] does not apply to them")
    return lines
