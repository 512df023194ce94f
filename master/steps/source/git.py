"""Buildbot's ``buildbot.steps.source.git``."""

from buildfarm.master.process.steps.source.git import Git

__all__ = ["Git"]
