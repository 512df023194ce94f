"""Buildbot's ``buildbot.steps.source.gitlab``."""

from buildfarm.master.process.steps.source.git import GitLab

__all__ = ["GitLab"]
