"""``Janitor``: the service that deletes the store's expired items (docs/cas.md).

Every ``janitor_interval`` seconds (and once at start-up) it asks the current store to
``expire`` (the store walks its items on the thread pool and deletes the expired ones in
batches, each checked again just before it goes), then sets the per-namespace gauges of
items and bytes stored from what the pass counted.  Time comes from the injected reactor;
one pass runs at a time; nothing of it runs on the reactor thread but the bookkeeping.

With several masters, the janitor of a store they share (the S3 back-end) runs on one of them
at a time: the CAS service runs it under the lease ``janitor_lease_name`` names
(master/cluster/leases.py).  A file back-end is each master's own, so its lease is too.
"""

import os
import socket

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

EXPIRE_BATCH = 500  # items checked again and deleted together (one DeleteObjects on S3)


def janitor_lease_name(settings, basedir: str) -> str:
    """The lease the janitor of the store ``settings`` names runs under: one per S3 bucket
    (every master sharing it), one per file store (this host's directory)."""
    if settings.backend == "s3":
        location = settings.s3
        return f"cas-janitor:s3:{location.endpoint_url or ''}/{location.bucket}"
    return f"cas-janitor:file:{socket.gethostname()}:{os.path.join(basedir, settings.path)}"


class Janitor(service.Service):
    """Runs expiry passes over ``cas.store`` every ``cas.settings.janitor_interval_s`` on
    ``clock``, and hands their counts to ``metrics`` (a ``CASMetrics``)."""

    name = "janitor"

    def __init__(self, cas, clock, metrics, batch: int = EXPIRE_BATCH):
        self.cas = cas
        self.clock = clock
        self.metrics = metrics
        self.batch = batch
        self._next = None
        self._running: defer.Deferred | None = None

    def startService(self):  # noqa: N802 - Twisted's name
        super().startService()
        self._schedule()
        self.run_pass()  # the first one at once: it also counts what is stored

    def stopService(self):  # noqa: N802
        super().stopService()
        self._cancel()
        # a pass under way is waited for (its thread holds the store)
        return _follow(self._running) if self._running is not None else None

    def reschedule(self) -> None:
        """The next pass one (new) interval from now (a reconfig changed it)."""
        if self.running:
            self._schedule()

    def run_pass(self) -> defer.Deferred:
        """Run a pass now (or join the one under way); fires when it is done."""
        if self._running is None:
            d = defer.ensureDeferred(self._pass())
            if d.called:  # over already (it failed before reaching a thread)
                return d
            self._running = d
        return _follow(self._running)

    def _tick(self) -> None:
        # Fixed rate: the next tick is set before this pass starts (one timer at all times);
        # a pass still under way when the tick comes is not doubled.
        self._schedule()
        if self._running is None:
            self.run_pass()

    async def _pass(self) -> None:
        store = self.cas.store
        try:
            found = await store.expire(self.batch)
        except Exception:
            log.failure("CAS janitor pass failed; the next one is in {s:g} s",
                        s=self.cas.settings.janitor_interval_s)
            self.metrics.janitor_passes.labels("failed").inc()
        else:
            self.metrics.counted(found.stored, found.deleted)
            self.metrics.janitor_passes.labels("ok").inc()
            deleted = sum(items for items, _ in found.deleted.values())
            if deleted:
                log.info("CAS janitor deleted {n} expired item(s) ({b} bytes)", n=deleted,
                         b=sum(size for _, size in found.deleted.values()))
        finally:
            self._running = None

    def _schedule(self) -> None:
        self._cancel()
        self._next = self.clock.callLater(self.cas.settings.janitor_interval_s, self._tick)

    def _cancel(self) -> None:
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None


def _follow(d: defer.Deferred) -> defer.Deferred:
    """A Deferred that fires (with None) when ``d`` does, leaving ``d``'s own chain alone."""
    follower: defer.Deferred = defer.Deferred()
    d.addBoth(lambda result: (follower.callback(None), result)[1])
    return follower
