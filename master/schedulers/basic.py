"""``SingleBranchScheduler`` and ``AnyBranchScheduler``: build when changes arrive.

Without ``treeStableTimer`` every important change gets its own buildset at once (and
unimportant ones are ignored).  With it, a change starts (or an important change restarts)
a timer; when the tree has been quiet for ``treeStableTimer`` seconds, one buildset covers
every change seen meanwhile, if any of them was important.  A SingleBranchScheduler has one
such timer; an AnyBranchScheduler one per (codebase, project, repository, branch).
"""

from buildfarm.master.changes.change import Change
from buildfarm.master.changes.filter import NotABranch
from buildfarm.master.schedulers.base import is_positive_number
from buildfarm.master.schedulers.changesched import ChangeScheduler, TimerKey


class _TreeStableScheduler(ChangeScheduler):
    """A ChangeScheduler with Buildbot's tree-stable timer(s)."""

    def __init__(self, name, builderNames, treeStableTimer=None, **kwargs):  # noqa: N803
        super().__init__(name, builderNames, **kwargs)
        self.treeStableTimer = treeStableTimer
        self._timers: dict[TimerKey, object] = {}

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        timer = self.treeStableTimer
        if timer is not None and not is_positive_number(timer):
            problems.append(f"{type(self).__name__} {self.name!r}: treeStableTimer must be a positive "
                            f"number of seconds or None, not {timer!r}")
        return problems

    def timer_key(self, change: Change) -> TimerKey:
        raise NotImplementedError

    async def started(self) -> None:
        await super().started()
        if not self.treeStableTimer:
            if self.pending_keys():  # left by a configuration that had a timer: build at once
                for key in self.pending_keys():
                    await self._tree_stable(key)
            return
        for key in self.pending_keys():  # changes a previous run saw but did not build yet
            if self.has_important(key):
                self._restart_timer(key)

    async def stopped(self) -> None:
        self._timers.clear()  # the base class cancelled the calls

    async def change_arrived(self, change: Change, important: bool) -> None:
        if not self.treeStableTimer:
            if important:
                await self.add_buildset_for_changes([change])
            return
        key = self.timer_key(change)
        await self.remember(key, change, important)
        if important or key in self._timers:
            self._restart_timer(key)

    def _restart_timer(self, key: TimerKey) -> None:
        call = self._timers.pop(key, None)
        if call is not None and call.active():
            call.cancel()
        self._timers[key] = self.call_later(self.treeStableTimer, self._tree_stable, key)

    async def _tree_stable(self, key: TimerKey) -> None:
        self._timers.pop(key, None)
        changes, important = await self.take_pending(key)
        if important and changes:
            await self.add_buildset_for_changes(changes)


class SingleBranchScheduler(_TreeStableScheduler):
    """Builds changes of one branch (``branch=``, or a ``change_filter``)."""

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if self.branch is NotABranch and self.change_filter is None:
            problems.append(f"SingleBranchScheduler {self.name!r} needs branch=... "
                            "(None for the default branch) or change_filter=...")
        return problems

    def timer_key(self, change: Change) -> TimerKey:
        return ("only",)


class AnyBranchScheduler(_TreeStableScheduler):
    """Builds changes of any branch its ``change_filter`` lets through, each branch apart."""

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if self.branch is not NotABranch:
            problems.append(f"AnyBranchScheduler {self.name!r} takes no branch; "
                            "use change_filter=util.ChangeFilter(branch=...)")
        return problems

    def timer_key(self, change: Change) -> TimerKey:
        return (change.codebase, change.project, change.repository, change.branch)
