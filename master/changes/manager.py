"""``ChangeSourceManager``: the service that holds the change sources of ``c['change_source']``.

It is the master's child ``changes``, just before ``scheduler``.  Its change sources are its
children; each is a Twisted service, an ``IChangeSource`` (master/changes/interfaces.py) is
given the master with ``activate(master)`` first (a plain service gets ``source.master``).
A source reports changes with ``master.scheduler.add_change``.

Sources start once the whole master is running (``master_ready``, called by the
``BuildMaster`` at the end of its start-up), so the schedulers are active when the first
change arrives.  A reconfig keeps the sources whose configuration did not change (compared
with ``config_fingerprint()`` when they have one, else by identity), stops the removed and
changed ones, and starts the new ones.
"""

from collections.abc import Iterable
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

log = Logger()


def source_fingerprint(source) -> Any:
    """What says that two configured sources are the same one."""
    fingerprint = getattr(source, "config_fingerprint", None)
    return fingerprint() if callable(fingerprint) else ("identity", id(source))


def source_name(source) -> str:
    return getattr(source, "name", None) or repr(source)


class ChangeSourceManager(service.MultiService):
    """Owns the configured change sources (its children) and applies reconfigs to them."""

    name = "changes"

    def __init__(self, master):
        super().__init__()
        self.master = master
        self.ready = False
        self._lock = defer.DeferredLock()

    @property
    def sources(self) -> list:
        """The running change sources, in configuration order."""
        return list(self)

    def named(self, name: str):
        """The running change source called ``name`` (``source_name``), or None."""
        return next((s for s in self if source_name(s) == name), None)

    def startService(self):  # noqa: N802
        # The sources start in master_ready, once the schedulers are active.
        service.Service.startService(self)

    def master_ready(self) -> defer.Deferred:
        """The master is running: start the configured change sources."""
        self.ready = True
        return defer.ensureDeferred(self.reconfigService(self.master.config))

    async def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Make the running change sources those of ``config``."""
        if not self.ready:
            return
        await self._lock.run(lambda: defer.ensureDeferred(self._apply(config.change_sources)))

    async def _apply(self, wanted: Iterable) -> None:
        running = {source_fingerprint(s): s for s in self}
        keep = set()
        for source in wanted:
            fingerprint = source_fingerprint(source)
            if fingerprint in running:
                keep.add(fingerprint)
        for fingerprint, source in running.items():
            if fingerprint not in keep:
                await self._stop(source)
                log.info("change source {name} stopped", name=source_name(source))
        for source in wanted:
            if source_fingerprint(source) in keep:
                continue
            activate = getattr(source, "activate", None)
            if callable(activate):
                activate(self.master)
            else:
                source.master = self.master
            try:
                source.setServiceParent(self)
            except Exception:
                log.failure("change source {name} failed to start", name=source_name(source))
                continue
            log.info("change source {name} ({kind}) started", name=source_name(source),
                     kind=type(source).__name__)

    async def _stop(self, source) -> None:
        try:
            await defer.maybeDeferred(source.disownServiceParent)
        except Exception:
            log.failure("change source {name} failed to stop", name=source_name(source))
