"""Buildbot's ``buildbot.locks``, for configs that import the locks from there
(``from buildbot import locks`` → ``from buildfarm.master import locks``)."""

from buildfarm.master.process.locks import LockAccess, MasterLock, SlaveLock

WorkerLock = SlaveLock

__all__ = ["LockAccess", "MasterLock", "SlaveLock", "WorkerLock"]
