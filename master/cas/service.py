"""``CASService``: the content-addressed store as a service of the master's tree (``cas``).

It owns what the store needs at run time: the back-end named by ``c['cas']`` (a ``FileStore``
or an ``S3Store``), the thread pool every back-end call and every check runs on, the lock the
puts and the janitor share, the Isolate API (``api``, mounted at ``/_ah/`` by www/site.py),
the spool directory where upload bodies stream to, and the ``Janitor`` (its child).  A reconfig
(``reconfigService``) applies a changed ``c['cas']`` without a restart: a new back-end or expiry
makes a new store, limits apply to the next request, a new upload secret refuses the tickets
of the old one (a secret left unset keeps the running random one), a new janitor interval
reschedules the next pass.
"""

import os
import tempfile
from dataclasses import replace

from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.filestore import FileStore
from buildfarm.master.cas.interfaces import ICASMaster
from buildfarm.master.cas.janitor import Janitor, janitor_lease_name
from buildfarm.master.cas.locking import SharedLock
from buildfarm.master.cas.s3store import S3Store
from buildfarm.master.cas.settings import CASSettings
from buildfarm.master.cluster.leases import LeaseGate

log = Logger()

POOL_MAX_THREADS = 8  # back-end calls at once (S3 round trips, disk, verification)
SPOOL_DIR = "cas-uploads"  # under the basedir: upload bodies, as anonymous temporary files


class CASService(service.MultiService):
    """The store, its API and its janitor, configured from ``master.config.cas``."""

    name = "cas"

    def __init__(self, master: ICASMaster):
        super().__init__()
        self.master = master
        self.lock = SharedLock()
        self.pool = ThreadPool(minthreads=0, maxthreads=POOL_MAX_THREADS, name="cas")
        self.settings: CASSettings = master.config.cas
        self.store = self.make_store(self.settings)
        self.metrics = master.metrics.cas
        self.api = IsolateAPI(master, self.store, self.settings, master.reactor, self.pool, self.metrics)
        self.janitor = Janitor(self, master.reactor, self.metrics)
        # With several masters sharing the store, its janitor runs on one of them at a time.
        lease = janitor_lease_name(self.settings, master.basedir)
        LeaseGate(lease, self.janitor, master).setServiceParent(self)

    @property
    def spool_dir(self) -> str:
        return os.path.join(self.master.basedir, SPOOL_DIR)

    def make_store(self, settings: CASSettings):
        """The back-end ``settings`` name, on this service's pool and lock."""
        if settings.backend == "s3":
            return S3Store(settings.s3, self.master.reactor, self.pool, settings.expiry, self.lock)
        return FileStore(os.path.join(self.master.basedir, settings.path), self.master.reactor, self.pool,
                         settings.expiry, self.lock)

    def spool(self):
        """A file for an upload's body (the site's ``BodyRule`` for upload URLs calls this as the
        headers arrive): an anonymous temporary file, gone when closed, so a 1 GiB body costs
        disk, not memory, and nothing is left behind by a dropped connection."""
        return tempfile.TemporaryFile(dir=self.spool_dir, prefix="upload.")

    def max_upload_bytes(self) -> int:
        """The cap of an upload's body (read per request: a reconfig applies at once)."""
        return self.settings.max_item_bytes

    def startService(self):  # noqa: N802 - Twisted's name
        os.makedirs(self.spool_dir, exist_ok=True)
        self.pool.start()
        return super().startService()

    def stopService(self):  # noqa: N802
        return defer.ensureDeferred(self._stop())

    async def _stop(self) -> None:
        await super().stopService()
        await self.api.audit_batch.flush()  # the item writes' audit rows not written yet
        await threads.deferToThread(self.pool.stop)  # joins its threads: not on the reactor

    def reconfigService(self, new_config) -> None:  # noqa: N802
        """Apply ``new_config.cas``."""
        new = new_config.cas
        if not new.secret_is_set and not self.settings.secret_is_set:
            new = replace(new, upload_secret=self.settings.upload_secret)
        if new.store_key() != self.settings.store_key():
            self.store = self.make_store(new)
            log.info("CAS store is now the {backend} back-end (expiry {days:g} days)", backend=new.backend,
                     days=new.expiry_days)
        interval_changed = new.janitor_interval_s != self.settings.janitor_interval_s
        self.settings = new
        self.api.reconfigure(self.store, new)
        if interval_changed:
            self.janitor.reschedule()
