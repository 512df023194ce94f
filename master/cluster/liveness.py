"""``MasterLiveness``: the service ``liveness``: this master's heartbeat, and the reclaim of a
dead peer's work.

Every ``heartbeat_secs`` (``c['multiMasterSettings']``, on the master's clock) the master writes
its heartbeat in ``masters``, then looks for masters still marked active whose heartbeat is
older than ``dead_after_secs``.  Each one found is reclaimed (``db.masters.reclaim``: one
transaction, a conditional UPDATE of the dead master's row, so exactly one master does it): its
unfinished builds end RETRY and their requests become claimable again, its unfinished SlaveAPI
actions are taken over by the reclaiming master (master/slaveapi/runner.py), its slaves are
detached; then the task engine ends the tries that ran on
those slaves as its rules say (back to PENDING, or BOT_DIED), and the BotMaster looks at the
queue.  A clean stop marks the master inactive, so nobody reclaims it.

A master that finds its own row inactive at a heartbeat (after its first) was declared dead
while it still ran (paused longer than ``dead_after_secs``, or cut off from the database): what
it runs has been reclaimed and may run elsewhere, so it stops rather than finish it twice.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorCore
from twisted.logger import Logger

from buildfarm.master.cluster.interfaces import IClusterMaster

log = Logger()

DECLARED_DEAD_MESSAGE = ("this master was declared dead by another (no heartbeat for {secs:g} s) and its "
                         "work reclaimed; stopping so that nothing runs twice")


class MasterLiveness(service.Service):
    """Heartbeats and dead-master reclaim; see the module."""

    name = "liveness"

    def __init__(self, master: IClusterMaster):
        self.master = master
        self._beater: task.LoopingCall | None = None
        self._beating: defer.Deferred | None = None
        self._beats = 0
        self.declared_dead = False  # another master reclaimed this one while it ran
        self.reclaimed: list = []  # every ``Reclaimed`` this master did, oldest first

    @property
    def settings(self):
        return self.master.config.multi_master_settings

    def startService(self):  # noqa: N802
        """The first heartbeat is written before the services below start (so no peer reclaims
        this master while it claims work); then one every ``heartbeat_secs``."""
        super().startService()
        return defer.ensureDeferred(self._start())

    async def _start(self) -> None:
        await self.beat()
        self._schedule(self.settings.heartbeat_secs)

    def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        interval = new_config.multi_master_settings.heartbeat_secs
        if self._beater is not None and self._beater.interval != interval:
            self._schedule(interval)

    def _schedule(self, interval: float) -> None:
        if self._beater is not None and self._beater.running:
            self._beater.stop()
        self._beater = task.LoopingCall(self._beat_logged)
        self._beater.clock = self.master.reactor
        self._beater.start(interval, now=False)

    def _beat_logged(self) -> defer.Deferred:
        if self._beating is not None and not self._beating.called:
            return defer.succeed(None)  # the last one still waits for the database
        self._beating = defer.ensureDeferred(self.beat())
        self._beating.addErrback(lambda f: log.failure("heartbeat failed", f))
        return self._beating

    async def beat(self) -> None:
        """Write this master's heartbeat, then reclaim every dead peer."""
        master = self.master
        was_active = await master.db.masters.heartbeat(master.masterid, master.reactor.seconds())
        self._beats += 1
        if self._beats > 1 and not was_active:
            self._declared_dead()
            return
        await self.reclaim_dead()

    async def reclaim_dead(self) -> list:
        """Reclaim the masters dead now (as seen from here); what this master took back."""
        master, settings = self.master, self.settings
        now = master.reactor.seconds()
        dead_before = now - settings.dead_after_secs
        done = []
        for dead in await master.db.masters.find_dead(dead_before, besides=master.masterid):
            reclaimed = await master.db.masters.reclaim(dead["masterid"], dead_before, now,
                                                        settings.dead_after_secs, by=master.masterid)
            if reclaimed is None:
                continue  # another master was first, or it beat again
            done.append(reclaimed)
            self.reclaimed.append(reclaimed)
            log.warn("master {name} (id {id}) sent no heartbeat for {age:.1f} s: it is dead; reclaimed "
                     "{builds} build(s) (now RETRY), {requests} request(s), {actions} SlaveAPI "
                     "action(s) (taken over here), {slaves} slave(s), {tries} task tr(ies)",
                     name=reclaimed.name, id=reclaimed.masterid,
                     age=now - reclaimed.last_active, builds=reclaimed.builds, requests=reclaimed.requests,
                     actions=len(reclaimed.actions), slaves=reclaimed.slaves, tries=len(reclaimed.tries))
            if reclaimed.tries:
                await master.tasks.end_tries_lost_with_master(reclaimed.tries)
            if reclaimed.actions:
                master.slaveapi.pick_up_addressed()  # each run again here, sent on, or ended (runner.py)
        if done:
            master.botmaster.maybe_start_builds()
        return done

    def _declared_dead(self) -> None:
        self.declared_dead = True
        log.critical(DECLARED_DEAD_MESSAGE, secs=self.settings.dead_after_secs)
        reactor = self.master.reactor
        if IReactorCore.providedBy(reactor) and reactor.running:
            reactor.stop()

    def stopService(self):  # noqa: N802
        """Stop beating and mark this master inactive: a clean stop is not a death."""
        super().stopService()
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        if self._beater is not None and self._beater.running:
            self._beater.stop()
        if self._beating is not None and not self._beating.called:
            await self._beating
        if self.master.masterid is not None:
            await self.master.db.masters.mark_inactive(self.master.masterid)
