"""``ShellCommand``: run a command on the slave through the ``shell`` remote command.

It is a ``ShellMixin`` step as in Buildbot 4: ``command`` may be a class attribute of a
subclass, ``logfiles`` ({name: path} or {name: {"filename": path, "follow": bool}}) become
logs of the step (created when their first text arrives with ``lazylogfiles``), ``env`` may
be a renderable giving a dict, and ``descriptionSuffix`` follows the state string.
"""

from buildfarm.master.process.buildstep import BuildStep, ShellMixin
from buildfarm.master.process.properties import Renderable
from buildfarm.master.process.stepapi import DEFAULT_TIMEOUT_S

__all__ = ["DEFAULT_TIMEOUT_S", "ShellCommand"]


class ShellCommand(ShellMixin, BuildStep):
    """A command run in the builder's directory on the slave; its exit code is the result."""

    default_name = "shell"
    renderables = BuildStep.renderables + (
        "command", "workdir", "env", "timeout", "maxTime", "initialStdin", "logfiles",
    )

    def __init__(self, command=None, **kwargs):
        if command is not None:
            kwargs["command"] = command
        super().__init__(**self.setupShellMixin(kwargs))

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        command = self.command
        ok_list = isinstance(command, list | tuple) and command and all(
            isinstance(a, str | bytes | Renderable) for a in command
        )
        ok_text = isinstance(command, Renderable) or (isinstance(command, str) and command.strip())
        if not ok_text and not ok_list:
            problems.append(
                f"{type(self).__name__} needs a command string or list of strings, not {command!r}")
        if isinstance(self.env, dict) and any(
                not isinstance(k, str) or not isinstance(v, str | list | Renderable | None)
                for k, v in self.env.items()):
            problems.append(f"{type(self).__name__} env must map names to strings, lists or None")
        elif not isinstance(self.env, dict | Renderable):
            problems.append(f"{type(self).__name__} env must be a dict or a renderable giving one")
        if not isinstance(self.logfiles, dict | Renderable):
            problems.append(f"{type(self).__name__} logfiles must map log names to files")
        return problems

    def describe(self, done: bool = False) -> str:
        """A short human label: the description, else the command."""
        label = (self.descriptionDone if done else None) or self.description
        if label:
            return " ".join(label) if isinstance(label, list) else str(label)
        return self.command_text()

    async def run(self):
        cmd = await self.makeRemoteShellCommand()
        await self.runCommand(cmd)
        return self.evaluateCommand(cmd)

    def evaluateCommand(self, cmd) -> int:  # noqa: N802 - Buildbot's name
        """The step's result from its command (``decodeRC``)."""
        return cmd.results()
