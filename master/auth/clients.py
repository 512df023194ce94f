"""``ClientStore``: the clients of master.cfg (``c['clients']``, and every ``c['users']`` user
with a password) and of the database (``db.clients``), as ``IClientStore`` describes.

``c['clients']`` in master.cfg::

    c['clients'] = [
        {'clientId': 'ci/deployer', 'accessToken': {'file': 'deployer.token'},
         'scopes': ['queue:create-task:*'], 'expires': '2030-01-01T00:00:00Z',
         'description': 'the deploy pipeline'},
    ]

``accessToken`` is a secret spec as passwords take (master/auth/secret.py); ``expires`` an
ISO-8601 date (or POSIX seconds; absent: never); ``scopes`` and ``description`` optional.

A database client's access token is stored encrypted with AES-256-GCM under a key derived from
the master's clients key (``TokenCipher``): Hawk computes a MAC with the plain token, so a
one-way hash could not be checked; a copy of the database alone does not give the tokens.
"""

import base64
import os
import re
import secrets
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from buildfarm.master.auth.interfaces import (
    FROM_CONFIG,
    FROM_DB,
    FROM_USERS,
    MAX_LIST_LIMIT,
    Client,
    ClientExists,
    IClientStore,
    InvalidClient,
    IScopeExpander,
    ReadOnlyClient,
    UnknownClient,
)
from buildfarm.master.auth.secret import Secret, SecretError, resolve_secret
from buildfarm.master.auth.users import Account

CLIENTS_SOURCE = "c['clients']"
# Taskcluster's clientId pattern.
CLIENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9!@/:.+|_-]+$")
CLIENT_ID_MAX_CHARS = 128
DESCRIPTION_MAX_CHARS = 10_000
SCOPE_PATTERN = re.compile(r"^[\x20-\x7e]*$")
# An access token: 32 random bytes, URL-safe base64 without padding is 43 characters;
# Taskcluster's are 44 (slugid-like), so we keep its length: 33 bytes make 44 characters.
ACCESS_TOKEN_BYTES = 33
# A client declared without ``expires`` (and every c['users'] user): far in the future.
NEVER = datetime(3000, 1, 1).timestamp()
# The nonce of AES-GCM and the label of the key derived for tokens.
NONCE_BYTES = 12
TOKEN_KEY_LABEL = b"buildfarm clients access tokens v1"
CIPHER_PREFIX = "v1:"


CLIENTS_KEY_FILE = "clients.key"  # in the basedir, when c['clients_key'] is not given
CLIENTS_KEY_BYTES = 32


def load_or_create_key(path: str) -> bytes:
    """The clients key in ``path``, made (random, readable by the master's user only) if the
    file does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read().strip()
    except FileNotFoundError:
        pass
    key = base64.b64encode(secrets.token_bytes(CLIENTS_KEY_BYTES))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key + b"\n")
    return key


def new_access_token() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(ACCESS_TOKEN_BYTES)).decode()


class TokenCipher:
    """Encrypts access tokens for the database (AES-256-GCM, the client id bound as associated
    data, so a token copied to another client's row does not decrypt)."""

    def __init__(self, master_key: bytes):
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=TOKEN_KEY_LABEL).derive(master_key)
        self._aead = AESGCM(key)

    def encrypt(self, client_id: str, token: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, token.encode(), client_id.encode())
        return CIPHER_PREFIX + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, client_id: str, stored: str) -> str | None:
        """The token, or None when ``stored`` was not sealed by this key for this client."""
        if not stored.startswith(CIPHER_PREFIX):
            return None
        try:
            raw = base64.b64decode(stored[len(CIPHER_PREFIX):], validate=True)
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], client_id.encode()).decode()
        except (ValueError, InvalidTag):
            return None


# -- master.cfg ---------------------------------------------------------------------------

CLIENT_KEYS = {"clientId", "accessToken", "scopes", "expires", "description"}


def parse_expires(value, what: str) -> float:
    """POSIX seconds of an ISO-8601 date (``2030-01-01T00:00:00Z``) or a number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            if stamp.tzinfo is None:
                raise InvalidClient(f"{what}: expires {value!r} needs a time zone (end it with Z)")
            return stamp.timestamp()
    raise InvalidClient(f"{what}: expires must be an ISO-8601 date like '2030-01-01T00:00:00Z', "
                        f"not {value!r}")


def check_client_id(client_id) -> None:
    if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.match(client_id) \
            or len(client_id) > CLIENT_ID_MAX_CHARS:
        raise InvalidClient(f"clientId must be 1 to {CLIENT_ID_MAX_CHARS} characters of "
                            f"A-Z a-z 0-9 !@/:.+|_-, not {client_id!r}")


def check_scopes(scopes, what: str) -> tuple[str, ...]:
    if not isinstance(scopes, list | tuple) or not all(
            isinstance(s, str) and SCOPE_PATTERN.match(s) for s in scopes):
        raise InvalidClient(f"{what}: scopes must be a list of printable ASCII strings")
    return tuple(scopes)


def check_description(description, what: str) -> str:
    if not isinstance(description, str) or len(description) > DESCRIPTION_MAX_CHARS:
        raise InvalidClient(f"{what}: description must be a string of at most "
                            f"{DESCRIPTION_MAX_CHARS} characters")
    return description


def validate_clients(items, basedir: str | None) -> tuple[list[tuple[Client, Secret]], list[str]]:
    """The clients of ``c['clients']`` (each with its access token) and every problem found."""
    if not isinstance(items, list | tuple):
        return [], ["c['clients'] must be a list of dicts with clientId, accessToken, scopes, ..."]
    found: list[tuple[Client, Secret]] = []
    problems: list[str] = []
    for number, item in enumerate(items):
        what = f"c['clients'][{number}]"
        if not isinstance(item, dict):
            problems.append(f"{what} must be a dict, not {item!r}")
            continue
        for key in sorted(set(item) - CLIENT_KEYS):
            problems.append(f"{what} has an unknown key {key!r} (known: {', '.join(sorted(CLIENT_KEYS))})")
        try:
            client, token = _config_client(item, basedir, what)
        except (InvalidClient, SecretError) as e:
            problems.append(str(e))
            continue
        if any(c.clientId == client.clientId for c, _ in found):
            problems.append(f"{what}: duplicate clientId {client.clientId!r}")
            continue
        found.append((client, token))
    return found, problems


def _config_client(item: dict, basedir: str | None, what: str) -> tuple[Client, Secret]:
    client_id = item.get("clientId")
    try:
        check_client_id(client_id)
    except InvalidClient as e:
        raise InvalidClient(f"{what}: {e}") from None
    what = f"client {client_id!r}"
    if "accessToken" not in item:
        raise InvalidClient(f"{what} has no accessToken")
    token = resolve_secret(item["accessToken"], basedir, f"{what}: accessToken")
    expires = parse_expires(item["expires"], what) if item.get("expires") is not None else NEVER
    client = Client(clientId=client_id, description=check_description(item.get("description", ""), what),
                    expires=expires, scopes=check_scopes(item.get("scopes", []), what), source=FROM_CONFIG)
    return client, token


def user_client(account: Account) -> tuple[Client, Secret] | None:
    """A ``c['users']`` user as a client: its password is its access token (a user with only
    a password hash or tokens cannot sign Hawk requests: Hawk needs the plain secret)."""
    if account.password is None or not CLIENT_ID_PATTERN.match(account.name):
        return None
    client = Client(clientId=account.name, description=f"user {account.name} of c['users']", expires=NEVER,
                    scopes=tuple(account.scopes), source=FROM_USERS)
    return client, account.password


# -- the store ----------------------------------------------------------------------------

@implementer(IClientStore)
class ClientStore:
    """master.cfg's clients (read-only) and the database's (``db.clients``).

    ``master_key`` (bytes) derives the key that encrypts database access tokens; without a
    database, only master.cfg's clients exist and ``create`` fails."""

    def __init__(self, clock: IReactorTime, db=None, accounts: list[Account] = (),
                 configured: list[tuple[Client, Secret]] = (), master_key: bytes | None = None):
        self.clock = clock
        self.db = db
        self._cipher = TokenCipher(master_key) if master_key else None
        self._static: dict[str, tuple[Client, Secret]] = {}
        self.configure(configured, accounts)

    def configure(self, configured: list[tuple[Client, Secret]], accounts: list[Account]) -> None:
        """Take master.cfg's clients and users (a reconfig); a ``c['clients']`` entry wins over a
        user of the same name."""
        static: dict[str, tuple[Client, Secret]] = {}
        for account in accounts:
            pair = user_client(account)
            if pair is not None:
                static[pair[0].clientId] = pair
        for client, token in configured:
            static[client.clientId] = (client, token)
        self._static = static

    def set_master_key(self, master_key: bytes) -> None:
        self._cipher = TokenCipher(master_key)

    # -- reads -------------------------------------------------------------------------------

    def get(self, client_id: str) -> defer.Deferred:
        return defer.ensureDeferred(self._get(client_id))

    async def _get(self, client_id: str) -> Client | None:
        static = self._static.get(client_id)
        if static is not None:
            return static[0]
        row = await self._row(client_id)
        return None if row is None else _client(row)

    async def _row(self, client_id: str) -> dict | None:
        if self.db is None or not isinstance(client_id, str):
            return None
        return await self.db.clients.get(client_id)

    def credentials(self, client_id: str) -> defer.Deferred:
        """Fires with ``(Client, access_token)`` or None: what Hawk checks a MAC with."""
        return defer.ensureDeferred(self._credentials(client_id))

    async def _credentials(self, client_id: str) -> tuple[Client, str] | None:
        static = self._static.get(client_id)
        if static is not None:
            return static[0], static[1].reveal()
        row = await self._row(client_id)
        if row is None or self._cipher is None:
            return None
        token = self._cipher.decrypt(client_id, row["access_token"])
        return None if token is None else (_client(row), token)

    def list(self, prefix: str | None = None, continuation: str | None = None,
             limit: int = MAX_LIST_LIMIT) -> defer.Deferred:
        return defer.ensureDeferred(self._list(prefix, continuation, limit))

    async def _list(self, prefix, continuation, limit):  # -> (clients, continuation)
        limit = max(1, min(int(limit or MAX_LIST_LIMIT), MAX_LIST_LIMIT))
        after = _decode_continuation(continuation)
        stored = await self.db.clients.list_after(prefix, after, limit + 1) if self.db is not None else []
        found = {row["client_id"]: _client(row) for row in stored}
        for client_id, (client, _) in self._static.items():
            if (prefix is None or client_id.startswith(prefix)) and (after is None or client_id > after):
                found.setdefault(client_id, client)
        ordered = [found[k] for k in sorted(found)][:limit + 1]
        if len(ordered) > limit:
            ordered = ordered[:limit]
            return ordered, _encode_continuation(ordered[-1].clientId)
        return ordered, None

    # -- writes ------------------------------------------------------------------------------

    def _writable(self, client_id: str) -> None:
        if client_id in self._static:
            raise ReadOnlyClient(f"client {client_id!r} is declared in master.cfg "
                                 f"({self._static[client_id][0].source}); change it there and reconfig")
        if self.db is None or self._cipher is None:
            raise ReadOnlyClient("this master has no database clients (no database or no clients key)")

    def create(self, client_id: str, expires: float, description: str = "", scopes=(),
               delete_on_expiration: bool = False) -> defer.Deferred:
        return defer.ensureDeferred(
            self._create(client_id, expires, description, scopes, delete_on_expiration))

    async def _create(self, client_id, expires, description, scopes, delete_on_expiration):
        check_client_id(client_id)
        self._writable(client_id)
        settings = _settings(client_id, expires, description, scopes, delete_on_expiration)
        token = new_access_token()
        now = self.clock.seconds()
        sealed = self._cipher.encrypt(client_id, token)
        created = await self.db.clients.create(client_id, sealed, now, **settings)
        if not created:
            raise ClientExists(f"client {client_id!r} already exists")
        return _client(await self.db.clients.get(client_id)), token

    def update(self, client_id: str, expires: float, description: str = "", scopes=(),
               delete_on_expiration: bool = False) -> defer.Deferred:
        return defer.ensureDeferred(
            self._update(client_id, expires, description, scopes, delete_on_expiration))

    async def _update(self, client_id, expires, description, scopes, delete_on_expiration):
        self._writable(client_id)
        settings = _settings(client_id, expires, description, scopes, delete_on_expiration)
        return await self._change(client_id, last_modified=self.clock.seconds(), **settings)

    def reset_access_token(self, client_id: str) -> defer.Deferred:
        return defer.ensureDeferred(self._reset(client_id))

    async def _reset(self, client_id):
        self._writable(client_id)
        token = new_access_token()
        client = await self._change(client_id, access_token=self._cipher.encrypt(client_id, token),
                                    last_rotated=self.clock.seconds())
        return client, token

    def enable(self, client_id: str) -> defer.Deferred:
        return defer.ensureDeferred(self._set_disabled(client_id, False))

    def disable(self, client_id: str) -> defer.Deferred:
        return defer.ensureDeferred(self._set_disabled(client_id, True))

    async def _set_disabled(self, client_id, disabled: bool):
        self._writable(client_id)
        return await self._change(client_id, disabled=disabled, last_modified=self.clock.seconds())

    async def _change(self, client_id: str, **values) -> Client:
        if not await self.db.clients.change(client_id, **values):
            raise UnknownClient(f"no client {client_id!r}")
        return _client(await self.db.clients.get(client_id))

    def delete(self, client_id: str) -> defer.Deferred:
        return defer.ensureDeferred(self._delete(client_id))

    async def _delete(self, client_id):
        self._writable(client_id)
        await self.db.clients.delete(client_id)

    def delete_expired(self) -> defer.Deferred:
        """Delete the database clients past their expiry that asked for it
        (``deleteOnExpiration``); fires with their ids."""
        return defer.ensureDeferred(self._delete_expired())

    async def _delete_expired(self):  # -> the deleted ids
        if self.db is None:
            return []
        gone = await self.db.clients.expired(self.clock.seconds())
        for client_id in gone:
            await self.db.clients.delete(client_id)
        return gone

    def used(self, client: Client) -> defer.Deferred:
        """Record that ``client`` authenticated (``lastDateUsed``, at most once an hour, as
        Taskcluster does, so that calls do not each write)."""
        now = self.clock.seconds()
        if client.read_only or self.db is None or now - client.lastDateUsed < LAST_USED_RESOLUTION_S:
            return defer.succeed(None)
        return defer.ensureDeferred(self.db.clients.change(client.clientId, last_date_used=now))


LAST_USED_RESOLUTION_S = 3600


def _settings(client_id, expires, description, scopes, delete_on_expiration) -> dict:
    what = f"client {client_id!r}"
    return {"expires": parse_expires(expires, what), "description": check_description(description, what),
            "scopes": list(check_scopes(list(scopes), what)),
            "delete_on_expiration": bool(delete_on_expiration)}


def _client(row: dict) -> Client:
    return Client(clientId=row["client_id"], description=row["description"], expires=row["expires"],
                  disabled=row["disabled"], scopes=tuple(row["scopes"]), created=row["created"],
                  lastModified=row["last_modified"], lastDateUsed=row["last_date_used"],
                  lastRotated=row["last_rotated"], deleteOnExpiration=row["delete_on_expiration"],
                  source=FROM_DB)


def _encode_continuation(client_id: str) -> str:
    return base64.urlsafe_b64encode(client_id.encode()).decode()


def _decode_continuation(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        client_id = base64.urlsafe_b64decode(token.encode("ascii")).decode()
        check_client_id(client_id)
    except (ValueError, InvalidClient):
        raise InvalidClient(f"bad continuationToken {token!r}") from None
    return client_id


@implementer(IScopeExpander)
class NoRoles:
    """No roles: a client holds exactly its own scopes."""

    def expand(self, scopes) -> defer.Deferred:
        return defer.succeed(sorted(set(scopes)))


__all__ = ["ClientStore", "NoRoles", "TokenCipher", "validate_clients", "user_client"]
