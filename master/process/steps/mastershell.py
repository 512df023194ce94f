"""``MasterShellCommand``: a command run on the master itself, not on the slave.

It runs in ``workdir`` (relative to the master's basedir; the basedir by default) with the
master's environment updated by ``env``; its output goes to the step's ``stdio`` log.  A
command still running after ``runtime_timeout`` seconds is killed and the step fails;
stopping the build interrupts it (``interruptSignal``, then SIGKILL).
"""

import os
import signal

from twisted.internet import defer, error, protocol
from twisted.internet.interfaces import IReactorProcess

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.buildstep import BuildStep
from buildfarm.master.process.properties import Renderable

DEFAULT_RUNTIME_TIMEOUT_S = 3600


class _CommandProtocol(protocol.ProcessProtocol):
    """Feeds a process's output to a log; ``ended`` fires with its exit code (None if killed)."""

    def __init__(self, log):
        self.log = log
        self.ended: defer.Deferred = defer.Deferred()

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's names
        self.log.add_stdout(data.decode("utf-8", errors="replace"))

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.log.add_stderr(data.decode("utf-8", errors="replace"))

    def processEnded(self, reason) -> None:  # noqa: N802
        ended = isinstance(reason.value, error.ProcessTerminated | error.ProcessDone)
        code = reason.value.exitCode if ended else None
        self.ended.callback(code)


class MasterShellCommand(BuildStep):
    """A command on the master: a list of arguments, or a string run by ``/bin/sh -c``."""

    name = "MasterShellCommand"
    description = "running"
    descriptionDone = "ran"
    renderables = BuildStep.renderables + ("command", "env", "workdir")

    def __init__(self, command, env=None, workdir=None, usePTY=False, interruptSignal="KILL",  # noqa: N803
                 logEnviron=True, runtime_timeout=DEFAULT_RUNTIME_TIMEOUT_S, **kwargs):  # noqa: N803
        super().__init__(**kwargs)
        self.command = command
        self.env = env
        self.workdir = workdir
        self.usePTY = usePTY
        self.interruptSignal = interruptSignal
        self.logEnviron = logEnviron
        self.runtime_timeout = runtime_timeout

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        if not isinstance(self.command, str | list | tuple | Renderable) or not self.command:
            problems.append(f"MasterShellCommand needs a command string or list, not {self.command!r}")
        if self.env is not None and not isinstance(self.env, dict | Renderable):
            problems.append("MasterShellCommand env must be a dict")
        return problems

    def argv(self) -> list[str]:
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return [str(a) for a in self.command]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name, value in (self.env or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = os.pathsep.join(value) if isinstance(value, list) else str(value)
        return env

    async def run(self):
        ctx = self._bound()
        log = await self.addLog("stdio")
        workdir = ctx.master_path(self.workdir or "")
        argv, env = self.argv(), self.environment()
        log.add_header(f"{' '.join(argv)}\n in dir {workdir}\n")
        if self.logEnviron:
            log.add_header("".join(f" {k}={v}\n" for k, v in sorted((self.env or {}).items())))
        reactor = ctx.master.reactor
        if not IReactorProcess.providedBy(reactor):
            raise TypeError("MasterShellCommand needs a master reactor that runs processes (IReactorProcess)")
        process = _CommandProtocol(log)
        transport = reactor.spawnProcess(process, argv[0], argv, env, workdir, usePTY=self.usePTY)
        signame = str(self.interruptSignal)
        signame = signame if signame.startswith("SIG") else f"SIG{signame}"
        timer = reactor.callLater(self.runtime_timeout, _kill, transport, signame)
        running = _MasterProcess(transport, signame, log)
        ctx.build.current_command = running  # so that stopping the build interrupts it
        try:
            code = await process.ended
        finally:
            ctx.build.current_command = None
            running.ended()
            if timer.active():
                timer.cancel()
        log.add_header("program killed\n" if code is None else f"program finished with exit code {code}\n")
        return SUCCESS if code == 0 else FAILURE


class _MasterProcess:
    """The running process, as the build interrupts a command when it is stopped: the
    process gets ``interruptSignal``, and SIGKILL if it still runs ``deadline_s`` later."""

    def __init__(self, transport, signame: str, log):
        self.transport = transport
        self.signame = signame
        self.log = log
        self.timer = None

    def interrupt(self, why: str, clock, deadline_s: float) -> None:
        self.log.add_header(f"interrupted: {why}\n")
        _kill(self.transport, self.signame)
        self.timer = clock.callLater(deadline_s, _kill, self.transport, "SIGKILL")

    def ended(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()


def _kill(transport, signame: str) -> None:
    try:
        transport.signalProcess(getattr(signal, signame, signal.SIGKILL))
    except error.ProcessExitedAlready:
        pass
