"""Locks: ``util.MasterLock`` and ``util.SlaveLock``, counting or exclusive, per build or step.

The config objects (``MasterLock('db', maxCount=2)``, ``lock.access('exclusive')``) are
plain data; ``LockManager`` holds the real lock state of the running master: one
``RealLock`` per master lock, and one per (slave lock, slave) pair.  A counting access
shares the lock with up to ``maxCount`` holders; an exclusive access holds it alone.
"""

from collections.abc import Iterable

from twisted.internet import defer

from buildfarm.master.configobject import ConfigObject

ACCESS_MODES = ("counting", "exclusive")


class LockAccess:
    """One use of a lock: the lock and the mode (``counting`` or ``exclusive``)."""

    def __init__(self, lock: "BaseLock", mode: str):
        self.lock = lock
        self.mode = mode


class BaseLock(ConfigObject):
    """A named lock declared in master.cfg."""

    kind = "lock"

    def __init__(self, name: str, maxCount: int = 1):  # noqa: N803 - Buildbot's names
        self._remember_config_line()
        self.name = name
        self.maxCount = maxCount

    def access(self, mode: str) -> LockAccess:
        """How a build or step uses the lock: ``'counting'`` or ``'exclusive'``."""
        return LockAccess(self, mode)

    def defaultAccess(self) -> LockAccess:  # noqa: N802
        return LockAccess(self, "counting")

    def max_count_for(self, slavename: str | None) -> int:
        return self.maxCount

    def key(self, slavename: str | None) -> tuple:
        return (self.kind, self.name)

    def config_problems(self) -> list[str]:
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"{type(self).__name__} needs a name")
        if not isinstance(self.maxCount, int) or self.maxCount < 1:
            problems.append(f"lock {self.name!r}: maxCount must be a whole number >= 1")
        return problems


class MasterLock(BaseLock):
    """One lock for the whole master."""

    kind = "master"


class SlaveLock(BaseLock):
    """One lock per slave; ``maxCountForSlave`` overrides ``maxCount`` for some slaves."""

    kind = "slave"

    def __init__(self, name: str, maxCount: int = 1, maxCountForSlave=None,  # noqa: N803
                 maxCountForWorker=None):  # noqa: N803
        super().__init__(name, maxCount)
        self.maxCountForSlave = dict(maxCountForSlave or maxCountForWorker or {})

    def max_count_for(self, slavename: str | None) -> int:
        return self.maxCountForSlave.get(slavename, self.maxCount)

    def key(self, slavename: str | None) -> tuple:
        return (self.kind, self.name, slavename)


def as_access(item) -> LockAccess:
    """A lock given bare means counting access, as in Buildbot."""
    return item if isinstance(item, LockAccess) else item.defaultAccess()


class RealLock:
    """The state of one lock: who holds it and how."""

    def __init__(self, max_count: int):
        self.max_count = max_count
        self.holders: list[tuple[object, str]] = []
        self.waiters: list[defer.Deferred] = []

    def available(self, mode: str) -> bool:
        if mode == "exclusive":
            return not self.holders
        return len(self.holders) < self.max_count and all(m == "counting" for _, m in self.holders)

    def claim(self, owner: object, mode: str) -> None:
        self.holders.append((owner, mode))

    def release(self, owner: object, mode: str) -> None:
        self.holders.remove((owner, mode))
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            d.callback(None)

    def changed(self) -> defer.Deferred:
        """Fires the next time the lock is released."""
        d: defer.Deferred = defer.Deferred()
        self.waiters.append(d)
        return d


class LockManager:
    """The master's real locks, created on first use."""

    def __init__(self):
        self._locks: dict[tuple, RealLock] = {}

    def real(self, access: LockAccess, slavename: str | None) -> RealLock:
        key = access.lock.key(slavename)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = RealLock(access.lock.max_count_for(slavename))
        return lock

    def available(self, accesses: Iterable[LockAccess], slavename: str | None) -> bool:
        """Whether every access could be claimed now."""
        return all(self.real(a, slavename).available(a.mode) for a in accesses)

    def claim(self, owner: object, accesses: Iterable[LockAccess], slavename: str | None) -> None:
        for access in accesses:
            self.real(access, slavename).claim(owner, access.mode)

    def release(self, owner: object, accesses: Iterable[LockAccess], slavename: str | None) -> None:
        for access in accesses:
            self.real(access, slavename).release(owner, access.mode)

    async def acquire(self, owner: object, accesses: list[LockAccess], slavename: str | None) -> None:
        """Wait until every access is available, then claim them all at once."""
        while not self.available(accesses, slavename):
            blocked = next(a for a in accesses if not self.real(a, slavename).available(a.mode))
            await self.real(blocked, slavename).changed()
        self.claim(owner, accesses, slavename)

    def holders(self, lock: BaseLock, slavename: str | None = None) -> int:
        """How many hold the lock now (for tests and the API)."""
        key = lock.key(slavename)
        return len(self._locks[key].holders) if key in self._locks else 0
