"""``BuildMaster``: the root of the master's service tree.

::

    BuildMaster
     +- db          DBConnector (SQLite or PostgreSQL, its own thread pool)
     +- mq-publisher the outbox's events to RabbitMQ (only with c['mq'] amqp; master/mq/)
     +- recovery    this master's row, and the builds and requests its last run left behind
     +- mq-consumer the other masters' events from RabbitMQ to this bus (only with c['mq'] amqp)
     +- liveness    this master's heartbeat; reclaims the work of a master that stopped beating
     +- auth        users, sessions, anonymous scopes: who may do what on every HTTP surface
     +- botmaster   slaves, builders, builds
     +- wakeups     on PostgreSQL with multiMaster: LISTENs for requests other masters add
     +- changes     change sources (pollers), started once the schedulers are
     +- scheduler   schedulers
     +- localslaves slaves inside the master (the janitor's), attached to the botmaster
     +- slaveapi    fleet actions (reboot, shutdown, disable, ...); +- SlaveAPI port (if its own)
     +- services    c['services']: master.cfg's own Twisted services
 +- cas         the content-addressed store: its back-end, API and thread pool; +- janitor
     +- tasks       the task engine: slaves' dimensions, reaping, running and ending tasks
     +- pbmanager   the PB portal for slaves;                        +- slaves (PB) port
     +- www         JSON API and pages;                              +- web server port

The tree's order is the order of everything: start-up walks it top to bottom, waiting for
each child (``startService`` may return a Deferred) before the next, so the database comes
first, recovery from the previous run before anything reads the queue, and the listeners
(`buildfarm.master.listener.Listener`, children of the services that own a port) last, so
no peer arrives before the services it calls are ready.  Stop walks it bottom to top, each
child waited for: listeners first, the database last.  A reconfig loads master.cfg again and
walks the tree top to bottom calling ``reconfigService(new_config)`` on every child that
takes configuration (`Reconfigurable`); a changed port moves its listener there.

Start-up is asynchronous; the master logs ``BuildMaster is running`` once it is ready, or
``BuildMaster failed to start: ...`` and stops the process.
"""

import os
import signal
import socket
from typing import Protocol, runtime_checkable

from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.common.results import RETRY
from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.auth.clients import CLIENTS_KEY_FILE, load_or_create_key
from buildfarm.master.auth.service import AuthService
from buildfarm.master.cas.interfaces import ICASMaster
from buildfarm.master.cas.service import CASService
from buildfarm.master.changes.interfaces import IChangeSourceMaster
from buildfarm.master.changes.manager import ChangeSourceManager
from buildfarm.master.cluster.interfaces import IClusterMaster
from buildfarm.master.cluster.liveness import MasterLiveness
from buildfarm.master.cluster.wakeups import RequestWakeups
from buildfarm.master.config import ConfigErrors, MasterConfig, load_config
from buildfarm.master.configservices import ConfigServices
from buildfarm.master.db.connector import DBConnector, SchemaNotCurrent
from buildfarm.master.metrics import MasterMetrics
from buildfarm.master.mq import events
from buildfarm.master.mq.amqp import open_channel, open_consumer_channel
from buildfarm.master.mq.bridge import SlaveEventsBridge
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.consumer import BrokerConsumer
from buildfarm.master.mq.exchanges import BUILDFARM_EXCHANGES
from buildfarm.master.mq.interfaces import IMQMaster
from buildfarm.master.mq.publisher import OutboxPublisher
from buildfarm.master.pb.interfaces import IPBMaster
from buildfarm.master.pb.manager import PBManager
from buildfarm.master.process.botmaster import BotMaster
from buildfarm.master.process.buildevents import BuildEvents
from buildfarm.master.process.interfaces import IProcessMaster
from buildfarm.master.process.localslave import LocalSlaves
from buildfarm.master.process.logbus import LogBus
from buildfarm.master.queue.events import QUEUE_EXCHANGES
from buildfarm.master.queue.interfaces import IQueueMaster
from buildfarm.master.queue.service import QueueService
from buildfarm.master.reporters.interfaces import IReporterMaster
from buildfarm.master.samples import Sampler
from buildfarm.master.schedulers.interfaces import ISchedulerMaster
from buildfarm.master.schedulers.manager import SchedulerManager
from buildfarm.master.slaveapi.interfaces import ISlaveAPIMaster
from buildfarm.master.slaveapi.runner import ActionRunner
from buildfarm.master.status import IStatusSource
from buildfarm.master.tasks.engine import TaskEngine
from buildfarm.master.tasks.interfaces import ITaskMaster
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.site import WWWService

log = Logger()

# Start-up failures the message alone explains: logged without a traceback.
EXPECTED_START_FAILURES = (SchemaNotCurrent, CannotListenError)
READY_MESSAGE = "BuildMaster is running"
FAILED_MESSAGE = "BuildMaster failed to start"
RECONFIG_DONE_MESSAGE = "configuration update complete"
RECONFIG_FAILED_MESSAGE = "configuration update failed"
MASTER_RESTARTED = "master restarted"  # the state of the builds a restart cut short


@runtime_checkable
class Reconfigurable(Protocol):
    """A service that takes configuration: the master calls this on every reconfig, in tree
    order (it may return a Deferred, or be ``async``)."""

    def reconfigService(self, new_config: MasterConfig):  # noqa: N802 - Twisted's name
        ...


class PreviousRunRecovery(service.Service):
    """Finds (or creates) this master's row, then ends what its previous run left: builds
    are finished RETRY, their requests unclaimed, its slaves marked detached."""

    name = "recovery"

    def __init__(self, master: "BuildMaster"):
        self.master = master

    def startService(self):  # noqa: N802
        super().startService()
        return defer.ensureDeferred(self._recover())

    async def _recover(self) -> None:
        master, db = self.master, self.master.db
        master.masterid = await db.masters.find_or_create(master.name_in_database)
        now = master.reactor.seconds()
        for build in await db.builds.get_unfinished_of_master(master.masterid):
            finished = events.build_finished(master.mq, build, RETRY, now, MASTER_RESTARTED)
            await db.builds.finish(build["buildid"], RETRY, now, MASTER_RESTARTED,
                                   messages=events.in_transaction(master.mq, finished))
            master.mq.published([finished])
            log.info("build {id} was cut short by a master restart; its request runs again",
                     id=build["buildid"])
        await db.buildrequests.unclaim_all_of_master(master.masterid)
        await db.slaves.detach_all_of_master(master.masterid, now)


@implementer(IStatusSource, IChangeSourceMaster, IProcessMaster, ISchedulerMaster, IPBMaster, ISlaveAPIMaster,
             IWebMaster, IReporterMaster, ICASMaster, ITaskMaster, IQueueMaster, IClusterMaster,
             IMQMaster)
class BuildMaster(service.MultiService):
    """The master process: owns the configuration and every service of the master."""

    def __init__(self, basedir: str, configfile: str = "master.cfg", reactor=None,
                 config: MasterConfig | None = None):
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor: IReactorTime = reactor
        self.basedir = os.path.abspath(basedir)
        self.configfile = os.path.join(self.basedir, configfile)
        self.config = config or load_config(self.configfile)
        self.masterid: int | None = None
        self.started: defer.Deferred | None = None
        self.start_failure = None  # why start-up failed, once it did
        self.metrics = MasterMetrics()
        self.logbus = LogBus()  # log lines pushed from the log writers to live viewers
        self.buildevents = BuildEvents()  # build/step state changes: live pages and reporters
        self.buildevents.subscribe(lambda event: self.logbus.build_changed(event.buildid))
        self.db = DBConnector(self.config.db_url, self.basedir, self.reactor)
        self.mq_publisher, self.mq = self._event_bus(self.config)
        self.recovery = PreviousRunRecovery(self)
        self.mq_consumer = self._broker_consumer(self.config)
        self.liveness = MasterLiveness(self)  # heartbeats; reclaims dead masters' work
        self.auth = AuthService(self.reactor, self.config.users, self.config.www_anonymous_scopes, self.db,
                                self.config.change_secret, web_auth=self.config.web_auth,
                                clients=self.config.clients, clients_key=self.clients_key(self.config),
                                roles=self.config.roles, shared_nonces=self.config.multi_master)
        self.botmaster = BotMaster(self)
        self.wakeups = RequestWakeups(self)  # PostgreSQL NOTIFY: other masters' new requests
        self.changes = ChangeSourceManager(self)
        self.scheduler = SchedulerManager(self)
        self.localslaves = LocalSlaves(self)
        self.slaveapi = ActionRunner(self)
        self.api_catalog = CATALOG  # the services of Taskcluster's layout, for www
        self.config_services = ConfigServices(self.config.services)
        self.cas = CASService(self)
        self.tasks = TaskEngine(self)
        self.queue = QueueService(self)  # the Queue's tasks, run by the engine
        self.pbmanager = PBManager(self)
        self.sampler = Sampler(self)  # the fleet and the queue over time, each minute
        self.www = WWWService(self)
        self.botmaster.slave_listeners.append(SlaveEventsBridge(self))
        # The order of the tree is the start-up order (see the module's docstring).
        publisher = (self.mq_publisher,) if self.mq_publisher is not None else ()
        consumer = (self.mq_consumer,) if self.mq_consumer is not None else ()
        for child in (self.db, *publisher, self.recovery, *consumer, self.liveness, self.auth, self.botmaster,
                      self.wakeups, self.changes, self.scheduler, self.localslaves, self.slaveapi,
                      self.config_services, self.cas, self.tasks, self.queue, self.pbmanager, self.sampler,
                      self.www):
            child.setServiceParent(self)

    def _event_bus(self, config: MasterConfig) -> tuple[OutboxPublisher | None, EventBus]:
        """The event bus of ``c['mq']``: in-process, or outboxed with its publisher to AMQP."""
        settings = config.mq
        if not settings.amqp:
            return None, EventBus(settings.exchange_prefix, origin=lambda: self.masterid)
        publisher = OutboxPublisher(self.reactor, self.db.outbox,
                                    lambda: open_channel(self.reactor, settings.url))
        return publisher, EventBus(settings.exchange_prefix, outbox=self.db.outbox, wake=publisher.wake,
                                   origin=lambda: self.masterid)

    def _broker_consumer(self, config: MasterConfig) -> BrokerConsumer | None:
        """With ``c['mq']`` amqp, the consumer of the other masters' events (every exchange of
        buildfarm's and the Queue's) for this master's bus."""
        settings = config.mq
        if not settings.amqp:
            return None
        exchanges = [self.mq.exchange_name(exchange_set, exchange)
                     for exchange_set in (BUILDFARM_EXCHANGES, QUEUE_EXCHANGES)
                     for exchange in exchange_set.exchanges]
        return BrokerConsumer(self.reactor, self.mq,
                              lambda: open_consumer_channel(self.reactor, settings.url),
                              lambda: self.masterid, exchanges)

    def clients_key(self, config: MasterConfig) -> bytes:
        """The key database clients' access tokens are encrypted under: ``c['clients_key']``,
        else the basedir's ``clients.key`` (made on the first start)."""
        if config.clients_key is not None:
            return config.clients_key.reveal().encode()
        return load_or_create_key(os.path.join(self.basedir, CLIENTS_KEY_FILE))

    @property
    def name_in_database(self) -> str:
        return f"{socket.gethostname()}:{self.basedir}"

    def privilegedStartService(self):  # noqa: N802
        # Nothing binds early: each listener is made when the start-up walk reaches its owner,
        # once the services behind it are ready.
        service.Service.privilegedStartService(self)

    def startService(self):  # noqa: N802
        # Children are started by _start, one after the other, in tree order.
        service.Service.startService(self)
        self.started = defer.ensureDeferred(self._start())
        self.started.addErrback(self._failed_to_start)
        return None

    async def _start(self) -> None:
        for warning in self.config.warnings:
            log.warn("{warning}", warning=warning)  # "<file>:<line>: <what>"
        for child in self:
            await defer.maybeDeferred(child.startService)
        await self.changes.master_ready()  # the schedulers are active: sources may report
        self._install_reconfig_signal()
        log.info(READY_MESSAGE + " (slaves: {pb}, web: {www}, SlaveAPI: {slaveapi})",
                 pb=self.config.pb_port, www=self.config.www_port or "off",
                 slaveapi=self.config.slaveapi.port or "under /slaveapi/ of the web port")
        self.botmaster.maybe_start_builds()

    def _install_reconfig_signal(self) -> None:
        """SIGHUP reloads master.cfg (``buildmaster reconfig`` sends it)."""
        if IReactorCore.providedBy(self.reactor) and hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: self.reactor.callFromThread(self.reconfig))

    def reconfig(self) -> defer.Deferred:
        """Reload master.cfg and apply it; a broken file leaves the running configuration."""
        d = defer.ensureDeferred(self._reconfig())
        d.addErrback(lambda f: log.failure(RECONFIG_FAILED_MESSAGE + ": unexpected error", f))
        return d

    async def _reconfig(self) -> None:
        log.info("loading the configuration from {file}", file=self.configfile)
        try:
            new = await threads.deferToThread(load_config, self.configfile)
        except ConfigErrors as e:
            for error in e.errors:
                log.error("{error}", error=str(error))
            log.error(RECONFIG_FAILED_MESSAGE + ": {n} problem(s); the running configuration stays",
                      n=len(e.errors))
            return
        if new.db_url != self.config.db_url:
            log.error(RECONFIG_FAILED_MESSAGE + ": the database URL cannot change without a restart")
            return
        if new.mq != self.config.mq:
            log.error(RECONFIG_FAILED_MESSAGE + ": c['mq'] cannot change without a restart")
            return
        self.config = new
        for warning in new.warnings:
            log.warn("{warning}", warning=warning)  # "<file>:<line>: <what>"
        for child in self:
            if isinstance(child, Reconfigurable):
                await defer.maybeDeferred(child.reconfigService, new)
        log.info(RECONFIG_DONE_MESSAGE + ": {b} builders, {s} slaves, {c} schedulers",
                 b=len(new.builders), s=len(new.slaves), c=len(new.schedulers))

    def _failed_to_start(self, failure) -> None:
        self.start_failure = failure
        log.error(FAILED_MESSAGE + ": {why}", why=failure.getErrorMessage() or failure.type.__name__)
        if not failure.check(*EXPECTED_START_FAILURES):
            log.failure("unexpected start-up failure", failure)
        if IReactorCore.providedBy(self.reactor) and self.reactor.running:
            self.reactor.stop()

    def stopService(self):  # noqa: N802
        service.Service.stopService(self)
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self.started is not None and not self.started.called:
            self.started.cancel()
        for child in reversed(list(self)):
            if child.running:
                await defer.maybeDeferred(child.stopService)
        log.info("BuildMaster stopped")
