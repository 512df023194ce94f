"""The custom-step API of Buildbot 4, on buildfarm's steps.

A Buildbot step is written as a subclass of ``BuildStep`` with ``async def run(self)`` (or an
``@defer.inlineCallbacks`` one) returning a result code.  While it runs it uses
``self.getProperty``/``self.setProperty``, ``self.build``, ``self.addLog``,
``self.addCompleteLog``, ``self.addLogObserver`` and, through ``ShellMixin``,
``self.makeRemoteShellCommand()`` and ``self.runCommand(cmd)``.

``StepAPI`` (a base of ``BuildStep``) provides those methods once the step is bound to the
run's ``StepContext`` (``bind_run``); ``buildstep.BuildStep`` binds it before a Buildbot-style
``run`` starts and turns the returned code into buildfarm's ``(results, state)``.
"""

import inspect
import shlex
from typing import Any

from twisted.internet import defer
from twisted.spread import pb

from buildfarm.common.results import FAILURE, SUCCESS, result_name
from buildfarm.master.pb.remotecommand import OutputOnlyLog, StepLog
from buildfarm.master.process.properties import Renderable

DEFAULT_TIMEOUT_S = 1200


class BuildStepFailed(Exception):
    """Raised by a custom step's ``run`` to end the step with FAILURE (Buildbot's name)."""


class StepLogFile(OutputOnlyLog):
    """One log of a running step, as a Buildbot step sees it (``addStdout``, ``finish``,
    ...), writing to buildfarm's log writer and feeding the log's observers."""

    def __init__(self, name: str, writer: StepLog, observers: list):
        self.name = name
        self._writer = writer
        self._observers: list = []
        self.finished = False
        for observer in observers:
            self.add_observer(observer)

    def getName(self) -> str:  # noqa: N802 - Buildbot's names
        return self.name

    def add_observer(self, observer) -> None:
        observer.setLog(self)
        self._observers.append(observer)

    def throttle(self, producer) -> None:
        """Let the writer pause the slave's connection when the database falls behind."""
        self._writer.throttle(producer)

    def add_header(self, text: str) -> None:
        self._writer.add_header(text)
        for observer in self._observers:
            observer.headerReceived(text)

    def add_stdout(self, text: str) -> None:
        self._writer.add_stdout(text)
        for observer in self._observers:
            observer.outReceived(text)

    def add_stderr(self, text: str) -> None:
        self._writer.add_stderr(text)
        for observer in self._observers:
            observer.errReceived(text)

    def addHeader(self, text: str) -> defer.Deferred:  # noqa: N802
        self.add_header(text)
        return defer.succeed(None)

    def addStdout(self, text: str) -> defer.Deferred:  # noqa: N802
        self.add_stdout(text)
        return defer.succeed(None)

    def addStderr(self, text: str) -> defer.Deferred:  # noqa: N802
        self.add_stderr(text)
        return defer.succeed(None)

    def addContent(self, text: str) -> defer.Deferred:  # noqa: N802
        return self.addStdout(text)

    def finish(self) -> defer.Deferred:
        """No more text comes; the observers hear so once.  (The text itself is stored when
        the step ends.)"""
        if not self.finished:
            self.finished = True
            for observer in self._observers:
                observer.finishReceived()
        return defer.succeed(None)


class StepCommand:
    """A remote command a step runs with ``runCommand``: Buildbot's ``RemoteCommand``.

    After the run: ``rc``, ``updates`` (the last value of each other update key),
    ``stdout``/``stderr`` when collected, ``results()`` and ``didFail()``."""

    def __init__(self, remote_command: str, args: dict, collectStdout: bool = False,  # noqa: N803
                 collectStderr: bool = False, decodeRC: dict | None = None,  # noqa: N803
                 stdioLogName: str | None = "stdio"):  # noqa: N803
        self.remote_command = remote_command
        self.args = args
        self.collectStdout = collectStdout
        self.collectStderr = collectStderr
        self.decodeRC = dict(decodeRC or {0: SUCCESS})
        self.stdioLogName = stdioLogName
        self.rc: int | None = None
        self.updates: dict = {}
        self.stdout = ""
        self.stderr = ""

    def results(self) -> int:
        """The result the exit code decodes to (``decodeRC``; FAILURE for any other)."""
        return self.decodeRC.get(self.rc, FAILURE) if isinstance(self.rc, int) else FAILURE

    def didFail(self) -> bool:  # noqa: N802
        return self.results() == FAILURE


def RemoteCommand(remote_command: str, args: dict, **kwargs) -> StepCommand:  # noqa: N802
    """Buildbot's ``remotecommand.RemoteCommand(name, args)``: any remote command."""
    return StepCommand(remote_command, args, **kwargs)


def RemoteShellCommand(workdir: str, command, env=None, want_stdout=True, want_stderr=True,  # noqa: N802
                       timeout=DEFAULT_TIMEOUT_S, maxTime=None, sigtermTime=None,  # noqa: N803
                       logfiles=None, usePTY=False, logEnviron=True, collectStdout=False,  # noqa: N803
                       collectStderr=False, interruptSignal=None, initialStdin=None,  # noqa: N803
                       decodeRC=None, stdioLogName="stdio") -> StepCommand:  # noqa: N803
    """Buildbot's ``remotecommand.RemoteShellCommand``: a ``shell`` command."""
    args = shell_args(workdir, command, dict(env or {}), want_stdout, want_stderr, logfiles or {},
                      timeout, maxTime, sigtermTime, interruptSignal or "KILL", usePTY, logEnviron,
                      initialStdin)
    return StepCommand("shell", args, collectStdout, collectStderr, decodeRC, stdioLogName)


def shell_args(workdir, command, env, want_stdout, want_stderr, logfiles, timeout, maxTime,  # noqa: N803
               sigtermTime, interruptSignal, usePTY, logEnviron, initialStdin) -> dict:  # noqa: N803
    """The ``shell`` command's arguments, with every key a 4.x worker requires."""
    return {
        "workdir": workdir,
        "command": list(command) if isinstance(command, list | tuple) else command,
        "env": env,
        "want_stdout": want_stdout,
        "want_stderr": want_stderr,
        "logfiles": logfiles,
        "timeout": timeout,
        "maxTime": maxTime,
        "sigtermTime": sigtermTime,
        "interruptSignal": interruptSignal,
        "usePTY": usePTY,
        "logEnviron": logEnviron,
        "initial_stdin": initialStdin,
    }


class _CommandOutput:
    """Where a running command's output goes: its stdio log (if any), the command's
    collected stdout/stderr, and each watched logfile's own log."""

    def __init__(self, step: "StepAPI", command: StepCommand, log: StepLogFile | None):
        self.step = step
        self.command = command
        self.log = log
        self._stdout: list[str] = []
        self._stderr: list[str] = []

    def throttle(self, producer) -> None:
        if self.log is not None:
            self.log.throttle(producer)

    def add_header(self, text: str) -> None:
        if self.log is not None:
            self.log.add_header(text)

    def add_stdout(self, text: str) -> None:
        if self.command.collectStdout:
            self._stdout.append(text)
        if self.log is not None:
            self.log.add_stdout(text)

    def add_stderr(self, text: str) -> None:
        if self.command.collectStderr:
            self._stderr.append(text)
        if self.log is not None:
            self.log.add_stderr(text)

    def add_named_log(self, name: str, text: str) -> None:
        """Text of a watched logfile (the ``log`` update) goes to the step's log ``name``."""
        self.step._logfile_text(name, text)

    def collected(self) -> None:
        self.command.stdout = "".join(self._stdout)
        self.command.stderr = "".join(self._stderr)


class _LazyLog:
    """A log created when its first text arrives (``lazylogfiles``); text that comes while the
    database creates it waits here, in order."""

    def __init__(self, step: "StepAPI", name: str):
        self.waiting: list[str] | None = []
        self.log: StepLogFile | None = None
        self.created = defer.ensureDeferred(step.addLog(name))
        self.created.addCallback(self._ready)

    def _ready(self, log: StepLogFile) -> None:
        self.log = log
        for text in self.waiting or []:
            log.add_stdout(text)
        self.waiting = None

    def add_stdout(self, text: str) -> None:
        if self.log is None:
            self.waiting.append(text)
        else:
            self.log.add_stdout(text)


def _text_of(value) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


class StepAPI:
    """The methods a Buildbot custom step calls on itself while it runs."""

    descriptionSuffix = None  # noqa: N815 - Buildbot's names

    # -- binding to one run -------------------------------------------------------------

    def bind_run(self, ctx) -> None:
        """Bind this (per-run) step object to the run's context."""
        self._ctx = ctx
        self.build = StepBuild(ctx)
        self.master = ctx.master
        self._logs: dict[str, Any] = {}
        self._lazy: list[_LazyLog] = []
        self._log_observers = {name: list(obs) for name, obs in self._observers().items()}

    def _observers(self) -> dict[str, list]:
        if "_log_observers" not in self.__dict__:
            self._log_observers = {}
        return self._log_observers

    def _bound(self):
        ctx = self.__dict__.get("_ctx")
        if ctx is None:
            raise RuntimeError(f"{type(self).__name__}: this method is only available while the step runs")
        return ctx

    async def finish_run_logs(self) -> None:
        """At the end of the run: lazily created logs exist, and every log's observers have
        heard that it is complete."""
        for lazy in self.__dict__.get("_lazy", []):
            await lazy.created
        for log in list(self.__dict__.get("_logs", {}).values()):
            if isinstance(log, StepLogFile):
                await log.finish()

    # -- properties and the build ------------------------------------------------------

    def getProperty(self, name: str, default=None):  # noqa: N802
        return self._bound().properties.getProperty(name, default)

    def setProperty(self, name: str, value, source: str = "Step", runtime: bool = True) -> None:  # noqa: N802
        self._bound().properties.setProperty(name, value, source)

    def hasProperty(self, name: str) -> bool:  # noqa: N802
        return self._bound().properties.hasProperty(name)

    def getProperties(self):  # noqa: N802
        return self._bound().properties

    def render(self, value):
        return self._bound().properties.render(value)

    def getWorkerName(self) -> str:  # noqa: N802
        return self.build.getWorkerName()

    # -- logs ------------------------------------------------------------------------------

    def addLogObserver(self, logname: str, observer) -> None:  # noqa: N802
        """``observer`` (a ``LogObserver``) sees the text of this step's log ``logname``."""
        observer.setStep(self)
        self._observers().setdefault(logname, []).append(observer)
        log = self.__dict__.get("_logs", {}).get(logname)
        if isinstance(log, StepLogFile):
            log.add_observer(observer)

    async def addLog(self, name: str, type: str = "s", logEncoding=None) -> StepLogFile:  # noqa: N802, A002
        """A new log of this step, fed to the observers registered for ``name``."""
        writer = await self._bound().add_log(name)
        log = StepLogFile(name, writer, self._observers().get(name, []))
        self._logs[name] = log
        return log

    def getLog(self, name: str) -> StepLogFile:  # noqa: N802
        return self._logs[name]

    async def addCompleteLog(self, name: str, text: str) -> None:  # noqa: N802
        """A log holding ``text``, complete at once."""
        log = await self.addLog(name)
        log.add_stdout(text)
        await log.finish()

    async def addHTMLLog(self, name: str, html: str) -> None:  # noqa: N802
        await self.addCompleteLog(name, html)

    def _logfile_text(self, name: str, text: str) -> None:
        log = self._logs.get(name)
        if log is None:  # lazylogfiles, or a name the command was not asked to watch
            log = self._logs[name] = _LazyLog(self, name)
            self._lazy.append(log)
        log.add_stdout(text)

    # -- remote commands ---------------------------------------------------------------

    async def runCommand(self, command: StepCommand) -> StepCommand:  # noqa: N802
        """Run ``command`` on the build's slave; return it with its ``rc`` and updates."""
        ctx = self._bound()
        log = None
        if command.stdioLogName is not None:
            log = self._logs.get(command.stdioLogName)
            if not isinstance(log, StepLogFile):
                log = await self.addLog(command.stdioLogName)
        if command.remote_command == "shell" and not getattr(self, "lazylogfiles", False):
            for name in command.args.get("logfiles") or {}:
                if name not in self._logs:
                    await self.addLog(name)
        output = _CommandOutput(self, command, log)
        self.cmd = command
        try:
            outcome = await ctx.run_command(command.remote_command, command.args, output)
        finally:
            output.collected()
            self.cmd = None
        command.rc = outcome.get("rc")
        command.updates = {k: v for k, v in outcome.items() if k != "rc"}
        return command

    # -- the state string --------------------------------------------------------------

    def describe(self, done: bool = False) -> str:
        """The step's label: ``descriptionDone`` (when done) or ``description``, else its name."""
        text = (self.descriptionDone if done else None) or self.description or self.name
        return _text_of(text)

    def final_state(self, results: int) -> str:
        """The state string of a finished run: the label, its suffix, and the result if not success."""
        summary = self.getResultSummary() if _overrides(self, "getResultSummary") else None
        if isinstance(summary, dict) and summary.get("step"):
            return str(summary["step"])
        state = self.describe(True)
        if self.descriptionSuffix:
            state += " " + _text_of(self.descriptionSuffix)
        if results != SUCCESS:
            state += f" ({result_name(results)})"
        return state

    def getResultSummary(self) -> dict:  # noqa: N802
        """Override to give the finished step's state: ``{"step": text}``."""
        return {}

    def getCurrentSummary(self) -> dict:  # noqa: N802
        """Buildbot's summary while the step runs; buildfarm shows ``running <name>``."""
        return {}

    def updateSummary(self) -> None:  # noqa: N802
        """Buildbot refreshes the step's summary here; buildfarm computes it at the end."""


def _overrides(step, method: str) -> bool:
    return getattr(type(step), method) is not getattr(StepAPI, method)


def takes_no_context(run) -> bool:
    """Whether ``run`` is Buildbot's ``run(self)`` rather than buildfarm's ``run(self, ctx)``."""
    try:
        parameters = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return False
    return len(parameters) == 1


SHELL_ARGS = ("command", "workdir", "env", "want_stdout", "want_stderr", "usePTY", "logfiles",
              "lazylogfiles", "timeout", "maxTime", "sigtermTime", "logEnviron", "interruptSignal",
              "initialStdin", "decodeRC")


class ShellMixin:
    """Buildbot's ``buildstep.ShellMixin``: a step that runs shell commands it makes with
    ``makeRemoteShellCommand``; ``setupShellMixin(kwargs)`` takes the shell arguments
    (``command``, ``workdir``, ``env``, ``timeout``, ``logfiles``, ...) out of ``kwargs``."""

    command = None
    workdir = None
    env: Any = None
    want_stdout = True
    want_stderr = True
    usePTY = False  # noqa: N815 - Buildbot's names
    logfiles: Any = None
    lazylogfiles = False
    timeout = DEFAULT_TIMEOUT_S
    maxTime = None  # noqa: N815
    sigtermTime = None  # noqa: N815
    logEnviron = True  # noqa: N815
    interruptSignal = "KILL"  # noqa: N815
    initialStdin = None  # noqa: N815
    decodeRC: Any = None  # noqa: N815

    def setupShellMixin(self, constructorArgs: dict, prohibitArgs=()) -> dict:  # noqa: N802, N803
        """Take the shell arguments out of ``constructorArgs``; return the rest.  A
        prohibited argument is left in, so the step reports it as unknown."""
        rest = dict(constructorArgs)
        for arg in SHELL_ARGS:
            if arg in rest and arg not in (prohibitArgs or ()):
                setattr(self, arg, rest.pop(arg))
        self.env = self.env if isinstance(self.env, Renderable) else dict(self.env or {})
        self.logfiles = dict(self.logfiles or {})
        self.decodeRC = dict(self.decodeRC or {0: SUCCESS})
        return rest

    async def makeRemoteShellCommand(self, collectStdout=False, collectStderr=False,  # noqa: N802, N803
                                     stdioLogName="stdio", **overrides) -> StepCommand:  # noqa: N803
        """A ``shell`` command from the step's shell arguments (``overrides`` replace them)."""
        values = {arg: getattr(self, arg) for arg in SHELL_ARGS}
        values.update(overrides)
        ctx = self._bound()
        step_env = ctx.properties.render(values["env"]) or {}
        env = {**ctx.env, **step_env}
        command = ctx.properties.render(values["command"])
        if command is None:
            raise ValueError(f"{type(self).__name__} has no command to run")
        args = shell_args(ctx.properties.render(values["workdir"]) or "build", command, env,
                          values["want_stdout"], values["want_stderr"], dict(values["logfiles"] or {}),
                          values["timeout"], values["maxTime"], values["sigtermTime"],
                          values["interruptSignal"], values["usePTY"], values["logEnviron"],
                          values["initialStdin"])
        return StepCommand("shell", args, collectStdout, collectStderr, values["decodeRC"], stdioLogName)

    def command_text(self, command=None) -> str:
        """A short label of the command, for state strings."""
        command = self.command if command is None else command
        if isinstance(command, str):
            text = command
        elif isinstance(command, list | tuple):
            text = shlex.join(a.decode() if isinstance(a, bytes) else str(a) for a in command)
        else:
            text = str(command)
        return f"'{text}'" if len(text) <= 60 else f"'{text[:57]}...'"


class StepBuild:
    """``self.build`` of a running step: the build's properties, number, builder and slave
    under Buildbot's names; anything else is the build itself."""

    def __init__(self, ctx):
        self._ctx = ctx
        self._build = ctx.build

    def __getattr__(self, name: str):
        return getattr(self._build, name)

    def getProperty(self, name: str, default=None):  # noqa: N802
        return self._ctx.properties.getProperty(name, default)

    def setProperty(self, name: str, value, source: str = "Build", runtime: bool = True) -> None:  # noqa: N802
        self._ctx.properties.setProperty(name, value, source)

    def hasProperty(self, name: str) -> bool:  # noqa: N802
        return self._ctx.properties.hasProperty(name)

    def getProperties(self):  # noqa: N802
        return self._ctx.properties

    def render(self, value):
        return defer.succeed(self._ctx.properties.render(value))

    def getWorkerName(self) -> str:  # noqa: N802
        return self._ctx.properties.getProperty("workername")

    def getBuilderName(self) -> str:  # noqa: N802 (not Buildbot's, but handy)
        return self._ctx.properties.getProperty("buildername")


class StringWriter(pb.Referenceable):
    """Receives a file the slave uploads (``uploadFile``) into memory, up to ``maxsize``."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self.chunks: list[bytes] = []
        self.size = 0

    def remote_write(self, data) -> None:
        data = data.encode() if isinstance(data, str) else bytes(data)
        self.size += len(data)
        if self.size <= self.maxsize:
            self.chunks.append(data)

    def remote_utime(self, accessed_modified) -> None:
        pass

    def remote_close(self) -> None:
        pass

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", errors="replace")
