"""What the source checkout steps share: ``Source``, the build's source stamp, and
``SlaveCommands``, the remote commands a checkout runs on the slave.

A checkout runs from the master, as in Buildbot 4: the step sends ``shell`` commands (``git
fetch``, ``hg pull``, ``svn update``), and ``listdir``, ``stat``, ``rmdir``, ``cpdir`` and
``downloadFile``, so the same steps work on our slave and on a stock buildbot-worker.

What to check out comes from the build's properties (see `source_stamp`).  ``run`` works on
the copy of the step that ``BuildStep.rendered`` made for this build, so the per-checkout
state a VC step keeps on ``self`` (its workdir, what is left of ``retry``) is the build's own.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted.internet import task

from buildfarm.common.results import EXCEPTION, FAILURE, SUCCESS
from buildfarm.master.pb.transfer import BytesReader
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.steps.transfer import version_at_least

DEFAULT_TIMEOUT_S = 20 * 60
DEFAULT_WORKDIR = "build"
MODES = ("incremental", "full")
PATCHED_MARKER = ".buildbot-patched"  # Buildbot's name: a stock worker's tree stays compatible
SIGTERM_GRACE_S = 1  # a VC tool killed with SIGKILL leaves lock files; SIGTERM it first
DOWNLOAD_BLOCKSIZE = 16 * 1024
COMMAND_TEXT_CHARS = 200  # of a failed command line, in the step's log



class OutputTee:
    """Passes a command's output to its log and keeps a copy of stdout and stderr (what a
    source step parses: revisions, descriptions, listings)."""

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

    def add_named_log(self, name: str, text: str) -> None:
        self.log.add_named_log(name, text)

    def throttle(self, producer) -> None:
        self.log.throttle(producer)

class StepFailed(Exception):
    """A command of the checkout failed: the step ends FAILURE, with this text in its log."""


class SlaveSetupError(Exception):
    """The slave lacks the VC tool: the step ends EXCEPTION, as in Buildbot."""


@dataclass(frozen=True)
class Patch:
    """A patch to apply after the checkout (a try-style build): ``patch -p<level>`` of
    ``body`` in the directory ``subdir`` of the tree."""

    level: int
    body: str
    subdir: str | None = None

    @classmethod
    def from_value(cls, value) -> Patch | None:
        """Buildbot's shapes: a ``(level, body[, subdir])`` tuple, or a dict with ``body``
        and ``level`` (the data API's sourcestamp patch); None or empty means no patch."""
        if not value:
            return None
        if isinstance(value, dict):
            level, body, subdir = value.get("level", 1), value.get("body"), value.get("subdir")
        elif isinstance(value, list | tuple) and len(value) in (2, 3):
            level, body, subdir = value[0], value[1], value[2] if len(value) == 3 else None
        else:
            raise StepFailed(f"patch must be (level, body[, subdir]) or a dict, not {value!r}")
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        if isinstance(level, str) and level.isdigit():  # a level that travelled as text
            level = int(level)
        if not isinstance(body, str) or not isinstance(level, int) or isinstance(level, bool):
            raise StepFailed(f"patch needs an integer level and a text body, not {value!r}")
        return cls(level, body, subdir or None)


@dataclass(frozen=True)
class SourceStamp:
    """What a build checks out of one codebase: ``branch`` and ``revision`` None mean the
    step's default branch and its newest revision."""

    branch: str | None = None
    revision: str | None = None
    patch: Patch | None = None


def source_stamp(properties, codebase: str) -> SourceStamp | None:
    """The source stamp of ``codebase`` in a build, from its properties.

    A ``sourcestamps`` property (a list of dicts with ``codebase``, ``branch``, ``revision``
    and optionally ``patch``, as Buildbot's data API has them) names one stamp per codebase;
    a build that has it and lacks ``codebase`` there has no stamp for it (None).  Otherwise
    the build has the one stamp schedulers give it: the ``branch``, ``revision`` and
    ``patch`` properties (a change's properties travel into the build's, so a change carrying
    ``patch`` makes a try-style build), for its ``codebase`` property or any codebase when
    that is empty; another codebase gets its step's default branch, newest revision.
    """
    stamps = properties.getProperty("sourcestamps")
    if isinstance(stamps, list | tuple):
        for stamp in stamps:
            if isinstance(stamp, dict) and (stamp.get("codebase") or "") == codebase:
                return SourceStamp(stamp.get("branch"), _text_or_none(stamp.get("revision")),
                                   Patch.from_value(stamp.get("patch")))
        return None
    build_codebase = properties.getProperty("codebase") or ""
    if build_codebase and codebase and build_codebase != codebase:
        return SourceStamp()
    return SourceStamp(properties.getProperty("branch"), _text_or_none(properties.getProperty("revision")),
                       Patch.from_value(properties.getProperty("patch")))


def _text_or_none(value) -> str | None:
    return None if value in (None, "") else str(value)


@dataclass
class ShellResult:
    """A finished ``shell`` command: its exit code and, when collected, its stdout/stderr."""

    rc: int | None
    stdout: str = ""
    stderr: str = ""


class SlaveCommands:
    """The remote commands a checkout runs, each logged in the step's ``stdio`` log, with
    Buildbot 4's arguments (so a stock worker runs them too)."""

    def __init__(self, ctx: StepContext, log, env: dict, timeout, log_environ: bool):
        self.ctx = ctx
        self.log = log
        self.env = env
        self.timeout = timeout
        self.log_environ = log_environ

    def header(self, text: str) -> None:
        self.log.add_header(text if text.endswith("\n") else text + "\n")

    @property
    def stopped(self) -> bool:
        return self.ctx.build.stopped is not None

    async def shell(self, workdir: str, argv: list[str], *, stdin: str | None = None,
                    ok_rcs: tuple[int, ...] = (0,), abandon: bool = True) -> ShellResult:
        """Run ``argv`` in ``workdir``; with ``abandon``, an rc not in ``ok_rcs`` raises
        `StepFailed`."""
        args = {
            "workdir": workdir,
            "command": list(argv),
            "env": {**(self.ctx.env or {}), **self.env},
            "want_stdout": True,
            "want_stderr": True,
            "logfiles": {},
            "timeout": self.timeout,
            "maxTime": None,
            "sigtermTime": SIGTERM_GRACE_S if self.version_at_least("shell", "2.16") else None,
            "interruptSignal": "KILL",
            "usePTY": False,
            "logEnviron": self.log_environ,
            "initial_stdin": stdin,
        }
        collector = OutputTee(self.log)
        outcome = await self.ctx.run_command("shell", args, collector)
        result = ShellResult(outcome.get("rc"), "".join(collector.stdout), "".join(collector.stderr))
        if abandon and result.rc not in ok_rcs:
            raise StepFailed(f"{' '.join(argv)[:COMMAND_TEXT_CHARS]} failed (exit code {result.rc})")
        return result

    async def rmdir(self, paths: str | list[str], abandon: bool = True) -> int | None:
        """Remove a directory (or each of a list) on the slave; its rc."""
        outcome = await self.ctx.run_command(
            "rmdir", {"dir": paths, "logEnviron": self.log_environ, "timeout": self.timeout}, self.log)
        if abandon and outcome.get("rc") != 0:
            raise StepFailed(f"could not remove {paths}")
        return outcome.get("rc")

    async def listdir(self, path: str) -> list[str] | None:
        """The entries of a directory on the slave; None when it does not exist."""
        outcome = await self.ctx.run_command("listdir", {"dir": path}, self.log)
        files = outcome.get("files")
        if files is None:
            return None
        # Buildbot's RemoteCommand keeps every value of a key; ours keeps the last one
        return list(files[0]) if files and isinstance(files[0], list) else list(files)

    async def exists(self, path: str) -> bool:
        """Whether ``path`` (relative to the builder's directory) exists on the slave."""
        outcome = await self.ctx.run_command("stat", {"file": path, "logEnviron": self.log_environ},
                                             self.log)
        return outcome.get("rc") == 0

    async def cpdir(self, fromdir: str, todir: str) -> None:
        outcome = await self.ctx.run_command(
            "cpdir", {"fromdir": fromdir, "todir": todir, "logEnviron": self.log_environ,
                      "timeout": self.timeout}, self.log)
        if outcome.get("rc") != 0:
            raise StepFailed(f"could not copy {fromdir} to {todir}")

    async def write_file(self, workdir: str, name: str, text: str) -> None:
        """Write ``text`` to ``workdir/name`` on the slave (``downloadFile``)."""
        reader = BytesReader(text.encode("utf-8"))
        await reader.open()
        dest = "workerdest" if self.version_at_least("downloadFile", "3.0") else "slavedest"
        outcome = await self.ctx.run_command(
            "downloadFile", {"workdir": workdir, dest: name, "reader": reader, "maxsize": None,
                             "blocksize": DOWNLOAD_BLOCKSIZE, "mode": None}, self.log)
        if outcome.get("rc") != 0:
            await reader.cancel()
            raise StepFailed(f"could not write {name} on the slave")

    def version_at_least(self, command: str, wanted: str) -> bool:
        return version_at_least(self.ctx.command_version(command), wanted)

    async def wait(self, seconds: float) -> None:
        """Wait on the master's clock (between ``retry`` attempts)."""
        await task.deferLater(self.ctx.clock, seconds, lambda: None)


class Source(BuildStep):
    """A checkout of one codebase into ``workdir`` on the slave (Buildbot's ``Source``).

    Subclasses set ``methods`` (the ``method`` values ``mode='full'`` accepts) and implement
    ``run_vc(branch, revision, patch)``; they run commands through ``self.remote``.
    """

    methods: tuple = ("clean", "fresh", "clobber", "copy")
    branch: str | None = None  # the default branch, when the build names none
    repourl = None  # each VC step sets it (a string, or a renderable until rendered)
    renderables = BuildStep.renderables + ("workdir", "env", "descriptionSuffix", "repourl", "mode",
                                           "method", "codebase")

    def __init__(self, workdir=None, mode="incremental", method=None, alwaysUseLatest=False,  # noqa: N803
                 timeout=DEFAULT_TIMEOUT_S, retry=None, env=None, logEnviron=True,  # noqa: N803
                 descriptionSuffix=None, codebase="", **kwargs):  # noqa: N803
        kwargs.setdefault("haltOnFailure", True)  # no point building what was not checked out
        kwargs.setdefault("description", ["updating"])
        kwargs.setdefault("descriptionDone", ["update"])
        super().__init__(**kwargs)
        self.workdir = workdir
        self.mode = mode
        self.method = method
        self.alwaysUseLatest = alwaysUseLatest
        self.timeout = timeout
        self.retry = retry
        self.env = env
        self.logEnviron = logEnviron
        self.codebase = codebase
        self.descriptionSuffix = descriptionSuffix or ([codebase] if codebase else None)
        if codebase and isinstance(self.name, str) and isinstance(codebase, str):
            self.name = f"{self.name}-{codebase}"
        self.remote: SlaveCommands | None = None

    def config_problems(self) -> list[str]:
        kind = type(self).__name__
        problems = super().config_problems()
        if isinstance(self.mode, str) and self.mode not in MODES:
            problems.append(f"{kind}: mode must be 'incremental' or 'full', not {self.mode!r}")
        if isinstance(self.method, str | None) and self.method not in (None, *self.methods):
            problems.append(f"{kind}: method must be one of {', '.join(self.methods)}, not {self.method!r}")
        retry = self.retry
        if retry is not None and not (
            isinstance(retry, list | tuple) and len(retry) == 2
            and isinstance(retry[0], int | float) and retry[0] >= 0
            and isinstance(retry[1], int) and not isinstance(retry[1], bool)
        ):
            problems.append(f"{kind}: retry must be (delay in seconds, number of retries), not {retry!r}")
        if self.timeout is not None and (not isinstance(self.timeout, int | float) or self.timeout <= 0):
            problems.append(f"{kind}: timeout must be a positive number of seconds or None")
        if self.env is not None and not isinstance(self.env, dict):
            problems.append(f"{kind}: env must be a dict")
        if not isinstance(self.codebase, str):
            problems.append(f"{kind}: codebase must be a string")
        return problems

    def state(self, done: bool = True) -> str:
        words = self.descriptionDone if done else self.description
        words = list(words) if isinstance(words, list | tuple) else [str(words)]
        suffix = self.descriptionSuffix
        words += list(suffix) if isinstance(suffix, list | tuple) else [str(suffix)] if suffix else []
        return " ".join(str(w) for w in words)

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        self.workdir = self.workdir or DEFAULT_WORKDIR
        self.ctx = ctx
        log = await ctx.add_log("stdio")
        self.remote = SlaveCommands(ctx, log, dict(self.env or {}), self.timeout, self.logEnviron)
        try:
            if self.alwaysUseLatest:
                stamp = SourceStamp()  # the step's branch, its newest revision, no patch
            else:
                stamp = source_stamp(ctx.properties, self.codebase)
                if stamp is None:
                    self.remote.header(f"No sourcestamp found in build for codebase '{self.codebase}'")
                    return FAILURE, f"Codebase {self.codebase} not in build"
            if not isinstance(self.repourl, str) or not self.repourl:
                raise StepFailed(f"repourl rendered to {self.repourl!r}, not a URL")
            if stamp.patch is not None:
                patch_log = await ctx.add_log("patch")
                patch_log.add_stdout(stamp.patch.body)
            await self.run_vc(stamp.branch or self.branch, stamp.revision, stamp.patch)
        except StepFailed as e:
            self.remote.header(str(e))
            return FAILURE, f"{self.state()} (failure)"
        except SlaveSetupError as e:
            self.remote.header(str(e))
            return EXCEPTION, str(e)
        return SUCCESS, self.state()

    async def run_vc(self, branch: str | None, revision: str | None, patch: Patch | None) -> None:
        """Check out ``branch`` at ``revision`` (None: newest) and apply ``patch``."""
        raise NotImplementedError

    def update_source_property(self, name: str, value) -> None:
        """Set ``name``; with a codebase, as ``{codebase: value}`` merged into the property."""
        properties = self.ctx.properties
        source = type(self).__name__
        if not self.codebase:
            properties.setProperty(name, value, source)
            return
        current = properties.getProperty(name)
        merged = dict(current) if isinstance(current, dict) else {}
        merged[self.codebase] = value
        properties.setProperty(name, merged, source)

    async def sourcedir_is_patched(self) -> bool:
        return await self.remote.exists(f"{self.workdir}/{PATCHED_MARKER}")

    async def retry_attempt(self, attempt, cleanup) -> int | None:
        """Run ``attempt`` (returns an rc); while it fails and ``retry=(delay, repeats)``
        leaves attempts, wait ``delay`` seconds on the master's clock, ``cleanup``, try again.
        The last attempt's rc; a failure of the last one raises `StepFailed`."""
        delay, repeats = self.retry or (0, 0)
        while True:
            rc = await attempt(abandon=repeats <= 0)
            if rc == 0 or repeats <= 0 or self.remote.stopped:
                return rc
            self.remote.header(f"checkout failed, trying {repeats} more times after {delay} seconds")
            repeats -= 1
            await self.remote.wait(delay)
            if self.remote.stopped:  # the build was stopped while we waited
                return rc
            await cleanup()

    async def apply_patch_file(self, patch: Patch, argv: list[str]) -> None:
        """Mark the tree as patched, then run ``argv`` with the patch on its stdin in
        ``workdir`` (or the patch's subdirectory of it, if that stays inside)."""
        await self.remote.write_file(self.workdir, PATCHED_MARKER, "patched\n")
        await self.remote.shell(self.patch_dir(patch), argv, stdin=patch.body)

    def patch_dir(self, patch: Patch) -> str:
        subdir = (patch.subdir or "").strip("/")
        if not subdir or ".." in subdir.split("/"):
            return self.workdir
        return f"{self.workdir}/{subdir}"
