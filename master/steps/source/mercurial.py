"""Buildbot's ``buildbot.steps.source.mercurial``."""

from buildfarm.master.process.steps.source.mercurial import Mercurial

__all__ = ["Mercurial"]
