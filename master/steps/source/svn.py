"""Buildbot's ``buildbot.steps.source.svn``."""

from buildfarm.master.process.steps.source.svn import SVN

__all__ = ["SVN"]
