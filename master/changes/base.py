"""``PollingChangeSource``: the base of the pollers (GitPoller, HgPoller, SVNPoller).

A poller is configuration first (built by master.cfg, compared by ``config_fingerprint``) and
a Twisted service while it runs: the ``ChangeSourceManager`` gives it the master
(``activate``), makes it a child, and starts it.  Every ``pollInterval`` seconds of the
master's clock (at once too with ``pollAtLaunch``) it runs its VCS tool as child processes
(``run_command``: never on the reactor thread's time, each with a deadline), and hands what
it finds to ``master.scheduler.add_change`` as any other change.

What it has seen is kept in the database (``db.state`` under ``state_name``), so a restart
neither loses nor repeats changes.  With ``c['multiMaster']`` one master polls a source: it
holds its lease in the shared database (``db.leases``, under ``lease_name``), renewed at every
poll; another master takes the source over once the lease has run out, or at once when the
holder stops (it releases the lease) or is declared dead (the reclaim releases it).
"""

import hashlib
import os
from collections.abc import Sequence
from typing import Any

from twisted.application import service
from twisted.internet import defer, error, protocol, task
from twisted.internet.interfaces import IReactorProcess
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.common.deadline import with_deadline
from buildfarm.master.changes.interfaces import IPollingChangeSource
from buildfarm.master.configobject import ConfigObject, fingerprint

log = Logger()

# The state key of the newest revisions a poller has seen (Buildbot's name for it).
LAST_REV_KEY = "lastRev"

DEFAULT_POLL_INTERVAL_S = 10 * 60
# How long one VCS command (a fetch of a big repository, ...) may run before it is killed.
COMMAND_TIMEOUT_S = 10 * 60
# A poller's claim on its source (several masters) lasts this long past each poll, plus
# two poll intervals: a master that stopped polling loses the source after that.
CLAIM_GRACE_S = 60
# The longest name a state row may have (db.model.NAME_LENGTH); a longer poller name (a long
# repourl) is stored under its hash.
STATE_NAME_MAX = 255
# Buildbot arguments the pollers accept and ignore (each one warned about by checkconfig).
IGNORED_ARGS = ("pollRandomDelayMin", "pollRandomDelayMax")


class VCSCommandFailed(Exception):
    """A VCS command exited non-zero, was killed, or ran past its deadline."""


class _Collect(protocol.ProcessProtocol):
    """Gathers a child's stdout and stderr; fires ``done`` with ``(out, err, exit code)``."""

    def __init__(self, done: defer.Deferred):
        self.done = done
        self.out: list[bytes] = []
        self.err: list[bytes] = []

    def outReceived(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:  # noqa: N802
        self.err.append(data)

    def processEnded(self, reason) -> None:  # noqa: N802
        code = reason.value.exitCode if isinstance(reason.value, error.ProcessTerminated) else 0
        if code is None:  # killed by a signal
            code = -(reason.value.signal or 1)
        if not self.done.called:  # else it was cancelled (the deadline passed)
            self.done.callback((b"".join(self.out), b"".join(self.err), code))


def process_reactor(reactor) -> IReactorProcess:
    """The reactor that spawns child processes: the master's, or (a master on a test clock)
    the running global reactor."""
    if IReactorProcess.providedBy(reactor):
        return reactor
    from twisted.internet import reactor as global_reactor

    return global_reactor


async def run_command(argv: Sequence[str], clock, cwd: str | None = None, env: dict | None = None,
                      timeout_s: float = COMMAND_TIMEOUT_S) -> bytes:
    """Run ``argv`` as a child process; its stdout.  Raises ``VCSCommandFailed`` (with its
    stderr) when it exits non-zero or runs past ``timeout_s`` on ``clock`` (it is then killed)."""
    spawned: list = []

    def kill(_):
        try:
            spawned[0].signalProcess("KILL")
        except (error.ProcessExitedAlready, IndexError):
            pass

    done: defer.Deferred = defer.Deferred(kill)
    child_env = {**os.environ, "LC_ALL": "C", "LANG": "C", **(env or {})}
    spawned.append(process_reactor(clock).spawnProcess(_Collect(done), argv[0], list(argv), env=child_env,
                                                       path=cwd))
    command = " ".join(argv)
    out, err, code = await with_deadline(
        done, timeout_s, clock, lambda: VCSCommandFailed(f"{command}: no answer in {timeout_s:g} s"))
    if code != 0:
        why = err.decode("utf-8", "replace").strip() or out.decode("utf-8", "replace").strip()
        raise VCSCommandFailed(f"{command} exited with {code}: {why}")
    return out


@implementer(IPollingChangeSource)
class PollingChangeSource(ConfigObject, service.Service):
    """A change source that polls a repository every ``pollInterval`` seconds."""

    # The kind of VCS, for the state's namespace and the logs ("GitPoller").
    kind = "Poller"

    def __init__(self, name: str | None, pollInterval: float = DEFAULT_POLL_INTERVAL_S,  # noqa: N803
                 pollAtLaunch: bool = False, project: str = "", category: Any = None,  # noqa: N803
                 pollRandomDelayMin: float = 0, pollRandomDelayMax: float = 0):  # noqa: N803
        self._remember_config_line()
        self.name = name
        self.pollInterval = pollInterval
        self.pollAtLaunch = pollAtLaunch
        self.project = project
        self.category = category
        self.pollRandomDelayMin = pollRandomDelayMin
        self.pollRandomDelayMax = pollRandomDelayMax
        self._master = None
        self._loop: task.LoopingCall | None = None
        self._polling: defer.Deferred | None = None
        self._command: defer.Deferred | None = None  # the VCS command running now
        self._stopping = False
        # One poll at a time: the loop's and those asked for now (``poll_now``) queue here.
        self._turn = defer.DeferredLock()
        # The callers of ``poll_now`` waiting for the poll queued behind the running one.
        self._queued: list[defer.Deferred] | None = None
        self._last_poll: float | None = None  # when the last poll finished (master's clock)
        self._last_error: str | None = None  # why it failed, None when it succeeded
        self._last_polled_here = True  # False: another master holds this source

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- configuration ---------------------------------------------------------------------

    def config_problems(self) -> list[str]:
        """What is wrong with the arguments (empty when nothing is)."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"{self.kind} needs a name (or a repourl), not {self.name!r}")
        if isinstance(self.pollInterval, bool) or not isinstance(self.pollInterval, int | float) \
                or self.pollInterval <= 0:
            problems.append(f"{self.kind} {self.name!r}: pollInterval must be a number of seconds "
                            f"above 0, not {self.pollInterval!r}")
        if not isinstance(self.project, str):
            problems.append(f"{self.kind} {self.name!r}: project must be a string, not {self.project!r}")
        if self.category is not None and not isinstance(self.category, str) and not callable(self.category):
            problems.append(f"{self.kind} {self.name!r}: category must be a string or a callable, "
                            f"not {self.category!r}")
        return problems

    async def follow_heads(self, heads: dict[str, str]) -> None:
        """Bring each branch of ``heads`` (branch -> its head now, in the order to report) up
        to date: the first poll only records where each stands; later polls report what moved
        (``_report(branch, head, last)``), saving the state after each branch."""
        last: dict[str, str] | None = await self.get_state(LAST_REV_KEY)
        first_poll = last is None
        last = dict(last or {})
        for branch, head in heads.items():
            if last.get(branch) == head:
                continue
            if not first_poll:
                await self._report(branch, head, last)
            last[branch] = head
            await self.set_state(LAST_REV_KEY, last)
        if first_poll:
            where = ", ".join(f"{branch} at {rev[:12]}" for branch, rev in sorted(last.items()))
            log.info("{kind} {name}: first poll, following {branches}", kind=self.kind, name=self.name,
                     branches=where)

    async def _report(self, branch: str, head: str, last: dict[str, str]) -> None:
        """Report the commits on ``branch`` up to ``head`` not seen before (the pollers that
        follow branch heads)."""
        raise NotImplementedError

    def repourl_problems(self) -> list[str]:
        """What is wrong with ``repourl``."""
        if not isinstance(self.repourl, str) or not self.repourl:
            return [f"{self.kind}: repourl must be a non-empty string, not {self.repourl!r}"]
        return []

    def repository_problems(self, branches_may_be_none: bool) -> list[str]:
        """What is wrong with ``repourl`` and ``branches`` (a list of names, True or a callable;
        None too where the poller then follows the default branch)."""
        problems = self.repourl_problems()
        branches = self.branches
        if not ((branches is None and branches_may_be_none) or branches is True or callable(branches) or (
                isinstance(branches, list | tuple) and all(isinstance(b, str) for b in branches))):
            problems.append(f"{self.kind} {self.name!r}: branches must be a list of branch names, True "
                            f"or a callable, not {branches!r}")
        return problems

    def no_effect_args(self) -> list[str]:
        """The arguments given that buildfarm accepts without effect (checkconfig warns)."""
        return [arg for arg in IGNORED_ARGS if getattr(self, arg, None)]

    def config_fingerprint(self) -> Any:
        public = {k: v for k, v in vars(self).items() if not k.startswith("_")
                  and k not in ("config_line", "parent", "running")}
        return (type(self).__module__, type(self).__qualname__, fingerprint(public))

    @property
    def state_name(self) -> str:
        """The namespace of this poller's rows in ``db.state``."""
        name = f"{self.kind}:{self.name}"
        if len(name) <= STATE_NAME_MAX:
            return name
        return f"{self.kind}:sha256:{hashlib.sha256(str(self.name).encode()).hexdigest()}"

    @property
    def lease_name(self) -> str:
        """This poller's lease in ``db.leases`` (with ``c['multiMaster']``)."""
        return f"poller:{self.state_name}"

    # -- running ---------------------------------------------------------------------------

    @property
    def master(self):
        if self._master is None:
            raise RuntimeError(f"{self.kind} {self.name!r} is not active")
        return self._master

    def activate(self, master) -> None:
        """Run against ``master`` (its reactor, db, config, masterid and scheduler) once started."""
        self._master = master

    def startService(self):  # noqa: N802
        super().startService()
        self._loop = task.LoopingCall(self._poll_logged)
        self._loop.clock = self.master.reactor
        self._loop.start(self.pollInterval, now=bool(self.pollAtLaunch))

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        self._stopping = True
        # A command in flight is killed (a fetch may take minutes); what was reported
        # before it is already in the database.
        if self._command is not None:
            self._command.cancel()
        if self._polling is not None:
            await self._polling
        if self._master is not None and self._master.config.multi_master:
            await self.master.db.leases.release(self.lease_name, self.master.masterid)

    def _poll_logged(self) -> defer.Deferred:
        """One poll (the loop waits for it), after the one running if any; a failure is logged
        and recorded (``poll_status``), the loop goes on."""
        return self._turn.run(self._one_poll)

    def poll_now(self) -> defer.Deferred:
        """Poll now, whatever ``pollInterval`` says (the API's and the ``poller`` hook's
        "poll now").  Fires with ``poll_status()`` once a poll that started after this call
        has finished; it never fails (a failed poll is in the status).  A poll running now may
        have listed the repository before the commit the caller knows of, so one more is
        queued behind it; callers that ask while that one waits share it."""
        if not self.running:
            return defer.fail(RuntimeError(f"{self.kind} {self.name!r} is not running"))
        waiter: defer.Deferred = defer.Deferred()
        if self._queued is not None:
            self._queued.append(waiter)
            return waiter
        waiters = self._queued = [waiter]

        def start() -> defer.Deferred:
            self._queued = None  # callers from now on need a poll after this one
            return self._one_poll()

        def tell(_) -> None:
            for each in waiters:
                each.callback(self.poll_status())

        self._turn.run(start).addBoth(tell)
        return waiter

    def poll_status(self) -> dict:
        """What the API shows of this poller: ``polling`` (a poll runs now), ``last_poll``
        (when the last one finished, epoch seconds of the master's clock, None before the
        first), ``last_error`` (why it failed, None when it succeeded), ``polled_here``
        (False when another master holds the source), ``next_poll`` and ``poll_interval``."""
        call = self._loop.call if self._loop is not None and self._loop.running else None
        return {"polling": self._polling is not None and not self._polling.called,
                "last_poll": self._last_poll, "last_error": self._last_error,
                "polled_here": self._last_polled_here,
                "next_poll": call.getTime() if call is not None and call.active() else None,
                "poll_interval": self.pollInterval}

    def _one_poll(self) -> defer.Deferred:
        if self._stopping:
            return defer.succeed(None)

        def failed(failure):
            if self._stopping and failure.check(defer.CancelledError):
                return  # stopped in the middle of a command
            log.failure("{kind} {name}: poll failed", failure, kind=self.kind, name=self.name)
            self._record(f"{failure.type.__name__}: {failure.getErrorMessage()}")

        self._polling = defer.ensureDeferred(self.poll_if_ours())
        self._polling.addErrback(failed)
        return self._polling

    def _record(self, error: str | None) -> None:
        self._last_poll = self.master.reactor.seconds()
        self._last_error = error
        self._last_polled_here = True

    async def poll_if_ours(self) -> bool:
        """Poll unless another master holds this source; whether this master polled."""
        master = self.master
        if master.config.multi_master:
            lease_s = 2 * self.pollInterval + CLAIM_GRACE_S
            if not await master.db.leases.acquire(self.lease_name, master.masterid, master.reactor.seconds(),
                                                  lease_s):
                self._last_polled_here = False  # its last poll (and error) stay as they were
                return False
        try:
            await self.poll()
        except VCSCommandFailed as e:
            log.warn("{kind} {name}: {why}", kind=self.kind, name=self.name, why=str(e))
            self._record(str(e))
        else:
            self._record(None)
        return True

    async def poll(self) -> None:
        """Look for new changes and report them (subclasses)."""
        raise NotImplementedError

    # -- helpers for the subclasses --------------------------------------------------------

    async def run(self, *argv: str, cwd: str | None = None, env: dict | None = None,
                  encoding: str = "utf-8") -> str:
        """Run a VCS command (killed if the poller stops); its stdout, decoded."""
        if self._stopping:
            raise defer.CancelledError(f"{self.kind} {self.name!r} stopped")
        self._command = defer.ensureDeferred(run_command(argv, self.master.reactor, cwd=cwd, env=env))
        try:
            out = await self._command
        finally:
            self._command = None
        return out.decode(encoding, "replace")

    def workdir_path(self, workdir: str) -> str:
        """``workdir`` (relative to the master's basedir unless absolute)."""
        return os.path.join(self.master.basedir, os.path.expanduser(workdir))

    async def get_state(self, key: str, default=None):
        return await self.master.db.state.get(self.state_name, key, default)

    async def set_state(self, key: str, value) -> None:
        await self.master.db.state.set(self.state_name, key, value)

    def category_of(self, change: dict) -> Any:
        return self.category(change) if callable(self.category) else self.category

    async def add_change(self, **change) -> int:
        """Report one change (``db.changes.add`` arguments) as every change is reported."""
        change.setdefault("project", self.project)
        change["category"] = self.category_of(change)
        return await self.master.scheduler.add_change(**change)
