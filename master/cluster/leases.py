"""``LeaseGate``: runs a singleton job (a timed scheduler, the CAS janitor) on exactly one of
the masters sharing a database.

The gate is a service with one child, the job.  With ``c['multiMaster']`` it takes the
database lease of its name (``db.leases.acquire``, master/db/leases.py) at start-up and renews
it every ``heartbeat_secs`` for ``dead_after_secs`` (``c['multiMasterSettings']``, on the
master's clock); the child runs while the lease is this master's and is stopped as soon as a
renewal finds it lost (another master took it over after this one was cut off) or a renewal
that fails leaves it expired here.  A master that is not the holder keeps trying at each
renewal, so when the holder stops (its lease released) or dies (its lease released by the
reclaim, or expired) another master starts the job within ``heartbeat_secs``.

Without ``c['multiMaster']`` nothing is asked of the database: the lease is simply held and
the child starts with the gate, as if there were no gate.
"""

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from buildfarm.master.cluster.interfaces import IClusterMaster

log = Logger()


class LeaseGate(service.MultiService):
    """Runs ``child`` only while this master holds the lease ``lease_name``; see the module."""

    def __init__(self, lease_name: str, child: service.IService, master: IClusterMaster):
        super().__init__()
        self.name = child.name  # it stands for its child in the tree (getServiceNamed)
        self.lease_name = lease_name
        self.master = master
        self.child = child
        self.held = False
        self._until = 0.0  # when the lease runs out, as last renewed (this master's clock)
        self._loop: task.LoopingCall | None = None
        self._renewing: defer.Deferred | None = None
        child.setServiceParent(self)

    @property
    def shared(self) -> bool:
        """Whether masters share the database (else the lease is always this master's)."""
        return bool(self.master.config.multi_master)

    def startService(self):  # noqa: N802 - Twisted's name
        service.Service.startService(self)  # the child starts once the lease is this master's
        if not self.shared:
            self.held = True
            return self.child.startService()
        self._loop = task.LoopingCall(self._renew_logged)
        self._loop.clock = self.master.reactor
        self._loop.start(self.master.config.multi_master_settings.heartbeat_secs, now=True)
        return None

    def stopService(self):  # noqa: N802
        service.Service.stopService(self)
        return defer.ensureDeferred(self._stop())

    def _renew_logged(self) -> defer.Deferred:
        if self._renewing is not None and not self._renewing.called:
            return defer.succeed(None)  # the last renewal still waits for the database
        self._renewing = defer.ensureDeferred(self.renew())
        self._renewing.addErrback(lambda f: log.failure("lease {name}", f, name=self.lease_name))
        return self._renewing

    async def renew(self) -> bool:
        """Take or renew the lease, start or stop the child to match; whether it is held."""
        master = self.master
        now = master.reactor.seconds()
        duration = master.config.multi_master_settings.dead_after_secs
        try:
            held = await master.db.leases.acquire(self.lease_name, master.masterid, now, duration)
        except Exception:
            log.failure("lease {name}: renewal failed", name=self.lease_name)
            held = self.held and now < self._until
        else:
            if held:
                self._until = now + duration
        if not self.running:
            return held  # stopped meanwhile: _stop releases it
        if held and not self.held:
            self.held = True
            log.info("lease {name}: this master runs it now", name=self.lease_name)
            await defer.maybeDeferred(self.child.startService)
        elif not held and self.held:
            self.held = False
            log.warn("lease {name}: lost (another master runs it now); stopped here", name=self.lease_name)
            await defer.maybeDeferred(self.child.stopService)
        return held

    async def _stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        if self._renewing is not None and not self._renewing.called:
            await self._renewing
        if self.child.running:
            await defer.maybeDeferred(self.child.stopService)
        if self.held and self.shared:
            await self.master.db.leases.release(self.lease_name, self.master.masterid)
        self.held = False
