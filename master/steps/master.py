"""Buildbot's ``buildbot.steps.master``: steps that run on the master."""

from buildfarm.master.process.steps.mastershell import MasterShellCommand
from buildfarm.master.process.steps.properties import SetProperties, SetProperty

__all__ = ["MasterShellCommand", "SetProperties", "SetProperty"]
