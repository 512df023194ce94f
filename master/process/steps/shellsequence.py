"""``ShellSequence``: several shell commands in one step, each a ``util.ShellArg`` with its
own log and result options; the step's result folds theirs as a build folds its steps'."""

from buildfarm.common.results import EXCEPTION, SUCCESS
from buildfarm.master.process.buildstep import BuildStep, ShellMixin
from buildfarm.master.process.properties import Renderable
from buildfarm.master.process.results import ResultComputingConfigMixin, computeResultAndTermination


class RenderedShellArg(ResultComputingConfigMixin):
    """A ``ShellArg`` with its properties rendered, as the step runs it."""

    def __init__(self, command=None, logname=None, **kwargs):
        self.command = command
        self.logname = logname
        self.unknown_args = sorted(k for k in kwargs if k not in self.resultConfig)
        for key, value in kwargs.items():
            if key in self.resultConfig:
                setattr(self, key, value)

    def problems(self) -> list[str]:
        """What is wrong with this ShellArg (once rendered: a renderable command is fine before)."""
        found = [f"the parameter {k!r} is not handled by ShellArg" for k in self.unknown_args]
        command = self.command
        if command is None:
            found.append("the 'command' parameter of ShellArg must not be None")
        elif not isinstance(command, str | list | Renderable) or (
                isinstance(command, list) and not all(isinstance(a, str | Renderable) for a in command)):
            found.append(f"{command!r} is an invalid command, it must be a string or a list of strings")
        not_bool = [k for k in self.resultConfig if not isinstance(getattr(self, k), bool)]
        if not_bool:
            found.append(f"ShellArg {', '.join(not_bool)} must be booleans")
        return found


class ShellArg(RenderedShellArg, Renderable):
    """One command of a ``ShellSequence``: ``command`` (a string or list), ``logname`` (the
    log its output goes to, "stdio" by default) and the result options (``haltOnFailure``,
    ``flunkOnFailure``, ``warnOnFailure``, ``warnOnWarnings``, ``flunkOnWarnings``)."""

    def render(self, properties) -> RenderedShellArg:
        rendered = RenderedShellArg(properties.render(self.command), properties.render(self.logname))
        rendered.unknown_args = self.unknown_args
        for key in self.resultConfig:
            setattr(rendered, key, properties.render(getattr(self, key)))
        return rendered


class ShellSequence(ShellMixin, BuildStep):
    """Runs ``commands`` (a list of ``ShellArg``, or a renderable giving one) in order."""

    default_name = "shellsequence"
    renderables = BuildStep.renderables + ("commands", "workdir", "env")

    def __init__(self, commands=None, **kwargs):
        self.commands = commands
        super().__init__(**self.setupShellMixin(kwargs, prohibitArgs=["command"]))

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if isinstance(self.commands, list):
            for arg in self.commands:
                if isinstance(arg, RenderedShellArg):
                    problems.extend(arg.problems())
                elif not isinstance(arg, Renderable):
                    problems.append(f"ShellSequence commands must be ShellArg objects, not {arg!r}")
        elif not isinstance(self.commands, Renderable):
            problems.append("ShellSequence needs commands, a list of util.ShellArg")
        return problems

    def shouldRunTheCommand(self, command) -> bool:  # noqa: N802 - Buildbot's name
        return bool(command)

    async def runShellSequence(self, commands) -> int:  # noqa: N802
        if not isinstance(commands, list) or not all(isinstance(a, RenderedShellArg) for a in commands):
            await self.addCompleteLog("err.text", f"commands rendered to {commands!r}, not ShellArgs\n")
            return EXCEPTION
        problems = [p for arg in commands for p in arg.problems()]
        if problems:
            await self.addCompleteLog("err.text", "".join(p + "\n" for p in problems))
            return EXCEPTION
        overall = SUCCESS
        for arg in commands:
            if not self.shouldRunTheCommand(arg.command):
                continue
            self.last_command = arg.command
            cmd = await self.makeRemoteShellCommand(command=arg.command, stdioLogName=arg.logname or "stdio")
            await self.runCommand(cmd)
            overall, terminate = computeResultAndTermination(arg, cmd.results(), overall)
            if terminate:
                break
        return overall

    async def run(self):
        return await self.runShellSequence(self.commands)
