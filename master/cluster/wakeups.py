"""``RequestWakeups``: the service ``wakeups``: on PostgreSQL with ``c['multiMaster']``, the
master LISTENs on ``WAKEUP_CHANNEL`` and looks at the queue as soon as any master commits a
transaction that made requests claimable (``db.buildrequests.wake_masters``: a request added,
put back, or reclaimed from a dead master), instead of at the BotMaster's next 2 s poll (which
stays, as the safety net for a notification lost with a connection).  It also LISTENs on
``SLAVEAPI_CHANNEL``: another master recorded a SlaveAPI action for a slave attached here (the
payload is the id of the master to run it), which the SlaveAPI runner then picks up at once
instead of at its poll.

psycopg waits for notifications on a connection of its own, so the wait runs in a thread of
this service (never the reactor's, never the database pool's); each notification is handed to
the reactor with ``callFromThread``.  A lost connection is opened again with the database
outage backoff (master/db/retry.py); once listening again the master looks at the queue once,
for what it may have missed.

Through the broker instead (``c['multiMasterSettings']['wakeups']`` ``'broker'``, or ``'auto'``
with ``c['mq']`` amqp and no PostgreSQL): the master subscribes to its bus's
``request-submitted`` exchange, which with amqp carries the other masters' requests too
(master/mq/consumer.py), and looks at the queue when another master added one.  Requests put
back or reclaimed by another master, and SlaveAPI actions addressed to this master, are then
found at the next poll.
"""

import threading

import psycopg
import sqlalchemy as sa
from twisted.application import service
from twisted.internet import defer, threads
from twisted.logger import Logger

from buildfarm.master.cluster.interfaces import IClusterMaster
from buildfarm.master.cluster.settings import WAKEUPS_AUTO, WAKEUPS_BROKER
from buildfarm.master.db.buildrequests import WAKEUP_CHANNEL
from buildfarm.master.db.engine import SERVER_CONNECT_TIMEOUT_S, resolve_db_url
from buildfarm.master.db.retry import backoff_delays
from buildfarm.master.db.slaveapi import SLAVEAPI_CHANNEL
from buildfarm.master.mq.exchanges import BUILDFARM_EXCHANGES, REQUEST_SUBMITTED, Message

log = Logger()

# How long one wait for notifications lasts before the thread checks whether to stop.
LISTEN_SLICE_S = 0.5
# How long a stopping master waits for the listening thread (one slice and a reconnect at most).
STOP_DEADLINE_S = 15.0


def listens_for_wakeups(db_url: str, multi_master: bool, wakeups: str = WAKEUPS_AUTO) -> bool:
    """Whether a master of this database and ``c['multiMaster']`` setting listens (PostgreSQL)."""
    return (multi_master and wakeups != WAKEUPS_BROKER
            and sa.engine.make_url(db_url).get_backend_name() == "postgresql")


def woken_by_broker(config) -> bool:
    """Whether a master of ``config`` (a ``MasterConfig``) is woken by the broker's
    ``request-submitted`` events."""
    if not (config.multi_master and config.mq.amqp):
        return False
    wakeups = config.multi_master_settings.wakeups
    return wakeups == WAKEUPS_BROKER or (
        wakeups == WAKEUPS_AUTO and not listens_for_wakeups(config.db_url, config.multi_master))


def libpq_conninfo(db_url: str, basedir: str) -> str:
    """The SQLAlchemy URL as psycopg's connection string (its driver name dropped)."""
    url = sa.engine.make_url(resolve_db_url(db_url, basedir))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class RequestWakeups(service.Service):
    """See the module.  ``woken`` counts the notifications handed to the BotMaster."""

    name = "wakeups"

    def __init__(self, master: IClusterMaster):
        self.master = master
        self.woken = 0
        self.listening = False  # LISTEN is in effect on a live connection
        self.broker_woken = 0  # other masters' requests heard on the bus
        self._unsubscribe_broker = None
        self._down_logged = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def startService(self):  # noqa: N802
        super().startService()
        self._follow(self.master.config)

    def reconfigService(self, new_config):  # noqa: N802 - Twisted's name
        """``c['multiMaster']`` turned on starts listening, turned off stops it."""
        return self._follow(new_config)

    def stopService(self):  # noqa: N802
        super().stopService()
        self._follow_broker(False)
        return self._stop_listening()

    def _follow_broker(self, wanted: bool) -> None:
        if wanted and self._unsubscribe_broker is None:
            bus = self.master.mq
            self._unsubscribe_broker = bus.subscribe(
                bus.exchange_name(BUILDFARM_EXCHANGES, REQUEST_SUBMITTED), "#", self._request_submitted)
            log.info("woken by the other masters' requests through the broker")
        elif not wanted and self._unsubscribe_broker is not None:
            self._unsubscribe_broker()
            self._unsubscribe_broker = None

    def _request_submitted(self, message: Message) -> None:
        """A request was added; by another master (not this one's own, which its BotMaster
        was told of): look at the queue."""
        if message.origin is not None and message.origin != self.master.masterid and self.running:
            self.broker_woken += 1
            self._wake()

    def _follow(self, config) -> defer.Deferred:
        self._follow_broker(woken_by_broker(config))
        wanted = listens_for_wakeups(config.db_url, config.multi_master,
                                     config.multi_master_settings.wakeups)
        if not wanted:
            return self._stop_listening()
        if self._thread is None:
            self._stop = threading.Event()
            conninfo = libpq_conninfo(config.db_url, self.master.basedir)
            self._thread = threading.Thread(target=self._listen, args=(conninfo, self._stop),
                                            name="buildfarm-wakeups", daemon=True)
            self._thread.start()
        return defer.succeed(None)

    def _stop_listening(self) -> defer.Deferred:
        thread, self._thread = self._thread, None
        self._stop.set()
        self.listening = False
        if thread is None:
            return defer.succeed(None)
        return threads.deferToThread(thread.join, STOP_DEADLINE_S)

    # -- in the listening thread -----------------------------------------------------------

    def _listen(self, conninfo: str, stop: threading.Event) -> None:
        delays = backoff_delays()
        while not stop.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True,
                                     connect_timeout=SERVER_CONNECT_TIMEOUT_S) as conn:
                    conn.execute(f"LISTEN {WAKEUP_CHANNEL}")
                    conn.execute(f"LISTEN {SLAVEAPI_CHANNEL}")
                    self.master.reactor.callFromThread(self._listening, True)
                    delays = backoff_delays()
                    while not stop.is_set():
                        for notify in conn.notifies(timeout=LISTEN_SLICE_S):
                            if notify.channel == SLAVEAPI_CHANNEL:
                                self.master.reactor.callFromThread(self._action_for, notify.payload)
                            else:
                                self.master.reactor.callFromThread(self._wake)
            except psycopg.Error as e:
                self.master.reactor.callFromThread(self._listening, False, str(e).strip())
                stop.wait(next(delays))

    # -- in the reactor thread -------------------------------------------------------------

    def _listening(self, ok: bool, why: str = "") -> None:
        if ok:
            log.info("listening for other masters' requests (PostgreSQL channel {channel})",
                     channel=WAKEUP_CHANNEL)
            self.listening, self._down_logged = True, False
            self._wake()  # what was added while nobody listened
            self._action_for(str(self.master.masterid))
            return
        self.listening = False
        if not self._down_logged:
            self._down_logged = True
            log.warn("not listening for other masters' requests ({why}); retrying", why=why)

    def _wake(self) -> None:
        if self.running:
            self.woken += 1
            self.master.botmaster.maybe_start_builds()

    def _action_for(self, masterid: str) -> None:
        """A SlaveAPI action was recorded for master ``masterid``: this one picks it up."""
        if self.running and masterid == str(self.master.masterid):
            self.master.slaveapi.pick_up_addressed()
