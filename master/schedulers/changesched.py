"""``ChangeScheduler``: the base of schedulers that look at changes.

It decides which changes concern the scheduler (``change_filter``, or ``branch``) and which
of those are important (``fileIsImportant``), and keeps the changes not yet built in
``db.state`` (key ``pending_changes``), grouped by a key its subclass chooses, so a master
restart (or a reconfig that replaces the scheduler) loses none.  It also remembers the last
change it saw (``last_changeid``): on activation it catches up with changes stored while it
was not running, and a change offered twice is looked at once.
"""

from typing import Any

from twisted.logger import Logger

from buildfarm.master.changes.change import Change
from buildfarm.master.changes.filter import ChangeFilter, NotABranch
from buildfarm.master.schedulers.base import Scheduler

log = Logger()

PENDING_KEY = "pending_changes"
LAST_CHANGE_KEY = "last_changeid"

TimerKey = tuple


class ChangeScheduler(Scheduler):
    """Chooses changes and remembers the ones not built yet."""

    wants_changes = True
    # Whether ``branch`` and ``change_filter`` may be given together (a change must pass both).
    branch_with_filter = False

    def __init__(self, name, builderNames, change_filter=None, branch=NotABranch,  # noqa: N803
                 fileIsImportant=None, onlyImportant=False, reason=None, properties=None,  # noqa: N803
                 priority=0, codebases=None, **kwargs):
        super().__init__(name, builderNames, properties=properties, priority=priority)
        self.change_filter = change_filter
        self.branch = branch
        self.fileIsImportant = fileIsImportant
        self.onlyImportant = onlyImportant
        self.reason = reason if reason is not None else \
            f"The {type(self).__name__} scheduler named '{name}' triggered this build"
        self.codebases = codebases
        self.unknown_args = sorted(kwargs)
        self._last_changeid = 0
        self._pending: list[tuple[TimerKey, int, bool]] = []

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        kind = type(self).__name__
        problems += [f"{kind} got an unknown argument {a!r}" for a in self.unknown_args]
        if self.change_filter is not None:
            if not isinstance(self.change_filter, ChangeFilter):
                problems.append(f"{kind} {self.name!r}: change_filter must be a util.ChangeFilter, "
                                f"not {self.change_filter!r}")
            else:
                problems += self.change_filter.config_problems()
                if self.branch is not NotABranch and not self.branch_with_filter:
                    problems.append(f"{kind} {self.name!r}: give branch or change_filter, not both")
        if self.fileIsImportant is not None and not callable(self.fileIsImportant):
            problems.append(f"{kind} {self.name!r}: fileIsImportant must be callable")
        if not isinstance(self.reason, str):
            problems.append(f"{kind} {self.name!r}: reason must be a string")
        return problems

    # -- choosing changes -------------------------------------------------------------------

    def wants(self, change: Change) -> bool:
        """Whether the change concerns this scheduler (its filter or branch)."""
        if self.change_filter is not None and not self.change_filter.filter_change(change):
            return False
        return self.branch is NotABranch or change.branch == self.branch

    def is_important(self, change: Change) -> bool:
        return self.fileIsImportant is None or bool(self.fileIsImportant(change))

    # -- running ---------------------------------------------------------------------------

    async def started(self) -> None:
        self._last_changeid = await self.get_state(LAST_CHANGE_KEY, 0) or 0
        self._pending = [(tuple(key), changeid, important) for key, changeid, important
                         in await self.get_state(PENDING_KEY, []) or []]
        if self._last_changeid:
            for row in await self.master.db.changes.get_after(self._last_changeid):
                await self._consider(Change.from_dict(row))

    async def got_change(self, row: dict) -> None:
        """The manager offers every new change (a ``db.changes`` row)."""
        await self._locked(self._consider, Change.from_dict(row))

    async def _consider(self, change: Change) -> None:
        if change.changeid <= self._last_changeid:
            return
        self._last_changeid = change.changeid
        await self.set_state(LAST_CHANGE_KEY, change.changeid)
        if not self.wants(change):
            return
        important = self.is_important(change)
        if self.onlyImportant and not important:
            return
        await self.change_arrived(change, important)

    async def change_arrived(self, change: Change, important: bool) -> None:
        """A change this scheduler wants arrived (called under the lock)."""
        raise NotImplementedError

    # -- changes waiting to be built ---------------------------------------------------------

    def pending_keys(self) -> list[TimerKey]:
        return sorted({key for key, _, _ in self._pending}, key=repr)

    def has_important(self, key: TimerKey) -> bool:
        return any(k == key and important for k, _, important in self._pending)

    async def remember(self, key: TimerKey, change: Change, important: bool) -> None:
        self._pending.append((key, change.changeid, important))
        await self._save_pending()

    async def take_pending(self, key: TimerKey) -> tuple[list[Change], bool]:
        """Forget the changes waiting under ``key``; return them (oldest first) and whether
        any was important."""
        taken = [(changeid, important) for k, changeid, important in self._pending if k == key]
        self._pending = [p for p in self._pending if p[0] != key]
        await self._save_pending()
        changes = []
        for changeid, _ in sorted(taken):
            row = await self.master.db.changes.get(changeid)
            if row is not None:
                changes.append(Change.from_dict(row))
        return changes, any(important for _, important in taken)

    async def _save_pending(self) -> None:
        await self.set_state(PENDING_KEY, [[list(k), c, i] for k, c, i in self._pending])

    async def add_buildset_for_changes(self, changes: list[Change],
                                       extra: dict[str, Any] | None = None) -> tuple[int, dict]:
        """A buildset for ``changes`` (oldest first): their properties, then the newest one's
        source (branch, revision, repository, project, codebase), then ``changeids``."""
        properties: dict[str, Any] = dict(extra or {})
        for change in changes:
            properties.update(change.properties)
        if changes:
            properties.update(changes[-1].source_properties())
            properties["changeids"] = [c.changeid for c in changes]
        return await self.add_buildset(self.reason, properties)
