"""Users, their credentials and scopes, as master.cfg declares them::

    c['users'] = [
        util.User('oncall', password='s3cret', scopes=['slaveapi:*']),
        util.User('viewer', password_hash='pbkdf2_sha256$600000$c2FsdA==$...',
                  tokens=[{'file': 'viewer.token'}], scopes=['slaveapi:read']),
    ]

A secret (a password, a hash, a token) is a string, ``{'file': path}`` (the file's content,
stripped; relative paths are taken from the master's basedir) or ``{'env': NAME}``.
Secrets are read once when the configuration loads, and never logged nor shown: ``Secret``
hides its value from ``repr`` and ``str``.

Password hashes are Django's ``pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`` format
(PBKDF2-HMAC-SHA256 from :mod:`hashlib`); ``python -m buildfarm.master.auth`` prints one.
Every comparison of a secret is made in constant time (:func:`hmac.compare_digest`).

Scopes are strings like ``slaveapi:read`` or ``slaveapi:reboot:bs1``; a granted scope
ending in ``*`` grants every scope that starts with what precedes the ``*``.
"""

import base64
import binascii
import getpass
import hashlib
import hmac
import os
import secrets
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from twisted.internet import defer, threads

from buildfarm.master.configsource import ConfigObject

HASH_ALGORITHM = "pbkdf2_sha256"
DEFAULT_HASH_ITERATIONS = 600_000
SALT_BYTES = 16
# Verified (user, password) pairs remembered so that a polling client does not cost a
# PBKDF2 run per request; keyed by an HMAC of the password under a per-process key.
VERIFIED_CACHE_SIZE = 256
BASIC = b"basic"
BEARER = b"bearer"


class SecretError(ValueError):
    """A secret that cannot be read (a missing file, an unset variable, a bad spec)."""


class Secret:
    """A secret value that does not show itself in logs, reprs or JSON."""

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "master.cfg"):
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def matches(self, given: str) -> bool:
        """Whether ``given`` equals the secret, compared in constant time."""
        return hmac.compare_digest(given.encode("utf-8"), self._value.encode("utf-8"))

    def __repr__(self) -> str:
        return f"<secret from {self.source}>"

    __str__ = __repr__


def is_secret_spec(value) -> bool:
    """Whether ``value`` is written as ``{'file': path}`` or ``{'env': NAME}``."""
    return isinstance(value, dict) and len(value) == 1 and set(value) <= {"file", "env"}


def resolve_secret(spec, basedir: str | None, what: str) -> Secret:
    """The ``Secret`` a string, ``{'file': path}`` or ``{'env': NAME}`` stands for."""
    if isinstance(spec, Secret):
        return spec
    if isinstance(spec, str):
        if not spec:
            raise SecretError(f"{what} must not be empty")
        return Secret(spec)
    if not is_secret_spec(spec) or not isinstance(next(iter(spec.values())), str):
        raise SecretError(f"{what} must be a string, {{'file': path}} or {{'env': NAME}}")
    if "env" in spec:
        value = os.environ.get(spec["env"])
        if not value:
            raise SecretError(f"{what}: environment variable {spec['env']} is not set")
        return Secret(value, f"${spec['env']}")
    path = os.path.join(basedir or ".", os.path.expanduser(spec["file"]))
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
    except OSError as e:
        raise SecretError(f"{what}: cannot read {spec['file']}: {e.strerror}") from None
    if not value:
        raise SecretError(f"{what}: {spec['file']} is empty")
    return Secret(value, spec["file"])


# -- password hashes ---------------------------------------------------------------------

def hash_password(password: str, iterations: int = DEFAULT_HASH_ITERATIONS) -> str:
    """A ``pbkdf2_sha256$iterations$salt$hash`` string for ``password_hash=``."""
    salt = base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode().rstrip("=")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"{HASH_ALGORITHM}${iterations}${salt}${base64.b64encode(digest).decode()}"


def check_hash_format(encoded: str) -> str | None:
    """Why ``encoded`` is not a usable password hash, or None."""
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != HASH_ALGORITHM:
        return f"password_hash must look like {HASH_ALGORITHM}$<iterations>$<salt>$<hash>"
    if not parts[1].isdigit() or int(parts[1]) < 1:
        return "password_hash: the iteration count must be a positive integer"
    try:
        base64.b64decode(parts[3], validate=True)
    except (binascii.Error, ValueError):
        return "password_hash: the hash is not base64"
    return None


def verify_password_hash(password: str, encoded: str) -> bool:
    """Whether ``password`` hashes to ``encoded`` (slow: run it off the reactor thread)."""
    _, iterations, salt, expected = encoded.split("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), int(iterations))
    return hmac.compare_digest(base64.b64encode(digest), expected.encode())


# -- users ---------------------------------------------------------------------------------

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

    def has_scope(self, needed: str) -> bool:
        return has_scope(self.scopes, needed)


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


# -- checking credentials ----------------------------------------------------------------

class Unauthenticated(Exception):
    """No credentials, or wrong ones."""


class Authenticator:
    """Finds the account an ``Authorization`` header proves (basic or bearer)."""

    def __init__(self, accounts: list[Account],
                 run_slowly: Callable[..., defer.Deferred] = threads.deferToThread):
        self.accounts = {a.name: a for a in accounts}
        self._run_slowly = run_slowly
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        # Unknown users still cost one comparison, so timing does not tell who exists.
        self._decoy = Secret(secrets.token_urlsafe(24))

    async def authenticate(self, header: bytes | None) -> Account:
        """The account ``header`` proves; raise ``Unauthenticated`` otherwise."""
        if not header:
            raise Unauthenticated("authentication required (HTTP basic or a bearer token)")
        scheme, _, credentials = header.strip().partition(b" ")
        if scheme.lower() == BEARER:
            return self._by_token(credentials.strip())
        if scheme.lower() == BASIC:
            name, password = _basic_credentials(credentials.strip())
            return await self._by_password(name, password)
        raise Unauthenticated(f"unsupported authorization scheme {scheme.decode('latin-1')!r}")

    def _by_token(self, token: bytes) -> Account:
        given = token.decode("utf-8", "replace")
        found = None
        for account in self.accounts.values():  # every token is compared: no early exit
            for secret in account.tokens:
                if secret.matches(given):
                    found = account
        if found is None:
            raise Unauthenticated("unknown bearer token")
        return found

    async def _by_password(self, name: str, password: str) -> Account:
        account = self.accounts.get(name)
        if account is None or (account.password is None and account.password_hash is None):
            self._decoy.matches(password)
            raise Unauthenticated("wrong user name or password")
        if account.password is not None:
            if not account.password.matches(password):
                raise Unauthenticated("wrong user name or password")
            return account
        key = (name, hmac.new(self._cache_key, password.encode(), hashlib.sha256).digest())
        if key not in self._verified:
            encoded = account.password_hash.reveal()
            if not await self._run_slowly(verify_password_hash, password, encoded):
                raise Unauthenticated("wrong user name or password")
            self._verified[key] = None
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return account


def _basic_credentials(encoded: bytes) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthenticated("malformed basic credentials") from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthenticated("malformed basic credentials")
    return name, password


def main() -> None:
    """``python -m buildfarm.master.auth``: print a password_hash for a typed password."""
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print(hash_password(password))


if __name__ == "__main__":
    main()
