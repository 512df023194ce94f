"""Buildbot's ``buildbot.steps.source.github``."""

from buildfarm.master.process.steps.source.git import GitHub

__all__ = ["GitHub"]
