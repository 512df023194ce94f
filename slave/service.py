"""`SlaveService`: the slave daemon's root service.

It keeps one PB connection to a master: a `ClientService` reconnects with exponential
backoff (reset after each successful login); given several masters (``masters``), each
attempt after a failed one or a lost connection goes to the next master of the list, at once
while the round lasts, and the backoff grows once per round that reached none of them.  Every
connection logs in with the `Bot` as the mind, a connection that yields no perspective in
`LOGIN_TIMEOUT_S` is dropped, and an attached master that stops answering keepalives is
dropped too (so a half-open TCP connection is noticed).  Every timer runs on the injected clock.
"""

from __future__ import annotations

import os
import random
import signal

from twisted.application import service
from twisted.application.internet import ClientService, backoffPolicy
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, error, task
from twisted.internet.endpoints import clientFromString, quoteStringArgument
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.spread import pb
from zope.interface import implementer

from buildfarm.common.pbwire import FastBanana
from buildfarm.slave.bot import Bot
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runprocess import endRunningProcesses
from buildfarm.slave.runtime import SlaveRuntime

KEEPALIVE_INTERVAL_S = 600
KEEPALIVE_DEADLINE_S = 60
LOGIN_TIMEOUT_S = 120
INITIAL_RETRY_DELAY_S = 1.0
RETRY_BACKOFF_FACTOR = 2.0
MAX_RETRY_DELAY_S = 300
# The wait before trying the next master of the list, while a round through it lasts.
NEXT_MASTER_DELAY_S = 0.1
SHUTDOWN_DELAY_S = 0.5
# How long a stopping slave lets its commands' processes end on SIGTERM before it SIGKILLs
# their groups (well inside `buildslave stop`'s 30 s wait for the daemon).
STOP_GRACE_S = 5.0
SHUTDOWN_STAMP = "shutdown.stamp"
SHUTDOWN_STAMP_POLL_S = 10
ALLOW_SHUTDOWN_CHOICES = (None, "signal", "file")

log = Logger()


def masterAddress(host: str, port: int) -> str:
    """``host:port`` (``[v6addr]:port`` for IPv6 addresses)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(IStreamClientEndpoint)
class _ReportingEndpoint:
    """The endpoint of the current master among ``endpoints`` (``advance`` moves to the next,
    round the list); reports each failed connection attempt before ClientService retries."""

    def __init__(self, endpoints: list[IStreamClientEndpoint], onFailure) -> None:
        self._endpoints = endpoints
        self._onFailure = onFailure
        self.current = 0

    def advance(self) -> None:
        self.current = (self.current + 1) % len(self._endpoints)

    def connect(self, factory):
        return self._endpoints[self.current].connect(factory).addErrback(self._failed)

    def __repr__(self) -> str:
        return f"<endpoint {self._endpoints[self.current]!r}>"

    def _failed(self, failure: Failure) -> Failure:
        if not failure.check(defer.CancelledError):
            self._onFailure(failure)
        return failure


class _SlaveBroker(FastBanana, pb.Broker):
    """A client Broker that remembers why its connection ended (a TLS handshake refused,
    say), so a connection that never logged in can say why.  `FastBanana` moves transfer
    blocks without Twisted's extra copies and hashing (same bytes on the wire)."""

    lostReason: Failure | None = None
    reported = False  # set once the slave logged how this connection's login went

    def connectionLost(self, reason: Failure) -> None:
        self.lostReason = reason
        super().connectionLost(reason)


class _SlaveFactory(pb.PBClientFactory):
    """A PB client factory that tells its SlaveService when a connection starts and when PB is
    ready on it (then the slave logs in)."""

    noisy = False  # no "Starting factory" line for every attempt
    protocol = _SlaveBroker

    def __init__(self, slave: SlaveService) -> None:
        super().__init__()
        self.slave = slave

    def buildProtocol(self, addr):
        broker = super().buildProtocol(addr)
        self.slave._connectionStarted(broker)
        return broker

    def clientConnectionMade(self, broker: pb.Broker) -> None:
        super().clientConnectionMade(broker)
        self.slave._brokerReady(broker)


class SlaveService(service.MultiService):
    """The slave daemon: attaches to the master over PB and runs the builds it sends.

    Arguments are those of ``buildbot.tac``.  ``masters`` (``[(host, port), ...]``, tried in
    that order) lists several masters sharing one database; ``buildmaster_host`` and ``port``
    are then its first.  ``connection_string`` (a Twisted client endpoint description)
    overrides host/port/masters/use_tls.  ``maxretries`` None retries forever.
    ``allow_shutdown`` "signal" (SIGHUP) or "file" (a newer ``BASEDIR/shutdown.stamp``) asks
    the master to shut the slave down gracefully.  ``clock`` and ``reactor`` are for tests.
    """

    def __init__(
        self,
        buildmaster_host: str,
        port: int,
        name: str,
        passwd: str,
        basedir: str,
        keepalive: int = KEEPALIVE_INTERVAL_S,
        usepty: bool = False,
        umask: int | None = None,
        maxdelay: float = MAX_RETRY_DELAY_S,
        maxretries: int | None = None,
        allow_shutdown: str | None = None,
        connection_string: str | None = None,
        use_tls: bool = False,
        masters: list[tuple[str, int]] | None = None,
        clock=None,
        reactor=None,
    ) -> None:
        super().__init__()
        if allow_shutdown not in ALLOW_SHUTDOWN_CHOICES:
            raise ValueError(f"allow_shutdown must be 'signal', 'file' or None, not {allow_shutdown!r}")
        if reactor is None:
            from twisted.internet import reactor
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        addresses = [(buildmaster_host, port)] if connection_string or not masters else list(masters)
        self.masters = [masterAddress(host, int(p)) for host, p in addresses]
        self.master = self.masters[0]  # the one attached to, or tried next
        self.slavename = name
        self.passwd = passwd
        self.basedir = os.path.abspath(basedir)
        self.keepalive = keepalive
        self.umask = umask
        self.maxretries = maxretries
        self.allowShutdown = allow_shutdown
        self.bot = Bot(SlaveRuntime(self.basedir, defaultRegistry(), reactor, self.clock,
                                    self.masterRequestedShutdown, usePTY=bool(usepty)))
        self.perspective: pb.RemoteReference | None = None
        self._failures = 0
        self._backoff = backoffPolicy(INITIAL_RETRY_DELAY_S, maxdelay, RETRY_BACKOFF_FACTOR,
                                      jitter=random.random)
        self._loginTimer = None
        self._keepaliveTimer = None
        self._stampWatcher: task.LoopingCall | None = None
        self._stampMtime = 0.0
        self._previousSighupHandler = None
        self._factory = _SlaveFactory(self)
        self.endpointDescriptions = [connection_string] if connection_string else [
            self._endpointDescription(host, p, use_tls) for host, p in addresses]
        self.endpointDescription = self.endpointDescriptions[0]
        self._endpoint = _ReportingEndpoint(
            [clientFromString(reactor, description) for description in self.endpointDescriptions],
            self._connectFailed)
        self.connector = ClientService(self._endpoint, self._factory, retryPolicy=self._retryDelay,
                                       clock=self.clock)
        self.connector.setServiceParent(self)

    @staticmethod
    def _endpointDescription(host: str, port: int, useTLS: bool) -> str:
        kind = "tls" if useTLS else "tcp"
        return f"{kind}:host={quoteStringArgument(host)}:port={int(port)}"

    def startService(self) -> None:
        """Apply the umask, start connecting, watch for slave-initiated shutdown."""
        if self.umask is not None:
            os.umask(self.umask)
        log.info("buildslave {name} starting in {basedir}; master is {master}",
                 name=self.slavename, basedir=self.basedir, master=", then ".join(self.masters))
        super().startService()
        self._watchForShutdownRequests()

    def stopService(self):
        """Kill running commands and close the connection."""
        if self._stampWatcher is not None and self._stampWatcher.running:
            self._stampWatcher.stop()
        if self._previousSighupHandler is not None:
            signal.signal(signal.SIGHUP, self._previousSighupHandler)
            self._previousSighupHandler = None
        self.bot.stopCommands("slave stopping")
        d = defer.maybeDeferred(super().stopService)
        d.addBoth(self._endProcesses)
        return d

    def _endProcesses(self, result):
        """Wait for the commands' processes to end (STOP_GRACE_S at most), then SIGKILL the
        groups left, so that no command outlives the slave; pass ``result`` on."""
        return endRunningProcesses(self.clock, STOP_GRACE_S).addCallback(lambda _: result)

    # Connection life cycle

    def _connectFailed(self, failure: Failure) -> None:
        log.warn("connection to master {master} failed: {reason}; retrying",
                 master=self.master, reason=failure.getErrorMessage())

    def _retryDelay(self, attempt: int) -> float:
        """ClientService's retry policy: backoff on our own count of consecutive failures,
        which (unlike ClientService's) survives TCP connections whose login failed.  With
        several masters the next attempt goes to the next one, at once while the round through
        the list lasts; the backoff grows once per round."""
        self._failures += 1
        if self.maxretries is not None and self._failures > self.maxretries:
            log.error("no connection to master {master} after {n} attempts; stopping",
                      master=", ".join(self.masters), n=self._failures)
            self.clock.callLater(0, self._stopReactor)
        self._endpoint.advance()
        self.master = self.masters[self._endpoint.current]
        rounds, within = divmod(self._failures, len(self.masters))
        delay = NEXT_MASTER_DELAY_S if within else self._backoff(rounds - 1)
        log.info("next attempt to reach master {master} in {delay:.1f} s",
                 master=self.master, delay=delay)
        return delay

    def _connectionStarted(self, broker: pb.Broker) -> None:
        self._cancelLoginTimer()
        self._loginTimer = self.clock.callLater(LOGIN_TIMEOUT_S, self._loginTimedOut, broker)
        broker.notifyOnDisconnect(lambda: self._disconnected(broker))

    def _brokerReady(self, broker: pb.Broker) -> None:
        _enableTcpKeepAlive(broker.transport)
        credentials = UsernamePassword(self.slavename.encode("utf-8"),
                                       self.passwd.encode("utf-8"))
        d = self._factory.login(credentials, client=self.bot)
        d.addCallbacks(self._attached, self._loginFailed,
                       callbackArgs=(broker,), errbackArgs=(broker,))

    def _attached(self, perspective: pb.RemoteReference, broker: pb.Broker) -> None:
        if broker.disconnected:
            return
        broker.reported = True
        self._cancelLoginTimer()
        self._failures = 0
        self.perspective = perspective
        log.info("attached to master {master} as {name}", master=self.master,
                 name=self.slavename)
        self._scheduleKeepalive()

    def _loginFailed(self, failure: Failure, broker: pb.Broker) -> None:
        broker.reported = True
        reason = failure.getErrorMessage() or failure.type
        if failure.check(UnauthorizedLogin):
            log.warn("login refused by master {master}: {reason}; will retry",
                     master=self.master, reason=reason or "unauthorized")
        elif failure.check(pb.PBConnectionLost, error.ConnectionLost, error.ConnectionDone):
            log.warn("connection to master {master} lost during login; will retry",
                     master=self.master)
        else:
            log.error("login to master {master} failed: {reason}; will retry",
                      master=self.master, reason=reason)
        _drop(broker)

    def _loginTimedOut(self, broker: pb.Broker) -> None:
        broker.reported = True
        self._loginTimer = None
        log.warn("no login answer from master {master} within {timeout} s; dropping the"
                 " connection", master=self.master, timeout=LOGIN_TIMEOUT_S)
        _drop(broker)

    def _disconnected(self, broker: pb.Broker) -> None:
        self._cancelLoginTimer()
        if not getattr(broker, "reported", False):
            reason = getattr(broker, "lostReason", None)
            log.warn("connection to master {master} failed: closed before login ({reason});"
                     " retrying", master=self.master,
                     reason=reason.getErrorMessage() if reason is not None else "no reason")
            return
        if self.perspective is None or self.perspective.broker is not broker:
            return
        self.perspective = None
        if self._keepaliveTimer is not None and self._keepaliveTimer.active():
            self._keepaliveTimer.cancel()
        self._keepaliveTimer = None
        log.info("lost connection to master")
        self.bot.lostConnection()

    def _cancelLoginTimer(self) -> None:
        if self._loginTimer is not None and self._loginTimer.active():
            self._loginTimer.cancel()
        self._loginTimer = None

    # Keepalive: a master that stops answering is dropped, and we reconnect.

    def _scheduleKeepalive(self) -> None:
        if self.keepalive:
            self._keepaliveTimer = self.clock.callLater(self.keepalive, self._sendKeepalive)

    def _sendKeepalive(self) -> None:
        self._keepaliveTimer = None
        perspective = self.perspective
        if perspective is None:
            return
        d = perspective.callRemote("keepalive")
        d.addTimeout(KEEPALIVE_DEADLINE_S, self.clock)
        d.addCallbacks(self._keepaliveAnswered, self._keepaliveFailed,
                       callbackArgs=(perspective,), errbackArgs=(perspective,))

    def _keepaliveAnswered(self, _: object, perspective: pb.RemoteReference) -> None:
        if self.perspective is perspective:
            self._scheduleKeepalive()

    def _keepaliveFailed(self, failure: Failure, perspective: pb.RemoteReference) -> None:
        if failure.check(pb.PBConnectionLost, pb.DeadReferenceError):
            return
        if failure.check(defer.TimeoutError):
            log.warn("master {master} did not answer a keepalive within {deadline} s;"
                     " dropping the connection", master=self.master,
                     deadline=KEEPALIVE_DEADLINE_S)
            _drop(perspective.broker)
            return
        log.warn("keepalive to master {master} failed: {reason}", master=self.master,
                 reason=failure.getErrorMessage())
        self._keepaliveAnswered(None, perspective)

    # Shutdown

    def masterRequestedShutdown(self) -> None:
        """The master called ``shutdown``: stop the reactor once the reply is on its way."""
        log.info("master requested shutdown; stopping")
        self.clock.callLater(SHUTDOWN_DELAY_S, self._stopReactor)

    def gracefulShutdown(self) -> None:
        """Ask the master to shut this slave down when idle (``perspective_shutdown``); not
        attached: stop at once."""
        if self.perspective is None:
            log.info("shutdown requested while not attached to a master; stopping now")
            self._stopReactor()
            return
        log.info("asking master {master} for a graceful shutdown (it stops this slave once"
                 " idle)", master=self.master)
        d = self.perspective.callRemote("shutdown")
        d.addCallbacks(self._gracefulShutdownAccepted, self._gracefulShutdownFailed)

    def _gracefulShutdownAccepted(self, _: object) -> None:
        log.info("master {master} accepted the shutdown request; waiting for it to stop this"
                 " slave", master=self.master)

    def _gracefulShutdownFailed(self, failure: Failure) -> None:
        log.warn("master could not take the shutdown request ({reason}); stopping now",
                 reason=failure.getErrorMessage())
        self._stopReactor()

    def _watchForShutdownRequests(self) -> None:
        if self.allowShutdown == "signal":
            self._previousSighupHandler = signal.signal(signal.SIGHUP, self._onSighup)
        elif self.allowShutdown == "file":
            self._stampMtime = self._shutdownStampMtime()
            self._stampWatcher = task.LoopingCall(self._checkShutdownStamp)
            self._stampWatcher.clock = self.clock
            self._stampWatcher.start(SHUTDOWN_STAMP_POLL_S, now=False)

    def _onSighup(self, signum, frame) -> None:
        # A signal handler does as little as possible: the reactor thread does the work.
        self.reactor.callFromThread(self._sighupReceived)

    def _sighupReceived(self) -> None:
        log.info("SIGHUP received: shutting down")
        self.gracefulShutdown()

    def _shutdownStampMtime(self) -> float:
        try:
            return os.path.getmtime(os.path.join(self.basedir, SHUTDOWN_STAMP))
        except OSError:
            return 0.0

    def _checkShutdownStamp(self) -> None:
        mtime = self._shutdownStampMtime()
        if mtime > self._stampMtime:
            self._stampMtime = mtime
            log.info("{stamp} touched: shutting down", stamp=SHUTDOWN_STAMP)
            self.gracefulShutdown()

    def _stopReactor(self) -> None:
        try:
            self.reactor.stop()
        except error.ReactorNotRunning:
            pass


def _enableTcpKeepAlive(transport) -> None:
    """TCP keepalive on the socket, where the transport has one (TLS wraps it); and no
    Nagle delay: PB's small replies would otherwise wait for the peer's delayed ACK."""
    for candidate in (transport, getattr(transport, "transport", None)):
        setter = getattr(candidate, "setTcpKeepAlive", None)
        if setter is not None:
            setter(1)
            candidate.setTcpNoDelay(1)
            return


def _drop(broker: pb.Broker) -> None:
    """Close a connection at once, even if the peer stopped reading (half-open TCP)."""
    transport = broker.transport
    if transport is None:
        return
    abort = getattr(transport, "abortConnection", None)
    if abort is not None:
        abort()
    else:
        transport.loseConnection()


# The name before the rename: buildbot.tac files written by earlier create-slave say
# ``from buildfarm.slave.service import BuildSlave``, and existing basedirs keep working.
BuildSlave = SlaveService
