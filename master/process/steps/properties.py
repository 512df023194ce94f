"""Steps that set build properties: ``SetProperty``, ``SetProperties``, ``SetPropertiesFromEnv``
and ``SetPropertyFromCommand``."""

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.properties import Renderable
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


class SetProperties(BuildStep):
    """Sets several properties at once: ``properties`` is a dict, or a renderable (such as a
    ``@util.renderer`` function) giving one."""

    default_name = "SetProperties"
    renderables = BuildStep.renderables + ("properties",)

    def __init__(self, properties=None, **kwargs):
        super().__init__(**kwargs)
        self.properties = properties if properties is not None else {}

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.properties, dict | Renderable):
            problems.append(f"SetProperties needs a dict or a renderable giving one, not {self.properties!r}")
        return problems

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        if not isinstance(self.properties, dict):
            raise TypeError(f"SetProperties: properties rendered to {self.properties!r}, not a dict")
        for name, value in self.properties.items():
            ctx.properties.setProperty(name, value, self.name)
        return SUCCESS, f"{len(self.properties)} properties set"


class SetPropertiesFromEnv(BuildStep):
    """Sets a property for each of ``variables`` present in the slave's environment (as the
    slave reported it when it attached), from ``source`` ("WorkerEnvironment")."""

    default_name = "SetPropertiesFromEnv"

    def __init__(self, variables, source="WorkerEnvironment", **kwargs):
        super().__init__(**kwargs)
        self.variables = [variables] if isinstance(variables, str) else list(variables)
        self.source = source

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not all(isinstance(v, str) for v in self.variables):
            problems.append("SetPropertiesFromEnv variables must be names of environment variables")
        return problems

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        slavename = ctx.properties.getProperty("workername")
        infos = await ctx.master.db.slaves.get_infos([slavename])  # the master keeps it there only
        environ = (infos.get(slavename) or {}).get("environ") or {}
        found = [name for name in self.variables if name in environ]
        for name in found:
            ctx.properties.setProperty(name, environ[name], self.source)
        return SUCCESS, f"{len(found)} properties set from the environment"


class SetPropertyFromCommand(ShellCommand):
    """Runs a command and sets a property from its output (``property``) or from a
    function of ``(rc, stdout, stderr)`` returning a dict (``extract_fn``)."""

    default_name = "setproperty"  # Buildbot's
    property_source = "SetPropertyFromCommand Step"  # Buildbot's source of the properties it sets
    renderables = ShellCommand.renderables + ("property",)

    def __init__(self, command=None, property=None, extract_fn=None, strip=True,  # noqa: A002
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

    async def run(self):
        cmd = await self.makeRemoteShellCommand(collectStdout=True, collectStderr=True)
        await self.runCommand(cmd)
        results = cmd.results()
        if self.property is not None:
            if results == SUCCESS:
                text = (cmd.stdout if self.includeStdout else "") + (cmd.stderr if self.includeStderr else "")
                self.setProperty(self.property, text.strip() if self.strip else text, self.property_source)
                self.descriptionDone = f"property {self.property!r} set"
            return results
        try:
            values = dict(self.extract_fn(cmd.rc, cmd.stdout, cmd.stderr) or {})
        except Exception as e:
            self.getLog("stdio").add_header(f"extract_fn failed: {type(e).__name__}: {e}\n")
            self.descriptionDone = "extract_fn failed"
            return FAILURE
        for name, value in values.items():
            self.setProperty(name, value, self.property_source)
        self.descriptionDone = f"{len(values)} properties set"
        return results
