"""Buildbot's ``buildbot.steps.cmake``."""

from buildfarm.master.process.steps.cmake import CMake

__all__ = ["CMake"]
