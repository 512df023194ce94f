"""What every remote command shares: declared arguments, path safety, batched updates.

A command is a small class with a ``name`` and a declared argument set (`Arg`s).  The
`CommandRegistry` maps names to classes; the `SlaveBuilder` looks a command up, constructs it
(which validates the arguments) and calls ``start()``.  The command reports progress with
``sendStatus({...})``; an `UpdateBatcher` turns those into ``update`` calls on the master's
RemoteCommand as PROTOCOL §4 "Output batching" asks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from twisted.internet import defer, threads
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.spread import pb

from buildfarm.common.decoding import STRICT, as_text

COMMAND_VERSION = "3.3"  # the 4.x value: masters then send the 4.x argument names
MAX_CHUNK_CHARS = 64 * 1024  # one update string; UTF-8 keeps it far below Banana's 640 KiB
FLUSH_DELAY_S = 0.1
TEXT_KEYS = ("header", "stdout", "stderr")

UpdateEntries = list[list[Any]]
"""What ``RemoteCommand.remote_update`` receives: ``[[update_dict, 0], ...]``."""


class CommandError(pb.Error):
    """A command cannot run: bad arguments, an unsafe path, a process that cannot start."""


class UnknownCommand(pb.Error):
    """The master asked for a command this slave does not have."""


def asText(value: str | bytes) -> str:
    """A name or path the master sent (str or bytes) as str: common/decoding.py's decoder, strict
    (undecodable bytes raise ``UnicodeDecodeError``, a ``ValueError``)."""
    return as_text(value, STRICT)


# Argument checks: each returns the value to use or raises ValueError saying what is wrong.

def anything(value: object) -> object:
    """Any value is accepted as it is."""
    return value


def text(value: object) -> str:
    """A string (bytes are decoded as UTF-8)."""
    if not isinstance(value, str | bytes):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return asText(value)


def boolean(value: object) -> bool:
    """True/False (0/1 from old masters too)."""
    if value not in (True, False, 0, 1):
        raise ValueError(f"must be true or false, not {value!r}")
    return bool(value)


def optionalSeconds(value: object) -> float | None:
    """None or a non-negative number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"must be a non-negative number of seconds or None, not {value!r}")
    return value


def optionalMapping(value: object) -> Mapping | None:
    """None or a dict."""
    if value is not None and not isinstance(value, Mapping):
        raise ValueError(f"must be a dict or None, not {type(value).__name__}")
    return value


def optionalSize(value: object) -> int | None:
    """None or a non-negative number of bytes (or lines)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"must be a non-negative integer or None, not {value!r}")
    return value


def textOrList(value: object) -> list[str]:
    """A string or a non-empty list of strings, as a list."""
    if isinstance(value, str | bytes):
        return [asText(value)]
    if isinstance(value, list | tuple) and value and all(isinstance(v, str | bytes) for v in value):
        return [asText(v) for v in value]
    raise ValueError(f"must be a string or a non-empty list of strings, not {value!r}")


def remoteReference(value: object) -> object:
    """A reference the command calls back (a master-side FileWriter or FileReader)."""
    if not callable(getattr(value, "callRemote", None)):
        raise ValueError(f"must be a remote reference, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Arg:
    """One declared argument: its 4.x name, its check, whether it is required, its default.

    ``oldName`` is the pre-3.0 name (``slavesrc`` for ``workersrc``) accepted as well.
    """

    name: str
    check: Callable[[object], object] = anything
    required: bool = False
    default: object = None
    oldName: str | None = None


@dataclass(frozen=True)
class CommandContext:
    """Where and with what a command runs: its builder's directory and the slave's tools."""

    builderDir: str
    slaveBasedir: str
    reactor: Any
    clock: IReactorTime
    usePTY: bool = False


class UpdateBatcher:
    """Batches status updates into ``update`` calls (PROTOCOL §4 "Output batching").

    Text (header, stdout, stderr, and each watched log) is buffered per stream and sent when
    the buffer reaches `MAX_CHUNK_CHARS`, `FLUSH_DELAY_S` after the first buffered text, when
    the stream changes, and before any other update (rc, elapsed, ...).  Longer text is split,
    so no string comes near Banana's limit.  The very first update goes out at once.
    """

    def __init__(self, send: Callable[[UpdateEntries], object], clock: IReactorTime) -> None:
        self._send = send
        self._clock = clock
        self._stream: tuple[str, ...] | None = None
        self._parts: list[str] = []
        self._size = 0
        self._timer: IDelayedCall | None = None
        self._sentAny = False

    def add(self, update: Mapping[str, object]) -> None:
        """Queue one update dict (its keys are sent in order)."""
        for key, value in update.items():
            if key in TEXT_KEYS:
                self._addText((key,), asText(value))
            elif key == "log":
                logname, logtext = value
                self._addText(("log", asText(logname)), asText(logtext))
            else:
                self.flush(extra={key: value})

    def flush(self, extra: Mapping[str, object] | None = None) -> None:
        """Send what is buffered now (followed by ``extra``, an update dict, if given)."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        entries: UpdateEntries = []
        if self._parts:
            entries.append([self._textUpdate("".join(self._parts)), 0])
        if extra:
            entries.append([dict(extra), 0])
        self._stream, self._parts, self._size = None, [], 0
        if entries:
            self._sentAny = True
            self._send(entries)

    def _addText(self, stream: tuple[str, ...], data: str) -> None:
        if stream != self._stream:
            self.flush()
            self._stream = stream
        while data:
            piece, data = data[: MAX_CHUNK_CHARS - self._size], data[MAX_CHUNK_CHARS - self._size:]
            self._parts.append(piece)
            self._size += len(piece)
            if self._size >= MAX_CHUNK_CHARS:
                self.flush()
                self._stream = stream
        if not self._sentAny:
            self.flush()
        elif self._parts and self._timer is None:
            self._timer = self._clock.callLater(FLUSH_DELAY_S, self.flush)

    def _textUpdate(self, data: str) -> dict[str, object]:
        if self._stream[0] == "log":
            return {"log": (self._stream[1], data)}
        return {self._stream[0]: data}


class Command:
    """Base of the remote commands: declared arguments, path resolution, status updates.

    Subclasses set ``name`` and ``arguments`` and implement ``run()`` (async) and
    ``interrupt(why)``.  Constructing a command validates its arguments and raises
    `CommandError` naming the first bad or missing one.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = COMMAND_VERSION
    arguments: ClassVar[tuple[Arg, ...]] = ()

    def __init__(
        self,
        context: CommandContext,
        commandId: str,
        args: Mapping[Any, Any],
        sendUpdates: Callable[[UpdateEntries], object],
    ) -> None:
        self.context = context
        self.commandId = commandId
        self.args = self.parseArgs(args)
        self._batcher = UpdateBatcher(sendUpdates, context.clock)
        self.interrupted = False

    @classmethod
    def parseArgs(cls, raw: Mapping[Any, Any]) -> dict[str, object]:
        """The declared arguments, checked, with defaults filled in; unknown keys are ignored
        (newer masters may send more)."""
        if not isinstance(raw, Mapping):
            raise CommandError(f"{cls.name}: arguments must be a dict, not {type(raw).__name__}")
        given = {asText(k): v for k, v in raw.items()}
        parsed = {}
        for arg in cls.arguments:
            key = arg.name if arg.name in given else arg.oldName
            if key not in given:
                if arg.required:
                    raise CommandError(f"{cls.name}: missing required argument {arg.name!r}")
                parsed[arg.name] = arg.default
                continue
            try:
                parsed[arg.name] = arg.check(given[key])
            except ValueError as e:
                raise CommandError(f"{cls.name}: argument {key!r} {e}") from None
        return parsed

    def resolvePath(self, path: str, argName: str = "workdir", base: str | None = None) -> str:
        """``path`` made absolute, relative to ``base`` (default: the builder's directory); a
        path that leaves the slave's basedir raises `CommandError`.  The check is lexical
        (symlinks are trusted)."""
        root = os.path.normpath(os.path.abspath(self.context.slaveBasedir))
        full = os.path.normpath(os.path.join(base or self.context.builderDir, path))
        if os.path.commonpath([root, full]) != root:
            raise CommandError(
                f"{self.name}: {argName} {path!r} is outside the slave's basedir {root}"
            )
        return full

    def inThread(self, function: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        """Run blocking disk work on the reactor's thread pool (never on the reactor thread)."""
        reactor = self.context.reactor
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    def sendResult(self, rc: int, stderr: str | None = None) -> None:
        """The last updates of a command: ``stderr`` saying what went wrong (if anything),
        then ``rc``."""
        if stderr:
            self.sendStatus({"stderr": stderr if stderr.endswith("\n") else stderr + "\n"})
        self.sendStatus({"rc": rc})

    def sendStatus(self, update: Mapping[str, object]) -> None:
        """Report progress to the master: ``{"stdout": text}``, ``{"rc": 0}``, ..."""
        self._batcher.add(update)

    def flushStatus(self) -> None:
        """Send buffered output now (before a kill, at the end)."""
        self._batcher.flush()

    def start(self) -> defer.Deferred[None]:
        """Run the command; fires when it finished (after its last update was sent) or fails
        if the command itself broke."""
        d = defer.ensureDeferred(self.run())
        d.addBoth(self._flushed)
        return d

    def _flushed(self, result: object) -> object:
        self.flushStatus()
        return result

    async def run(self) -> None:
        """Do the work, calling ``sendStatus``; the last update should be ``rc``."""
        raise NotImplementedError

    def interrupt(self, why: str) -> None:
        """Stop early (the master's interruptCommand, or the connection went away)."""
        self.interrupted = True

    def outputPressure(self, paused: bool) -> None:
        """The master is behind on this command's updates (``paused``) or caught up again:
        a command that can should stop producing output meanwhile.  Default: ignore."""


class CommandRegistry:
    """The commands a slave offers, by name."""

    def __init__(self, commands: Iterable[type[Command]]) -> None:
        self._commands = MappingProxyType({c.name: c for c in commands})

    def lookup(self, name: str | bytes) -> type[Command]:
        """The command class for ``name``; `UnknownCommand` if there is none."""
        name = asText(name)
        try:
            return self._commands[name]
        except KeyError:
            known = ", ".join(sorted(self._commands))
            raise UnknownCommand(
                f"unknown command {name!r}: this slave offers {known}"
            ) from None

    def versions(self) -> dict[str, str]:
        """``{name: version}``, what getCommands reports."""
        return {name: cls.version for name, cls in self._commands.items()}
