"""Filesystem steps on the slave: ``MakeDirectory``, ``RemoveDirectory``, ``CopyDirectory``,
``FileExists``.

Their paths are relative to the builder's directory on the slave (as in Buildbot).
"""

import stat

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.buildstep import BuildStep, StepContext

DEFAULT_COPY_TIMEOUT_S = 120


class FilesystemStep(BuildStep):
    """Runs one filesystem command; rc 0 is success.  A failure halts the build, as in Buildbot."""

    command = ""
    haltOnFailure = True  # noqa: N815 - Buildbot's name
    renderables = BuildStep.renderables + ("dir", "src", "dest")

    def command_args(self) -> dict:
        raise NotImplementedError

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        log = await ctx.add_log("stdio")
        outcome = await ctx.run_command(self.command, self.command_args(), log)
        if outcome.get("rc") == 0:
            return SUCCESS, self.describe()
        return FAILURE, f"{self.describe()} (failure)"

    def describe(self) -> str:
        return self.name


class MakeDirectory(FilesystemStep):
    """Creates a directory (and its parents) on the slave."""

    default_name = "MakeDirectory"
    command = "mkdir"

    def __init__(self, dir, **kwargs):  # noqa: A002 - Buildbot's argument name
        super().__init__(**kwargs)
        self.dir = dir

    def command_args(self) -> dict:
        return {"dir": self.dir}

    def describe(self) -> str:
        return f"created {self.dir}"


class RemoveDirectory(FilesystemStep):
    """Removes a directory tree on the slave."""

    default_name = "RemoveDirectory"
    command = "rmdir"

    def __init__(self, dir, **kwargs):  # noqa: A002
        super().__init__(**kwargs)
        self.dir = dir

    def command_args(self) -> dict:
        return {"dir": self.dir}

    def describe(self) -> str:
        return f"removed {self.dir}"


class CopyDirectory(FilesystemStep):
    """Copies a directory tree on the slave."""

    default_name = "CopyDirectory"
    command = "cpdir"

    def __init__(self, src, dest, timeout=DEFAULT_COPY_TIMEOUT_S, maxTime=None, **kwargs):  # noqa: N803
        super().__init__(**kwargs)
        self.src = src
        self.dest = dest
        self.timeout = timeout
        self.maxTime = maxTime

    def command_args(self) -> dict:
        args = {"fromdir": self.src, "todir": self.dest, "timeout": self.timeout}
        if self.maxTime is not None:
            args["maxTime"] = self.maxTime
        return args

    def describe(self) -> str:
        return f"copied {self.src} to {self.dest}"


class FileExists(BuildStep):
    """Succeeds if ``file`` (relative to the builder's directory) is a regular file on the slave."""

    default_name = "FileExists"
    renderables = BuildStep.renderables + ("file",)
    haltOnFailure = True  # noqa: N815 - Buildbot's name

    def __init__(self, file, **kwargs):
        super().__init__(**kwargs)
        self.file = file

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        log = await ctx.add_log("stdio")
        outcome = await ctx.run_command("stat", {"file": self.file}, log)
        found = outcome.get("stat")
        if outcome.get("rc") != 0 or not found:
            return FAILURE, f"file {self.file} not found"
        if stat.S_ISREG(found[stat.ST_MODE]):
            return SUCCESS, f"file {self.file} found"
        return FAILURE, f"{self.file} is not a file"
