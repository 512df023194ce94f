"""Runs from a hash: the ``run_isolated`` and ``isolate_archive`` commands (docs/cas.md, "Runs
from a hash").

``run_isolated`` maps the tree of an ``.isolated`` from the slave's content cache
(``<basedir>/cas-cache``, shared by every builder of the slave) into a fresh run directory, runs
its command with ``${ISOLATED_OUTDIR}`` substituted in the command line and set in the
environment, under the hard timeout, the I/O timeout and the grace period (SIGTERM, then
SIGKILL ``grace_period`` seconds later), streams its output as ``shell`` does, archives the out
directory (if the command wrote anything there) to the same server and namespace, reports the
output's hash and the transfer statistics, and always deletes the run directory.  Each run
holds an ``flock`` on a file of its run directory while it lives; a run starting deletes the
run directories nobody holds (what a slave killed mid-run left), never a live one.

What a task gets besides (docs/tasks.md, "What a task gets on the slave"): without
``isolated`` the run directory starts empty and ``command`` is required; ``relative_cwd`` (a
path inside the run directory, overriding the tree's); ``caches`` (named caches, moved into the
run directory for the run and kept after it: slave/commands/namedcaches.py); ``outputs`` (files
or directories of the run directory copied into the out directory before it is archived; a
missing one is noted in the headers and ignored); ``secret_bytes`` (written, base64, as
``swarming.secret_bytes`` of a LUCI_CONTEXT JSON file outside the tree whose path is in the
environment variable ``LUCI_CONTEXT``, mode 0600, deleted as soon as the process ends; never in
a header or a log).

``isolate_archive`` archives a directory of the builder's directory and reports its hash.

Both talk to the Isolate server through ``buildfarm.common.isolateclient`` with the
``Authorization`` header value the master sent (a build grant); it is never written to a log.

The cache is guarded by an exclusive ``flock`` on ``<basedir>/cas-cache.lock`` while a run loads
the cache's state, fetches what it lacks, maps the tree and saves the state: two runs on one
slave (or an ``isolateserver download`` on the same cache) take turns there, and never evict
what the other is mapping.  The lock is polled on the slave's clock, so an interrupt ends the
wait.  Mapped files are hardlinks to the cache (copies where the tree is writable): a later
eviction does not take them from a running command.

Updates besides ``shell``'s: ``isolated_output`` (the out directory's hash, absent when the
command wrote nothing there), ``isolated`` (``isolate_archive``'s hash), ``isolate_stats``
(``{"download": {...}, "upload": {...}}``, a ``TransferStats`` each) and ``isolate_error``
(why the command could not run or report, with ``rc`` `ISOLATE_ERROR_RC`).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import tempfile
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from buildfarm.common import cascache, isolateclient
from buildfarm.common.isolated import IsolatedFormatError, algo_for_namespace, check_digest
from buildfarm.common.redaction import redact_environ, redact_log_header
from buildfarm.slave.commands import namedcaches
from buildfarm.slave.commands.base import (
    Arg,
    CommandError,
    asText,
    boolean,
    optionalMapping,
    optionalSeconds,
    optionalSize,
    text,
)
from buildfarm.slave.commands.shell import ShellCommand, environment
from buildfarm.slave.runprocess import ProcessResult, ProcessSpec, RunProcess, buildEnvironment

log = Logger()

CACHE_DIR = "cas-cache"
CACHE_LOCK = "cas-cache.lock"
RUNS_DIR = "cas-runs"
RUNS_LOCK = "cas-runs.lock"  # orders making run directories against sweeping them
RUN_LOCK = ".run.lock"  # in each run directory, flock'ed by its run while it lives
DIGESTS_DIR = "cas-digests"
OUTDIR_VARIABLE = "ISOLATED_OUTDIR"
LUCI_CONTEXT_VARIABLE = "LUCI_CONTEXT"
LUCI_CONTEXT_FILE = "luci_context.json"  # in the run directory, beside (not in) the tree
MAX_OUTPUTS = 4096
MAX_SECRET_BYTES = 20 * 1024
EXECUTABLE_SUFFIX = ""  # POSIX slaves: ${EXECUTABLE_SUFFIX} is empty
DEFAULT_NAMESPACE = "default-gzip"
DEFAULT_HARD_TIMEOUT_S = 3600  # Swarming's CLI default
DEFAULT_IO_TIMEOUT_S = 1200
DEFAULT_GRACE_PERIOD_S = 30
LOCK_POLL_S = 0.1
LOCK_WAIT_S = 3600  # a run that cannot have the cache this long gives up
ISOLATE_ERROR_RC = 1
_VARIABLE = re.compile(r"\$\{(ISOLATED_OUTDIR|EXECUTABLE_SUFFIX)\}")
_POLICY_KEYS = tuple(f.name for f in dataclasses.fields(cascache.CachePolicies))


class IsolateError(Exception):
    """The run cannot go on (server, cache, tree); the message is what the log shows."""


def digestArg(value: object) -> str:
    """A lower-case hex digest (its algorithm is the namespace's, checked when the run starts)."""
    digest = text(value)
    if not re.fullmatch(r"[0-9a-f]{40,128}", digest):
        raise ValueError(f"must be a lower-case hex digest, not {digest!r}")
    return digest


def serverURL(value: object) -> str:
    """An http(s) URL."""
    url = text(value)
    if not re.match(r"https?://[^/\s]+", url):
        raise ValueError(f"must be an http:// or https:// URL, not {url!r}")
    return url


def optionalArgv(value: object) -> list[str] | None:
    """None or a list of strings."""
    if value is None:
        return None
    if isinstance(value, list | tuple) and all(isinstance(v, str | bytes) for v in value):
        return [asText(v) for v in value]
    raise ValueError(f"must be a list of strings or None, not {value!r}")


def optionalDigest(value: object) -> str | None:
    """None (no input tree) or a `digestArg`."""
    return None if value is None else digestArg(value)


def outputList(value: object) -> list[str]:
    """None or a list of at most ``MAX_OUTPUTS`` relative paths inside the run directory."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_OUTPUTS:
        raise ValueError(f"must be a list of at most {MAX_OUTPUTS} relative paths")
    return sorted({namedcaches.relativePath(v) for v in value})


def secretBytes(value: object) -> bytes | None:
    """None or bytes (at most ``MAX_SECRET_BYTES``).  The message never shows the value."""
    if value is None:
        return None
    if not isinstance(value, bytes) or len(value) > MAX_SECRET_BYTES:
        raise ValueError(f"must be at most {MAX_SECRET_BYTES} bytes (the value is not shown)")
    return value


def optionalText(value: object) -> str | None:
    """None or a string."""
    return None if value is None else text(value)


def cachePolicies(value: object) -> cascache.CachePolicies:
    """None or a dict of `CachePolicies` fields (max_cache_size, min_free_space, max_items,
    max_age_secs); the rest keep run_isolated's defaults."""
    value = optionalMapping(value) or {}
    unknown = sorted(set(map(str, value)) - set(_POLICY_KEYS))
    if unknown:
        raise ValueError(f"has unknown keys {unknown}: the policies are {', '.join(_POLICY_KEYS)}")
    return dataclasses.replace(cascache.RUN_ISOLATED_POLICIES, **{str(k): v for k, v in value.items()})


def blacklistArg(value: object) -> list[str]:
    """None or a list of regular expressions (of paths to leave out)."""
    patterns = optionalArgv(value) or []
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as e:
            raise ValueError(f"has a bad regular expression {pattern!r}: {e}") from None
    return patterns


def substitute(arg: str, outdir: str) -> str:
    """``arg`` with ``${ISOLATED_OUTDIR}`` and ``${EXECUTABLE_SUFFIX}`` replaced."""
    return _VARIABLE.sub(lambda m: outdir if m.group(1) == OUTDIR_VARIABLE else EXECUTABLE_SUFFIX, arg)


def statsDict(stats: Any) -> dict[str, Any]:
    """A ``TransferStats`` as a plain dict (what a PB update can carry)."""
    return {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}


def describeError(error: BaseException) -> str:
    """One line saying what went wrong with the server, the cache or the tree."""
    if isinstance(error, IsolateError | isolateclient.IsolateServerError):
        return str(error)
    if isinstance(error, cascache.NoMoreSpace):
        return f"not enough space in the slave's cache: {error}"
    if isinstance(error, IsolatedFormatError | cascache.MappingError | cascache.ContentMismatch):
        return f"the tree cannot be used: {error}"
    if isinstance(error, OSError):
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror or error}{where}"
    return f"{type(error).__name__}: {error}"


class _IsolateCommand(ShellCommand):
    """What both commands share: the server, its credentials, transfers that an interrupt
    cancels, errors reported as a log line and `ISOLATE_ERROR_RC`."""

    _transfer: defer.Deferred | None = None

    def _server(self) -> isolateclient.IsolateServer:
        headers = {"Authorization": self.args["auth_header"]} if self.args["auth_header"] else None
        return isolateclient.IsolateServer(self.args["server"], self.args["namespace"],
                                           reactor=self.context.reactor, headers=headers)

    def _checkDigest(self, digest: str) -> None:
        try:
            check_digest(digest, algo_for_namespace(self.args["namespace"]))
        except ValueError as e:
            raise IsolateError(f"{self.name}: {e}") from None

    async def _cancellable(self, work: defer.Deferred) -> Any:
        """``work``, cancelled if the command is interrupted meanwhile."""
        if self.interrupted:
            work.cancel()
        self._transfer = work
        try:
            return await work
        except defer.CancelledError:
            raise IsolateError(f"{self.name}: interrupted") from None
        finally:
            self._transfer = None

    def interrupt(self, why: str) -> None:
        """Cancel a transfer in progress, or kill the process (as ``shell`` does)."""
        super().interrupt(why)
        if self._transfer is not None:
            self._transfer.cancel()

    def _fail(self, error: BaseException) -> None:
        message = describeError(error)
        self.sendStatus({"isolate_error": message})
        self.sendResult(ISOLATE_ERROR_RC, f"{self.name} failed: {message}")

    def _sendStats(self, what: str, stats: Any) -> None:
        self.sendStatus({"header": f"{what}: {stats}\n"})


class RunIsolated(_IsolateCommand):
    """Runs the command of an ``.isolated`` tree, fetched from a hash (see the module docstring).

    Arguments: ``isolated`` (the hash), ``namespace``, ``server`` (the Isolate server's URL),
    ``auth_header`` (the ``Authorization`` value), ``command`` (overrides the tree's),
    ``extra_args`` (appended), ``env``, ``hard_timeout``, ``io_timeout``, ``grace_period``
    (seconds; None: no limit), ``cache_policies`` (a dict of `CachePolicies` fields),
    ``relative_cwd``, ``caches`` (``[{name, path}]``), ``outputs`` (relative paths) and
    ``secret_bytes`` (bytes).  ``isolated`` may be None (an empty run directory): then
    ``command`` is required.
    """

    name = "run_isolated"
    arguments = (
        Arg("isolated", optionalDigest),
        Arg("namespace", text, default=DEFAULT_NAMESPACE),
        Arg("server", serverURL, required=True),
        Arg("auth_header", optionalText),
        Arg("command", optionalArgv),
        Arg("relative_cwd", namedcaches.optionalRelativePath),
        Arg("caches", namedcaches.cacheList, default=[]),
        Arg("outputs", outputList, default=[]),
        Arg("secret_bytes", secretBytes),
        Arg("extra_args", optionalArgv, default=[]),
        Arg("env", environment),
        Arg("hard_timeout", optionalSeconds, default=DEFAULT_HARD_TIMEOUT_S),
        Arg("io_timeout", optionalSeconds, default=DEFAULT_IO_TIMEOUT_S),
        Arg("grace_period", optionalSeconds, default=DEFAULT_GRACE_PERIOD_S),
        Arg("cache_policies", cachePolicies, default=cascache.RUN_ISOLATED_POLICIES),
        Arg("want_stdout", boolean, default=True),
        Arg("want_stderr", boolean, default=True),
        Arg("max_lines", optionalSize),
    )
    _downloadStats: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.args["isolated"] is None and not self.args["command"]:
            raise CommandError(f"{self.name}: needs an isolated hash, a command, or both")

    async def run(self) -> None:
        """Sweep the run directories a stopped slave left, make this run's; fetch and map,
        run, archive the outputs; always delete the run directory."""
        basedir = self.context.slaveBasedir
        try:
            if self.args["isolated"] is not None:
                self._checkDigest(self.args["isolated"])
            await self._sweep(basedir)
            rundir, lock = await self.inThread(makeRunDir, basedir)
        except (IsolateError, OSError) as e:
            self._fail(e)
            return
        try:
            await self._runIn(rundir)
        finally:
            try:
                await self.inThread(cascache.remove_tree, rundir)
            except OSError as e:
                if os.path.lexists(rundir):  # else a sweep that saw it unlocked finished the job
                    log.warn("run_isolated: could not delete {rundir}: {e}", rundir=rundir, e=e)
            finally:
                os.close(lock)  # after the removal: a sweep never sees this run's directory unlocked

    async def _sweep(self, basedir: str) -> None:
        """Delete the run directories a stopped slave left; a failure is logged, the run goes on."""
        try:
            swept = await self.inThread(sweepStaleRuns, basedir)
        except OSError as e:
            log.warn("run_isolated: could not sweep {runs}: {e}", runs=os.path.join(basedir, RUNS_DIR), e=e)
            return
        if swept:
            log.info("run_isolated: removed {count} stale run directories: {dirs}", count=len(swept),
                     dirs=", ".join(swept))

    async def _runIn(self, rundir: str) -> None:
        treedir, outdir = os.path.join(rundir, "run"), os.path.join(rundir, "out")
        secretFile = None if self.args["secret_bytes"] is None else os.path.join(rundir, LUCI_CONTEXT_FILE)
        server = self._server()
        locks: list[int] = []
        placed: list[tuple[str, str]] = []
        try:
            try:
                fetched = None
                if self.args["isolated"] is not None:
                    fetched = await self._fetch(server, treedir)
                spec = self._runSpec(fetched, treedir, outdir, secretFile)
                locks = await self._lockNamedCaches()
                placed = await self._placeNamedCaches(treedir)
                await self.inThread(_prepareRun, spec, outdir, treedir)
                if secretFile is not None:
                    await self.inThread(_writeLuciContext, secretFile, self.args["secret_bytes"])
            except Exception as e:  # every failure is a log line, never a traceback
                self._fail(e)
                return
            try:
                result = await self._runProcess(spec)
            except CommandError:
                raise  # interrupted before it started: as ``shell`` does
            except Exception as e:  # the process could not be spawned
                self._fail(e)
                return
            finally:
                if secretFile is not None:
                    await self.inThread(_removeFile, secretFile)
            try:
                await self._collectOutputs(treedir, outdir)
                output = await self._archiveOutputs(server, outdir)
            except Exception as e:
                self._fail(e)
                return
        finally:
            await self._keepNamedCaches(placed)
            for fd in locks:
                os.close(fd)
            await server.close()
        if output is not None:
            self.sendStatus({"header": f"outputs: {output}\n"})
            self.sendStatus({"isolated_output": output})
        self._sendEnd(result)

    async def _fetch(self, server: isolateclient.IsolateServer, treedir: str):
        basedir = self.context.slaveBasedir
        self.sendStatus({"header": f"fetching {self.args['isolated']} from {self.args['server']}"
                                   f" ({self.args['namespace']})\n"})
        lock = await self._lockCache(os.path.join(basedir, CACHE_LOCK))
        try:
            cache = await self.inThread(cascache.DiskCache, os.path.join(basedir, CACHE_DIR),
                                        self.args["cache_policies"], self.context.clock,
                                        algo_for_namespace(self.args["namespace"]))
            try:
                fetched = await self._cancellable(isolateclient.download_tree(
                    server, self.args["isolated"], treedir, cache, reactor=self.context.reactor))
            finally:
                await self.inThread(_trimAndSave, cache)
        finally:
            os.close(lock)
        self._downloadStats = fetched.stats
        self._sendStats("fetched", fetched.stats)
        self.sendStatus({"isolate_stats": {"download": statsDict(fetched.stats)}})
        return fetched

    async def _lockCache(self, path: str) -> int:
        """An exclusive lock on the cache (the fd to close), polled until it is had."""
        return await self._waitForLock(lambda: namedcaches.tryFlock(path), "the slave's cache")

    async def _lockNamedCaches(self) -> list[int]:
        """The locks of the run's named caches, in name order, each waited for (polled on the
        slave's clock) while another run of this slave has that cache."""
        locks: list[int] = []
        try:
            for name, _path in self.args["caches"]:
                locks.append(await self._waitForLock(
                    lambda name=name: namedcaches.tryLock(self.context.slaveBasedir, name),
                    f"named cache {name!r}"))
        except BaseException:
            for fd in locks:
                os.close(fd)
            raise
        return locks

    async def _placeNamedCaches(self, treedir: str) -> list[tuple[str, str]]:
        """Move each named cache into the run directory; the ``(name, target)`` placed."""
        placed: list[tuple[str, str]] = []
        for name, path in self.args["caches"]:
            target = os.path.join(treedir, path)
            try:
                reused = await self.inThread(namedcaches.install, self.context.slaveBasedir, name, target)
            except namedcaches.CacheError as e:
                raise IsolateError(str(e)) from None
            placed.append((name, target))
            how = "kept from an earlier run" if reused else "new"
            self.sendStatus({"header": f"named cache {name} at {path} ({how})\n"})
        return placed

    async def _keepNamedCaches(self, placed: list[tuple[str, str]]) -> None:
        """Move the caches back out of the run directory (before it is deleted)."""
        for name, target in placed:
            try:
                await self.inThread(namedcaches.keep, self.context.slaveBasedir, name, target)
            except OSError as e:
                log.warn("run_isolated: could not keep the named cache {name}: {e}", name=name, e=e)

    async def _waitForLock(self, tryLock, what: str) -> int:
        """The fd ``tryLock`` (run on a thread) gives, polled until it gives one."""
        waited, told = 0.0, False
        while True:
            fd = await self.inThread(tryLock)
            if fd is not None:
                return fd
            if self.interrupted or waited >= LOCK_WAIT_S:
                raise IsolateError(f"interrupted while waiting for {what}" if self.interrupted
                                   else f"{what} stayed locked {LOCK_WAIT_S:g} s by another run")
            if not told:
                self.sendStatus({"header": f"waiting for {what} (another run has it)\n"})
                told = True
            await task.deferLater(self.context.clock, LOCK_POLL_S, lambda: None)
            waited += LOCK_POLL_S

    async def _collectOutputs(self, treedir: str, outdir: str) -> None:
        """Copy the listed outputs into the out directory; a missing one is noted, not an error."""
        if not self.args["outputs"]:
            return
        missing = await self.inThread(_copyOutputs, treedir, outdir, self.args["outputs"])
        for path in missing:
            self.sendStatus({"header": f"output {path} was not found (ignored)\n"})

    def _runSpec(self, fetched, treedir: str, outdir: str, secretFile: str | None = None) -> ProcessSpec:
        command = self.args["command"] or list(getattr(fetched, "command", None) or [])
        if not command:
            raise IsolateError(f"{self.args['isolated']} has no command and the step gives none")
        argv = [substitute(arg, outdir) for arg in command + self.args["extra_args"]]
        relative = self.args["relative_cwd"] or getattr(fetched, "relative_cwd", None) or ""
        cwd = os.path.normpath(os.path.join(treedir, relative))
        if os.path.commonpath([treedir, cwd]) != treedir:
            raise IsolateError(f"relative_cwd {relative!r} leaves the tree")
        slaveEnviron = {**os.environ, OUTDIR_VARIABLE: outdir}
        environ = buildEnvironment(self.args["env"], slaveEnviron, cwd)
        environ[OUTDIR_VARIABLE] = outdir
        environ.pop(LUCI_CONTEXT_VARIABLE, None)  # the slave's own is not the task's
        if secretFile is not None:
            environ[LUCI_CONTEXT_VARIABLE] = secretFile
        return ProcessSpec(argv=argv, workdir=cwd, environ=environ, timeout=self.args["io_timeout"],
                           maxTime=self.args["hard_timeout"], sigtermTime=self.args["grace_period"],
                           interruptSignal=signal.SIGKILL)

    async def _runProcess(self, spec: ProcessSpec) -> ProcessResult:
        if self.interrupted:
            raise CommandError(f"{self.name}: interrupted before it started")
        self._sendRunHeaders(spec)
        self.runner = RunProcess(spec, self._output, self.context.reactor, self.context.clock)
        return await self.runner.start()

    def _sendRunHeaders(self, spec: ProcessSpec) -> None:
        lines = [shlex.join(asText(a) for a in spec.argv),
                 f" in dir {spec.workdir}{self._limits(spec)}",
                 f" {OUTDIR_VARIABLE}={spec.environ[OUTDIR_VARIABLE]}"]
        if self.args["env"]:
            given = {k: spec.environ.get(k, "") for k in self.args["env"]}
            lines.append(" env: " + ", ".join(f"{k}={v}" for k, v in sorted(redact_environ(given).items())))
        self.sendStatus({"header": redact_log_header("".join(line + "\n" for line in lines))})

    @staticmethod
    def _limits(spec: ProcessSpec) -> str:
        limits = [f"{name} {value:g} s" for name, value in (
            ("hard timeout", spec.maxTime), ("io timeout", spec.timeout), ("grace period", spec.sigtermTime))
            if value is not None]
        return f" ({', '.join(limits)})" if limits else ""

    async def _archiveOutputs(self, server: isolateclient.IsolateServer, outdir: str) -> str | None:
        if not await self.inThread(_hasFiles, outdir):
            self.sendStatus({"header": "no outputs (the out directory is empty)\n"})
            return None
        archived = await self._cancellable(isolateclient.archive(server, [outdir],
                                                                 reactor=self.context.reactor))
        self._sendStats("outputs archived", archived.stats)
        stats = {"upload": statsDict(archived.stats)}
        if self._downloadStats is not None:
            stats["download"] = statsDict(self._downloadStats)
        self.sendStatus({"isolate_stats": stats})
        return archived.items[0][0]

    def _sendEnd(self, result: ProcessResult) -> None:
        self.sendStatus({"header": f"program finished with exit code {result.rc}\n"})
        self.sendStatus({"header": f"elapsedTime={result.elapsed:0.6f}\n"})
        if result.failureReason:
            self.sendStatus({"failure_reason": result.failureReason})
        self.sendStatus({"elapsed": result.elapsed})
        self.sendStatus({"rc": result.rc})


class IsolateArchive(_IsolateCommand):
    """Archives ``path`` (a directory, relative to ``workdir`` in the builder's directory) and
    reports its hash as ``isolated``.  Arguments: ``workdir``, ``path``, ``namespace``,
    ``server``, ``auth_header``, ``blacklist`` (regular expressions of paths to leave out)."""

    name = "isolate_archive"
    arguments = (
        Arg("workdir", text, default="build"),
        Arg("path", text, required=True),
        Arg("namespace", text, default=DEFAULT_NAMESPACE),
        Arg("server", serverURL, required=True),
        Arg("auth_header", optionalText),
        Arg("blacklist", blacklistArg, default=[]),
    )

    async def run(self) -> None:
        """Archive the directory, report its hash and the statistics."""
        workdir = self.resolvePath(self.args["workdir"])
        path = self.resolvePath(self.args["path"], "path", base=workdir)
        digests = os.path.join(self.context.slaveBasedir, DIGESTS_DIR,
                               os.path.basename(self.context.builderDir) + ".json")
        self.sendStatus({"header": f"archiving {path} to {self.args['server']} ({self.args['namespace']})\n"})
        server = self._server()
        try:
            if not await self.inThread(os.path.isdir, path):
                raise IsolateError(f"{path} is not a directory")
            await self.inThread(os.makedirs, os.path.dirname(digests), 0o755, True)
            archived = await self._cancellable(isolateclient.archive(
                server, [path], blacklist=self.args["blacklist"] or None, digest_cache_path=digests,
                reactor=self.context.reactor))
        except Exception as e:  # every failure is a log line, never a traceback
            self._fail(e)
            return
        finally:
            await server.close()
        digest = archived.items[0][0]
        self._sendStats("archived", archived.stats)
        self.sendStatus({"header": f"isolated: {digest}\n"})
        self.sendStatus({"isolate_stats": {"upload": statsDict(archived.stats)}})
        self.sendStatus({"isolated": digest})
        self.sendStatus({"rc": 0})


@contextlib.contextmanager
def _runsLocked(basedir: str):
    """The lock that orders making a run directory (and locking it) against sweeping them
    (blocking: a thread; it is held for a mkdir or a directory listing, never longer)."""
    fd = os.open(os.path.join(basedir, RUNS_LOCK), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def makeRunDir(basedir: str) -> tuple[str, int]:
    """A fresh run directory under ``<basedir>/cas-runs/`` and the fd of its lock file
    (``RUN_LOCK`` inside it, flock'ed while the run lives: close it once the directory is
    deleted).  Blocking: a thread."""
    runs = os.path.join(basedir, RUNS_DIR)
    os.makedirs(runs, exist_ok=True)
    with _runsLocked(basedir):
        rundir = tempfile.mkdtemp(prefix="run-", dir=runs)
        fd = os.open(os.path.join(rundir, RUN_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
    return rundir, fd


def sweepStaleRuns(basedir: str) -> list[str]:
    """Delete the run directories no live run holds (a slave killed mid-run left them: the
    kernel dropped its locks), read-only trees included; the paths deleted.  A live run's
    directory (this slave's other builders, or another process's) is left alone: its lock
    is held.  Blocking: a thread."""
    runs = os.path.join(basedir, RUNS_DIR)
    if not os.path.isdir(runs):
        return []
    stale: list[tuple[str, int | None]] = []
    with _runsLocked(basedir):
        for entry in sorted(os.scandir(runs), key=lambda e: e.name):
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                fd = os.open(os.path.join(entry.path, RUN_LOCK), os.O_RDWR)
            except FileNotFoundError:
                stale.append((entry.path, None))  # made before run locks existed, or half-deleted
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a run in progress
                continue
            stale.append((entry.path, fd))
    swept = []
    for path, fd in stale:
        try:
            cascache.remove_tree(path)  # holding its lock: no sweep elsewhere takes it meanwhile
            swept.append(path)
        except OSError as e:
            if os.path.lexists(path):  # else a run that was ending deleted it first
                log.warn("run_isolated: could not delete the stale {path}: {e}", path=path, e=e)
        finally:
            if fd is not None:
                os.close(fd)
    return swept


def _prepareRun(spec: ProcessSpec, outdir: str, treedir: str | None = None) -> None:
    """Make the out directory, the tree's (empty without inputs) and the command's cwd, and
    check that the command can be run (an exec that fails in the child would print Twisted's
    traceback instead of a clear line).  Blocking: a thread."""
    os.makedirs(outdir, exist_ok=True)
    if treedir is not None:
        os.makedirs(treedir, exist_ok=True)
    os.makedirs(spec.workdir, exist_ok=True)
    program = asText(spec.argv[0])
    if "/" in program:  # a path, relative to the cwd as exec takes it
        found = os.path.join(spec.workdir, program)
        if not os.path.isfile(found):
            raise IsolateError(f"the command {program!r} is not in the tree (looked in {spec.workdir})")
        if not os.access(found, os.X_OK):
            raise IsolateError(f"the command {program!r} is not executable (its mode has no x bit)")
        return
    if shutil.which(program, path=spec.environ.get("PATH", os.defpath)) is None:
        raise IsolateError(f"the command {program!r} is not found on the PATH "
                           f"({spec.environ.get('PATH', os.defpath)}); a program of the tree is run "
                           f"as './{program}'")


def _writeLuciContext(path: str, secret: bytes) -> None:
    """The LUCI_CONTEXT file Swarming gives a task with secret bytes, readable by the slave's
    user only.  Blocking: a thread."""
    doc = {"swarming": {"secret_bytes": base64.b64encode(secret).decode("ascii")}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)


def _removeFile(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _copyOutputs(treedir: str, outdir: str, outputs: list[str]) -> list[str]:
    """Copy each output (a file, a symlink or a directory of the tree) to the same path in the
    out directory; the outputs that were not there.  Blocking: a thread."""
    missing = []
    for path in outputs:
        source, target = os.path.join(treedir, path), os.path.join(outdir, path)
        if not os.path.lexists(source):
            missing.append(path)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target, follow_symlinks=False)
    return missing


def _hasFiles(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return any(True for _ in entries)
    except FileNotFoundError:
        return False


def _trimAndSave(cache: cascache.DiskCache) -> None:
    try:
        cache.trim()
    finally:
        cache.save()


__all__ = ["ISOLATE_ERROR_RC", "IsolateArchive", "RunIsolated", "substitute"]
