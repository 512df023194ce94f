"""``Authenticator``: the account an ``Authorization`` header (basic or bearer) or a login
form's name and password proves.

Every password check costs the same: one PBKDF2 run (off the reactor thread) with the same
iteration count, whether the user is unknown, has tokens only, a plain ``password=`` or a
``password_hash=``.  Plain passwords are hashed once when the authenticator is made (in a
thread), unknown names are checked against a decoy hash, so the time an answer takes does
not tell which names exist nor how their password is stored.  Failed logins are limited per
user and per source by a ``LoginLimiter`` (master/auth/ratelimit.py).
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import Counter, OrderedDict
from collections.abc import Callable

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from buildfarm.master.auth.passwords import (
    DEFAULT_HASH_ITERATIONS,
    HASH_ALGORITHM,
    SALT_BYTES,
    check_hash_format,
    hash_password,
    verify_password_hash,
)
from buildfarm.master.auth.ratelimit import Limited, LoginLimiter
from buildfarm.master.auth.users import Account
from buildfarm.master.auth.webauth import verify_htpasswd

log = Logger()

# Verified (user, password) pairs remembered so that a polling client does not cost a
# PBKDF2 run per request; keyed by an HMAC of the password under a per-process key.  Only
# right passwords are remembered, so the cache speeds up nothing an attacker could use.
VERIFIED_CACHE_SIZE = 256
BASIC = b"basic"
BEARER = b"bearer"
WRONG_PASSWORD = "wrong user name or password"


class Unauthenticated(Exception):
    """No credentials, or wrong ones."""


class RateLimited(Unauthenticated):
    """Too many failed logins: try again in ``retry_after`` whole seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


def work_iterations(accounts: list[Account]) -> int:
    """The PBKDF2 iteration count every check costs: the most common one among the
    configured hashes (all of them, when they were made alike), else the default."""
    counts = Counter(int(a.password_hash.reveal().split("$")[1]) for a in accounts
                     if a.password_hash is not None and check_hash_format(a.password_hash.reveal()) is None)
    return counts.most_common(1)[0][0] if counts else DEFAULT_HASH_ITERATIONS


def decoy_hash(iterations: int) -> str:
    """A well-formed hash that no password matches; checking one costs ``iterations``."""
    salt = base64.b64encode(secrets.token_bytes(SALT_BYTES)).decode().rstrip("=")
    digest = base64.b64encode(secrets.token_bytes(32)).decode()
    return f"{HASH_ALGORITHM}${iterations}${salt}${digest}"


class Authenticator:
    """Finds the account that credentials prove, at equal cost, with failed logins limited.

    ``limiter`` (a ``LoginLimiter``) may be shared by successive authenticators, so that a
    reconfig does not forget who failed; ``run_slowly`` runs PBKDF2 (a thread by default).
    """

    def __init__(self, accounts: list[Account], clock: IReactorTime, limiter: LoginLimiter | None = None,
                 run_slowly: Callable[..., defer.Deferred] = threads.deferToThread,
                 iterations: int | None = None):
        self.accounts = {a.name: a for a in accounts}
        self.limiter = limiter if limiter is not None else LoginLimiter(clock)
        self.iterations = iterations or work_iterations(accounts)
        self._run_slowly = run_slowly
        self._cache_key = secrets.token_bytes(32)
        self._verified: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self._decoy = decoy_hash(self.iterations)
        self._hashes: dict[str, str] | None = None  # user -> the hash a check compares with
        self._waiting: list[defer.Deferred] = []
        plain = {a.name: a.password.reveal() for a in accounts if a.password is not None}
        d = run_slowly(_hash_all, plain, self.iterations)
        d.addCallbacks(self._hashed, self._hashing_failed)

    # -- the two ways in -------------------------------------------------------------------

    async def authenticate(self, header: bytes | None, source: str | None = None) -> Account:
        """The account ``header`` proves for a caller at ``source`` (its address); raise
        ``Unauthenticated`` otherwise, ``RateLimited`` after too many failures."""
        if not header:
            raise Unauthenticated("authentication required (HTTP basic or a bearer token)")
        scheme, _, credentials = header.strip().partition(b" ")
        if scheme.lower() == BEARER:
            return self._by_token(credentials.strip(), source)
        if scheme.lower() == BASIC:
            try:
                name, password = _basic_credentials(credentials.strip())
            except Unauthenticated:
                self._begin(None, source)  # garbage counts against its source
                raise
            return await self.check_password(name, password, source)
        raise Unauthenticated(f"unsupported authorization scheme {scheme.decode('latin-1')!r}")

    async def check_password(self, name: str, password: str, source: str | None = None) -> Account:
        """The account of ``name`` if ``password`` is its password (one PBKDF2 run whoever
        ``name`` is); ``Unauthenticated`` otherwise, ``RateLimited`` after too many failures."""
        self._begin(name, source)
        account = await self._verify(name, password)
        if account is None:
            raise Unauthenticated(WRONG_PASSWORD)
        self.limiter.succeeded(name, source)
        return account

    # -- checks ----------------------------------------------------------------------------

    def _begin(self, name: str | None, source: str | None) -> None:
        try:
            self.limiter.begin(name, source)
        except Limited as e:
            log.warn("login refused: {why}", why=str(e))
            raise RateLimited(str(e), e.retry_after) from None

    def _by_token(self, token: bytes, source: str | None) -> Account:
        self._begin(None, source)
        given = token.decode("utf-8", "replace")
        found = None
        for account in self.accounts.values():  # every token is compared: no early exit
            for secret in account.tokens:
                if secret.matches(given):
                    found = account
        if found is None:
            raise Unauthenticated("unknown bearer token")
        self.limiter.succeeded(None, source)
        return found

    async def _verify(self, name: str, password: str) -> Account | None:
        account = self.accounts.get(name)
        key = (name, hmac.new(self._cache_key, password.encode(), hashlib.sha256).digest())
        if account is not None and key in self._verified:
            return account
        if account is not None and account.htpasswd_hash is not None:
            # An HTPasswdAuth user: the file's own hash (bcrypt costs what its rounds say).
            verified = await self._run_slowly(verify_htpasswd, password, account.htpasswd_hash)
        else:
            encoded = (await self._stored_hashes()).get(name, self._decoy)
            verified = await self._run_slowly(verify_password_hash, password, encoded)
        if not verified:
            return None
        self._verified[key] = None
        while len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return account

    # -- the hashes checks compare with ------------------------------------------------------

    async def _stored_hashes(self) -> dict[str, str]:
        if self._hashes is None:
            waiter: defer.Deferred = defer.Deferred()
            self._waiting.append(waiter)
            await waiter
        return self._hashes

    def _hashed(self, plain_hashes: dict[str, str]) -> None:
        hashes = {name: a.password_hash.reveal() for name, a in self.accounts.items()
                  if a.password_hash is not None}
        self._hashes = {**hashes, **plain_hashes}
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            waiter.callback(None)

    def _hashing_failed(self, failure) -> None:
        log.failure("hashing the plain passwords failed: they cannot log in", failure)
        self._hashed({})


def _hash_all(plain: dict[str, str], iterations: int) -> dict[str, str]:
    """``{name: hash}`` of plain passwords (slow: run it off the reactor thread)."""
    return {name: hash_password(password, iterations) for name, password in plain.items()}


def _basic_credentials(encoded: bytes) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise Unauthenticated("malformed basic credentials") from None
    name, colon, password = decoded.partition(":")
    if not colon:
        raise Unauthenticated("malformed basic credentials")
    return name, password
