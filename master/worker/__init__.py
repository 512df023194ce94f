"""Buildbot's ``buildbot.worker``, for configs that import ``Worker`` from there
(``from buildbot.worker import Worker`` → ``from buildfarm.master.worker import Worker``)."""

from buildfarm.master.config import Worker

__all__ = ["Worker"]
