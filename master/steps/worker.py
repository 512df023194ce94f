"""Buildbot's ``buildbot.steps.worker``: filesystem steps on the slave."""

from buildfarm.master.process.steps.fs import CopyDirectory, FileExists, MakeDirectory, RemoveDirectory
from buildfarm.master.process.steps.properties import SetPropertiesFromEnv

__all__ = ["CopyDirectory", "FileExists", "MakeDirectory", "RemoveDirectory", "SetPropertiesFromEnv"]
