"""The commands this slave offers (what getCommands reports and startCommand can run)."""

from buildfarm.slave.commands.base import CommandRegistry
from buildfarm.slave.commands.shell import ShellCommand


def defaultRegistry() -> CommandRegistry:
    """A registry of every command this slave implements."""
    return CommandRegistry([ShellCommand])
