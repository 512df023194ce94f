"""``BotMaster``: attached slaves, builders, and assigning build requests to idle slaves.

Assignment is one coalescing loop: whoever wants builds started (a new request, a slave
attaching, a build ending) calls ``maybe_start_builds``; if the loop is already running it
runs once more afterwards.  Each request is claimed in the database atomically before its
build starts, so two masters sharing a database never run the same request.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.spread import pb
from zope.interface import implementer

from buildfarm.common.results import RETRY, result_name
from buildfarm.master.pb.buildslave import TASKS_BUILDDIR, TASKS_BUILDER, BuildSlave
from buildfarm.master.pb.interfaces import ISlaveRoster
from buildfarm.master.process.build import Build
from buildfarm.master.process.builder import Builder, SlaveBuilderState
from buildfarm.master.process.interfaces import IProcessMaster
from buildfarm.master.process.locks import LockManager
from buildfarm.master.process.missing import MissingSlaves
from buildfarm.master.schedulers.interfaces import ISchedulerBotMaster

log = Logger()

DUPLICATE_PING_TIMEOUT_S = 10.0
# With c['multiMaster'] another master may add requests: look in the database this often.
MULTI_MASTER_POLL_S = 2.0
STOP_BUILDS_TIMEOUT_S = 15.0
# A request this master could not complete or put back: it no longer holds its claim (another
# master declared this one dead and reclaimed it; the request may be running there).
REQUEST_CLAIM_LOST_MESSAGE = ("build request {id} ended {result} here, but this master no longer holds its "
                              "claim (declared dead by another master): left as the other master has it")


class DuplicateSlave(pb.Error):
    """A slave of that name is attached and alive: the new login is refused."""


@implementer(ISlaveRoster, ISchedulerBotMaster)
class BotMaster(service.Service):
    """Holds the builders and the attached slaves, and starts builds on them.

    It sees the master as ``IProcessMaster``; the PB layer sees it as ``ISlaveRoster`` and
    the schedulers as ``ISchedulerBotMaster``."""

    name = "botmaster"

    def __init__(self, master: IProcessMaster):
        self.master = master
        self.builders: dict[str, Builder] = {}
        self.slaves: dict[str, BuildSlave] = {}
        self.running_builds: dict[Build, defer.Deferred] = {}
        self.locks = LockManager()
        self.missing = MissingSlaves(master, lambda name: name in self.slaves)  # IMissingSlaves
        self._poller: task.LoopingCall | None = None
        self._assigning = False
        self._assign_again = False
        self._assignment: defer.Deferred | None = None
        self._attach_waiters: dict[str, list[defer.Deferred]] = {}
        self._attaching: dict[str, BuildSlave] = {}  # name -> its connection now attaching
        # Told of slaves attaching and detaching, and of slots freed (the task engine):
        # ``slave_attached(slave)``, ``slave_detached(slave)``, ``slot_freed(slave)``.
        self.slave_listeners: list = []

    @property
    def clock(self):
        return self.master.reactor

    # -- configuration ---------------------------------------------------------------------

    async def configure(self, config) -> None:
        """Create the configured builders (their ids come from the database)."""
        builders = {}
        for builder_config in config.builders:
            builderid = await self.master.db.builders.find_or_create(builder_config.name)
            existing = self.builders.get(builder_config.name)
            if existing is not None:
                existing.config = builder_config
                builders[builder_config.name] = existing
            else:
                builders[builder_config.name] = Builder(builder_config, builderid, self)
        self.builders = builders

    def set_polling(self, enabled: bool) -> None:
        """Poll the database for requests other masters added (``c['multiMaster']``)."""
        if enabled and self._poller is None:
            self._poller = task.LoopingCall(self._poll_shared_database)
            self._poller.clock = self.clock
            self._poller.start(MULTI_MASTER_POLL_S, now=False)
        elif not enabled and self._poller is not None:
            self._poller.stop()
            self._poller = None

    def _poll_shared_database(self) -> defer.Deferred:
        self.maybe_start_builds()
        d = defer.ensureDeferred(self.master.scheduler.check_remote_completions())
        d.addErrback(lambda f: log.failure("checking other masters' buildsets failed", f))
        return d

    def startService(self):  # noqa: N802
        """Create the configured builders and poll a shared database if configured."""
        super().startService()
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.configure(self.master.config)
        self.set_polling(self.master.config.multi_master)
        self.missing.configure(self.master.config.slaves, set(self.slaves))

    def stopService(self):  # noqa: N802
        """Drop every slave and wait (bounded) for running builds to record RETRY."""
        return defer.ensureDeferred(self.stop())

    async def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Apply a new configuration: builders, and the builder lists of attached slaves.

        Running builds keep the steps they started with; attached slaves stay attached
        unless they were removed from the configuration.
        """
        await self.configure(config)
        self.set_polling(config.multi_master)
        self.missing.configure(config.slaves, set(self.slaves))
        for slave in list(self.slaves.values()):
            if slave.name not in config.slaves:
                log.info("slave {name} was removed from the configuration; dropping it", name=slave.name)
                slave.disconnect()
                continue
            slave.ping_interval = ping_interval_of(config, slave.name)  # from its next ping on
            await self._update_builder_list(slave)
        self.maybe_start_builds()

    async def _update_builder_list(self, slave: BuildSlave) -> None:
        wanted = self.builder_list_for(slave.name)
        if sorted(wanted) == sorted(slave.builder_list):
            return
        log.info("sending slave {name} its new builder list", name=slave.name)
        await slave.set_builder_list(wanted)
        for builder in self.builders.values():
            ref = slave.remote_builders.get(builder.name)
            attached = builder.slavebuilders.get(slave.name)
            if ref is None:
                builder.remove_slave(slave)
            elif attached is None or attached.slave is not slave:
                builder.add_slave(slave, ref)
            else:
                attached.remote = ref

    def builder_list_for(self, slavename: str) -> list[tuple[str, str]]:
        """The ``(builder name, builddir)`` pairs the slave serves, for ``setBuilderList``;
        a slave with a task pool (``dimensions={'pool': ...}``) also gets the task builder."""
        wanted = [(b.name, b.config.builddir) for b in self.builders.values()
                  if slavename in b.config.slavenames]
        config = self.master.config.slaves.get(slavename)
        if config is not None and (getattr(config, "dimensions", None) or {}).get("pool"):
            wanted.append((TASKS_BUILDER, TASKS_BUILDDIR))
        return wanted

    def slave_accepts_build(self, slave: BuildSlave) -> bool:
        """Whether the slave may start one more build now."""
        return self._has_free_slot(slave, for_task=False)

    def slave_accepts_task(self, slave: BuildSlave) -> bool:
        """Whether the slave may start one more task (master/tasks) now."""
        return self._has_free_slot(slave, for_task=True)

    def _has_free_slot(self, slave: BuildSlave, for_task: bool) -> bool:
        """The one place that says a slave is free.  Builds and tasks share its ``max_builds``
        slots; without ``max_builds`` builds are not limited among themselves, but a running
        task takes the whole slave, and a task starts only on a slave that runs nothing."""
        if slave.shutting_down or not slave.attached:
            return False
        if not self.master.slaveapi.is_enabled(slave.name):
            return False  # disabled through the SlaveAPI
        config = self.master.config.slaves.get(slave.name)
        if config is None:
            return False
        builds = self.builds_running_on(slave)
        if config.max_builds is None:
            return slave.tasks_running == 0 and (not for_task or builds == 0)
        return builds + slave.tasks_running < config.max_builds

    def slot_freed(self, slave: BuildSlave) -> None:
        """A build or task of the slave ended: builds and tasks may take the slot."""
        self.maybe_start_builds()
        self._tell_listeners("slot_freed", slave)

    def _tell_listeners(self, event: str, slave: BuildSlave) -> None:
        for listener in list(self.slave_listeners):
            try:
                getattr(listener, event)(slave)
            except Exception:  # noqa: BLE001 - one listener's bug must not stop the others
                log.failure("a slave listener failed on {event} of {name}", event=event, name=slave.name)

    def _messages_of(self, event: str, name: str, at: float) -> tuple:
        """What the listeners write to the outbox with the record of ``event`` (a listener's
        optional ``in_transaction``, master/mq/bridge.py)."""
        return tuple(message for listener in self.slave_listeners
                     if hasattr(listener, "in_transaction")
                     for message in listener.in_transaction(event, name, at))

    def running_build(self, buildid: int) -> Build | None:
        """The running build with that id, if this master runs it."""
        return next((b for b in self.running_builds if b.buildid == buildid), None)

    def request_slave_shutdown(self, name: str) -> BuildSlave:
        """Shut an attached slave down gracefully: no new builds, stop once idle."""
        slave = self.slaves[name]
        if not slave.shutting_down:
            log.info("graceful shutdown of slave {name} requested; it takes no new builds", name=name)
        slave.shutting_down = True
        self.maybe_shut_down_slave(slave)
        return slave

    def builds_running_on(self, slave: BuildSlave) -> int:
        return sum(1 for b in self.running_builds if b.slavebuilder.slave is slave)

    # -- slaves coming and going -----------------------------------------------------------

    async def slave_attaching(self, name: str, mind) -> BuildSlave:
        """Run the attach sequence for a slave that just logged in; return its perspective.

        One connection at a time holds a slave's name, from the start of its attach sequence
        until its detach is recorded: a new login first checks that the holder is dead (else
        it is refused, Buildbot's rule), then waits until the holder has let go."""
        config = self.master.config
        slave = BuildSlave(name, self, self.clock, ping_interval_of(config, name), config.ping_timeout)
        while (holder := self._attaching.get(name) or self.slaves.get(name)) is not None:
            await self._arbitrate_duplicate(holder)
        self._attaching[name] = slave  # no await since the loop saw the name free
        try:
            await self._attach(slave, mind)
        except Exception as e:
            log.warn("attaching slave {name} failed: {e}", name=name, e=e)
            slave.disconnect()
            raise
        finally:
            del self._attaching[name]
            if name not in self.slaves:
                slave.release()
        for waiter in self._attach_waiters.pop(name, []):
            if not waiter.called:
                waiter.callback(slave)
        log.info("slave {name} attached from {peer} (version {version}, builders {builders})",
                 name=name, peer=slave.peer, version=slave.version,
                 builders=", ".join(sorted(slave.remote_builders)) or "none")
        self.maybe_start_builds()
        self._tell_listeners("slave_attached", slave)
        slave.login_completed()  # PB's logout callback is registered in this same turn
        return slave

    async def _attach(self, slave: BuildSlave, mind) -> None:
        name, db = slave.name, self.master.db
        await slave.attach(mind, self.builder_list_for(name))
        reported, slave.reported_info = slave.reported_info, None
        now = self.clock.seconds()
        await db.slaves.attached(
            name, self.master.masterid, reported if reported is not None else slave.info,
            slave.version, now, slave.peer, messages=self._messages_of("slave_attached", name, now)
        )
        if not slave.attached:  # it left while the attach was being recorded
            now = self.clock.seconds()
            await db.slaves.detached(name, self.master.masterid, now,
                                     messages=self._messages_of("slave_detached", name, now))
            raise pb.PBConnectionLost(f"slave {name} left while attaching")
        self.slaves[name] = slave
        self.missing.slave_attached(name)
        for builder_name, ref in slave.remote_builders.items():
            if builder_name in self.builders:
                self.builders[builder_name].add_slave(slave, ref)
        slave.start_pinging()

    def wait_for_attach(self, name: str) -> defer.Deferred:
        """Fire with the slave's next new ``BuildSlave`` once it attaches (from now on)."""
        waiters = self._attach_waiters.setdefault(name, [])

        def forget(d):
            if d in waiters:
                waiters.remove(d)

        waiter = defer.Deferred(canceller=forget)
        waiters.append(waiter)
        return waiter

    async def _arbitrate_duplicate(self, old: BuildSlave) -> None:
        if await old.ping(DUPLICATE_PING_TIMEOUT_S):
            log.warn("refusing a second connection for slave {name}: it is attached from {peer} "
                     "and answers", name=old.name, peer=old.peer)
            raise DuplicateSlave(f"slave {old.name!r} is already attached from {old.peer}")
        log.warn("slave {name} logged in again and its old connection from {peer} is silent; "
                 "dropping the old one", name=old.name, peer=old.peer)
        waiting = old.wait_detached()
        old.disconnect()
        await waiting

    def slave_detached(self, slave: BuildSlave) -> None:
        """A slave's connection is gone.  The slave's current connection is forgotten (its
        running builds end as RETRY) and its detach recorded; any other (one still attaching,
        which cleans up after itself) touches neither the live state nor the database."""
        if self.slaves.get(slave.name) is not slave:
            log.info("a connection of slave {name} from {peer} that is not attached closed",
                     name=slave.name, peer=slave.peer)
            return
        del self.slaves[slave.name]
        for builder in self.builders.values():
            builder.remove_slave(slave)
        log.info("slave {name} detached", name=slave.name)
        now = self.clock.seconds()
        messages = self._messages_of("slave_detached", slave.name, now)
        self._tell_listeners("slave_detached", slave)
        if self.running:
            self.missing.slave_detached(slave.name)
        d = defer.ensureDeferred(
            self.master.db.slaves.detached(slave.name, self.master.masterid, now, messages=messages)
        )
        d.addErrback(lambda f: log.failure("recording the detach of {n} failed", f, n=slave.name))
        d.addBoth(lambda _: slave.release())

    def maybe_shut_down_slave(self, slave: BuildSlave) -> None:
        """A slave shutting down gracefully is told to stop once it runs no build."""
        if slave.shutting_down and slave.attached and not self.builds_running_on(slave) \
                and not slave.tasks_running:
            log.info("slave {name} is idle; telling it to shut down", name=slave.name)
            d = defer.ensureDeferred(slave.shutdown())
            d.addErrback(lambda f: log.failure("shutting down {n} failed", f, n=slave.name))

    # -- assigning requests ----------------------------------------------------------------

    def maybe_start_builds(self) -> defer.Deferred:
        """Start builds for unclaimed requests on idle slaves (coalesces concurrent calls)."""
        if self._assigning:
            self._assign_again = True
            return self._assignment
        self._assigning = True
        self._assignment = defer.ensureDeferred(self._assign_loop())
        self._assignment.addErrback(lambda f: log.failure("assigning build requests failed", f))
        return self._assignment

    async def _assign_loop(self) -> None:
        try:
            while True:
                self._assign_again = False
                by_priority = sorted(self.builders.values(), key=lambda b: -b.config.priority)
                for builder in by_priority:
                    await self._assign_builder(builder)
                if not self._assign_again:
                    break
        finally:
            self._assigning = False

    async def _assign_builder(self, builder: Builder) -> None:
        if not self.running or not builder.available_slavebuilders():
            return
        if builder.config.canStartBuild is None and builder.config.nextSlave is None:
            await self._assign_in_queue_order(builder)
            return
        db = self.master.db
        pending = await db.buildrequests.get_unclaimed(builder.builderid)
        taken: set[int] = set()
        for request in pending:
            if request["buildrequestid"] in taken:
                continue
            free = builder.available_slavebuilders()
            if not free:
                return
            slavebuilder = builder.choose_slavebuilder(free, request)
            if slavebuilder is None:
                continue
            slavebuilder.state = SlaveBuilderState.BUILDING  # reserved while we claim
            brid = request["buildrequestid"]
            if not await db.buildrequests.claim(brid, self.master.masterid, self.clock.seconds()):
                slavebuilder.state = SlaveBuilderState.IDLE
                continue
            if not slavebuilder.slave.attached:
                await db.buildrequests.unclaim(brid)
                continue
            collapsed = await self._collapse(builder, request, pending, taken)
            self._start_build(builder, slavebuilder, request, collapsed)

    async def _assign_in_queue_order(self, builder: Builder) -> None:
        """Any free slave suits any request (no ``canStartBuild``, no ``nextSlave``): for each
        free slave, claim the queue's head in the database (``claim_next``) rather than read
        the queue and claim from that copy, which masters sharing the queue all read alike and
        then race for, the losers paying a round trip per request taken meanwhile.  The queue
        is read only when requests may be collapsed, once per pass."""
        db, pending, taken = self.master.db, None, set()
        while self.running and (free := builder.available_slavebuilders()):
            slavebuilder = free[0]
            slavebuilder.state = SlaveBuilderState.BUILDING  # reserved while we claim
            request = await db.buildrequests.claim_next(builder.builderid, self.master.masterid,
                                                        self.clock.seconds())
            if request is None:
                slavebuilder.state = SlaveBuilderState.IDLE
                return
            brid = request["buildrequestid"]
            taken.add(brid)
            if not slavebuilder.slave.attached:
                await db.buildrequests.unclaim(brid)
                continue
            collapsed = []
            if self._collapse_rule(builder) is not False:
                if pending is None:
                    pending = await db.buildrequests.get_unclaimed(builder.builderid)
                collapsed = await self._collapse(builder, request, pending, taken)
            self._start_build(builder, slavebuilder, request, collapsed)

    def _collapse_rule(self, builder: Builder):
        rule = builder.config.collapseRequests
        return self.master.config.collapse_requests if rule is None else rule

    async def _collapse(self, builder: Builder, request: dict, pending: list[dict],
                        taken: set[int]) -> list[int]:
        """Claim the pending requests that this build also satisfies (request collapsing)."""
        rule = self._collapse_rule(builder)
        if rule is False:
            return []
        collapsed = []
        for other in pending:
            brid = other["buildrequestid"]
            if brid == request["buildrequestid"] or brid in taken:
                continue
            compatible = rule(self.master, builder, request, other) if callable(rule) else \
                _same_request_properties(request, other)
            if compatible and await self.master.db.buildrequests.claim(
                    brid, self.master.masterid, self.clock.seconds()):
                collapsed.append(brid)
                taken.add(brid)
        return collapsed

    def _start_build(self, builder: Builder, slavebuilder, request: dict, collapsed: list[int]) -> None:
        slavebuilder.last_build_started = self.clock.seconds()
        build = Build(self.master, builder, slavebuilder, request)
        build.collapsed_requests = collapsed
        build.lock_accesses = builder.build_lock_accesses()
        self.locks.claim(build, build.lock_accesses, slavebuilder.slave.name)
        d = defer.ensureDeferred(self._run_build(build))
        d.addErrback(lambda f: log.failure("build of request {id} failed", f,
                                           id=request["buildrequestid"]))
        if not d.called:  # still running (it may have failed at once)
            self.running_builds[build] = d

    async def _run_build(self, build: Build) -> None:
        db = self.master.db
        brids = [build.request["buildrequestid"], *build.collapsed_requests]
        results = RETRY
        try:
            results = await build.run()
        finally:
            self.running_builds.pop(build, None)
            self.locks.release(build, build.lock_accesses, build.slavebuilder.slave.name)
            build.slavebuilder.state = SlaveBuilderState.IDLE
            # Each request is settled on its own, and a failed write is logged there: it
            # skips neither the other requests, nor the slave's shutdown, nor the next
            # assignment pass, and the build's own error (if any) still propagates.
            for brid in brids:
                if not build.claim_lost:
                    await self._settle_request(db, brid, results)
            self.maybe_shut_down_slave(build.slavebuilder.slave)
            if self.running:
                self.slot_freed(build.slavebuilder.slave)

    async def _settle_request(self, db, brid: int, results: int) -> None:
        """Complete request ``brid`` with ``results``, or return it to the queue (RETRY)."""
        masterid = self.master.masterid
        try:
            if results == RETRY:
                settled = await db.buildrequests.unclaim(brid, masterid)
            else:
                settled = await db.buildrequests.complete(brid, results, self.clock.seconds(), masterid)
                if settled:
                    self.tell_schedulers(await db.buildrequests.get(brid))
            if not settled:
                log.warn(REQUEST_CLAIM_LOST_MESSAGE, id=brid, result=result_name(results))
        except Exception:
            log.failure("recording the end of build request {id} failed", id=brid)

    def tell_schedulers(self, request: dict | None) -> None:
        """Schedulers watch requests finish (buildsets, Dependent, Trigger waits)."""
        if request is not None:
            self.master.scheduler.buildrequest_finished(request)

    # -- stopping --------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop starting builds, drop every slave and wait (bounded) for builds to record RETRY."""
        super().stopService()
        self.set_polling(False)
        self.missing.stop()
        for slave in list(self.slaves.values()):
            slave.disconnect()
        if self.running_builds:
            waiting = defer.DeferredList(list(self.running_builds.values()))
            waiting.addTimeout(STOP_BUILDS_TIMEOUT_S, self.clock)
            try:
                await waiting
            except defer.TimeoutError:
                log.warn("{n} builds did not finish within {t} s of shutdown",
                         n=len(self.running_builds), t=STOP_BUILDS_TIMEOUT_S)
        if self._assignment is not None and self._assigning:
            await self._assignment


def ping_interval_of(config, name: str) -> float:
    """How often the master pings slave ``name``: its Worker's ``keepalive_interval``, else
    ``c['protocols']['pb']['ping_interval']``."""
    slave = config.slaves.get(name)
    if slave is None or slave.keepalive_interval is None:
        return config.ping_interval
    return slave.keepalive_interval


def _same_request_properties(first: dict, second: dict) -> bool:
    """The default collapsing rule: same properties (who asked and why do not matter)."""
    ignored = {"owner", "reason"}
    strip = lambda props: {k: v for k, v in (props or {}).items() if k not in ignored}  # noqa: E731
    return strip(first.get("properties")) == strip(second.get("properties"))
