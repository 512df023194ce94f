"""``Authenticator``: the account an ``Authorization`` header (basic or bearer) proves."""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable

from twisted.internet import defer, threads

from buildfarm.master.auth.passwords import verify_password_hash
from buildfarm.master.auth.secret import Secret
from buildfarm.master.auth.users import Account

# Verified (user, password) pairs remembered so that a polling client does not cost a
# PBKDF2 run per request; keyed by an HMAC of the password under a per-process key.
VERIFIED_CACHE_SIZE = 256
BASIC = b"basic"
BEARER = b"bearer"


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
