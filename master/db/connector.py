"""The ``db`` service: one SQLAlchemy engine and the thread pool every query runs in."""

from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from buildfarm.master.db import migrate
from buildfarm.master.db.audit import AuditComponent
from buildfarm.master.db.builders import BuildersComponent
from buildfarm.master.db.buildrequests import BuildRequestsComponent
from buildfarm.master.db.builds import BuildsComponent
from buildfarm.master.db.buildsets import BuildsetsComponent
from buildfarm.master.db.changes import ChangesComponent
from buildfarm.master.db.clients import ClientsComponent
from buildfarm.master.db.engine import create_engine, is_in_memory, is_sqlite
from buildfarm.master.db.leases import LeasesComponent
from buildfarm.master.db.logs import LogsComponent
from buildfarm.master.db.masters import MastersComponent
from buildfarm.master.db.nonces import NoncesComponent
from buildfarm.master.db.outbox import OutboxComponent
from buildfarm.master.db.reports import ReportsComponent
from buildfarm.master.db.retry import RETRY_TOTAL_S, OutageRetrier
from buildfarm.master.db.roles import RolesComponent
from buildfarm.master.db.samples import SamplesComponent
from buildfarm.master.db.slaveapi import SlaveAPIComponent
from buildfarm.master.db.slaves import SlavesComponent
from buildfarm.master.db.state import StateComponent
from buildfarm.master.db.steps import StepsComponent
from buildfarm.master.db.tasks import TasksComponent
from buildfarm.master.db.views import ViewsComponent

T = TypeVar("T")

# SQLite serialises writers anyway; more threads would only wait on its lock.
SQLITE_POOL_THREADS = 1
# A database server runs this many transactions at once, one pooled connection each.
SERVER_POOL_THREADS = 5


class SchemaNotCurrent(Exception):
    """The database is missing or older than the code; ``upgrade-master`` fixes it."""

    def __init__(self, basedir: str) -> None:
        super().__init__(
            f"database schema is not current; run: buildmaster upgrade-master {basedir}"
        )
        self.basedir = basedir


class DBConnector(service.Service):
    """The master's database: call ``await setup()``, then use the components.

    An in-memory SQLite database (``sqlite://``, as Buildbot's examples use) is one
    connection kept for the life of the process, its schema created by ``setup``.

    Every query runs inside one transaction in this connector's own thread pool
    (:meth:`run`), so the reactor thread never waits on SQL; while the database server
    cannot be reached the transaction is re-run with backoff for up to ``max_retry_s``
    seconds (see :mod:`buildfarm.master.db.retry`).  The components are ``masters``,
    ``builders``, ``slaves``, ``buildsets``, ``buildrequests``, ``builds``, ``steps``,
    ``logs``, ``changes``, ``state``, ``slaveapi``, ``audit``, ``reports``, ``tasks``, ``clients``,
    ``roles``, ``samples``, ``views``, ``leases`` and ``nonces``.
    """

    name = "db"
    log = Logger()

    def __init__(
        self, db_url: str, basedir: str, reactor, max_retry_s: float = RETRY_TOTAL_S
    ) -> None:
        """``reactor`` runs the pool's results and the retry waits (the master passes its own)."""
        self.db_url = db_url
        self.basedir = basedir
        self.max_retry_s = max_retry_s
        self._reactor = reactor
        self.engine: sa.Engine | None = None
        self.pool: ThreadPool | None = None
        self._retrier: OutageRetrier | None = None
        self.masters = MastersComponent(self)
        self.builders = BuildersComponent(self)
        self.slaves = SlavesComponent(self)
        self.buildrequests = BuildRequestsComponent(self)
        self.builds = BuildsComponent(self)
        self.steps = StepsComponent(self)
        self.logs = LogsComponent(self)
        self.buildsets = BuildsetsComponent(self)
        self.changes = ChangesComponent(self)
        self.state = StateComponent(self)
        self.slaveapi = SlaveAPIComponent(self)
        self.audit = AuditComponent(self)
        self.reports = ReportsComponent(self)
        self.tasks = TasksComponent(self)
        self.clients = ClientsComponent(self)
        self.roles = RolesComponent(self)
        self.outbox = OutboxComponent(self)  # messages for the broker (master/mq/)
        self.samples = SamplesComponent(self)  # the fleet and the queue over time
        self.views = ViewsComponent(self)  # reads of the grid, console and waterfall pages
        self.leases = LeasesComponent(self)
        self.nonces = NoncesComponent(self)  # Hawk nonces shared by the masters (master/auth/nonces.py)

    async def setup(self) -> None:
        """Create the engine and start the pool; raise SchemaNotCurrent on an old schema."""
        threads_count = SQLITE_POOL_THREADS if is_sqlite(self.db_url) else SERVER_POOL_THREADS
        self.pool = ThreadPool(minthreads=1, maxthreads=threads_count, name="buildfarm-db")
        self.pool.start()
        self._retrier = OutageRetrier(self._get_reactor(), self.max_retry_s)
        try:
            self.engine = await self._in_pool(
                create_engine, self.db_url, self.basedir, threads_count
            )
            if is_in_memory(self.db_url):
                # Nothing outlives the process: the schema is created here, at each start.
                await self.run(migrate.upgrade_connection)
            current = await self.run(migrate.connection_is_current)
        except BaseException:
            await self._shutdown()
            raise
        if not current:
            await self._shutdown()
            raise SchemaNotCurrent(self.basedir)
        self.log.info("database ready: {url}", url=self.engine.url.render_as_string())

    def startService(self):  # noqa: N802 - Twisted's name
        """Set up (unless `setup` already ran); the Deferred fails on an old schema."""
        super().startService()
        if self.engine is None:
            return defer.ensureDeferred(self.setup())
        return defer.succeed(None)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        return defer.ensureDeferred(self._shutdown())

    @property
    def unavailable(self) -> bool:
        """Whether queries are waiting for the database server to come back."""
        return self._retrier is not None and self._retrier.unavailable

    def run(self, fn: Callable[[sa.Connection], T]) -> defer.Deferred:
        """A Deferred firing with ``fn(conn)``, run in the pool inside one transaction.

        If the server cannot be reached, ``fn`` is run again, whole, in a new transaction
        once it can; so ``fn`` must do nothing but SQL on ``conn``.
        """
        if self.engine is None or self._retrier is None:
            return defer.fail(RuntimeError("DBConnector.run called before setup()"))
        return defer.ensureDeferred(self._retrier.run(lambda: self._attempt(fn)))

    def _attempt(self, fn: Callable[[sa.Connection], T]) -> defer.Deferred:
        if self.engine is None:
            raise RuntimeError("DBConnector stopped while a query waited for the database")
        return self._in_pool(_run_in_transaction, self.engine, fn)

    def _in_pool(self, fn, *args) -> defer.Deferred:
        return threads.deferToThreadPool(self._get_reactor(), self.pool, fn, *args)

    def in_pool(self, fn: Callable[..., T], *args) -> defer.Deferred:
        """``fn(*args)`` in the pool, without a transaction or retries: for a component that
        holds a connection of ``engine`` across calls (the outbox's claimed rows)."""
        if self.engine is None:
            return defer.fail(RuntimeError("DBConnector.in_pool called before setup()"))
        return self._in_pool(fn, *args)

    def _get_reactor(self):
        return self._reactor

    async def _shutdown(self) -> None:
        engine, pool = self.engine, self.pool
        self.engine = self.pool = None
        if self._retrier is not None:
            self._retrier.cancel_waits()
        if pool is None:
            return
        if engine is not None:
            # Dispose in the pool's thread: SQLite connections belong to the thread using them.
            await threads.deferToThreadPool(self._get_reactor(), pool, engine.dispose)
        pool.stop()


def _run_in_transaction(engine: sa.Engine, fn: Callable[[sa.Connection], T]) -> T:
    with engine.begin() as conn:
        return fn(conn)
