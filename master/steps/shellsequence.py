"""Buildbot's ``buildbot.steps.shellsequence``."""

from buildfarm.master.process.steps.shellsequence import ShellArg, ShellSequence

__all__ = ["ShellArg", "ShellSequence"]
