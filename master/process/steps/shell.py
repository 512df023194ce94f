"""``ShellCommand``: run a command on the slave through the ``shell`` remote command."""

import shlex

from buildfarm.common.results import FAILURE, SUCCESS, result_name
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.properties import Renderable

DEFAULT_TIMEOUT_S = 1200


class ShellCommand(BuildStep):
    """A command run in the builder's directory on the slave; its exit code is the result."""

    default_name = "shell"
    renderables = BuildStep.renderables + ("command", "workdir", "env", "timeout", "maxTime", "initialStdin")

    def __init__(
        self, command, workdir=None, env=None, timeout=DEFAULT_TIMEOUT_S, maxTime=None,  # noqa: N803
        logEnviron=True, usePTY=False, sigtermTime=None, interruptSignal="KILL",  # noqa: N803
        decodeRC=None, want_stdout=True, want_stderr=True, initialStdin=None,  # noqa: N803
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.command = command
        self.workdir = workdir
        self.env = dict(env or {})
        self.timeout = timeout
        self.maxTime = maxTime
        self.logEnviron = logEnviron
        self.usePTY = usePTY
        self.sigtermTime = sigtermTime
        self.interruptSignal = interruptSignal
        self.decodeRC = dict(decodeRC or {0: SUCCESS})
        self.want_stdout = want_stdout
        self.want_stderr = want_stderr
        self.initialStdin = initialStdin

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        command = self.command
        ok_list = isinstance(command, list | tuple) and command and all(
            isinstance(a, str | bytes | Renderable) for a in command
        )
        ok_text = isinstance(command, Renderable) or (isinstance(command, str) and command.strip())
        if not ok_text and not ok_list:
            problems.append(f"ShellCommand needs a command string or list of strings, not {command!r}")
        if any(not isinstance(k, str) or not isinstance(v, str | list | Renderable | None)
               for k, v in self.env.items()):
            problems.append("ShellCommand env must map names to strings, lists or None")
        return problems

    def describe(self) -> str:
        """A short human label of the command, for state strings."""
        if self.description:
            return " ".join(self.description) if isinstance(self.description, list) else str(self.description)
        command = self.command
        text = command if isinstance(command, str) else shlex.join(
            a.decode() if isinstance(a, bytes) else a for a in command
        )
        return f"'{text[:60]}'" if len(text) <= 60 else f"'{text[:57]}...'"

    def command_args(self, builddir: str, builder_env: dict) -> dict:
        """The ``shell`` command's arguments, with every key a 4.x worker requires."""
        return {
            "workdir": self.workdir or "build",
            "command": list(self.command) if isinstance(self.command, list | tuple) else self.command,
            "env": {**builder_env, **self.env},
            "want_stdout": self.want_stdout,
            "want_stderr": self.want_stderr,
            "logfiles": {},
            "timeout": self.timeout,
            "maxTime": self.maxTime,
            "sigtermTime": self.sigtermTime,
            "interruptSignal": self.interruptSignal,
            "usePTY": self.usePTY,
            "logEnviron": self.logEnviron,
            "initial_stdin": self.initialStdin,
        }

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        log = await ctx.add_log("stdio")
        outcome = await ctx.run_command("shell", self.command_args(ctx.builddir, ctx.env), log)
        return self.evaluate(outcome)

    def evaluate(self, outcome: dict) -> tuple[int, str]:
        """The step's result and state string from the command's final updates."""
        rc = outcome.get("rc")
        results = self.decodeRC.get(rc, FAILURE) if isinstance(rc, int) else FAILURE
        state = self.describe()
        if results != SUCCESS:
            state += f" ({result_name(results)})"
        return results, state
