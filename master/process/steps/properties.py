"""Steps that set build properties: ``SetProperty`` and ``SetPropertyFromCommand``."""

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.steps.shell import ShellCommand


class SetProperty(BuildStep):
    """Sets one property (its value may be a renderable)."""

    default_name = "SetProperty"
    renderables = BuildStep.renderables + ("property", "value")

    def __init__(self, property, value, **kwargs):  # noqa: A002 - Buildbot's argument name
        super().__init__(**kwargs)
        self.property = property
        self.value = value

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        ctx.properties.setProperty(self.property, self.value, self.name)
        return SUCCESS, f"property {self.property!r} set"


class _OutputTee:
    """Passes a command's output to its log and keeps a copy of stdout and stderr."""

    def __init__(self, log):
        self.log = log
        self.stdout: list[str] = []
        self.stderr: list[str] = []

    def add_header(self, text: str) -> None:
        self.log.add_header(text)

    def add_stdout(self, text: str) -> None:
        self.stdout.append(text)
        self.log.add_stdout(text)

    def add_stderr(self, text: str) -> None:
        self.stderr.append(text)
        self.log.add_stderr(text)


class SetPropertyFromCommand(ShellCommand):
    """Runs a command and sets a property from its output (``property``) or from a
    function of ``(rc, stdout, stderr)`` returning a dict (``extract_fn``)."""

    default_name = "SetPropertyFromCommand"
    renderables = ShellCommand.renderables + ("property",)

    def __init__(self, command, property=None, extract_fn=None, strip=True,  # noqa: A002
                 includeStdout=True, includeStderr=False, **kwargs):  # noqa: N803
        super().__init__(command, **kwargs)
        self.property = property
        self.extract_fn = extract_fn
        self.strip = strip
        self.includeStdout = includeStdout
        self.includeStderr = includeStderr

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if (self.property is None) == (self.extract_fn is None):
            problems.append("SetPropertyFromCommand needs exactly one of property= and extract_fn=")
        return problems

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        tee = _OutputTee(await ctx.add_log("stdio"))
        outcome = await ctx.run_command("shell", self.command_args(ctx.builddir, ctx.env), tee)
        results, state = self.evaluate(outcome)
        stdout, stderr = "".join(tee.stdout), "".join(tee.stderr)
        if self.property is not None:
            if results == SUCCESS:
                text = (stdout if self.includeStdout else "") + (stderr if self.includeStderr else "")
                ctx.properties.setProperty(self.property, text.strip() if self.strip else text, self.name)
                state = f"property {self.property!r} set"
            return results, state
        try:
            values = self.extract_fn(outcome.get("rc"), stdout, stderr)
        except Exception as e:
            tee.add_header(f"extract_fn failed: {type(e).__name__}: {e}\n")
            return FAILURE, "extract_fn failed"
        for name, value in dict(values or {}).items():
            ctx.properties.setProperty(name, value, self.name)
        return results, f"{len(values or {})} properties set"
