"""Users, their credentials and scopes, as master.cfg declares them::

    c['users'] = [
        util.User('oncall', password='s3cret', scopes=['slaveapi:*']),
        util.User('viewer', password_hash='pbkdf2_sha256$600000$c2FsdA==$...',
                  tokens=[{'file': 'viewer.token'}], scopes=['slaveapi:read']),
    ]

Secrets are given as master/auth/secret.py describes.  Scopes are strings like
``slaveapi:read`` or ``slaveapi:reboot:bs1``; a granted scope ending in ``*`` grants every
scope that starts with what precedes the ``*``.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from buildfarm.master.auth.passwords import check_hash_format
from buildfarm.master.auth.secret import Secret, SecretError, resolve_secret
from buildfarm.master.configobject import ConfigObject

USERS_SOURCE = "c['users']"


class User(ConfigObject):
    """A user of the master's HTTP interfaces: ``util.User(name, password=..., scopes=[...])``.

    Give ``password`` or ``password_hash`` for HTTP basic authentication, ``tokens`` for
    ``Authorization: Bearer``; each may be a string, ``{'file': path}`` or ``{'env': NAME}``.
    """

    def __init__(self, name, password=None, password_hash=None, tokens=(), scopes=(), **kwargs):
        self._remember_config_line()
        self.name = name
        self.password = password
        self.password_hash = password_hash
        self.tokens = list(tokens) if isinstance(tokens, list | tuple) else tokens
        self.scopes = list(scopes) if isinstance(scopes, list | tuple) else scopes
        self.unknown_args = sorted(kwargs)

    def __repr__(self) -> str:
        return f"User({self.name!r}, scopes={self.scopes!r})"


@dataclass
class Account:
    """A validated user: resolved secrets and scopes."""

    name: str
    scopes: list[str]
    password: Secret | None = None
    password_hash: Secret | None = None
    tokens: list[Secret] = field(default_factory=list)
    # Where each scope comes from (``c['users']``, or the www['authz'] rule and role matcher).
    origins: dict[str, str] = field(default_factory=dict)
    # Scopes held on the user's own builds only (``RolesFromOwner``).
    owner_scopes: list[str] = field(default_factory=list)
    # An htpasswd entry's hash (bcrypt, {SHA}, $apr1$, crypt) for an ``HTPasswdAuth`` user.
    htpasswd_hash: str | None = None
    # Who set the account up: ``c['users']`` or ``c['www']['auth']`` (its kind).
    source: str = USERS_SOURCE
    # The user's details as Buildbot's role matchers see them (username, email, groups).
    details: dict = field(default_factory=dict)

    def has_scope(self, needed: str) -> bool:
        return has_scope(self.scopes, needed)

    def origin_of(self, scope: str) -> str:
        return self.origins.get(scope, self.source)


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """Whether any granted scope is ``needed`` or a ``prefix*`` wildcard covering it."""
    return any(needed.startswith(g[:-1]) if g.endswith("*") else g == needed for g in granted)


def validate_users(items, basedir: str | None) -> tuple[list[Account], list[str]]:
    """The accounts of ``c['users']`` and every problem found in it."""
    if not isinstance(items, list | tuple):
        return [], ["c['users'] must be a list of util.User(...)"]
    accounts: list[Account] = []
    problems: list[str] = []
    for item in items:
        if not isinstance(item, User):
            problems.append(f"c['users'] holds {item!r}, not a util.User")
            continue
        account, found = _account(item, basedir)
        problems += found
        if account is not None and any(a.name == account.name for a in accounts):
            problems.append(f"duplicate user name {account.name!r}")
        elif account is not None:
            accounts.append(account)
    return accounts, problems


def _account(user: User, basedir: str | None) -> tuple[Account | None, list[str]]:
    problems = [f"util.User got an unknown argument {arg!r}" for arg in user.unknown_args]
    if not isinstance(user.name, str) or not user.name or ":" in user.name:
        return None, problems + [f"user name must be a non-empty string without ':', not {user.name!r}"]
    who = f"user {user.name!r}"
    scopes = user.scopes
    if not isinstance(scopes, list) or not all(isinstance(s, str) and s for s in scopes):
        problems.append(f"{who}: scopes must be a list of strings like 'slaveapi:read'")
        scopes = []
    account = Account(user.name, list(scopes))
    for attribute in ("password", "password_hash"):
        spec = getattr(user, attribute)
        if spec is None:
            continue
        try:
            setattr(account, attribute, resolve_secret(spec, basedir, f"{who}: {attribute}"))
        except SecretError as e:
            problems.append(str(e))
    if account.password is not None and account.password_hash is not None:
        problems.append(f"{who}: give password or password_hash, not both")
    if account.password_hash is not None:
        why = check_hash_format(account.password_hash.reveal())
        if why:
            problems.append(f"{who}: {why}")
    if not isinstance(user.tokens, list):
        problems.append(f"{who}: tokens must be a list")
    else:
        for number, spec in enumerate(user.tokens):
            try:
                account.tokens.append(resolve_secret(spec, basedir, f"{who}: tokens[{number}]"))
            except SecretError as e:
                problems.append(str(e))
    if account.password is None and account.password_hash is None and not account.tokens:
        problems.append(f"{who} has no password, password_hash or tokens: it could never log in")
    return account, problems
