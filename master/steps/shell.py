"""Buildbot's ``buildbot.steps.shell``."""

from buildfarm.master.process.steps.compile import (
    Compile,
    Configure,
    Test,
    WarningCountingShellCommand,
)
from buildfarm.master.process.steps.properties import SetPropertyFromCommand
from buildfarm.master.process.steps.shell import ShellCommand

__all__ = ["Compile", "Configure", "SetPropertyFromCommand", "ShellCommand", "Test",
           "WarningCountingShellCommand"]
