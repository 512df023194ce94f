"""``PBManager``: the master's PB listener for slaves."""

from twisted.application import service
from twisted.cred.portal import Portal
from twisted.internet import endpoints
from twisted.logger import Logger
from twisted.spread import banana, pb

from buildfarm.common.pbwire import FastBanana
from buildfarm.master.auth.ratelimit import LoginLimiter
from buildfarm.master.pb.dispatcher import Dispatcher, SlavePasswordChecker
from buildfarm.master.pb.heap import HeapTrimmer

log = Logger()


class KeepAliveBroker(FastBanana, pb.Broker):
    """A PB broker whose socket has TCP keepalive on, against half-open connections, and
    which decodes large messages (upload blocks) without re-copying them per socket read."""

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


class SlaveServerFactory(pb.PBServerFactory):
    """The PB server factory for slave logins."""

    protocol = KeepAliveBroker


def with_backlog(description: str, backlog: int) -> str:
    """A TCP server endpoint description with a listen backlog (unless it names one)."""
    if description.split(":", 1)[0] in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return f"{description}:backlog={backlog}"
    return description


class PBManager(service.Service):
    """Listens for slaves on the configured PB port through a Cred portal."""

    name = "pbmanager"

    def __init__(self, master):
        self.master = master
        self.port = None
        self.trimmer: HeapTrimmer | None = None
        # Failed slave logins per slave name and per address; kept across reconfigs and ports.
        self.login_limiter = LoginLimiter(master.reactor)

    def make_factory(self) -> pb.PBServerFactory:
        """The PB factory: the Dispatcher realm guarded by the slave password checker."""
        if self.trimmer is None:
            self.trimmer = HeapTrimmer(self.master.reactor)
        dispatcher = Dispatcher(self.master.botmaster, trimmer=self.trimmer)
        portal = Portal(dispatcher, [SlavePasswordChecker(self._password, self.login_limiter)])
        return SlaveServerFactory(portal)

    def _password(self, name: str) -> str | None:
        slave = self.master.config.slaves.get(name)
        return slave.password if slave else None

    async def listen(self) -> None:
        """Start listening; fails (with the reason) when the port cannot be had."""
        config = self.master.config
        description = with_backlog(config.pb_port, config.listen_backlog)
        endpoint = endpoints.serverFromString(self.master.reactor, description)
        self.port = await endpoint.listen(self.make_factory())
        log.info("listening for slaves on {port}", port=config.pb_port)

    async def stop_listening(self) -> None:
        """Stop accepting new slaves (attached ones stay until the BotMaster lets them go)."""
        if self.port is not None:
            port, self.port = self.port, None
            await port.stopListening()
        if self.trimmer is not None:
            self.trimmer.stop()

    def stopService(self):  # noqa: N802
        super().stopService()
        from twisted.internet import defer

        return defer.ensureDeferred(self.stop_listening())
