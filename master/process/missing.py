"""``MissingSlaves``: the configured slaves gone longer than their ``missing_timeout``.

Buildbot 4.3's ``Worker(missing_timeout=..., notify_on_missing=[...])``: a timer starts for
each configured slave when the master starts without it, and each time it detaches; its
attach stops the timer.  When the timer fires and no other master of the farm holds the slave
(by the shared database), the slave is *missing*: its status and the API say so, the master
logs it, and every listener (``subscribe``) gets a ``SlaveMissing`` event naming whom
``notify_on_missing`` asks to be told.  Telling them is a reporter's work (a reporter with
``reporters.WorkerMissingGenerator``, master/reporters/); until one listens, the log line says
nobody was told.  An attach ends the missing state (logged too).
"""

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.master.process.interfaces import IMissingSlaves

log = Logger()


@dataclass(frozen=True)
class SlaveMissing:
    """The event: slave ``name``, gone since ``gone_since`` (its detach, or the master's start),
    has been missing for ``missing_timeout`` seconds; ``notify`` is its ``notify_on_missing``."""

    name: str
    gone_since: float
    missing_timeout: float
    notify: tuple[str, ...]


@implementer(IMissingSlaves)
class MissingSlaves:
    """The missing-slave timers of one master, and who is missing (see the module docstring).

    The BotMaster drives it: ``configure`` on start-up and reconfig, ``slave_attached``,
    ``slave_detached`` and ``stop``.  ``master`` is an ``IProcessMaster`` (its clock, config,
    database and masterid); ``is_attached(name)`` says whether a slave is attached here."""

    def __init__(self, master, is_attached: Callable[[str], bool]):
        self.master = master
        self.is_attached = is_attached
        self._timers: dict[str, object] = {}  # name -> DelayedCall
        self._gone_since: dict[str, float] = {}  # name -> when its timer started
        self._timeouts: dict[str, float] = {}  # name -> the timeout its timer runs with
        self._missing: dict[str, SlaveMissing] = {}
        self._listeners: list[Callable[[SlaveMissing], object]] = []
        self._stopped = False

    # -- what others read and listen to ---------------------------------------------------------

    def is_missing(self, name: str) -> bool:
        return name in self._missing

    def missing(self) -> dict[str, SlaveMissing]:
        return dict(self._missing)

    def subscribe(self, listener: Callable[[SlaveMissing], object]) -> Callable[[], None]:
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    # -- what the BotMaster tells it ------------------------------------------------------------

    def configure(self, slaves: dict, attached: set[str]) -> None:
        """Apply the configured slaves (name -> SlaveConfig); ``attached`` are attached here."""
        self._stopped = False
        for name in set(self._timers) | set(self._missing):
            if name not in slaves:
                self._cancel(name)
                self._missing.pop(name, None)
        for name, config in slaves.items():
            timeout = config.missing_timeout
            if name in attached or name in self._missing:
                continue
            if name in self._timers and self._timeouts.get(name) == timeout:
                continue
            # A changed timeout restarts a running timer from now, as in Buildbot.
            self._cancel(name)
            self._start(name, timeout)

    def slave_attached(self, name: str) -> None:
        self._cancel(name)
        self._gone_since.pop(name, None)
        if self._missing.pop(name, None) is not None:
            log.info("slave {name} is back; it is no longer missing", name=name)

    def slave_detached(self, name: str) -> None:
        config = self.master.config.slaves.get(name)
        if config is not None and not self._stopped:
            self._cancel(name)
            self._start(name, config.missing_timeout)

    def stop(self) -> None:
        self._stopped = True
        for name in list(self._timers):
            self._cancel(name)

    # -- timers ---------------------------------------------------------------------------------

    def _start(self, name: str, timeout) -> None:
        if not timeout:
            return  # None or 0: never missing
        clock = self.master.reactor
        self._gone_since.setdefault(name, clock.seconds())
        self._timeouts[name] = timeout
        self._timers[name] = clock.callLater(timeout, self._fired, name)

    def _cancel(self, name: str) -> None:
        call = self._timers.pop(name, None)
        self._timeouts.pop(name, None)
        if call is not None and call.active():
            call.cancel()

    def _fired(self, name: str) -> None:
        self._timers.pop(name, None)
        timeout = self._timeouts.pop(name, None)
        d = defer.ensureDeferred(self._mark_missing(name, timeout))
        d.addErrback(lambda f: log.failure("marking slave {name} missing failed", f, name=name))

    async def _mark_missing(self, name: str, timeout: float) -> None:
        row = await self.master.db.slaves.get(name)
        elsewhere = row is not None and row.get("connected_masterid") not in (None, self.master.masterid)
        config = self.master.config.slaves.get(name)
        if self._stopped or config is None or self.is_attached(name) or name in self._timers:
            return  # stopped, removed, back, or re-armed while the database answered
        if elsewhere:  # another master of the farm holds it: look again later
            self._start(name, timeout)
            return
        event = SlaveMissing(name, self._gone_since.get(name, self.master.reactor.seconds()), timeout,
                             tuple(config.notify_on_missing))
        self._missing[name] = event
        told = ", ".join(event.notify) or "nobody (notify_on_missing is empty)"
        log.warn("slave {name} is missing: gone for {timeout} s (missing_timeout); to notify: {told}"
                 "{reporters}", name=name, timeout=timeout, told=told,
                 reporters="" if self._listeners else "; no reporter listens, so nobody was told")
        for listener in list(self._listeners):
            try:
                result = listener(event)
                if isinstance(result, defer.Deferred):
                    result.addErrback(lambda f: log.failure("a missing-slave listener failed", f))
            except Exception:
                log.failure("a missing-slave listener failed")
