"""File transfer steps: ``FileUpload``, ``DirectoryUpload``, ``FileDownload``, ``StringDownload``.

Slave-side paths are relative to the step's workdir (``build`` by default) inside the
builder's directory; master-side paths are relative to the master's basedir.  The
argument names follow the slave's command version: 4.x names (``workersrc``) for slaves
reporting "3.0" or newer, the ``slave*`` names for older ones.
"""

import os

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.pb.transfer import BytesReader, DirectoryWriter, FileReader, FileWriter
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.properties import Renderable

DEFAULT_BLOCKSIZE = 512 * 1024  # below Banana's 640 KiB string limit; half the per-block work of 256 KiB
COMPRESSIONS = (None, "gz", "bz2")
PATH = str | Renderable  # a path, or a renderable giving one when the step runs


def version_at_least(version: str | None, wanted: str) -> bool:
    """Whether a command version like "3.3" is at least ``wanted``."""
    if not version:
        return False
    try:
        return [int(p) for p in version.split(".")] >= [int(p) for p in wanted.split(".")]
    except ValueError:
        return False


class TransferStep(BuildStep):
    """What the transfer steps share: workdir, size limits, result from rc."""

    command = ""
    haltOnFailure = True
    renderables = BuildStep.renderables + (
        "workdir", "workersrc", "masterdest", "mastersrc", "workerdest", "s", "mode",
    )

    def __init__(self, workdir=None, maxsize=None, blocksize=DEFAULT_BLOCKSIZE, **kwargs):
        kwargs.setdefault("haltOnFailure", True)
        super().__init__(**kwargs)
        self.workdir = workdir
        self.maxsize = maxsize
        self.blocksize = blocksize

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if self.maxsize is not None and (not isinstance(self.maxsize, int) or self.maxsize < 0):
            problems.append(f"{type(self).__name__} maxsize must be a whole number of bytes")
        if not isinstance(self.blocksize, int) or not 0 < self.blocksize <= 512 * 1024:
            problems.append(f"{type(self).__name__} blocksize must be 1..524288 bytes")
        return problems

    def path_arg(self, ctx: StepContext, modern: str, old: str) -> str:
        """The 4.x argument name, or the ``slave*`` one for a slave older than "3.0"."""
        return modern if version_at_least(ctx.command_version(self.command), "3.0") else old

    async def transfer(self, ctx: StepContext, args: dict, helper) -> tuple[int, str]:
        log = await ctx.add_log("stdio")
        base = {"workdir": self.workdir or "build", "maxsize": self.maxsize, "blocksize": self.blocksize}
        try:
            outcome = await ctx.run_command(self.command, {**base, **args}, log)
        except BaseException:
            await helper.cancel()
            raise
        rc = outcome.get("rc")
        truncated = getattr(helper, "truncated", False)
        if rc != 0 or truncated:
            await helper.cancel()
            if truncated:
                log.add_stderr(f"maximum size of {self.maxsize} bytes exceeded\n")
            return FAILURE, f"{self.describe()} (failure)"
        return SUCCESS, self.describe()

    def describe(self) -> str:
        return self.name


class FileUpload(TransferStep):
    """Copies one file from the slave to the master."""

    default_name = "upload"
    command = "uploadFile"

    def __init__(self, workersrc=None, masterdest=None, mode=None, keepstamp=False,
                 slavesrc=None, **kwargs):
        super().__init__(**kwargs)
        self.workersrc = workersrc or slavesrc
        self.masterdest = masterdest
        self.mode = mode
        self.keepstamp = keepstamp

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.workersrc, PATH) or not isinstance(self.masterdest, PATH):
            problems.append("FileUpload needs workersrc and masterdest strings")
        return problems

    def describe(self) -> str:
        return f"uploading {os.path.basename(self.workersrc)}"

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        writer = FileWriter(ctx.master_path(self.masterdest), self.maxsize, self.mode)
        args = {"writer": writer, "keepstamp": self.keepstamp,
                self.path_arg(ctx, "workersrc", "slavesrc"): self.workersrc}
        return await self.transfer(ctx, args, writer)


class DirectoryUpload(TransferStep):
    """Copies a directory from the slave to the master (as a tar, optionally compressed)."""

    default_name = "upload"
    command = "uploadDirectory"

    def __init__(self, workersrc=None, masterdest=None, compress=None, slavesrc=None, **kwargs):
        super().__init__(**kwargs)
        self.workersrc = workersrc or slavesrc
        self.masterdest = masterdest
        self.compress = compress

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.workersrc, PATH) or not isinstance(self.masterdest, PATH):
            problems.append("DirectoryUpload needs workersrc and masterdest strings")
        if self.compress not in COMPRESSIONS:
            problems.append(f"DirectoryUpload compress must be None, 'gz' or 'bz2', not {self.compress!r}")
        return problems

    def describe(self) -> str:
        return f"uploading {os.path.basename(self.workersrc.rstrip('/')) or self.workersrc}"

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        writer = DirectoryWriter(ctx.master_path(self.masterdest), self.maxsize, self.compress)
        args = {"writer": writer, "compress": self.compress,
                self.path_arg(ctx, "workersrc", "slavesrc"): self.workersrc}
        return await self.transfer(ctx, args, writer)


class FileDownload(TransferStep):
    """Copies one file from the master to the slave."""

    default_name = "download"
    command = "downloadFile"

    def __init__(self, mastersrc=None, workerdest=None, mode=None, slavedest=None, **kwargs):
        super().__init__(**kwargs)
        self.mastersrc = mastersrc
        self.workerdest = workerdest or slavedest
        self.mode = mode

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.mastersrc, PATH) or not isinstance(self.workerdest, PATH):
            problems.append(f"{type(self).__name__} needs mastersrc and workerdest strings")
        if self.mode is not None and not isinstance(self.mode, int):
            problems.append(f"{type(self).__name__} mode must be an integer like 0o755")
        return problems

    def describe(self) -> str:
        return f"downloading to {os.path.basename(self.workerdest)}"

    def make_reader(self, ctx: StepContext) -> FileReader:
        return FileReader(ctx.master_path(self.mastersrc))

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        reader = self.make_reader(ctx)
        try:
            await reader.open()
        except OSError as e:
            log = await ctx.add_log("stderr")
            log.add_stderr(f"{self.mastersrc} is not available on the master: {e.strerror}\n")
            return FAILURE, f"{self.describe()} (failure)"
        args = {"reader": reader, "mode": self.mode,
                self.path_arg(ctx, "workerdest", "slavedest"): self.workerdest}
        return await self.transfer(ctx, args, reader)


class StringDownload(FileDownload):
    """Writes a string from master.cfg into a file on the slave."""

    default_name = "string_download"

    def __init__(self, s, workerdest=None, mode=None, slavedest=None, **kwargs):
        super().__init__(mastersrc="<string>", workerdest=workerdest, mode=mode,
                         slavedest=slavedest, **kwargs)
        self.s = s

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.s, str | bytes | Renderable):
            problems.append("StringDownload needs s, a string")
        return problems

    def make_reader(self, ctx: StepContext) -> FileReader:
        return BytesReader(self.s.encode("utf-8") if isinstance(self.s, str) else self.s)
