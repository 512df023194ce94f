"""``CMake``: runs ``cmake`` on the slave with a generator, ``-D`` definitions and options."""

from buildfarm.master.process.buildstep import BuildStep, ShellMixin
from buildfarm.master.process.properties import Renderable

DEFAULT_CMAKE = "cmake"


class CMake(ShellMixin, BuildStep):
    """``cmake [-G generator] [-Dname=value ...] [options ...] [path]``, as Buildbot's."""

    DEFAULT_CMAKE = DEFAULT_CMAKE  # Buildbot's class attribute (configs read CMake.DEFAULT_CMAKE)
    name = "cmake"
    description = ["running", "cmake"]
    descriptionDone = ["cmake"]
    haltOnFailure = True
    renderables = BuildStep.renderables + ("cmake", "definitions", "generator", "options", "path",
                                           "workdir", "env")

    def __init__(self, path=None, generator=None, definitions=None, options=None, cmake=DEFAULT_CMAKE,
                 **kwargs):
        self.path = path
        self.generator = generator
        self.definitions = definitions
        self.options = options
        self.cmake = cmake
        super().__init__(**self.setupShellMixin(kwargs, prohibitArgs=["command"]))

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not (self.definitions is None or isinstance(self.definitions, dict | Renderable)):
            problems.append("CMake definitions must be a dictionary or a renderable")
        if not (self.options is None or isinstance(self.options, list | tuple | Renderable)):
            problems.append("CMake options must be a list, a tuple or a renderable")
        return problems

    def cmake_command(self) -> list:
        """The command line (the step already rendered)."""
        command = [self.cmake]
        if self.generator:
            command.extend(["-G", self.generator])
        for name, value in (self.definitions or {}).items():
            command.append(f"-D{name}={value}")
        command.extend(self.options or [])
        if self.path:
            command.append(self.path)
        return command

    async def run(self):
        cmd = await self.makeRemoteShellCommand(command=self.cmake_command())
        await self.runCommand(cmd)
        return cmd.results()
