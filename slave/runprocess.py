"""Running one child process for a command: spawning, output, timeouts and kill escalation.

This module knows nothing about PB or commands: a command describes the process in a
`ProcessSpec`, receives decoded output through a callback and gets a `ProcessResult` at the
end.  Every timer runs on the injected clock.

Process groups (POSIX): each child leads its own process group, so a kill reaches the
grandchildren too (``make`` and its compilers, a shell and its pipeline).
``reactor.spawnProcess`` has no option for this, so without a PTY the child is spawned as a
`_GroupLeaderProcess`: Twisted's ``Process`` with ``os.setpgrp()`` called in the child between
fork and exec (buildbot-worker does the same).  That forgoes Twisted's posix_spawn fast path,
which cannot run code in the child.  With a PTY, Twisted's ``PTYProcess`` already calls
``os.setsid()``, which makes the child a group leader as well.  Signals go to the group
with ``os.killpg``.

A stopping slave ends what it started: `endRunningProcesses` waits a short grace for the
process groups still running (the commands were told to stop), then sends SIGKILL to each
group left, so a command that ignores SIGTERM does not outlive its slave.
"""

from __future__ import annotations

import codecs
import os
import re
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from twisted.internet import defer, error, process, protocol
from twisted.internet.interfaces import IReactorProcess, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from buildfarm.common.decoding import STRICT, as_text

KILL_BACKSTOP_S = 5.0
STREAM_HEADER = "header"
STREAM_STDOUT = "stdout"
STREAM_STDERR = "stderr"
FAILURE_TIMEOUT_WITHOUT_OUTPUT = "timeout_without_output"
FAILURE_TIMEOUT = "timeout"
FAILURE_MAX_LINES = "max_lines_failure"

_ENV_REFERENCE = re.compile(r"\$\{([0-9a-zA-Z_]*)\}")

OutputCallback = Callable[[str, str], None]
"""Receives ``(stream, text)``; ``stream`` is "header", "stdout" or "stderr"."""

log = Logger()


class BadEnvironment(ValueError):
    """A requested environment cannot be built (a value of the wrong type)."""


def buildEnvironment(
    requested: Mapping[str, object] | None,
    slaveEnviron: Mapping[str, str],
    workdir: str,
) -> dict[str, str]:
    """The child's environment: the slave's, changed as PROTOCOL §4 "env" says.

    List values are joined with ``os.pathsep``; None removes the variable; ``${NAME}``
    expands from the slave's environment (empty when unset); PYTHONPATH keeps the slave's
    value appended; PWD is the workdir.  Any other value type raises `BadEnvironment`.
    """
    environ = dict(slaveEnviron)
    for name, value in (requested or {}).items():
        name = _text(name)
        if value is None:
            environ.pop(name, None)
            continue
        text = _envValue(name, value)
        if name == "PYTHONPATH" and slaveEnviron.get("PYTHONPATH"):
            text = text + os.pathsep + slaveEnviron["PYTHONPATH"]
        environ[name] = _ENV_REFERENCE.sub(lambda m: slaveEnviron.get(m.group(1), ""), text)
    environ["PWD"] = workdir
    return environ


def _envValue(name: str, value: object) -> str:
    if isinstance(value, str | bytes):
        return _text(value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | bytes) for v in value):
        return os.pathsep.join(_text(v) for v in value)
    raise BadEnvironment(
        f"env value for {name!r} must be a string, a list of strings or None,"
        f" not {type(value).__name__}"
    )


def _text(value: str | bytes) -> str:
    return as_text(value, STRICT)


def signalNumber(value: str | int) -> int:
    """A signal number from ``9``, ``"KILL"`` or ``"SIGKILL"``; ValueError if unknown."""
    if isinstance(value, int):
        return value
    name = value.upper()
    number = getattr(signal, name if name.startswith("SIG") else "SIG" + name, None)
    if not isinstance(number, int):
        raise ValueError(f"unknown signal {value!r}")
    return int(number)


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and how long to let it run."""

    argv: Sequence[str | bytes]
    workdir: str
    environ: Mapping[str, str]
    timeout: float | None = None  # seconds without output before the kill
    maxTime: float | None = None  # seconds of wall clock before the kill
    sigtermTime: float | None = None  # None: go straight to interruptSignal
    interruptSignal: int = signal.SIGKILL
    usePTY: bool = False
    initialStdin: bytes | None = None


@dataclass(frozen=True)
class ProcessResult:
    """How a process ended: ``rc`` is -1 when a signal killed it (or it could not be reaped)."""

    rc: int
    elapsed: float
    signal: int | None = None
    failureReason: str | None = None


# The RunProcesses of this slave whose child has not ended yet (see `endRunningProcesses`): a
# process-wide set, as the process table it mirrors is.
_running: set[RunProcess] = set()


def endRunningProcesses(clock: IReactorTime, graceS: float) -> defer.Deferred[None]:
    """Fire once every running process has ended, waiting at most ``graceS`` seconds on
    ``clock``; then send SIGKILL to the group of each process still running (a command that
    ignores SIGTERM) and fire."""
    running = list(_running)
    if not running:
        return defer.succeed(None)
    allEnded = defer.DeferredList([runner.whenFinished() for runner in running], consumeErrors=True)
    done: defer.Deferred[None] = defer.Deferred()

    def graceOver() -> None:
        for runner in list(_running):
            runner.killGroupNow()
        if not done.called:
            done.callback(None)

    timer = clock.callLater(graceS, graceOver)

    def ended(_: object) -> None:
        if timer.active():
            timer.cancel()
        if not done.called:
            done.callback(None)

    allEnded.addCallback(ended)
    return done


class _GroupLeaderProcess(process.Process):
    """A POSIX ``Process`` whose child leads a new process group (see the module docstring)."""

    def _trySpawnInsteadOfFork(self, *args: object, **kwargs: object) -> bool:
        return False

    def _setupChild(self, *args: object, **kwargs: object) -> None:
        # In the child, before exec: the parent's Python handlers must not swallow a kill.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_DFL)
        os.setpgrp()
        super()._setupChild(*args, **kwargs)


def _joinOwnGroup(pid: int) -> None:
    """Make ``pid`` a group leader from the parent too, so a kill sent before the child ran
    ``setpgrp`` still finds the group (the classic fork/setpgid race)."""
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child has exec'd already, so it did it itself


class _ProcessProtocol(protocol.ProcessProtocol):
    """Relays process events to its `RunProcess`."""

    def __init__(self, runner: RunProcess) -> None:
        self.runner = runner

    def connectionMade(self) -> None:
        self.runner._connected(self.transport)

    def outReceived(self, data: bytes) -> None:
        self.runner._received(STREAM_STDOUT, data)

    def errReceived(self, data: bytes) -> None:
        self.runner._received(STREAM_STDERR, data)

    def processEnded(self, reason: Failure) -> None:
        self.runner._ended(reason)


class RunProcess:
    """Runs one `ProcessSpec` to its end, enforcing its timeouts.

    ``start()`` returns a Deferred that fires with a `ProcessResult` (or fails if the process
    cannot be spawned).  ``kill(reason)`` ends it early: a header "<reason>, attempting to
    kill", SIGTERM to the group and ``sigtermTime`` seconds later the ``interruptSignal``
    (at once when ``sigtermTime`` is None); if the child still cannot be reaped
    ``KILL_BACKSTOP_S`` later, the result is faked with rc -1.
    """

    def __init__(
        self,
        spec: ProcessSpec,
        onOutput: OutputCallback,
        reactor: IReactorProcess,
        clock: IReactorTime,
    ) -> None:
        self.spec = spec
        self._onOutput = onOutput
        self._reactor = reactor
        self._clock = clock
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace")
            for name in (STREAM_STDOUT, STREAM_STDERR)
        }
        self._transport = None
        self._startedAt = 0.0
        self._timers: dict[str, object] = {}
        self._killing = False
        self._failureReason: str | None = None
        self._done: defer.Deferred[ProcessResult] = defer.Deferred()
        self._finished = False
        self._outputPaused = False
        self._finishWaiters: list[defer.Deferred[None]] = []

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return getattr(self._transport, "pid", None)

    def start(self) -> defer.Deferred[ProcessResult]:
        """Spawn the process; the Deferred fires with its `ProcessResult`."""
        self._startedAt = self._clock.seconds()
        try:
            self._transport = self._spawn(_ProcessProtocol(self))
        except Exception:
            self._finished = True
            return defer.fail()
        if self.spec.timeout is not None:
            self._timers["silence"] = self._clock.callLater(self.spec.timeout, self._silent)
        if self.spec.maxTime is not None:
            self._timers["maxTime"] = self._clock.callLater(self.spec.maxTime, self._tooLong)
        _running.add(self)
        return self._done

    def whenFinished(self) -> defer.Deferred[None]:
        """A Deferred that fires (with None) once the process has ended or been given up."""
        if self._finished:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._finishWaiters.append(waiter)
        return waiter

    def killGroupNow(self) -> None:
        """SIGKILL the process's group at once, whatever the kill escalation is waiting for
        (the slave is stopping)."""
        if not self._finished:
            self._signalGroup(signal.SIGKILL)

    def kill(self, reason: str, failureReason: str | None = None) -> None:
        """End the process early, telling the log why (see the class docstring)."""
        if self._finished or self._killing:
            return
        self._killing = True
        self._failureReason = failureReason
        self.resumeOutput()  # a paused child must be read to its end
        self._cancelTimers("silence", "maxTime")
        self._onOutput(STREAM_HEADER, f"\n{reason}, attempting to kill\n")
        if self.spec.sigtermTime:
            self._signalGroup(signal.SIGTERM)
            self._timers["escalate"] = self._clock.callLater(
                self.spec.sigtermTime, self._sendInterruptSignal
            )
        else:
            self._sendInterruptSignal()

    def pauseOutput(self) -> None:
        """Stop reading the child's output (it blocks once its pipe is full); its silence
        timeout does not run meanwhile."""
        if self._finished or self._outputPaused or self._transport is None:
            return
        self._outputPaused = True
        self._transport.pauseProducing()
        silence = self._timers.pop("silence", None)
        if silence is not None and silence.active():
            silence.cancel()

    def resumeOutput(self) -> None:
        """Read the child's output again; its silence timeout starts over."""
        if not self._outputPaused:
            return
        self._outputPaused = False
        if self._transport is not None:
            self._transport.resumeProducing()
        if self.spec.timeout is not None and not self._finished and not self._killing:
            self._timers["silence"] = self._clock.callLater(self.spec.timeout, self._silent)

    def noteActivity(self) -> None:
        """Output arrived by another way (a watched logfile): restart the silence timer."""
        silence = self._timers.get("silence")
        if silence is not None and silence.active():
            silence.reset(self.spec.timeout)

    def _spawn(self, proto: _ProcessProtocol):
        argv = list(self.spec.argv)
        environ = dict(self.spec.environ)
        if self.spec.usePTY or os.name != "posix":
            return self._reactor.spawnProcess(
                proto, argv[0], argv, environ, self.spec.workdir, usePTY=self.spec.usePTY
            )
        child = _GroupLeaderProcess(
            self._reactor, argv[0], argv, environ, self.spec.workdir, proto
        )
        if child.pid is not None:  # None: the child already exited and was reaped
            _joinOwnGroup(child.pid)
        return child

    def _connected(self, transport) -> None:
        # Called from inside the spawn, before _spawn returns the transport.
        self._transport = transport
        if self.spec.initialStdin:
            self._transport.write(self.spec.initialStdin)
        if not self.spec.usePTY:
            self._transport.closeStdin()

    def _received(self, stream: str, data: bytes) -> None:
        if self._finished:
            return
        self.noteActivity()
        text = self._decoders[stream].decode(data)
        if text:
            self._onOutput(stream, text)

    def _silent(self) -> None:
        self._timers.pop("silence", None)
        self.kill(
            f"command timed out: {self.spec.timeout:g} seconds without output",
            FAILURE_TIMEOUT_WITHOUT_OUTPUT,
        )

    def _tooLong(self) -> None:
        self._timers.pop("maxTime", None)
        self.kill(f"command timed out: {self.spec.maxTime:g} seconds elapsed", FAILURE_TIMEOUT)

    def _sendInterruptSignal(self) -> None:
        self._timers.pop("escalate", None)
        self._signalGroup(self.spec.interruptSignal)
        self._timers["backstop"] = self._clock.callLater(KILL_BACKSTOP_S, self._giveUp)

    def _signalGroup(self, signum: int) -> None:
        pid = self.pid
        if pid is None:
            return
        try:
            if os.name == "posix":
                os.killpg(pid, signum)
            else:
                self._transport.signalProcess(signum)
        except (ProcessLookupError, error.ProcessExitedAlready):
            pass
        except OSError as e:
            log.warn("could not send signal {signum} to process {pid}: {e}",
                     signum=signum, pid=pid, e=e)

    def _giveUp(self) -> None:
        self._timers.pop("backstop", None)
        self._onOutput(
            STREAM_HEADER, f"process did not end {KILL_BACKSTOP_S:g} s after the kill; giving up\n"
        )
        self._finish(ProcessResult(-1, self._elapsed(), None, self._failureReason))

    def _ended(self, reason: Failure) -> None:
        if self._finished:
            return
        for stream, decoder in self._decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self._onOutput(stream, tail)
        exitCode = getattr(reason.value, "exitCode", 0)
        signum = getattr(reason.value, "signal", None)
        if signum is not None:
            self._onOutput(STREAM_HEADER, f"process killed by signal {signum}\n")
        rc = -1 if signum is not None or exitCode is None else exitCode
        self._finish(ProcessResult(rc, self._elapsed(), signum, self._failureReason))

    def _elapsed(self) -> float:
        return self._clock.seconds() - self._startedAt

    def _finish(self, result: ProcessResult) -> None:
        self._finished = True
        _running.discard(self)
        self._cancelTimers(*list(self._timers))
        waiters, self._finishWaiters = self._finishWaiters, []
        for waiter in waiters:
            waiter.callback(None)
        self._done.callback(result)

    def _cancelTimers(self, *names: str) -> None:
        for name in names:
            timer = self._timers.pop(name, None)
            if timer is not None and timer.active():
                timer.cancel()
