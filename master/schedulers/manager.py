"""``SchedulerManager``: the running schedulers, and what the rest of the master asks of them.

- ``reconfig(config)`` starts the configured schedulers (first call) and afterwards applies
  a new configuration: new schedulers start, removed ones stop, changed ones (compared by
  configuration, not identity) are replaced, unchanged ones keep running untouched.
- ``force`` (the API), ``add_change`` (the change API), ``trigger`` (the Trigger step).
- ``buildrequest_finished`` (the BotMaster): completes buildsets, wakes Trigger steps
  waiting for them and starts Dependent schedulers.
"""

from collections.abc import Iterable

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from buildfarm.common.results import result_name
from buildfarm.master.cluster.leases import LeaseGate
from buildfarm.master.mq import events
from buildfarm.master.mq.exchanges import BUILDFARM_EXCHANGES, BUILDSET_COMPLETED
from buildfarm.master.schedulers.base import Scheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.interfaces import ISchedulerMaster
from buildfarm.master.schedulers.triggerable import Triggerable

log = Logger()

# db.changes.add's defaults of the fields a change-added message names
CHANGE_DEFAULTS = {"repository": "", "project": "", "codebase": ""}


class UnknownBuilder(LookupError):
    """No builder of that name is configured."""


class NotForceable(LookupError):
    """The builder exists but no ForceScheduler lists it."""


class UnknownScheduler(KeyError):
    """No Triggerable scheduler of that name is configured."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown scheduler"


class ScheduleRunner(service.Service):
    """A scheduler as a service, for the ``LeaseGate`` of a scheduler that runs on one master
    at a time: started is activated, stopped is deactivated."""

    def __init__(self, scheduler: Scheduler, master: ISchedulerMaster):
        self.scheduler = scheduler
        self.master = master

    def startService(self):  # noqa: N802
        super().startService()
        return self.scheduler.activate(self.master)

    def stopService(self):  # noqa: N802
        super().stopService()
        return self.scheduler.deactivate()


class SchedulerManager(service.Service):
    """Holds the active schedulers of the current configuration.

    It sees the master as ``ISchedulerMaster``; builds see it as ``process.interfaces.
    ISchedulers`` (checked by shape: schedulers may not import process, which imports them)."""

    name = "scheduler"

    def __init__(self, master: ISchedulerMaster):
        self.master = master
        self.schedulers: dict[str, Scheduler] = {}
        self._reconfig_lock = defer.DeferredLock()
        self._finish_lock = defer.DeferredLock()
        self._waiters: dict[int, list[defer.Deferred]] = {}
        # The lease gates of the schedulers that run on one master at a time, by name
        # (c['multiMaster'] only; see ``Scheduler.runs_on_one_master``).
        self.gates: dict[str, LeaseGate] = {}
        self._unsubscribe = None  # from buildset-completed on the bus, while running

    # -- service ---------------------------------------------------------------------------

    # The BuildMaster starts this service once its builders exist, walks ``reconfigService``
    # on every reconfig, and stops it before the BotMaster and database stop.

    def startService(self):  # noqa: N802
        """Activate the schedulers of the running configuration; hear buildsets complete."""
        super().startService()
        mq = self.master.mq
        self._unsubscribe = mq.subscribe(mq.exchange_name(BUILDFARM_EXCHANGES, BUILDSET_COMPLETED), "#",
                                         self._on_buildset_completed)
        return defer.ensureDeferred(self.reconfigService(self.master.config))

    def stopService(self):  # noqa: N802
        super().stopService()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        return defer.ensureDeferred(self.stop())

    async def stop(self) -> None:
        """Deactivate every scheduler (waiting for their work in flight)."""
        await self._reconfig_lock.acquire()
        try:
            await self._deactivate(list(self.schedulers.values()))
            self.schedulers = {}
        finally:
            self._reconfig_lock.release()

    async def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Make the running schedulers those of ``config``."""
        await self._reconfig_lock.acquire()
        try:
            await self._apply(config.schedulers)
        finally:
            self._reconfig_lock.release()

    async def _apply(self, wanted: Iterable[Scheduler]) -> None:
        old, new = self.schedulers, {s.name: s for s in wanted}
        keep = {name for name, s in new.items()
                if name in old and old[name].config_fingerprint() == s.config_fingerprint()}
        await self._deactivate([s for name, s in old.items() if name not in keep])
        current = {name: old[name] for name in keep}
        for name, scheduler in new.items():
            if name in keep:
                continue
            try:
                await self._activate(scheduler)
            except Exception:
                log.failure("scheduler {name} failed to start", name=name)
                continue
            current[name] = scheduler
            verb = "restarted with its new configuration" if name in old else "started"
            log.info("scheduler {name} ({kind}) {verb}", name=name, kind=type(scheduler).__name__, verb=verb)
        for name in sorted(set(old) - set(new)):
            log.info("scheduler {name} stopped: no longer configured", name=name)
        self.schedulers = current

    async def _activate(self, scheduler: Scheduler) -> None:
        """Activate ``scheduler``, or, for one that runs on one master at a time among several,
        start its lease gate (it is activated when this master holds the lease)."""
        if not (scheduler.runs_on_one_master and self.master.config.multi_master):
            await scheduler.activate(self.master)
            return
        gate = LeaseGate(f"scheduler:{scheduler.name}", ScheduleRunner(scheduler, self.master), self.master)
        self.gates[scheduler.name] = gate
        await defer.maybeDeferred(gate.startService)

    async def _deactivate(self, schedulers: list[Scheduler]) -> None:
        for scheduler in schedulers:
            gate = self.gates.get(scheduler.name)
            try:
                if gate is not None and gate.child.scheduler is scheduler:
                    del self.gates[scheduler.name]
                    await gate.stopService()
                else:
                    await scheduler.deactivate()
            except Exception:
                log.failure("scheduler {name} failed to stop", name=scheduler.name)

    # -- force -----------------------------------------------------------------------------

    def force_scheduler_for(self, buildername: str) -> ForceScheduler:
        """The running ForceScheduler that may build ``buildername``."""
        if self.master.config.builder(buildername) is None or \
                buildername not in self.master.botmaster.builders:
            raise UnknownBuilder(f"no builder named {buildername!r}")
        for scheduler in self.schedulers.values():
            if isinstance(scheduler, ForceScheduler) and buildername in scheduler.builderNames:
                return scheduler
        raise NotForceable(f"builder {buildername!r} has no ForceScheduler")

    async def force(self, buildername: str, reason: str | None, properties: dict,
                    owner: str | None = None) -> int:
        """Request a build of ``buildername`` (a one-request buildset); return the request id.

        Raises ``UnknownBuilder``, ``NotForceable`` or ``ForceParameterError``.
        """
        scheduler = self.force_scheduler_for(buildername)
        return await scheduler.force(buildername, reason, properties, owner)

    # -- changes ---------------------------------------------------------------------------

    async def add_change(self, **change) -> int:
        """Store a change (``db.changes.add`` arguments; times default to now) and offer it
        to every scheduler that watches changes; return its id."""
        now = self.master.reactor.seconds()
        change.setdefault("when_timestamp", now)
        change.setdefault("created_at", now)
        change.setdefault("files", [])
        change.setdefault("comments", "")
        bus, written = self.master.mq, []

        def messages(changeid: int):  # its change-added, in the change's transaction (outboxed bus)
            stored = {**CHANGE_DEFAULTS, **change, "changeid": changeid}  # the row as db.changes.get reads it
            written[:] = [events.change_added(bus, stored)]
            return written

        if bus.outboxed:
            changeid = await self.master.db.changes.add(**change, messages=messages)
        else:
            changeid = await self.master.db.changes.add(**change)
        row = await self.master.db.changes.get(changeid)
        if bus.outboxed:
            bus.published(written)
        else:
            published = events.publish(bus, events.change_added(bus, row))
            published.addErrback(lambda f: log.failure("publishing change {id} failed", f, id=changeid))
        log.info("change {id} by {author} on branch {branch} (revision {revision})", id=changeid,
                 author=row.get("author"), branch=row.get("branch"), revision=row.get("revision"))
        for scheduler in list(self.schedulers.values()):
            if scheduler.wants_changes and scheduler.active:
                try:
                    await scheduler.got_change(row)
                except Exception:
                    log.failure("scheduler {name} failed on change {id}", name=scheduler.name, id=changeid)
        return changeid

    # -- triggers --------------------------------------------------------------------------

    async def trigger(self, scheduler_name: str, properties: dict,
                      parent_buildid: int | None) -> tuple[int, dict[int, int], defer.Deferred]:
        """Trigger a Triggerable scheduler; return ``(bsid, {builderid: brid}, results)``,
        ``results`` a Deferred firing with the buildset's results once it completes.

        Raises ``UnknownScheduler`` when no Triggerable of that name runs.
        """
        scheduler = self.schedulers.get(scheduler_name)
        if not isinstance(scheduler, Triggerable):
            what = "is not a Triggerable" if scheduler else "is not configured"
            raise UnknownScheduler(f"scheduler {scheduler_name!r} {what}")
        bsid, brids = await scheduler.trigger(dict(properties), parent_buildid)
        waiter: defer.Deferred = defer.Deferred()
        self._waiters.setdefault(bsid, []).append(waiter)
        return bsid, brids, waiter

    async def cancel_requests(self, brids: Iterable[int], reason: str) -> None:
        """Cancel build requests (a stopped Trigger step's): waiting ones complete as
        CANCELLED, running builds of them are stopped."""
        db, botmaster = self.master.db, self.master.botmaster
        for brid in brids:
            if await db.buildrequests.cancel(brid, self.master.reactor.seconds()):
                self.buildrequest_finished(await db.buildrequests.get(brid))
                continue
            for build in list(botmaster.running_builds):
                if build.request.get("buildrequestid") == brid:
                    build.stop(reason)

    # -- build requests finishing ----------------------------------------------------------

    def buildrequest_finished(self, buildrequest: dict) -> None:
        """The BotMaster completed (or cancelled) a build request; never raises."""
        d = defer.ensureDeferred(self._finish_lock.run(
            lambda: defer.ensureDeferred(self._buildrequest_finished(buildrequest))))
        d.addErrback(lambda f: log.failure("after build request {id} finished", f,
                                           id=buildrequest.get("buildrequestid")))

    async def _buildrequest_finished(self, buildrequest: dict) -> None:
        db = self.master.db
        bsid = buildrequest.get("buildsetid")
        if bsid is None:
            row = await db.buildrequests.get(buildrequest["buildrequestid"])
            bsid = row and row.get("buildsetid")
        if bsid is None:
            return
        before = await db.buildsets.get(bsid)
        if before is None or before["complete"]:
            return  # already completed (and announced) by an earlier request
        now, mq, sent = self.master.reactor.seconds(), self.master.mq, []

        def messages(results: int) -> tuple:
            # made inside the completing transaction; handed to the bus after the commit
            sent[:] = [events.buildset_completed(mq, bsid, before["scheduler"], results, now,
                                                 self.master.masterid)]
            return events.in_transaction(mq, *sent)

        results = await db.buildsets.complete_if_done(bsid, now, messages=messages)
        if results is None:
            return
        mq.published(sent)
        log.info("buildset {bsid} of {scheduler} complete: {result}", bsid=bsid,
                 scheduler=before["scheduler"], result=result_name(results))
        await self.buildset_complete(before, results)

    def _on_buildset_completed(self, message) -> None:
        """``buildset-completed`` on the bus (this master's, or with AMQP another master's):
        wake the Trigger steps here waiting for it (Dependent schedulers are started by the
        master that completed it, in ``buildset_complete``)."""
        payload = message.payload
        for waiter in self._waiters.pop(payload["buildsetId"], []):
            waiter.callback(payload["results"])

    async def check_remote_completions(self) -> None:
        """With several masters, another master may complete a buildset that a Trigger step
        here waits for: the fallback for a missed ``buildset-completed`` (no broker, or the
        broker away), at the BotMaster's shared-database poll (Dependent schedulers need no
        help: the master that completes the upstream buildset starts them, exactly once)."""
        for bsid in list(self._waiters):
            row = await self.master.db.buildsets.get(bsid)
            if row is not None and row["complete"]:
                for waiter in self._waiters.pop(bsid, []):
                    waiter.callback(row["results"])

    async def buildset_complete(self, buildset: dict, results: int) -> None:
        """Wake the Trigger steps waiting for the buildset; start its Dependent schedulers."""
        for waiter in self._waiters.pop(buildset["bsid"], []):
            waiter.callback(results)
        for scheduler in list(self.schedulers.values()):
            if isinstance(scheduler, Dependent) and scheduler.active and \
                    scheduler.upstream_name == buildset["scheduler"]:
                try:
                    await scheduler.upstream_finished(buildset, results)
                except Exception:
                    log.failure("Dependent {name} failed", name=scheduler.name)
