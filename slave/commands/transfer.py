"""The file transfer commands (PROTOCOL §5): ``uploadFile``, ``uploadDirectory``, ``downloadFile``.

The master hands the slave a reference to a ``FileWriter`` (uploads) or a ``FileReader``
(downloads); the slave moves the data in blocks.  Uploads keep up to `WRITE_WINDOW` ``write``
calls in flight: PB delivers calls of one connection in order and a master runs each writer's
calls in that order (stock Buildbot writes synchronously, ours through one queue per writer),
so the wire protocol is unchanged and the round trip no longer paces the transfer.  Downloads
likewise keep up to `READ_WINDOW` ``read`` calls in flight (stock masters read synchronously,
ours through one queue per reader); reads past the end return b"" and are dropped.

Paths: ``workdir`` is relative to the builder's directory, the source or destination relative
to the workdir; neither may leave the slave's basedir.  All disk and compression work runs on
the reactor's thread pool.

Updates: a header "sending PATH" (uploads), then on failure a ``stderr`` line, then ``rc``
(0, or 1 when the file is missing, ``maxsize`` was exceeded or the command was interrupted).
"""

from __future__ import annotations

import collections
import errno
import os
import secrets
import tarfile
import tempfile
from typing import IO, Any

from twisted.internet import defer

from buildfarm.slave.commands.base import (
    Arg,
    Command,
    CommandError,
    boolean,
    optionalSize,
    remoteReference,
    text,
)

DEFAULT_BLOCKSIZE = 16 * 1024  # what 4.x masters send by default
MAX_BLOCKSIZE = 512 * 1024  # one write()/read() stays below Banana's 640 KiB string limit
WRITE_WINDOW = 8  # upload blocks sent before the first reply is awaited
READ_WINDOW = 4  # download reads asked for before the first answer is awaited
TAR_MODES = {None: "w", "gz": "w|gz", "bz2": "w|bz2"}
DEFAULT_FILE_MODE = 0o666  # before the umask, as open() creates files


def blockSize(value: object) -> int:
    """A positive number of bytes; larger requests are capped at `MAX_BLOCKSIZE`."""
    if value is None:
        return DEFAULT_BLOCKSIZE
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"must be a positive integer, not {value!r}")
    return min(value, MAX_BLOCKSIZE)


def compression(value: object) -> str | None:
    """None, "gz" or "bz2"."""
    value = value.decode("utf-8") if isinstance(value, bytes) else value
    if value not in TAR_MODES:
        raise ValueError(f"must be None, 'gz' or 'bz2', not {value!r}")
    return value


def fileMode(value: object) -> int | None:
    """None or a permission mode (an int such as 0o755)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise ValueError(f"must be a file mode such as 0o644 or None, not {value!r}")
    return value


class _Transfer(Command):
    """What the three transfers share: resolving ``workdir`` + the file argument, moving
    blocks, and the final ``stderr``/``rc``."""

    fileArg = ""

    def transferPath(self) -> str:
        """The source/destination: relative to the workdir, inside the slave's basedir."""
        workdir = self.resolvePath(self.args["workdir"])
        return self.resolvePath(self.args[self.fileArg], self.fileArg, base=workdir)

    async def sendBlocks(self, source: IO[bytes], writer: Any) -> bool:
        """``write(block)`` to the master until ``source`` ends; False when ``maxsize`` stops
        it first (what was sent is the first ``maxsize`` bytes).  Up to `WRITE_WINDOW` writes
        are in flight; all have been answered when this returns or raises."""
        inFlight: collections.deque[defer.Deferred] = collections.deque()
        try:
            complete = await self._sendWindowed(source, writer, inFlight)
        except BaseException:
            await _settle(inFlight, raiseFailure=False)
            raise
        await _settle(inFlight)
        return complete

    async def _sendWindowed(self, source: IO[bytes], writer: Any,
                            inFlight: collections.deque[defer.Deferred]) -> bool:
        remaining = self.args["maxsize"]

        def nextRead() -> defer.Deferred:
            # the next block, or one byte past maxsize to see whether the file goes on
            length = self.args["blocksize"] if remaining is None else min(
                self.args["blocksize"], remaining)
            return self.inThread(source.read, length or 1)

        reading = nextRead()  # the disk reads the next block while this one travels
        try:
            while True:
                block = await reading
                if remaining == 0:
                    return not block
                if not block or self.interrupted:
                    return True
                if remaining is not None:
                    remaining -= len(block)
                reading = nextRead()
                inFlight.append(writer.callRemote("write", block))
                if len(inFlight) >= WRITE_WINDOW:
                    await inFlight.popleft()
        except BaseException:
            await _settle(collections.deque([reading]), raiseFailure=False)  # before the file closes
            raise

    def interruptedResult(self) -> None:
        """An interrupt stops the transfer after the blocks in flight; it ends with rc 1."""
        self.sendResult(1, f"{self.name} interrupted")


async def _settle(calls: collections.deque[defer.Deferred], raiseFailure: bool = True) -> None:
    """Wait for every call still in flight, oldest first.  The first failure is raised once
    all have settled (later ones are consequences of it), unless ``raiseFailure`` is false
    because the caller is already raising."""
    failure = None
    while calls:
        try:
            await calls.popleft()
        except Exception as e:
            failure = failure or e
    if failure is not None and raiseFailure:
        raise failure


class UploadFile(_Transfer):
    """Sends ``workdir/workersrc`` to the master's FileWriter: ``write`` per block, then
    ``close`` and, with ``keepstamp``, ``utime((atime, mtime))``."""

    name = "uploadFile"
    fileArg = "workersrc"
    arguments = (
        Arg("workdir", text, required=True),
        Arg("workersrc", text, required=True, oldName="slavesrc"),
        Arg("writer", remoteReference, required=True),
        Arg("maxsize", optionalSize),
        Arg("blocksize", blockSize, default=DEFAULT_BLOCKSIZE),
        Arg("keepstamp", boolean, default=False),
    )

    async def run(self) -> None:
        path = self.transferPath()
        writer = self.args["writer"]
        self.sendStatus({"header": f"sending {path}\n"})
        try:
            source = await self.inThread(open, path, "rb")
        except OSError as e:
            self.sendResult(1, f"Cannot open file '{path}' for upload: {e.strerror}")
            return
        try:
            stamp = await self.inThread(os.fstat, source.fileno())
            complete = await self.sendBlocks(source, writer)
        finally:
            await self.inThread(source.close)
        if self.interrupted:
            self.interruptedResult()
            return
        await writer.callRemote("close")
        if self.args["keepstamp"]:
            # 4.x masters apply utime to the file that close() moved into place.
            await writer.callRemote("utime", (stamp.st_atime, stamp.st_mtime))
        if not complete:
            self.sendResult(1, f"Maximum filesize reached, truncating file '{path}'"
                               f" (maxsize {self.args['maxsize']} bytes)")
            return
        self.sendResult(0)


def _writeTarball(path: str, compress: str | None) -> IO[bytes]:
    """A temporary file holding a tar of the directory ``path`` (members relative to it),
    rewound; it disappears when closed."""
    if not os.path.isdir(path):
        code = errno.ENOTDIR if os.path.exists(path) else errno.ENOENT
        raise OSError(code, os.strerror(code), path)
    archive = tempfile.TemporaryFile(prefix="buildfarm-upload-")
    try:
        with tarfile.open(mode=TAR_MODES[compress], fileobj=archive) as tar:
            tar.add(path, arcname="")
        archive.seek(0)
    except BaseException:
        archive.close()
        raise
    return archive


class UploadDirectory(_Transfer):
    """Sends a tar (optionally gz/bz2-compressed) of ``workdir/workersrc`` to the master's
    DirectoryWriter: ``write`` per block, then ``unpack`` (which also closes the writer)."""

    name = "uploadDirectory"
    fileArg = "workersrc"
    arguments = (
        Arg("workdir", text, required=True),
        Arg("workersrc", text, required=True, oldName="slavesrc"),
        Arg("writer", remoteReference, required=True),
        Arg("maxsize", optionalSize),
        Arg("blocksize", blockSize, default=DEFAULT_BLOCKSIZE),
        Arg("compress", compression),
    )

    async def run(self) -> None:
        path = self.transferPath()
        writer = self.args["writer"]
        self.sendStatus({"header": f"sending {path}\n"})
        try:
            archive = await self.inThread(_writeTarball, path, self.args["compress"])
        except OSError as e:
            self.sendResult(1, f"Cannot read directory '{path}' for upload: {e.strerror or e}")
            return
        try:
            complete = await self.sendBlocks(archive, writer)
        finally:
            await self.inThread(archive.close)
        if self.interrupted:
            self.interruptedResult()
        elif not complete:
            # A truncated archive cannot be unpacked: the master discards it.
            self.sendResult(1, f"Maximum filesize reached: the archive of '{path}' is larger"
                               f" than maxsize {self.args['maxsize']} bytes; not unpacked")
        else:
            await writer.callRemote("unpack")
            self.sendResult(0)


def _openTempBeside(path: str) -> tuple[IO[bytes], str]:
    """A new file next to ``path`` (created with the umask's default mode), and its name.

    The destination's directory must really lie inside the slave's basedir, which the caller
    checks; the final rename replaces ``path`` itself, so a symlink there is replaced, never
    written through."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tempName = os.path.join(os.path.dirname(path),
                            f".{os.path.basename(path)}.{secrets.token_hex(4)}.download")
    fd = os.open(tempName, os.O_WRONLY | os.O_CREAT | os.O_EXCL, DEFAULT_FILE_MODE)
    return os.fdopen(fd, "wb"), tempName


def _installDownload(tempName: str, path: str, mode: int | None) -> None:
    if mode is not None:
        os.chmod(tempName, mode)
    os.replace(tempName, path)


def _discard(tempName: str) -> None:
    try:
        os.remove(tempName)
    except FileNotFoundError:
        pass


class DownloadFile(_Transfer):
    """Fetches a file from the master's FileReader into ``workdir/workerdest``: ``read(n)``
    until b"", then ``close``.  The data goes to a temporary file beside the destination,
    which is renamed into place (with ``mode``, if given) once complete."""

    name = "downloadFile"
    fileArg = "workerdest"
    arguments = (
        Arg("workdir", text, required=True),
        Arg("workerdest", text, required=True, oldName="slavedest"),
        Arg("reader", remoteReference, required=True),
        Arg("maxsize", optionalSize),
        Arg("blocksize", blockSize, default=DEFAULT_BLOCKSIZE),
        Arg("mode", fileMode),
    )

    async def run(self) -> None:
        path = self.transferPath()
        reader = self.args["reader"]
        self._checkRealDirectory(path)
        try:
            target, tempName = await self.inThread(_openTempBeside, path)
        except OSError as e:
            await reader.callRemote("close")
            self.sendResult(1, f"Cannot open file '{path}' for download: {e.strerror}")
            return
        try:
            complete = await self._receiveBlocks(target, reader)
            await self.inThread(target.close)
            if self.interrupted:
                await self.inThread(_discard, tempName)
            else:
                await self.inThread(_installDownload, tempName, path, self.args["mode"])
        except BaseException:
            target.close()
            await self.inThread(_discard, tempName)
            raise
        await reader.callRemote("close")
        if self.interrupted:
            self.interruptedResult()
        elif not complete:
            self.sendResult(1, f"Maximum filesize reached, truncating file '{path}'"
                               f" (maxsize {self.args['maxsize']} bytes)")
        else:
            self.sendResult(0)

    async def _receiveBlocks(self, target: IO[bytes], reader: Any) -> bool:
        """Write what ``read`` returns until b""; False when ``maxsize`` stops it first.  Up to
        `READ_WINDOW` reads are in flight (answered in order); all have been answered when
        this returns or raises."""
        inFlight: collections.deque[tuple[defer.Deferred, int]] = collections.deque()
        try:
            complete = await self._receiveWindowed(target, reader, inFlight)
        except BaseException:
            await _settle(collections.deque(d for d, _ in inFlight), raiseFailure=False)
            raise
        await _settle(collections.deque(d for d, _ in inFlight))
        return complete

    async def _receiveWindowed(self, target: IO[bytes], reader: Any,
                               inFlight: collections.deque[tuple[defer.Deferred, int]]) -> bool:
        maxsize = self.args["maxsize"]
        asked = received = 0
        probing = False  # the 1-byte read past maxsize is out: ask for nothing more
        while not self.interrupted:
            while not probing and len(inFlight) < READ_WINDOW:
                length = self.args["blocksize"] if maxsize is None else min(
                    self.args["blocksize"], maxsize - asked)
                probing = length == 0
                inFlight.append((reader.callRemote("read", length or 1), length))
                asked += length
            pending, length = inFlight.popleft()
            block = await pending
            block = block.encode("utf-8") if isinstance(block, str) else block
            if not block:
                return True
            if length == 0:
                return False
            if maxsize is not None:
                block = block[:maxsize - received]
            received += len(block)
            await self.inThread(target.write, block)
        return True

    def _checkRealDirectory(self, path: str) -> None:
        """Refuse a destination whose existing directories lead out of the slave's basedir
        through a symlink."""
        root = os.path.realpath(self.context.slaveBasedir)
        real = os.path.realpath(os.path.dirname(path))
        if os.path.commonpath([root, real]) != root:
            raise CommandError(
                f"{self.name}: workerdest {self.args['workerdest']!r} leads outside the slave's"
                f" basedir {root} (through a symlink, to {real})"
            )
