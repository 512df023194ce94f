"""`SlaveBuilder`: one per builder the master configured on this slave; runs its commands."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.spread import banana, pb

from buildfarm.slave.commands.base import (
    Command,
    CommandContext,
    CommandError,
    UpdateEntries,
    asText,
)
from buildfarm.slave.runtime import SlaveRuntime

log = Logger()


# Back-pressure on a command's output: past this much text in updates the master has not
# answered yet (it is behind, or it paused the connection), the command is asked to pause
# its output (a shell command stops reading its process's pipes, so the process blocks on
# its next write instead of the slave buffering what it prints); it resumes at the lower mark.
UNANSWERED_HIGH_CHARS = 2 * 1024 * 1024
UNANSWERED_LOW_CHARS = 1024 * 1024


def _textSize(entries: UpdateEntries) -> int:
    size = 0
    for update, _ in entries:
        for value in update.values():
            if isinstance(value, str):
                size += len(value)
            elif isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[1], str):
                size += len(value[1])  # {"log": (name, text)}
    return size


class _CommandChannel:
    """Sends one command's updates, then its single ``complete``, to the master's
    RemoteCommand.  PB keeps the order of calls on a connection, so ``complete`` arrives
    after every update.  ``onPressure(True)`` is called when too much text awaits the
    master's answers, ``onPressure(False)`` when it has caught up (or the connection went)."""

    def __init__(self, ref: pb.RemoteReference, commandId: str) -> None:
        self.ref = ref
        self.commandId = commandId
        self.closed = False
        self.unanswered = 0  # characters of text in updates the master has not answered
        self.paused = False
        self.onPressure: Callable[[bool], object] | None = None

    def update(self, entries: UpdateEntries) -> None:
        if self.closed:
            return
        try:
            d = self.ref.callRemote("update", entries)
        except banana.BananaError as e:
            # Too big for one PB message (a huge glob result, say): nothing was written to the
            # connection, so send the entries one by one, replacing any that still cannot go.
            self._updateEach(entries, e)
            return
        size = _textSize(entries)
        self.unanswered += size
        d.addBoth(self._answered, size)
        d.addErrback(self._failed, "update")
        self._checkPressure()

    def _answered(self, result: object, size: int) -> object:
        self.unanswered -= size
        self._checkPressure()
        return result

    def _checkPressure(self) -> None:
        if not self.paused and self.unanswered > UNANSWERED_HIGH_CHARS and not self.closed:
            self._setPaused(True)
        elif self.paused and (self.unanswered <= UNANSWERED_LOW_CHARS or self.closed):
            self._setPaused(False)

    def _setPaused(self, paused: bool) -> None:
        self.paused = paused
        if self.onPressure is not None:
            self.onPressure(paused)

    def _updateEach(self, entries: UpdateEntries, error: Exception) -> None:
        for entry in entries:
            try:
                d = self.ref.callRemote("update", [entry])
            except banana.BananaError as e:
                keys = ", ".join(sorted(str(k) for k in entry[0]))
                log.warn("command {id}: update ({keys}) too large to send: {e}",
                         id=self.commandId, keys=keys, e=e)
                notice = {"header": f"\nslave could not send an update ({keys}): {e}\n"}
                d = self.ref.callRemote("update", [[notice, 0]])
            d.addErrback(self._failed, "update")

    def complete(self, failure: Failure | None) -> None:
        if self.closed:
            return
        self.closed = True
        copyable = None if failure is None else pb.failure2Copyable(failure)
        self.ref.callRemote("complete", copyable).addErrback(self._failed, "complete")

    def detach(self) -> None:
        """The connection is gone: nothing more can be sent (a paused command resumes)."""
        self.closed = True
        self._checkPressure()

    def _failed(self, failure: Failure, what: str) -> None:
        if failure.check(pb.DeadReferenceError, pb.PBConnectionLost):
            return
        log.failure("sending {what} for command {id} failed", failure, what=what,
                    id=self.commandId)


class SlaveBuilder(pb.Referenceable):
    """The slave side of one builder: the master starts builds and commands through it.

    Its directory is ``BASEDIR/builddir``; commands' workdirs are relative to it.  It runs
    one command at a time.
    """

    def __init__(self, name: str, builddir: str, runtime: SlaveRuntime) -> None:
        self.name = name
        self.builddir = builddir
        self.runtime = runtime
        self.master: pb.RemoteReference | None = None
        self.command: Command | None = None
        self._channel: _CommandChannel | None = None

    @property
    def basedir(self) -> str:
        """The builder's directory (absolute)."""
        return os.path.join(self.runtime.basedir, self.builddir)

    def remote_setMaster(self, remote: pb.RemoteReference) -> None:
        """The master-side builder reference (old masters send it); kept, not needed."""
        self.master = remote

    def remote_print(self, message: str | bytes) -> None:
        """A round-trip check: logs the message."""
        log.info("message from master to {builder}: {message}", builder=self.name,
                 message=asText(message))

    def remote_startBuild(self) -> None:
        """A build starts on this builder (nothing to prepare)."""
        log.info("{builder}: build started", builder=self.name)

    def remote_startCommand(
        self, command_ref: pb.RemoteReference, command_id: Any, command_name: Any, args: Any
    ) -> None:
        """Start a command; returns at once.

        ``command_ref`` then gets ``update([[dict, 0], ...])`` calls and one
        ``complete(None)`` (finished: the ``rc`` update says how) or ``complete(failure)``
        (bad arguments, the process could not start).  An unknown name raises
        `UnknownCommand`; a second command while one runs raises ``pb.Error``.
        """
        if self.command is not None:
            raise pb.Error(
                f"builder {self.name!r} is already running command {self.command.commandId!r}"
            )
        commandClass = self.runtime.registry.lookup(command_name)
        commandId = asText(str(command_id) if isinstance(command_id, int) else command_id)
        channel = _CommandChannel(command_ref, commandId)
        try:
            command = commandClass(self._context(), commandId, args, channel.update)
        except CommandError:
            failure = Failure()
            log.warn("{builder}: command {id} refused: {why}", builder=self.name, id=commandId,
                     why=failure.getErrorMessage())
            # Answer startCommand first, then complete: the master expects that order.
            self.runtime.clock.callLater(0, channel.complete, failure)
            return None
        self.command, self._channel = command, channel
        channel.onPressure = command.outputPressure
        log.info("{builder}: starting command {id} ({name})", builder=self.name, id=commandId,
                 name=commandClass.name)
        self.runtime.clock.callLater(0, self._run, command, channel)
        return None

    def remote_interruptCommand(self, command_id: Any, why: Any) -> None:
        """Kill the running command ``command_id`` (its ``rc`` and ``complete`` still come)."""
        commandId = asText(str(command_id) if isinstance(command_id, int) else command_id)
        why = asText(why) if why is not None else ""
        if self.command is None or self.command.commandId != commandId:
            log.info("{builder}: asked to interrupt command {id} ({why}) but it is not running",
                     builder=self.name, id=commandId, why=why)
            return
        log.info("{builder}: interrupting command {id}: {why}", builder=self.name, id=commandId,
                 why=why)
        self.command.interrupt(why)

    def remote_shutdown(self) -> None:
        """Old-style (0.8 masters) shutdown of the whole slave: same as ``Bot.shutdown``."""
        self.runtime.requestShutdown()

    def stopCommand(self, why: str) -> None:
        """Kill the running command without telling the master (it is gone, or the builder
        was removed)."""
        if self._channel is not None:
            self._channel.detach()
        if self.command is not None:
            log.info("{builder}: killing command {id}: {why}", builder=self.name,
                     id=self.command.commandId, why=why)
            self.command.interrupt(why)

    def _context(self) -> CommandContext:
        return CommandContext(
            builderDir=self.basedir,
            slaveBasedir=self.runtime.basedir,
            reactor=self.runtime.reactor,
            clock=self.runtime.clock,
            usePTY=self.runtime.usePTY,
        )

    def _run(self, command: Command, channel: _CommandChannel) -> None:
        d = command.start()
        d.addCallbacks(lambda _: channel.complete(None), self._broke, errbackArgs=(channel,))
        d.addBoth(self._finished, command)

    def _broke(self, failure: Failure, channel: _CommandChannel) -> None:
        log.warn("{builder}: command failed: {why}", builder=self.name,
                 why=failure.getErrorMessage())
        channel.complete(failure)

    def _finished(self, _: object, command: Command) -> None:
        if self.command is command:
            self.command, self._channel = None, None
        log.info("{builder}: command {id} done", builder=self.name, id=command.commandId)
