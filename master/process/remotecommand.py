"""Buildbot's ``buildbot.process.remotecommand`` for custom steps: ``RemoteCommand(name, args)``
and ``RemoteShellCommand(workdir, command, ...)``, run with the step's ``runCommand``."""

from buildfarm.master.process.stepapi import RemoteCommand, RemoteShellCommand

__all__ = ["RemoteCommand", "RemoteShellCommand"]
