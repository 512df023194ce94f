"""Watched logfiles of a ``shell`` command: files the command writes, sent to the master as
``log`` updates while it runs (PROTOCOL §4 ``logfiles``).

Each file is polled every `POLL_INTERVAL_S` on the injected clock.  A file that exists when
the command starts is only read once it changes (a stale log from an earlier build is not
sent); with ``follow`` only what is appended after the start is sent.  A last poll at the end
catches what was written just before the command exited.

Reading happens in a thread, at most `READ_STEP_BYTES` at a time, so a log that grows by
hundreds of megabytes never holds the reactor (the keepalive, the process's output, other
commands): a poll that finds more reads the next step once the reactor has run again.
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from buildfarm.slave.commands.base import asText

POLL_INTERVAL_S = 2.0
# What one read in the thread takes at most; a poll that hit it reads again right after.
READ_STEP_BYTES = 1024 * 1024

log = Logger()


@dataclass(frozen=True)
class WatchedLog:
    """One entry of the ``logfiles`` argument: the log's name, its file (relative to the
    workdir) and whether only new text is wanted."""

    name: str
    filename: str
    follow: bool = False


def watchedLogs(value: object) -> list[WatchedLog]:
    """The ``logfiles`` argument: ``{name: path}`` or ``{name: {"filename": path,
    "follow": bool}}`` (None or {} for none)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        raise ValueError(f"must be a dict of log names to files, not {type(value).__name__}")
    logs = []
    for name, spec in value.items():
        if not isinstance(name, str | bytes):
            raise ValueError(f"has a log name that is not a string: {name!r}")
        if isinstance(spec, Mapping):
            spec = {asText(k): v for k, v in spec.items()}
            filename, follow = spec.get("filename"), spec.get("follow", False)
        else:
            filename, follow = spec, False
        if not isinstance(filename, str | bytes):
            raise ValueError(f"gives no file name for log {asText(name)!r}: {spec!r}")
        if follow not in (True, False, 0, 1, None):
            raise ValueError(f"has a non-boolean 'follow' for log {asText(name)!r}")
        logs.append(WatchedLog(asText(name), asText(filename), bool(follow)))
    return logs


def _fileState(path: str) -> tuple[float, float, int] | None:
    try:
        s = os.stat(path)
    except OSError:
        return None
    return (s.st_ctime, s.st_mtime, s.st_size)


class LogFileWatcher:
    """Polls one file and passes its new text to ``onText(text)``.

    ``runInThread(fn)`` runs the blocking reads and returns a Deferred of ``fn()``'s result
    (by default Twisted's thread pool)."""

    def __init__(self, path: str, follow: bool, onText: Callable[[str], None],
                 clock: IReactorTime,
                 runInThread: Callable[[Callable], defer.Deferred] = threads.deferToThread) -> None:
        self.path = path
        self.follow = follow
        self._onText = onText
        self._runInThread = runInThread
        self._initial = _fileState(path)
        self._file = None
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._poller = task.LoopingCall(self.poll)
        self._poller.clock = clock
        self._polling: defer.Deferred | None = None

    def start(self) -> None:
        """Poll every `POLL_INTERVAL_S` from now on."""
        self._poller.start(POLL_INTERVAL_S, now=False).addErrback(
            lambda failure: log.failure("watching {path} failed", failure, path=self.path))

    async def stop(self) -> None:
        """Stop polling, then read what is left (a last poll) and close the file."""
        if self._poller.running:
            self._poller.stop()
        if self._polling is not None:
            await self._polling
        await self.poll()
        if self._file is not None:
            self._file.close()
            self._file = None

    def poll(self) -> defer.Deferred:
        """Send what was added since the last poll (the LoopingCall waits for it)."""
        if self._polling is None:
            self._polling = defer.ensureDeferred(self._readToEnd())
            self._polling.addBoth(self._pollDone)
        return self._polling

    def _pollDone(self, result):
        self._polling = None
        return result

    async def _readToEnd(self) -> None:
        while True:
            data = await self._runInThread(self._readStep)
            text = self._decoder.decode(data)
            if text:
                self._onText(text)
            if len(data) < READ_STEP_BYTES:
                return

    def _readStep(self) -> bytes:
        """Up to `READ_STEP_BYTES` of new text (runs in a thread)."""
        if self._file is None and not self._open():
            return b""
        self._file.seek(self._file.tell())  # forget an earlier EOF
        return self._file.read(READ_STEP_BYTES)

    def _open(self) -> bool:
        state = _fileState(self.path)
        if state is None:
            self._initial = None  # deleted: whatever appears next is new
            return False
        if state == self._initial:
            return False
        try:
            self._file = open(self.path, "rb")
        except OSError:
            return False
        if self.follow and self._initial is not None and state[2] >= self._initial[2]:
            self._file.seek(self._initial[2])
        return True
