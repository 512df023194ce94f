"""``BuildMaster``: the root of the master's service tree.

::

    BuildMaster
     +- db          DBConnector
     +- auth        users, sessions, anonymous scopes: who may do what on every HTTP surface
     +- pbmanager   PB listener for slaves
     +- botmaster   slaves, builders, builds
     +- scheduler   schedulers
     +- slaveapi    fleet actions (reboot, shutdown, disable, ...) and their HTTP API
     +- www         JSON API

Start-up is asynchronous (the database comes first, then recovery from a crash, then the
listeners); the master logs ``BuildMaster is running`` once it is ready, or
``BuildMaster failed to start: ...`` and stops the process.
"""

import os
import signal
import socket

from twisted.application import service
from twisted.internet import defer, threads
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorCore, IReactorTime
from twisted.logger import Logger

from buildfarm.common.results import RETRY
from buildfarm.master.auth.service import AuthService
from buildfarm.master.config import ConfigErrors, MasterConfig, load_config
from buildfarm.master.db.connector import DBConnector, SchemaNotCurrent
from buildfarm.master.metrics import MasterMetrics
from buildfarm.master.pb.manager import PBManager
from buildfarm.master.process.botmaster import BotMaster
from buildfarm.master.process.logbus import LogBus
from buildfarm.master.schedulers.manager import SchedulerManager
from buildfarm.master.slaveapi.runner import ActionRunner
from buildfarm.master.www.site import WWWService

log = Logger()

# Start-up failures the message alone explains: logged without a traceback.
EXPECTED_START_FAILURES = (SchemaNotCurrent, CannotListenError)
READY_MESSAGE = "BuildMaster is running"
FAILED_MESSAGE = "BuildMaster failed to start"
RECONFIG_DONE_MESSAGE = "configuration update complete"
RECONFIG_FAILED_MESSAGE = "configuration update failed"


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
        self.metrics = MasterMetrics()
        self.logbus = LogBus()  # log lines pushed from the log writers to live viewers
        self.db = DBConnector(self.config.db_url, self.basedir)
        self.auth = AuthService(self.reactor, self.config.users, self.config.www_anonymous_scopes, self.db,
                                self.config.change_secret)
        self.pbmanager = PBManager(self)
        self.botmaster = BotMaster(self)
        self.scheduler = SchedulerManager(self)
        self.slaveapi = ActionRunner(self)
        self.www = WWWService(self)
        for child in (self.db, self.auth, self.pbmanager, self.botmaster, self.scheduler, self.slaveapi,
                      self.www):
            child.setServiceParent(self)

    @property
    def name_in_database(self) -> str:
        return f"{socket.gethostname()}:{self.basedir}"

    def startService(self):  # noqa: N802
        # Children are started by _start, in order, once the database is ready.
        service.Service.startService(self)
        self.started = defer.ensureDeferred(self._start())
        self.started.addErrback(self._failed_to_start)
        return None

    async def _start(self) -> None:
        await self.db.setup()
        self.db.startService()
        self.masterid = await self.db.masters.find_or_create(self.name_in_database)
        self.auth.startService()
        for warning in self.config.warnings:
            log.warn("master.cfg: {warning}", warning=warning)
        await self._recover_from_previous_run()
        await self.botmaster.configure(self.config)
        self.botmaster.startService()
        self.botmaster.set_polling(self.config.multi_master)
        self.scheduler.startService()
        await self.scheduler.reconfig(self.config)
        await self.slaveapi.start()
        self.pbmanager.startService()
        await self.pbmanager.listen()
        self.www.startService()
        await self.www.listen()
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
        old, self.config = self.config, new
        self.auth.reconfig(new)
        for warning in new.warnings:
            log.warn("master.cfg: {warning}", warning=warning)
        if (new.pb_port, new.listen_backlog) != (old.pb_port, old.listen_backlog):
            await self.pbmanager.stop_listening()
            await self.pbmanager.listen()
        if new.www_port != old.www_port:
            await self.www.stopService()
            self.www.startService()
            await self.www.listen()
        await self.botmaster.reconfig(new)
        await self.scheduler.reconfig(new)
        await self.slaveapi.reconfig(new)
        log.info(RECONFIG_DONE_MESSAGE + ": {b} builders, {s} slaves, {c} schedulers",
                 b=len(new.builders), s=len(new.slaves), c=len(new.schedulers))

    async def _recover_from_previous_run(self) -> None:
        """Builds this master left unfinished end as RETRY; their requests run again."""
        db, now = self.db, self.reactor.seconds()
        for build in await db.builds.get_unfinished_of_master(self.masterid):
            await db.builds.finish(build["buildid"], RETRY, now, "master restarted")
            log.info("build {id} was cut short by a master restart; its request runs again",
                     id=build["buildid"])
        await db.buildrequests.unclaim_all_of_master(self.masterid)
        await db.slaves.detach_all_of_master(self.masterid, now)

    def _failed_to_start(self, failure) -> None:
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
        for child in (self.www, self.slaveapi, self.pbmanager, self.scheduler):
            if child.running:
                await child.stopService()
        if self.auth.running:
            self.auth.stopService()
        if self.botmaster.running:
            await self.botmaster.stop()
            self.botmaster.stopService()
        if self.db.running:
            await self.db.stopService()
        log.info("BuildMaster stopped")
