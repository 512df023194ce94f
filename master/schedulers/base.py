"""``Scheduler``: the base of every scheduler kind, and ``IScheduler``, what the manager uses.

A scheduler object is built by master.cfg and is configuration first: its public attributes
are its arguments, and two schedulers with equal ``config_fingerprint()`` are the same
scheduler (a reconfig keeps the running one).  At run time the manager calls
``activate(master)`` and later ``deactivate()``; everything the scheduler holds while it
runs lives in private (``_``) attributes, and everything that must survive a master
restart is kept with ``db.state`` under the scheduler's name.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

from buildfarm.master.configobject import ConfigObject, fingerprint
from buildfarm.master.mq import events
from buildfarm.master.schedulers.interfaces import ISchedulerMaster

log = Logger()


class IScheduler(Interface):
    """A named source of buildsets for some builders."""

    name = Attribute("the scheduler's name, unique in the configuration")
    builderNames = Attribute("the builders its buildsets request builds of")

    def config_problems() -> list[str]:
        """What is wrong with the arguments (empty when nothing is)."""

    def cross_check(config) -> list[str]:
        """Problems that need the whole ``MasterConfig`` (unknown upstream, ...)."""

    def config_fingerprint() -> Any:
        """A comparable summary of the configuration: equal means unchanged."""

    def activate(master) -> defer.Deferred:
        """Start running against ``master`` (an ``ISchedulerMaster``: timers, state); fires
        when started."""

    def deactivate() -> defer.Deferred:
        """Stop running (cancel timers, finish in-flight work); fires when stopped."""


def is_positive_number(value) -> bool:
    """A number of seconds (or a count) above zero; booleans are not numbers here."""
    return not isinstance(value, bool) and isinstance(value, int | float) and value > 0


@implementer(IScheduler)
class Scheduler(ConfigObject):
    """A named source of build requests for some builders."""

    referenced_by_name = "scheduler"  # a Dependent's upstream compares by its name (fingerprint)
    # Whether the manager offers new changes to this scheduler (``got_change``).
    wants_changes = False
    # Whether it fires on its own (on a timer): with several masters it then runs on one of
    # them at a time, under a database lease (master/cluster/leases.py).  The others fire on
    # what a master is asked (a change it received, a force, a trigger): once per ask.
    runs_on_one_master = False

    def __init__(self, name, builderNames, properties=None, priority=0):  # noqa: N803
        self._remember_config_line()
        self.name = name
        # Kept as given: master.cfg may fill the list after this; loading the config copies it.
        self.builderNames = builderNames
        self.properties = {} if properties is None else (
            dict(properties) if isinstance(properties, dict) else properties)
        self.priority = priority
        self._master = None
        self._lock = defer.DeferredLock()
        self._calls: set = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- configuration ---------------------------------------------------------------------

    def config_problems(self) -> list[str]:
        """What is wrong with this scheduler's arguments."""
        problems = []
        if not isinstance(self.name, str) or not self.name:
            problems.append(f"scheduler name must be a non-empty string, not {self.name!r}")
        if callable(getattr(self.builderNames, "render", None)) or callable(
                getattr(self.builderNames, "getRenderingFor", None)):
            problems.append(f"scheduler {self.name!r}: not supported by buildfarm: a renderable "
                            "builderNames (Buildbot renders it when a buildset is made); give the "
                            "list of builder names")
        elif not isinstance(self.builderNames, list) or \
                not all(isinstance(n, str) for n in self.builderNames):
            problems.append(f"scheduler {self.name!r}: builderNames must be a list of builder names")
        elif not self.builderNames:
            problems.append(f"scheduler {self.name!r} names no builders")
        if not isinstance(self.properties, dict):
            problems.append(f"scheduler {self.name!r}: properties must be a dict, not {self.properties!r}")
        if isinstance(self.priority, bool) or not isinstance(self.priority, int):
            problems.append(f"scheduler {self.name!r}: priority must be an integer, not {self.priority!r}")
        return problems

    def cross_check(self, config) -> list[str]:
        """Problems that need the whole configuration (e.g. an unknown upstream scheduler).

        Unknown builder names are reported by the configuration loader itself.
        """
        return []

    def config_fingerprint(self) -> Any:
        public = {k: v for k, v in vars(self).items() if not k.startswith("_") and k != "config_line"}
        return (type(self).__module__, type(self).__qualname__, fingerprint(public))

    # -- running ---------------------------------------------------------------------------

    @property
    def master(self) -> ISchedulerMaster:
        """The master while active (as the schedulers see it)."""
        if self._master is None:
            raise RuntimeError(f"scheduler {self.name!r} is not active")
        return self._master

    @property
    def active(self) -> bool:
        return self._master is not None

    def activate(self, master: ISchedulerMaster) -> defer.Deferred:
        self._master = master
        return defer.ensureDeferred(self._locked(self.started))

    def deactivate(self) -> defer.Deferred:
        for call in list(self._calls):
            if call.active():
                call.cancel()
        self._calls.clear()
        return defer.ensureDeferred(self._deactivate())

    async def _deactivate(self) -> None:
        await self._locked(self.stopped)  # waits for work in flight, then stops
        self._master = None

    async def started(self) -> None:
        """Subclasses start their timers here (called under the scheduler's lock)."""

    async def stopped(self) -> None:
        """Subclasses release what they hold here (called under the scheduler's lock)."""

    async def _locked(self, fn: Callable[..., Coroutine], *args) -> Any:
        """Run ``fn`` with the scheduler's lock held: timers, changes and stop never interleave."""
        await self._lock.acquire()
        try:
            return await fn(*args)
        finally:
            self._lock.release()

    def call_later(self, delay_s: float, fn: Callable[..., Coroutine], *args) -> None:
        """Run ``await fn(*args)`` under the lock after ``delay_s`` seconds of the master's clock."""
        def fire():
            self._calls.discard(call)
            if not self.active:
                return
            d = defer.ensureDeferred(self._locked(fn, *args))
            d.addErrback(lambda f: log.failure("scheduler {name} failed", f, name=self.name))

        call = self.master.reactor.callLater(max(0.0, delay_s), fire)
        self._calls.add(call)
        return call

    def now(self) -> float:
        return self.master.reactor.seconds()

    async def get_state(self, key: str, default=None):
        return await self.master.db.state.get(self.name, key, default)

    async def set_state(self, key: str, value) -> None:
        await self.master.db.state.set(self.name, key, value)

    async def add_buildset(self, reason: str, properties: dict | None = None,
                           builderNames: list[str] | None = None,  # noqa: N803
                           parent_buildid: int | None = None) -> tuple[int, dict[int, int]]:
        """Request builds of ``builderNames`` (default: all of this scheduler's builders).

        The buildset's properties are the scheduler's configured ones, then ``properties``,
        then ``scheduler`` (this scheduler's name).  Returns ``(bsid, {builderid: brid})``.
        """
        master = self.master
        names = list(builderNames or self.builderNames)
        builderids = [await self._builderid(name) for name in names]
        props = {**self.properties, **(properties or {}), "scheduler": self.name}
        submitted_at, sent = self.now(), []
        names_by_id = dict(zip(builderids, names, strict=True))

        def messages(bsid: int, brids: dict[int, int]) -> tuple:
            # made inside the transaction, once the ids exist; kept for the bus after the commit
            sent[:] = [events.request_submitted(master.mq, names_by_id[builderid], builderid, brid, bsid,
                                                self.name, reason, self.priority, submitted_at)
                       for builderid, brid in brids.items()]
            return events.in_transaction(master.mq, *sent)

        bsid, brids = await master.db.buildsets.add(
            self.name, reason, props, builderids, submitted_at, priority=self.priority,
            parent_buildid=parent_buildid, messages=messages,
        )
        master.mq.published(sent)
        log.info("scheduler {name} added buildset {bsid} for {builders}: {reason}",
                 name=self.name, bsid=bsid, builders=", ".join(names), reason=reason)
        master.botmaster.maybe_start_builds()
        return bsid, brids

    async def _builderid(self, name: str) -> int:
        builder = self.master.botmaster.builders.get(name)
        if builder is not None:
            return builder.builderid
        return await self.master.db.builders.find_or_create(name)
