"""``RoleStore``: the Taskcluster roles the auth service holds (``master.auth.roles``), and how a
caller's own scopes become the scopes it holds (``expand``: ``assume:<roleId>`` expanded through
the roles, master/auth/scopes.py).

Roles come from two places:

- master.cfg: ``c['roles'] = [{'roleId': 'project:ci', 'scopes': [...], 'description': '...'}]``,
  read-only (the Auth API reads them; a change is a reconfig);
- the database (``roles`` table, master/db/roles.py), made through the Auth API's
  ``createRole``, ``updateRole`` and ``deleteRole``.

The store keeps every role in memory with a ``RoleIndex`` over them, so that an expansion costs
no database call; it is rebuilt after each change (and each reconfig), read from the database at
start and read again every ``RELOAD_INTERVAL_S`` (the roles another master of the same database
created, changed or deleted).  A change refused because it would make expansion endless (a parameterized
role feeding itself) leaves the roles as they were.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.auth.scopes import (
    ExpansionTooLarge,
    RoleIndex,
    ScopeError,
    check_expansion_ends,
    check_role,
)

try:  # i20-hawk's interface (master/auth/interfaces.py); the store provides it once it exists
    from buildfarm.master.auth.interfaces import IScopeExpander
except ImportError:  # pragma: no cover - before the merge
    from zope.interface import Interface as IScopeExpander

log = Logger()

ROLES_SOURCE = "c['roles']"
RELOAD_INTERVAL_S = 30.0  # how stale another master's role changes may be here
DB_SOURCE = "database"
MAX_DESCRIPTION_CHARS = 10_000  # Taskcluster's limit on a role's description
ROLE_KEYS = frozenset({"roleId", "scopes", "description"})


class RoleError(Exception):
    """A role operation that cannot be done; ``status`` is what an HTTP API answers."""

    status = 400


class UnknownRole(RoleError):
    status = 404


class RoleExists(RoleError):
    status = 409


class ReadOnlyRole(RoleError):
    """The role is declared in master.cfg: only a reconfig changes it."""

    status = 409


@dataclass(frozen=True)
class Role:
    """One role: its own scopes (before expansion), where it comes from, and its times (POSIX
    seconds; 0 for master.cfg's roles)."""

    roleId: str  # noqa: N815 - Taskcluster's field names
    scopes: tuple[str, ...]
    description: str = ""
    created: float = 0.0
    lastModified: float = 0.0  # noqa: N815
    source: str = DB_SOURCE

    @property
    def read_only(self) -> bool:
        return self.source != DB_SOURCE


def validate_roles(items: object) -> tuple[list[Role], list[str]]:
    """The roles of ``c['roles']`` and every problem found in it."""
    if items is None:
        return [], []
    if not isinstance(items, list | tuple):
        return [], ["c['roles'] must be a list of {'roleId': ..., 'scopes': [...], 'description': ...}"]
    found: list[Role] = []
    problems: list[str] = []
    for item in items:
        if not isinstance(item, dict):
            problems.append(f"c['roles'] holds {item!r}, not a dict with 'roleId' and 'scopes'")
            continue
        unknown = sorted(set(item) - ROLE_KEYS)
        if unknown:
            problems.append(f"c['roles']: role {item.get('roleId')!r} has unknown keys {unknown} "
                            f"(a role has {sorted(ROLE_KEYS)})")
        try:
            role = make_role(item.get("roleId"), item.get("scopes", []), item.get("description", ""),
                             0.0, ROLES_SOURCE)
        except RoleError as e:
            problems.append(f"c['roles']: {e}")
            continue
        if any(r.roleId == role.roleId for r in found):
            problems.append(f"c['roles']: duplicate roleId {role.roleId!r}")
            continue
        found.append(role)
    if not problems:
        try:
            _index_of(found)
        except ExpansionTooLarge as e:
            problems.append(f"c['roles']: {e}")
    return found, problems


def make_role(role_id: object, scopes: object, description: object, now: float, source: str) -> Role:
    """A checked ``Role``; ``RoleError`` saying what is wrong."""
    try:
        checked = check_role(role_id, scopes)
    except ScopeError as e:
        raise RoleError(str(e)) from None
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION_CHARS:
        raise RoleError(f"role {role_id!r}: description must be a string of at most "
                        f"{MAX_DESCRIPTION_CHARS} characters")
    return Role(role_id, tuple(dict.fromkeys(checked)), description, now, now, source)


def _index_of(roles: Iterable[Role]) -> RoleIndex:
    """The index of ``roles``, after checking that expanding every one of them ends."""
    index = RoleIndex({r.roleId: r.scopes for r in roles})
    check_expansion_ends(index)
    return index


@implementer(IScopeExpander)
class RoleStore:
    """master.cfg's roles and the database's, in memory; ``expand`` turns scopes into what
    they hold.  ``db`` is the master's DBConnector (None: master.cfg's roles only)."""

    def __init__(self, clock: IReactorTime, db=None, configured: Iterable[Role] = ()):
        self.clock = clock
        self.db = db
        self._configured = {r.roleId: r for r in configured}
        self._stored: dict[str, Role] = {}
        self._roles: dict[str, Role] = {}
        self._reloader: task.LoopingCall | None = None
        self.index = RoleIndex({})
        self._rebuild()

    # -- loading ---------------------------------------------------------------------------

    def configure(self, configured: Iterable[Role]) -> None:
        """Take a new configuration's roles (a stored role of the same id is hidden by it)."""
        self._configured = {r.roleId: r for r in configured}
        self._rebuild()

    async def load(self) -> None:
        """Read the database's roles (at start, then every ``RELOAD_INTERVAL_S``)."""
        if self.db is None:
            return
        rows = await self.db.roles.get_all()
        stored = {row["roleId"]: _from_row(row) for row in rows}
        try:
            self._rebuild(stored)
        except ExpansionTooLarge as e:  # written by another master's bad code or by hand
            log.error("roles: the database's roles were not taken: {why}", why=str(e))

    async def start(self) -> None:
        """Load the roles, then reload them every ``RELOAD_INTERVAL_S`` until ``stop``."""
        await self.load()
        self._reloader = task.LoopingCall(self._reload)
        self._reloader.clock = self.clock
        self._reloader.start(RELOAD_INTERVAL_S, now=False)

    def stop(self) -> None:
        reloader, self._reloader = self._reloader, None
        if reloader is not None and reloader.running:
            reloader.stop()

    def _reload(self) -> defer.Deferred:
        d = defer.ensureDeferred(self.load())
        d.addErrback(lambda f: log.failure("roles: reading the database's roles failed", f))
        return d

    def _rebuild(self, stored: dict[str, Role] | None = None) -> None:
        stored = self._stored if stored is None else stored
        merged = dict(stored)
        merged.update(self._configured)
        self.index = _index_of(merged.values())
        self._stored = stored
        self._roles = merged

    # -- reading ---------------------------------------------------------------------------

    def expand_now(self, scopes: Iterable[str]) -> list[str]:
        """``scopes`` expanded through the roles, normalised (master/auth/scopes.py)."""
        return self.index.expand(scopes)

    def expand(self, scopes: Iterable[str]) -> defer.Deferred:
        """``IScopeExpander``: fires with ``expand_now(scopes)`` (the roles are in memory)."""
        return defer.succeed(self.expand_now(scopes))

    def get(self, role_id: str) -> Role | None:
        return self._roles.get(role_id)

    def all(self) -> list[Role]:
        """Every role, sorted by id."""
        return [self._roles[r] for r in sorted(self._roles)]

    # -- changing (database roles only) -----------------------------------------------------

    async def create(self, role_id: str, description: str, scopes: list[str]) -> Role:
        """A new database role; ``RoleExists`` when the id is taken (the same role again is
        answered as it is, as Taskcluster does), ``RoleError`` for a bad one."""
        role = make_role(role_id, scopes, description, self.clock.seconds(), DB_SOURCE)
        existing = self._roles.get(role_id)
        if existing is not None:
            if existing.scopes == role.scopes and existing.description == role.description:
                return existing
            raise self._taken(existing)
        self._check_expansion({**self._stored, role_id: role})
        if self.db is not None:
            from buildfarm.master.db.roles import RoleExists as StoredRoleExists

            try:
                await self.db.roles.add(role_id, role.description, list(role.scopes), role.created)
            except StoredRoleExists:
                raise RoleExists(f"role {role_id!r} already exists") from None
        self._rebuild({**self._stored, role_id: role})
        return role

    async def update(self, role_id: str, description: str, scopes: list[str]) -> Role:
        """Replace a database role's description and scopes."""
        existing = self._writable(role_id)
        changed = make_role(role_id, scopes, description, self.clock.seconds(), DB_SOURCE)
        role = Role(role_id, changed.scopes, changed.description, existing.created, changed.lastModified)
        self._check_expansion({**self._stored, role_id: role})
        if self.db is not None and not await self.db.roles.update(role_id, role.description,
                                                                  list(role.scopes), role.lastModified):
            raise UnknownRole(f"no role {role_id!r}")
        self._rebuild({**self._stored, role_id: role})
        return role

    async def delete(self, role_id: str) -> None:
        """Delete a database role; a missing one is not an error (as in Taskcluster)."""
        existing = self._roles.get(role_id)
        if existing is None:
            return
        if existing.read_only:
            raise self._read_only(existing)
        if self.db is not None:
            await self.db.roles.delete(role_id)
        self._rebuild({r: v for r, v in self._stored.items() if r != role_id})

    def _writable(self, role_id: str) -> Role:
        existing = self._roles.get(role_id)
        if existing is None:
            raise UnknownRole(f"no role {role_id!r}")
        if existing.read_only:
            raise self._read_only(existing)
        return existing

    def _check_expansion(self, stored: dict[str, Role]) -> None:
        merged = {**stored, **self._configured}
        try:
            _index_of(merged.values())
        except ExpansionTooLarge as e:
            raise RoleError(f"refused: with this role, {e}") from None

    @staticmethod
    def _taken(existing: Role) -> RoleError:
        if existing.read_only:
            return ReadOnlyRole(f"role {existing.roleId!r} is declared in master.cfg (c['roles'])")
        return RoleExists(f"role {existing.roleId!r} already exists with other scopes or description")

    @staticmethod
    def _read_only(existing: Role) -> RoleError:
        return ReadOnlyRole(f"role {existing.roleId!r} is declared in master.cfg (c['roles']): "
                            f"change it there and reconfigure")


def _from_row(row: dict) -> Role:
    return Role(row["roleId"], tuple(row["scopes"]), row["description"], row["created"],
                row["lastModified"], DB_SOURCE)
