"""Buildbot's ``buildbot.steps.trigger``."""

from buildfarm.master.process.steps.trigger import Trigger

__all__ = ["Trigger"]
