"""The filesystem commands: ``mkdir``, ``rmdir``, ``cpdir``, ``stat``, ``glob``, ``listdir``,
``rmfile``.

Paths are relative to the builder's directory (``stat``'s ``file`` to its optional
``workdir``) and may not leave the slave's basedir.  A filesystem error ends the command with
a header "<command>: <strerror>: <path>" and ``rc`` = the errno, as 4.x workers report it.
``rmdir`` and ``cpdir`` run ``rm``/``cp`` as processes, so their ``timeout`` and ``maxTime``
apply and an interrupt kills them; the other commands do their disk work on the reactor's
thread pool.
"""

from __future__ import annotations

import errno
import glob
import os
import stat as statModule
from collections.abc import Callable
from typing import Any

from buildfarm.slave.commands.base import (
    Arg,
    Command,
    anything,
    optionalSeconds,
    text,
    textOrList,
)
from buildfarm.slave.runprocess import ProcessSpec, RunProcess

FS_PROCESS_TIMEOUT_S = 120  # default `timeout` of rmdir/cpdir: seconds without output


class _FilesystemCommand(Command):
    """Reports an OSError as 4.x workers do: header "<name>: <strerror>: <path>", rc = errno."""

    def sendOSError(self, error: OSError, path: str) -> None:
        self.sendStatus({"header": f"{self.name}: {error.strerror}: {path}\n"})
        self.sendStatus({"rc": error.errno or 1})

    async def attempt(self, path: str, function: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        """``(True, function(*args))`` run in a thread, or ``(False, None)`` after reporting
        the OSError it raised."""
        try:
            return True, await self.inThread(function, *args)
        except OSError as e:
            self.sendOSError(e, path)
            return False, None


class MakeDirectory(_FilesystemCommand):
    """Creates ``dir`` (a path or a list of paths), with missing parents; existing
    directories are fine."""

    name = "mkdir"
    arguments = (Arg("dir", textOrList, required=True),)

    async def run(self) -> None:
        paths = [self.resolvePath(d, "dir") for d in self.args["dir"]]
        for path in paths:
            ok, _ = await self.attempt(path, os.makedirs, path, 0o777, True)
            if not ok:
                return
        self.sendStatus({"rc": 0})


class StatFile(_FilesystemCommand):
    """Sends ``{"stat": tuple(os.stat(workdir/file))}`` (the 10 classic fields)."""

    name = "stat"
    arguments = (
        Arg("file", text, required=True),
        Arg("workdir", text, default=""),
    )

    async def run(self) -> None:
        workdir = self.resolvePath(self.args["workdir"])
        path = self.resolvePath(self.args["file"], "file", base=workdir)
        ok, result = await self.attempt(path, os.stat, path)
        if ok:
            self.sendStatus({"stat": tuple(result)})
            self.sendStatus({"rc": 0})


class GlobPath(_FilesystemCommand):
    """Sends ``{"files": [absolute paths]}`` matching the pattern ``path`` (``**`` recurses)."""

    name = "glob"
    arguments = (Arg("path", text, required=True),)

    async def run(self) -> None:
        pattern = self.resolvePath(self.args["path"], "path")
        ok, files = await self.attempt(pattern, _globSorted, pattern)
        if ok:
            self.sendStatus({"files": files})
            self.sendStatus({"rc": 0})


def _globSorted(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))


class ListDir(_FilesystemCommand):
    """Sends ``{"files": [names]}``: the entries of the directory ``dir``, sorted."""

    name = "listdir"
    arguments = (Arg("dir", text, required=True),)

    async def run(self) -> None:
        path = self.resolvePath(self.args["dir"], "dir")
        ok, names = await self.attempt(path, os.listdir, path)
        if ok:
            self.sendStatus({"files": sorted(names)})
            self.sendStatus({"rc": 0})


class RemoveFile(_FilesystemCommand):
    """Removes the file ``path``."""

    name = "rmfile"
    arguments = (Arg("path", text, required=True),)

    async def run(self) -> None:
        path = self.resolvePath(self.args["path"], "path")
        ok, _ = await self.attempt(path, os.remove, path)
        if ok:
            self.sendStatus({"rc": 0})


class _ProcessCommand(_FilesystemCommand):
    """Runs helper processes (``rm``, ``chmod``, ``cp``) in the builder's directory, relaying
    their output; ``timeout``/``maxTime`` limit each one and an interrupt kills it."""

    runner: RunProcess | None = None

    async def runProcess(self, argv: list[str]) -> int:
        spec = ProcessSpec(
            argv=argv,
            workdir=self.context.builderDir,
            environ=dict(os.environ),
            timeout=self.args["timeout"],
            maxTime=self.args["maxTime"],
        )
        os.makedirs(self.context.builderDir, exist_ok=True)
        self.runner = RunProcess(spec, self._output, self.context.reactor, self.context.clock)
        try:
            result = await self.runner.start()
        finally:
            self.runner = None
        if result.failureReason:
            self.sendStatus({"failure_reason": result.failureReason})
        return result.rc

    def _output(self, stream: str, data: str) -> None:
        self.sendStatus({stream: data})

    def interrupt(self, why: str) -> None:
        """Kill the running helper process; no further one starts."""
        super().interrupt(why)
        if self.runner is not None:
            self.runner.kill(f"command interrupted: {why}" if why else "command interrupted")


class RemoveDirectory(_ProcessCommand):
    """Removes each of ``dir`` (a path or a list) with ``rm -rf``; when that fails it makes
    the tree writable (``chmod -Rf u+rwx``) and tries once more.  ``rc`` is 0 or the last
    failure's code (-1 when killed)."""

    name = "rmdir"
    arguments = (
        Arg("dir", textOrList, required=True),
        Arg("timeout", optionalSeconds, default=FS_PROCESS_TIMEOUT_S),
        Arg("maxTime", optionalSeconds),
        Arg("logEnviron", anything),
    )

    async def run(self) -> None:
        paths = [self.resolvePath(d, "dir") for d in self.args["dir"]]
        rc = 0
        for path in paths:
            if self.interrupted:
                rc = rc or -1
                break
            result = await self._remove(path)
            rc = result if result != 0 else rc
        self.sendStatus({"rc": rc})

    async def _remove(self, path: str) -> int:
        rc = await self.runProcess(["rm", "-rf", "--", path])
        if rc == 0 or self.interrupted:
            return rc
        await self.runProcess(["chmod", "-Rf", "u+rwx", "--", path])
        return await self.runProcess(["rm", "-rf", "--", path])


class CopyDirectory(_ProcessCommand):
    """Copies the directory ``fromdir`` to ``todir`` with ``cp -R -P -p`` (symlinks copied as
    links, modes and times kept); ``rc`` is cp's exit code."""

    name = "cpdir"
    arguments = (
        Arg("fromdir", text, required=True),
        Arg("todir", text, required=True),
        Arg("timeout", optionalSeconds, default=FS_PROCESS_TIMEOUT_S),
        Arg("maxTime", optionalSeconds),
        Arg("logEnviron", anything),
    )

    async def run(self) -> None:
        source = self.resolvePath(self.args["fromdir"], "fromdir")
        target = self.resolvePath(self.args["todir"], "todir")
        ok, isDir = await self.attempt(source, _isDirectory, source)
        if not ok:
            return
        if not isDir:
            self.sendOSError(NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)), source)
            return
        ok, _ = await self.attempt(target, os.makedirs, os.path.dirname(target), 0o777, True)
        if ok:
            self.sendStatus({"rc": await self.runProcess(["cp", "-R", "-P", "-p", "--", source,
                                                           target])})


def _isDirectory(path: str) -> bool:
    return statModule.S_ISDIR(os.stat(path).st_mode)
