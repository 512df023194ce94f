"""The power tools the bmc and pdu channels drive (``ipmitool``, ``snmpset``): running one
on the reactor, and ``PowerToolChannel``, the base of the channels built on one.

``run_tool`` spawns the tool with a small, explicit environment (secrets travel there,
never in argv), collects what it prints, and answers a ``ToolResult``.  A tool that is still
running at its deadline is killed and the Deferred fails with ``defer.TimeoutError``; a tool
that is not installed fails with ``ToolMissing`` before anything is spawned.
"""

import os
import shutil
import signal
from dataclasses import dataclass

from twisted.internet import defer, error, protocol
from zope.interface import implementer

from buildfarm.common.deadline import with_deadline
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, ChannelError, IChannel, IChannelHost

# The parts of the master's environment a tool may need; anything else is left out.
PASSED_ENVIRONMENT = ("PATH", "HOME", "TZ")
SHOWN_SECRET = "(secret)"


class ToolMissing(Exception):
    """The tool is not installed on the master (not on its PATH)."""


@dataclass(frozen=True)
class ToolResult:
    """What a finished tool said: its exit code (None when a signal ended it) and output."""

    code: int | None
    out: str
    err: str

    @property
    def ok(self) -> bool:
        return self.code == 0

    @property
    def message(self) -> str:
        """Its own words for an error report: stderr, else stdout, on one line."""
        return one_line(self.err) or one_line(self.out) or (
            f"exit status {self.code}" if self.code is not None else "killed by a signal")


class _Collector(protocol.ProcessProtocol):
    def __init__(self, finished: defer.Deferred):
        self.finished = finished
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    def outReceived(self, data: bytes) -> None:  # noqa: N802
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason) -> None:  # noqa: N802
        if self.finished.called:  # cancelled (the deadline passed) and killed
            return
        code = reason.value.exitCode if isinstance(reason.value, error.ProcessTerminated) else 0
        self.finished.callback(ToolResult(code, _text(self.out), _text(self.err)))

    def kill(self) -> None:
        try:
            self.transport.signalProcess(signal.SIGKILL)
        except error.ProcessExitedAlready:
            pass


def _text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode("utf-8", "replace")


def one_line(text: str) -> str:
    """A tool's output on one line (its lines joined by " / "), empty when it said nothing."""
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def hide_secret(text: str, secret) -> str:
    """``text`` with the ``Secret``'s value blanked out, should a tool ever repeat it."""
    value = secret.reveal()
    return text.replace(value, SHOWN_SECRET) if value else text


def tool_environment(**extra: str) -> dict[str, str]:
    """The environment a tool runs with: a few of the master's variables, C locale, ``extra``."""
    env = {key: os.environ[key] for key in PASSED_ENVIRONMENT if key in os.environ}
    env.update(LANG="C", LC_ALL="C")
    env.update(extra)
    return env


def run_tool(reactor, argv: list[str], env: dict[str, str], timeout_s: float) -> defer.Deferred:
    """Run ``argv`` with ``env``; a Deferred firing with its ``ToolResult`` within ``timeout_s``."""
    executable = shutil.which(argv[0], path=env.get("PATH"))
    if executable is None:
        return defer.fail(ToolMissing(f"{argv[0]} is not installed on the master"))
    collector: _Collector | None = None

    def cancel(_: defer.Deferred) -> None:
        if collector is not None:
            collector.kill()

    finished = defer.Deferred(cancel)
    collector = _Collector(finished)
    try:
        reactor.spawnProcess(collector, executable, [argv[0], *argv[1:]], env=env)
    except OSError as e:
        return defer.fail(ToolMissing(f"{argv[0]} could not be started: {e.strerror or e}"))
    finished.addTimeout(timeout_s, reactor)
    return finished


@implementer(IChannel)
class PowerToolChannel:
    """A channel that power cycles the machine through a device driven by a tool (the BMC
    with ipmitool, the PDU with snmpset); subclasses set ``name``, ``device`` and ``_reboot``."""

    name = ""
    device = ""  # "the BMC", said in the story
    operations = frozenset({REBOOT})

    def __init__(self, runner: IChannelHost, run=None):
        self.runner = runner
        self._run = run or run_tool  # run_tool(reactor, argv, env, timeout_s); tests give a scripted one

    def configured_for(self, location) -> bool:
        """Whether the slave's entry names the device (the rest is checked on use, so that a
        bad entry shows in the reboot's story instead of being skipped)."""
        settings = location.channels.get(self.name) if location is not None else None
        return bool(settings) and bool(settings.get("host") or settings.get("fqdn"))

    def perform(self, operation, location, say, clock, deadline_s, **kwargs):
        if operation not in self.operations:
            return defer.fail(ChannelError(f"the {self.name} channel cannot {operation}"))
        return with_deadline(self._reboot(location, say, deadline_s), deadline_s, clock,
                             lambda: ChannelError(f"{self.device} did not finish within {deadline_s:g} s"))

    async def _reboot(self, location, say, deadline_s: float) -> bool:
        raise NotImplementedError
