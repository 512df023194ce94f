"""The master's ends of file transfers, called by the slave (PROTOCOL section 5).

``FileWriter`` receives an upload into a temporary file beside its destination and moves
it into place atomically on ``close``; ``DirectoryWriter`` receives a tar and extracts it
safely on ``unpack``; ``FileReader`` serves a download.  Every disk operation runs in a
thread so the reactor never waits on the disk.  Our slave keeps several ``write`` calls in
flight (stock workers wait for each reply); PB delivers them in order, and a writer runs its
disk work one piece after the other in that order through a ``DeferredLock`` (FIFO), so a
later block never overtakes an earlier one and ``close``/``unpack``/``utime`` come after every
write.

A ``write`` is answered as soon as its block is queued for the disk, while the writer holds
at most `WRITE_AHEAD_BYTES` not yet written; past that the answer waits until the disk
catches up.  So the slave's next blocks travel while earlier ones are being written.  Blocks
that queued up meanwhile go to the disk thread together.  A failed disk write fails the next
``write`` or the ``close``, and nothing is moved into place.
"""

import io
import os
import tarfile
import tempfile

from twisted.internet import defer, threads
from twisted.spread import pb

WRITE_AHEAD_BYTES = 4 * 1024 * 1024  # accepted blocks the disk has not written yet, at most


class TransferError(pb.Error):
    """A transfer the master cannot complete (disk full, unsafe archive, ...)."""


class FileWriter(pb.Referenceable):
    """Where an uploaded file's blocks go: ``write``* then ``utime``? then ``close``."""

    def __init__(self, destfile: str, maxsize: int | None = None, mode: int | None = None):
        self.destfile = os.path.abspath(destfile)
        self.maxsize = maxsize
        self.mode = mode
        self.received = 0
        self.truncated = False
        self._fp = None
        self._tmpname: str | None = None
        self._times: tuple[float, float] | None = None
        self.closed = False
        self._queue = defer.DeferredLock()  # the writer's disk work, one call at a time, in order
        self._unwritten: list[bytes] = []  # accepted blocks not yet handed to the disk thread
        self._unwrittenBytes = 0  # the bytes of accepted blocks the disk has not written yet
        self._flushing = False  # a flush of `_unwritten` holds (or waits for) the queue
        self._held: list[defer.Deferred] = []  # answers of writes past WRITE_AHEAD_BYTES
        self._failure: Exception | None = None  # why a disk write failed

    def _inOrder(self, function, *args):
        """Run ``function(*args)`` in a thread after every call queued before it."""
        return self._queue.run(threads.deferToThread, function, *args)

    def _open(self) -> None:
        directory = os.path.dirname(self.destfile)
        os.makedirs(directory, exist_ok=True)
        fd, self._tmpname = tempfile.mkstemp(dir=directory, prefix=".upload-")
        self._fp = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        if self._fp is None:
            self._open()
        if self.maxsize is not None and self.received + len(data) > self.maxsize:
            data = data[: max(0, self.maxsize - self.received)]
            self.truncated = True
        self._fp.write(data)
        self.received += len(data)

    def _writeBlocks(self, blocks: list[bytes]) -> None:
        for data in blocks:
            self._write(data)

    def remote_write(self, data):
        """One block of the file (bytes, or str from old slaves); answered once it is queued
        for the disk, or once the disk caught up when much is queued already."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if self._failure is not None:
            raise self._failure
        if self.closed:
            raise TransferError("write after close")
        self._unwritten.append(data)
        self._unwrittenBytes += len(data)
        if not self._flushing:
            self._flushing = True
            self._queue.run(lambda: defer.ensureDeferred(self._flush()))
        if self._unwrittenBytes <= WRITE_AHEAD_BYTES:
            return defer.succeed(None)
        held = defer.Deferred()
        self._held.append(held)
        return held

    async def _flush(self) -> None:
        """Write the accepted blocks, those that arrive meanwhile too, in order."""
        try:
            while self._unwritten and self._failure is None:
                blocks, self._unwritten = self._unwritten, []
                try:
                    await threads.deferToThread(self._writeBlocks, blocks)
                except Exception as e:
                    self._failure = e if isinstance(e, pb.Error) else TransferError(
                        f"writing {self.destfile} failed: {e}")
                self._unwrittenBytes -= sum(len(data) for data in blocks)
                self._answerHeld()
        finally:
            self._flushing = False
            self._unwritten = []
            self._answerHeld()

    def _answerHeld(self) -> None:
        if self._failure is None and self._unwrittenBytes > WRITE_AHEAD_BYTES:
            return
        held, self._held = self._held, []
        for answer in held:
            if self._failure is None:
                answer.callback(None)
            else:
                answer.errback(self._failure)

    def remote_utime(self, accessed_modified):
        """Keep the source's access and modification times (``keepstamp``); stock workers
        send it after ``close``, older ones before."""
        accessed, modified = accessed_modified
        self._times = (float(accessed), float(modified))
        if self.closed:
            return self._inOrder(self._utimeAfterClose)
        return None

    def _utimeAfterClose(self) -> None:
        if self._tmpname is None:  # close() moved the file into place
            os.utime(self.destfile, self._times)

    def _finish(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._fp is None:
            self._open()  # an empty file sends no block
        self._fp.close()
        if self.mode is not None:
            os.chmod(self._tmpname, self.mode)
        os.replace(self._tmpname, self.destfile)
        self._tmpname = None
        if self._times is not None:
            os.utime(self.destfile, self._times)

    def remote_close(self):
        """The whole file arrived: move it into place once written (a failed write fails
        this instead)."""
        self.closed = True
        return self._inOrder(self._finish)

    def _discard(self) -> None:
        if self._fp is not None and not self._fp.closed:
            self._fp.close()
        if self._tmpname and os.path.exists(self._tmpname):
            os.remove(self._tmpname)
        self._tmpname = None

    def cancel(self):
        """The transfer failed: delete what was written (after any write still queued)."""
        return self._inOrder(self._discard)


class DirectoryWriter(FileWriter):
    """Receives a tar of a directory and extracts it under ``destdir`` on ``unpack``."""

    def __init__(self, destdir: str, maxsize: int | None = None, compress: str | None = None,
                 mode: int | None = 0o600):
        self.destdir = os.path.abspath(destdir)
        self.compress = compress
        super().__init__(os.path.join(self.destdir, ".upload.tar"), maxsize, mode)

    def remote_unpack(self):
        """The archive is complete: extract it, refusing anything that would leave destdir."""
        return self._inOrder(self._unpack)

    def _unpack(self) -> None:
        archive = self.destfile
        if self._tmpname is not None:  # the slave may unpack before close
            self._finish()
        try:
            extract_safely(archive, self.destdir, self.compress)
        finally:
            if os.path.exists(archive):
                os.remove(archive)

    def remote_close(self):
        self.closed = True
        return self._inOrder(self._finishUnlessUnpacked)

    def _finishUnlessUnpacked(self) -> None:
        if self._tmpname is not None:  # else unpack already finished the archive
            self._finish()


def extract_safely(archive: str, destdir: str, compress: str | None) -> None:
    """Extract a tar under ``destdir``; refuse it whole if any member would escape.

    Every member is checked first with tarfile's ``data`` filter (no absolute or ``..``
    paths, no links out of the destination, no device files), so an unsafe archive writes
    nothing at all.
    """
    mode = "r:" + compress if compress else "r:"
    try:
        with tarfile.open(archive, mode) as tar:
            members = tar.getmembers()
            for member in members:
                if os.path.isabs(member.name) or member.name.startswith(("/", "\\")):
                    raise TransferError(f"refusing unsafe archive member: absolute path {member.name!r}")
                tarfile.data_filter(member, destdir)
            tar.extractall(destdir, members=members, filter="data")
    except tarfile.FilterError as e:
        raise TransferError(f"refusing unsafe archive member: {e}") from None
    except (tarfile.TarError, EOFError) as e:
        raise TransferError(f"bad archive: {e}") from None


class FileReader(pb.Referenceable):
    """Serves a file to the slave: ``read(maxlength)`` until b"", then ``close``."""

    def __init__(self, path: str):
        self.path = path
        self._fp = None
        self._queue = defer.DeferredLock()  # reads answered one at a time, in call order

    def open(self):
        """Open the source (in a thread); fails if it cannot be read."""
        return threads.deferToThread(self._open)

    def _open(self) -> None:
        self._fp = open(self.path, "rb")  # noqa: SIM115 - closed by remote_close/cancel

    def remote_read(self, maxlength):
        """Up to ``maxlength`` bytes; b"" at the end (or once closed).  Our slave keeps
        several reads in flight: they run one after the other, in the order they came."""
        return self._queue.run(threads.deferToThread, self._read, int(maxlength))

    def _read(self, maxlength: int) -> bytes:
        return self._fp.read(maxlength) if self._fp is not None else b""

    def remote_close(self):
        """The slave has everything."""
        return self.cancel()

    def cancel(self):
        """Close the source after any read still queued."""
        return self._queue.run(threads.deferToThread, self._close)

    def _close(self) -> None:
        fp, self._fp = self._fp, None
        if fp is not None:
            fp.close()


class BytesReader(FileReader):
    """Serves bytes held in memory (``StringDownload``)."""

    def __init__(self, data: bytes):
        super().__init__("<string>")
        self._data = data

    def _open(self) -> None:
        self._fp = io.BytesIO(self._data)

    def remote_read(self, maxlength):
        return self._read(int(maxlength))  # in memory: no thread, and so in order
