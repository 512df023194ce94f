"""The ``shell`` command: run a program in the builder's directory and stream its output."""

from __future__ import annotations

import os
import re
import shlex
import signal

from twisted.internet import threads

from buildfarm.common.redaction import redact_environ, redact_log_header
from buildfarm.slave.commands.base import (
    Arg,
    Command,
    CommandError,
    asText,
    boolean,
    optionalMapping,
    optionalSeconds,
    optionalSize,
    text,
)
from buildfarm.slave.commands.logfiles import LogFileWatcher, WatchedLog, watchedLogs
from buildfarm.slave.runprocess import (
    FAILURE_MAX_LINES,
    STREAM_HEADER,
    STREAM_STDERR,
    STREAM_STDOUT,
    BadEnvironment,
    ProcessResult,
    ProcessSpec,
    RunProcess,
    buildEnvironment,
    signalNumber,
)

SILENCE_TIMEOUT_S = 1200  # default `timeout`: seconds without output before the kill
SHELL = "/bin/sh"
SLAVE_CONFIG = "slave-config"  # old masters: "use the slave's --usepty"
_LINE_END = re.compile(r"\r\n|\r|\n")


def commandLine(value: object) -> str | list[str | bytes]:
    """A string (run through /bin/sh -c) or a list of str/bytes (the argv)."""
    if isinstance(value, str | bytes):
        return asText(value)
    if isinstance(value, list | tuple) and value:
        if all(isinstance(item, str | bytes) for item in value):
            return list(value)
        raise ValueError("must be a list of strings")
    raise ValueError(f"must be a string or a non-empty list of strings, not {value!r}")


def environment(value: object) -> dict[str, object] | None:
    """None or a dict of str -> str / list of str / None (checked by buildEnvironment)."""
    value = optionalMapping(value)
    if value is not None:
        try:
            buildEnvironment(value, {}, ".")
        except BadEnvironment as e:
            raise ValueError(str(e)) from None
    return value


def interruptSignal(value: object) -> int:
    """A signal name ("KILL", "SIGTERM") or number."""
    if not isinstance(value, str | bytes | int) or isinstance(value, bool):
        raise ValueError(f"must be a signal name or number, not {value!r}")
    return signalNumber(asText(value) if not isinstance(value, int) else value)


def ptySetting(value: object) -> bool | None:
    """True/False, or None / "slave-config" for the slave's own setting."""
    if value is None or (isinstance(value, str | bytes) and asText(value) == SLAVE_CONFIG):
        return None
    return boolean(value)


def stdinBytes(value: object) -> bytes | None:
    """None, or text to write to the process's stdin."""
    if value is None or isinstance(value, bytes):
        return value
    return text(value).encode("utf-8")


class ShellCommand(Command):
    """Runs ``command`` in ``workdir`` and streams its output.

    Updates: header lines describing the run, ``stdout``/``stderr`` text, ``log`` updates
    ``(name, text)`` for the watched ``logfiles`` (paths relative to the workdir), then at the
    end the "program finished" headers, ``failure_reason`` after a timeout or ``max_lines``
    kill, ``elapsed`` and ``rc`` (-1 when a signal ended it).
    """

    name = "shell"
    arguments = (
        Arg("workdir", text, required=True),
        Arg("command", commandLine, required=True),
        Arg("env", environment),
        Arg("want_stdout", boolean, default=True),
        Arg("want_stderr", boolean, default=True),
        Arg("timeout", optionalSeconds, default=SILENCE_TIMEOUT_S),
        Arg("maxTime", optionalSeconds),
        Arg("sigtermTime", optionalSeconds),
        Arg("interruptSignal", interruptSignal, default=signal.SIGKILL),
        Arg("usePTY", ptySetting),
        Arg("logEnviron", boolean, default=True),
        Arg("initial_stdin", stdinBytes),
        Arg("logfiles", watchedLogs, default=[]),
        Arg("max_lines", optionalSize),
    )

    runner: RunProcess | None = None
    _lines = 0

    async def run(self) -> None:
        """Spawn the process, relay its output, report how it ended."""
        workdir = self.resolvePath(self.args["workdir"])
        if self.interrupted:
            raise CommandError(f"{self.name}: interrupted before it started")
        spec = self._processSpec(workdir)
        watchers = [self._watcher(entry, workdir) for entry in self.args["logfiles"]]
        os.makedirs(workdir, exist_ok=True)
        self._sendStartHeaders(spec)
        self.runner = RunProcess(spec, self._output, self.context.reactor, self.context.clock)
        try:
            started = self.runner.start()
            for watcher in watchers:
                watcher.start()
            result = await started
        finally:
            for watcher in watchers:
                await watcher.stop()
        self._sendEndUpdates(result)

    def _watcher(self, entry: WatchedLog, workdir: str) -> LogFileWatcher:
        path = self.resolvePath(entry.filename, f"logfiles[{entry.name!r}]", base=workdir)

        def received(text: str) -> None:
            self.sendStatus({"log": (entry.name, text)})
            if self.runner is not None:
                self.runner.noteActivity()

        reactor = self.context.reactor
        return LogFileWatcher(path, entry.follow, received, self.context.clock,
                              lambda read: threads.deferToThreadPool(reactor, reactor.getThreadPool(), read))

    def interrupt(self, why: str) -> None:
        """Kill the process: "<why>, attempting to kill", then the signals of the args."""
        super().interrupt(why)
        if self.runner is not None:
            self.runner.kill(f"command interrupted: {why}" if why else "command interrupted")

    def outputPressure(self, paused: bool) -> None:
        """Stop reading the process's output while the master is behind (the process
        blocks on its next write), go on when it caught up."""
        if self.runner is not None:
            if paused:
                self.runner.pauseOutput()
            else:
                self.runner.resumeOutput()

    def _processSpec(self, workdir: str) -> ProcessSpec:
        usePTY = self.args["usePTY"]
        return ProcessSpec(
            argv=self._argv(),
            workdir=workdir,
            environ=buildEnvironment(self.args["env"], os.environ, workdir),
            timeout=self.args["timeout"],
            maxTime=self.args["maxTime"],
            sigtermTime=self.args["sigtermTime"],
            interruptSignal=self.args["interruptSignal"],
            usePTY=self.context.usePTY if usePTY is None else usePTY,
            initialStdin=self.args["initial_stdin"],
        )

    def _argv(self) -> list[str | bytes]:
        command = self.args["command"]
        return [SHELL, "-c", command] if isinstance(command, str) else list(command)

    def _display(self) -> str:
        command = self.args["command"]
        if isinstance(command, str):
            return command
        return shlex.join(asText(item) for item in command)

    def _sendStartHeaders(self, spec: ProcessSpec) -> None:
        self.sendStatus({"header": redact_log_header(self._display() + "\n")})
        lines = [" in dir " + spec.workdir + self._limitsText(spec)]
        watched = {entry.name: entry.filename for entry in self.args["logfiles"]}
        lines.append(f" watching logfiles {watched}")
        lines.append(f" argv: {[asText(a) for a in spec.argv]}")
        if self.args["logEnviron"]:
            # The environment is redacted as a whole first, so a multi-line secret goes whole.
            lines.append(" environment:")
            lines.extend(f"  {name}={value}" for name, value in sorted(redact_environ(spec.environ).items()))
        if spec.initialStdin:
            lines.append(f" writing {len(spec.initialStdin)} bytes to stdin")
        lines.append(f" using PTY: {bool(spec.usePTY)}")
        self.sendStatus({"header": redact_log_header("".join(line + "\n" for line in lines))})

    @staticmethod
    def _limitsText(spec: ProcessSpec) -> str:
        limits = ""
        if spec.timeout is not None:
            limits += f" (timeout {spec.timeout:g} secs)"
        if spec.maxTime is not None:
            limits += f" (maxTime {spec.maxTime:g} secs)"
        return limits

    def _output(self, stream: str, data: str) -> None:
        if stream == STREAM_STDOUT and not self.args["want_stdout"]:
            return
        if stream == STREAM_STDERR and not self.args["want_stderr"]:
            return
        if stream == STREAM_HEADER:
            self.sendStatus({stream: data})
            self.flushStatus()
            return
        limit = self.args["max_lines"]
        if limit is not None and self._lines > limit:
            return  # already being killed for it: the rest is dropped
        self.sendStatus({stream: data})
        self._lines += len(_LINE_END.findall(data))
        if limit is not None and self._lines > limit and self.runner is not None:
            self.runner.kill(f"command exceeds max lines: {self._lines}/{limit} written/allowed",
                             FAILURE_MAX_LINES)

    def _sendEndUpdates(self, result: ProcessResult) -> None:
        self.sendStatus({"header": f"program finished with exit code {result.rc}\n"})
        self.sendStatus({"header": f"elapsedTime={result.elapsed:0.6f}\n"})
        if result.failureReason:
            self.sendStatus({"failure_reason": result.failureReason})
        self.sendStatus({"elapsed": result.elapsed})
        self.sendStatus({"rc": result.rc})
