"""The commands this slave offers (what getCommands reports and startCommand can run)."""

from buildfarm.slave.commands.base import CommandRegistry
from buildfarm.slave.commands.fs import (
    CopyDirectory,
    GlobPath,
    ListDir,
    MakeDirectory,
    RemoveDirectory,
    RemoveFile,
    StatFile,
)
from buildfarm.slave.commands.isolated import IsolateArchive, RunIsolated
from buildfarm.slave.commands.shell import ShellCommand
from buildfarm.slave.commands.transfer import DownloadFile, UploadDirectory, UploadFile

COMMANDS = (
    ShellCommand,
    UploadFile, UploadDirectory, DownloadFile,
    MakeDirectory, RemoveDirectory, CopyDirectory, StatFile, GlobPath, ListDir, RemoveFile,
    RunIsolated, IsolateArchive,
)


def defaultRegistry() -> CommandRegistry:
    """A registry of every command this slave implements."""
    return CommandRegistry(COMMANDS)
