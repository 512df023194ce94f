"""``PBManager``: the master's PB listener for slaves, and the broker of each connection."""

from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.spread import banana, pb

from buildfarm.common.pbwire import FastBanana
from buildfarm.master.auth.ratelimit import LoginLimiter
from buildfarm.master.changes.pb import PBChangeSource, change_source_for
from buildfarm.master.listener import ListeningService
from buildfarm.master.pb.changeports import ChangeSourcePorts
from buildfarm.master.pb.dispatcher import Dispatcher, SlavePasswordChecker
from buildfarm.master.pb.heaptrim import HeapTrimmer
from buildfarm.master.pb.interfaces import IPBMaster
from buildfarm.master.pb.limits import PRE_LOGIN_MESSAGE_LIMITS, PBLimits
from buildfarm.master.pb.logingate import LoginGate, describe_peer, pre_login_problem

log = Logger()


class PreLoginGarbage(pb.ProtocolError):
    """A peer that has not logged in sent something other than a step of PB's login."""


# What a logged-in slave may send that ends its connection without a traceback in the log.
PROTOCOL_ERRORS = (banana.BananaError, pb.ProtocolError, NotImplementedError)


class KeepAliveBroker(FastBanana, pb.Broker):
    """A PB broker whose socket has TCP keepalive on, against half-open connections, and
    which decodes large messages (upload blocks) without re-copying them per socket read.

    Until its peer proves a slave's password (`authenticated`) it accepts only PB's login, in
    messages under `PRE_LOGIN_MESSAGE_LIMITS`, under its factory's `LoginGate`.  Anything
    else, and any message over its limits, drops the connection with one line in the log."""

    messageLimits = PRE_LOGIN_MESSAGE_LIMITS  # an instance's own limits once it logs in
    _dropped = False

    # Per-slave memory: Banana copies its outgoing vocabulary per connection but only ever
    # reads it, and stores the same prefix limits in every connection.  Kept on the class they
    # cost nothing per slave (1.1 KiB for the dict), and the broker's instance dict stays
    # under the 30 keys that let CPython share its key table (1.5 KiB more otherwise).
    outgoingSymbols = pb.Broker.outgoingVocabulary
    outgoingSymbolCount = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.outgoingSymbols, self.outgoingSymbolCount

    def setPrefixLimit(self, limit):  # noqa: N802 - Twisted's name
        cls = type(self)
        if cls.__dict__.get("prefixLimit") != limit:
            banana.Banana.setPrefixLimit(cls, limit)  # sets the limits as class attributes

    # Per-slave memory: a dict keeps its grown table after its last entry goes, so the table
    # of calls awaiting answers (160 bytes once a call was made) is swapped for a fresh empty
    # dict, which has none, whenever the last answer arrives.
    def proto_answer(self, requestID, netResult):  # noqa: N802,N803 - Twisted's names
        super().proto_answer(requestID, netResult)
        self._forget_answered_table()

    def proto_error(self, requestID, fail):  # noqa: N802,N803
        super().proto_error(requestID, fail)
        self._forget_answered_table()

    def _forget_answered_table(self) -> None:
        if self.waitingForAnswers == {}:  # not None (disconnected) and nothing awaited
            self.waitingForAnswers = {}

    def connectionMade(self):  # noqa: N802
        super().connectionMade()
        if hasattr(self.transport, "setTcpKeepAlive"):
            self.transport.setTcpKeepAlive(1)
        if hasattr(self.transport, "setTcpNoDelay"):
            self.transport.setTcpNoDelay(1)
        gate = self._gate()
        if gate is not None:
            gate.entered(self)

    def connectionLost(self, reason):  # noqa: N802
        gate = self._gate()
        if gate is not None:
            gate.left(self)
        super().connectionLost(reason)

    def _gate(self) -> LoginGate | None:
        return getattr(getattr(self, "factory", None), "gate", None)

    # -- login -----------------------------------------------------------------------------

    @property
    def logged_in(self) -> bool:
        """Whether the peer proved a slave's password on this connection."""
        return self.messageLimits is not PRE_LOGIN_MESSAGE_LIMITS

    def authenticated(self) -> None:
        """The peer proved a slave's password: the pre-login limits and deadline end."""
        gate, factory = self._gate(), getattr(self, "factory", None)
        limits = getattr(factory, "limits", None)
        self.messageLimits = (limits() if limits is not None else PBLimits()).after_login()
        if gate is not None:
            gate.left(self)

    def callExpressionReceived(self, obj):  # noqa: N802 - Twisted's name
        if not self.currentDialect and obj not in self.knownDialects:
            raise PreLoginGarbage("not one of the Banana dialects offered")
        super().callExpressionReceived(obj)

    def expressionReceived(self, sexp):  # noqa: N802 - Twisted's name
        if not self.logged_in:
            gate = self._gate()
            if gate is not None and not gate.message(self):
                raise PreLoginGarbage("too many messages before login")
            problem = pre_login_problem(self, sexp)
            if problem is not None:
                raise PreLoginGarbage(problem)
        super().expressionReceived(sexp)

    # -- bad input -------------------------------------------------------------------------

    def dataReceived(self, chunk):  # noqa: N802 - Twisted's name
        if self._dropped:
            return
        try:
            super().dataReceived(chunk)
        except Exception as e:
            self._refuse(e, Failure())

    def _refuse(self, error: Exception, failure: Failure) -> None:
        """One line in the log naming the peer (a traceback only for a logged-in slave's
        unexpected error, which is a bug here or there), then drop the connection."""
        peer = describe_peer(self.transport)
        why = _bounded(f"{type(error).__name__}: {error}")
        if not self.logged_in:
            log.warn("slave port: dropping {peer} before login: {why}", peer=peer, why=why)
        elif isinstance(error, PROTOCOL_ERRORS):
            log.warn("slave port: dropping {peer}: {why}", peer=peer, why=why)
        else:
            log.failure("slave port: dropping {peer} after an unexpected error", failure, peer=peer)
        self.drop()

    def drop(self) -> None:
        """Close the connection at once, reading nothing more from it."""
        self._dropped = True
        if hasattr(self.transport, "abortConnection"):
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()


def _bounded(text: str, most: int = 200) -> str:
    return text if len(text) <= most else text[:most - 3] + "..."


class SlaveServerFactory(pb.PBServerFactory):
    """The PB server factory for slave logins: a new connection is accepted only while the
    `LoginGate` has room for one more that has not logged in."""

    protocol = KeepAliveBroker

    def __init__(self, portal: Portal, gate: LoginGate, limits=PBLimits):
        """``limits`` is a callable returning the current `PBLimits`."""
        super().__init__(portal)
        self.gate = gate
        self.limits = limits

    def buildProtocol(self, addr):  # noqa: N802 - Twisted's name
        if not self.gate.has_room():
            return None  # the port closes the socket at once
        return super().buildProtocol(addr)


def with_backlog(description: str, backlog: int) -> str:
    """A TCP server endpoint description with a listen backlog (unless it names one)."""
    if description.split(":", 1)[0] in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return f"{description}:backlog={backlog}"
    return description


class PBManager(ListeningService):
    """Listens for slaves on the configured PB port through a Cred portal (its `Listener`
    child), and moves the port when a reconfig changes it or its backlog."""

    name = "pbmanager"

    def __init__(self, master: IPBMaster):
        super().__init__()
        self.master = master
        self.trimmer: HeapTrimmer | None = None
        # Failed slave logins per slave name and per address; kept across reconfigs and ports.
        self.login_limiter = LoginLimiter(master.reactor)
        # The ports of PBChangeSources that have their own (most configurations have none).
        self.change_ports = ChangeSourcePorts(master.reactor, self.make_factory)
        self.change_ports.setServiceParent(self)

    def make_factory(self, change_port: str | None = None) -> pb.PBServerFactory:
        """The PB factory: the Dispatcher realm guarded by the slave password checker; for
        ``change_port`` (a PBChangeSource's own port), a checker of its change logins only."""
        if self.trimmer is None:
            self.trimmer = HeapTrimmer(self.master.reactor)
        dispatcher = Dispatcher(self.master.botmaster, trimmer=self.trimmer,
                                add_change=self.master.scheduler.add_change, clock=self.master.reactor)
        if change_port is None:
            checker = SlavePasswordChecker(self._password, self.login_limiter, self._change_source)
        else:
            checker = SlavePasswordChecker(lambda name: None, self.login_limiter,
                                           lambda name: self._change_source(name, change_port))
        portal = Portal(dispatcher, [checker])
        gate = LoginGate(self.master.reactor, self._limits)
        return SlaveServerFactory(portal, gate, self._limits)

    def _limits(self) -> PBLimits:
        return self.master.config.pb_limits

    def _password(self, name: str) -> str | None:
        slave = self.master.config.slaves.get(name)
        return slave.password if slave else None

    def _change_source(self, name: str, change_port: str | None = None) -> PBChangeSource | None:
        config = self.master.config
        return change_source_for(config.change_sources, name, config.pb_port, change_port)

    def startService(self):  # noqa: N802
        """Start listening; the Deferred fails (with the reason) when the port cannot be had."""
        super().startService()
        return defer.ensureDeferred(self.reconfigService(self.master.config))

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        """Listen on ``new_config.pb_port`` with its backlog; a change moves the listener."""
        description = with_backlog(new_config.pb_port, new_config.listen_backlog)
        await self.listen_on(self.master.reactor, description, self.make_factory, "slaves (PB)")
        await self.change_ports.reconfigService(new_config)

    def stopService(self):  # noqa: N802
        """Stop accepting new slaves (attached ones stay until the BotMaster lets them go)."""
        if self.trimmer is not None:
            self.trimmer.stop()
        return super().stopService()
