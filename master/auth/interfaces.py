"""``IClientStore``: the Taskcluster-style clients the auth service knows (``master.auth.clients``),
``Client``: one of them as the Auth API shows it, and ``IScopeExpander``: how a client's own
scopes become the scopes it holds (roles; ``assume:<role>``).

Clients come from two places: ``c['clients']`` in master.cfg (read-only: the API may read them,
never change them; a change is a reconfig) and the database (``clients`` table, made through the
Auth API's ``createClient``).  Every ``c['users']`` user is also a read-only client whose access
token is its password.  A database client's access token is stored encrypted (see
docs/security.md, "Clients and Hawk"): Hawk needs the plain token to check a MAC.

Every method returns a Deferred and never blocks the reactor.  Times are POSIX seconds (floats)
from the master's clock; ``Client.to_json`` renders Taskcluster's ISO-8601 shape.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from zope.interface import Interface

# Where a client comes from.
FROM_CONFIG = "c['clients']"
FROM_USERS = "c['users']"
FROM_DB = "database"

# The most clients one ``list`` call answers (Taskcluster's listClients pages at 1000 too).
MAX_LIST_LIMIT = 1000


class ClientError(Exception):
    """A client operation that cannot be done; ``status`` is the HTTP status an API answers."""

    status = 400


class UnknownClient(ClientError, KeyError):
    """No client has this id (404)."""

    status = 404

    def __str__(self) -> str:
        return Exception.__str__(self)


class ClientExists(ClientError):
    """``create`` of an id that is taken by a client with other settings (409)."""

    status = 409


class ReadOnlyClient(ClientError):
    """The client is declared in master.cfg (``c['clients']`` or ``c['users']``): only a
    reconfig changes it (409)."""

    status = 409


class InvalidClient(ClientError):
    """A bad client id, scope, description or expiry (400)."""

    status = 400


@dataclass(frozen=True)
class Client:
    """One client, without its access token.  ``scopes`` are its own scopes, before role
    expansion (``IScopeExpander`` gives the expanded ones)."""

    clientId: str  # noqa: N815 - Taskcluster's field names
    description: str = ""
    expires: float = 0.0  # POSIX seconds; the client cannot authenticate from then on
    disabled: bool = False
    scopes: tuple[str, ...] = ()
    created: float = 0.0
    lastModified: float = 0.0  # noqa: N815
    lastDateUsed: float = 0.0  # noqa: N815
    lastRotated: float = 0.0  # noqa: N815
    deleteOnExpiration: bool = False  # noqa: N815
    source: str = FROM_DB  # FROM_CONFIG, FROM_USERS or FROM_DB
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def read_only(self) -> bool:
        return self.source != FROM_DB

    def expired(self, now: float) -> bool:
        return self.expires <= now

    def to_json(self, expanded_scopes: list[str] | None = None) -> dict:
        """Taskcluster's client shape (``auth.client``): ISO dates, ``expandedScopes`` when
        given (the caller expands them with the roles)."""
        body = {
            "clientId": self.clientId,
            "description": self.description,
            "expires": iso(self.expires),
            "disabled": self.disabled,
            "scopes": list(self.scopes),
            "created": iso(self.created),
            "lastModified": iso(self.lastModified),
            "lastDateUsed": iso(self.lastDateUsed),
            "lastRotated": iso(self.lastRotated),
            "deleteOnExpiration": self.deleteOnExpiration,
        }
        if expanded_scopes is not None:
            body["expandedScopes"] = list(expanded_scopes)
        return body


def iso(seconds: float) -> str:
    """Taskcluster's date format: ``2026-12-04T21:00:00.000Z``."""
    stamp = datetime.fromtimestamp(seconds, UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_iso(value) -> float | None:
    """POSIX seconds of an ISO-8601 date with a zone (``iso``'s format, or any offset); None for
    anything else (not a string, not a date, no zone)."""
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp.timestamp() if stamp.tzinfo is not None else None


class IClientStore(Interface):
    """The clients: master.cfg's (read-only) and the database's.  ``master.auth.clients``."""

    def get(client_id):
        """Fires with the ``Client`` named ``client_id``, or None."""

    def list(prefix=None, continuation=None, limit=MAX_LIST_LIMIT):
        """Fires with ``(clients, continuation)``: at most ``limit`` clients whose id starts
        with ``prefix`` (all when None), sorted by id, after the point ``continuation`` (an
        opaque string from a previous call) marks; the next ``continuation``, or None when
        there are no more.  A bad ``continuation`` errbacks with ``InvalidClient``."""

    def create(client_id, expires, description="", scopes=(), delete_on_expiration=False):
        """Create a database client; fires with ``(Client, access_token)`` (the token, 44
        characters of URL-safe base64, is shown this once).  ``ClientExists`` when the id is
        taken, ``ReadOnlyClient`` when master.cfg declares it, ``InvalidClient`` for a bad id
        (Taskcluster's ``^[A-Za-z0-9!@/:.+|_-]+$``), scope or expiry.  The caller checks that
        the creator holds ``auth:create-client:<id>`` and the scopes (no escalation)."""

    def update(client_id, expires, description="", scopes=(), delete_on_expiration=False):
        """Replace a database client's settings; fires with the new ``Client``.
        ``UnknownClient``, ``ReadOnlyClient``, ``InvalidClient``."""

    def reset_access_token(client_id):
        """A new access token for a database client; fires with ``(Client, access_token)``.
        Every credential made with the old token (Hawk calls, temporary credentials it
        issued) stops working at once.  ``UnknownClient``, ``ReadOnlyClient``."""

    def enable(client_id):
        """Fires with the ``Client``, enabled.  ``UnknownClient``, ``ReadOnlyClient``."""

    def disable(client_id):
        """Fires with the ``Client``, disabled: it and every temporary credential it issued
        stop authenticating at once.  ``UnknownClient``, ``ReadOnlyClient``."""

    def delete(client_id):
        """Delete a database client (a missing one is not an error, as in Taskcluster); fires
        with None.  ``ReadOnlyClient`` for a master.cfg client."""


class IScopeExpander(Interface):
    """Turns a client's own scopes into the scopes it holds (``assume:<role>`` expanded
    with the roles).  The auth service holds one as ``master.auth.scope_expander``; until
    roles exist it is the identity (``NoRoles``)."""

    def expand(scopes):
        """Fires with the expanded scopes (a list of strings) of ``scopes``."""
