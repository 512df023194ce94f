"""``BuildSlave``: the master's perspective of one attached slave.

The BotMaster creates one per successful login and runs ``attach`` (PROTOCOL section 3)
before the realm hands it to PB.  Afterwards it keeps the slave honest: it pings the slave
on an interval with a deadline and drops it when no answer comes, answers the slave's own
keepalives, and tells the BotMaster when the connection is gone (``detached``).
"""

import sys

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.spread import pb

from buildfarm.common.decoding import as_text
from buildfarm.master.pb.deadline import DeadlineExceeded, call_with_deadline, remote_failure_is
from buildfarm.master.pb.interfaces import ISlaveRoster
from buildfarm.master.pb.logingate import describe_peer
from buildfarm.master.pb.pingqueue import ping_queue

log = Logger()

ATTACH_CALL_TIMEOUT_S = 60.0
NO_SUCH_METHOD = ("NoSuchMethod", "AttributeError")
# The builder a slave with a task pool gets in its builder list: the task engine runs its
# commands through it (in its builddir on the slave).  Not a configured builder.
TASKS_BUILDER, TASKS_BUILDDIR = "_tasks", "_tasks"
CONNECTION_ERRORS = (pb.PBConnectionLost, pb.DeadReferenceError, DeadlineExceeded)


class MasterSideBuilderReference(pb.Referenceable):
    """What ``SlaveBuilder.setMaster`` receives: old slaves keep it, newer ones ignore it."""


class BuildSlave(pb.Avatar):
    """One attached slave: its mind (the slave's ``Bot``), info and builder references."""

    def __init__(self, name: str, botmaster: ISlaveRoster, clock: IReactorTime, ping_interval: float,
                 ping_timeout: float):
        self.name = name
        self.botmaster = botmaster
        self.clock = clock
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.mind = None
        self.info: dict = {}  # what the slave reported, less NOT_KEPT_INFO
        self.reported_info: dict | None = None  # all of it, until the attach is recorded
        self.version: str | None = None
        self.commands: dict = {}
        self.remote_builders: dict = {}
        self.builder_list: list[tuple[str, str]] = []  # what setBuilderList last sent
        self.attached = False
        self.shutting_down = False
        self.tasks_running = 0  # tries of tasks (master/tasks) running on it now
        self.last_seen: float | None = None
        self.peer = "?"
        self._ping_due: float | None = None  # when the next ping is due (in the clock's PingQueue)
        self._detach_waiters: list[defer.Deferred] = []

    # -- attach sequence -------------------------------------------------------------------

    async def attach(self, mind, builders: list[tuple[str, str]]) -> None:
        """Run the attach sequence: greet, read info, send the builder list.  From its start a
        lost connection calls `detached`, even before PB's login completes."""
        self.mind = mind
        self.peer = _peer_of(mind)
        broker = getattr(mind, "broker", None)
        if broker is not None:
            if broker.disconnected:
                raise pb.PBConnectionLost(f"slave {self.name} left before attaching")
            broker.notifyOnDisconnect(self._connection_lost)
        self.attached = True
        await self._call(mind, "print", "attached")
        await self._read_info()
        await self.set_builder_list(builders)
        self.last_seen = self.clock.seconds()

    async def _call(self, remote, method: str, *args):
        return await call_with_deadline(self.clock, ATTACH_CALL_TIMEOUT_S, remote, method, *args)

    async def _read_info(self) -> None:
        try:
            info = await self._call(self.mind, "getWorkerInfo")
        except pb.RemoteError as e:
            if not remote_failure_is(e, *NO_SUCH_METHOD):
                raise
            info = await self._tolerant("getSlaveInfo") or {}
            info["slave_commands"] = await self._tolerant("getCommands") or {}
            info["version"] = await self._tolerant("getVersion")
        info = {_shared(as_text(k)): _shared(v) for k, v in dict(info or {}).items()}
        # The whole report goes to the database once (the API and the pages read it there);
        # the slave's environment, the bulk of it, is not kept in memory.
        self.reported_info = info
        self.info = {k: v for k, v in info.items() if k not in NOT_KEPT_INFO}
        key = "worker_commands" if self.info.get("worker_commands") else "slave_commands"
        commands = self.info.get(key) or {}
        self.commands = {_shared(as_text(k)): _shared(as_text(v)) for k, v in commands.items()}
        if key in self.info:
            self.info[key] = self.commands  # one dict of commands per slave, not two
        version = self.info.get("version")
        self.version = as_text(version) if version is not None else None

    async def _tolerant(self, method: str):
        try:
            return await self._call(self.mind, method)
        except pb.RemoteError as e:
            if remote_failure_is(e, *NO_SUCH_METHOD):
                return None
            raise

    async def set_builder_list(self, builders: list[tuple[str, str]]) -> None:
        """Send the complete builder list; greet each SlaveBuilder reference it returns."""
        self.builder_list = [tuple(b) for b in builders]
        refs = await self._call(self.mind, "setBuilderList", [list(b) for b in builders])
        self.remote_builders = {as_text(name): ref for name, ref in dict(refs or {}).items()}
        for ref in self.remote_builders.values():
            for method, arg in (("setMaster", MasterSideBuilderReference()), ("print", "attached")):
                try:
                    await self._call(ref, method, arg)
                except pb.RemoteError:
                    pass  # old or new slaves may lack either; neither is required

    # -- liveness --------------------------------------------------------------------------

    def start_pinging(self) -> None:
        """Ping the slave every ``ping_interval`` seconds (counted from the end of the last
        ping); drop it when a ping times out.  An idle slave costs one entry in its clock's
        PingQueue (no DelayedCall of its own, no Deferred while idle)."""
        if self._ping_due is None and self.attached:
            self._ping_due = ping_queue(self.clock).add(self.ping_interval, self)

    def ping_due(self, due: float) -> None:
        """The PingQueue's call: ping now, unless that entry was given up (detached)."""
        if self._ping_due != due or not self.attached:
            return
        self._ping_due = None
        d = self._ping_or_drop()
        d.addErrback(lambda f: log.failure("pinging slave {name} failed", f, name=self.name))
        d.addCallback(lambda _: self.start_pinging())

    async def ping(self, timeout: float) -> bool:
        """Whether the slave answers ``print`` within ``timeout`` seconds."""
        if not self.attached:
            return False
        try:
            await call_with_deadline(self.clock, timeout, self.mind, "print", "ping")
        except (*CONNECTION_ERRORS, pb.RemoteError):
            return False
        self.last_seen = self.clock.seconds()
        return True

    def _ping_or_drop(self):
        async def check():
            if not await self.ping(self.ping_timeout) and self.attached:
                log.warn(
                    "slave {name} did not answer a ping within {t} s; dropping its connection",
                    name=self.name, t=self.ping_timeout,
                )
                self.disconnect()

        return defer.ensureDeferred(check())

    def perspective_keepalive(self):  # noqa: N802 - PB's naming
        """The slave's keepalive: no arguments, answers None."""
        self.last_seen = self.clock.seconds()

    def perspective_shutdown(self):  # noqa: N802
        """The slave asks to be shut down gracefully: no new builds, stop once idle."""
        log.info("slave {name} asked for a graceful shutdown", name=self.name)
        self.shutting_down = True
        self.botmaster.maybe_shut_down_slave(self)

    async def shutdown(self) -> None:
        """Tell the slave to stop (``Bot.shutdown``, else each SlaveBuilder's ``shutdown``)."""
        try:
            await self._call(self.mind, "shutdown")
        except pb.RemoteError as e:
            if not remote_failure_is(e, *NO_SUCH_METHOD):
                raise
            for ref in self.remote_builders.values():
                await self._call(ref, "shutdown")
        except CONNECTION_ERRORS:
            pass  # a connection lost during shutdown means it worked

    # -- detach ----------------------------------------------------------------------------

    def disconnect(self) -> None:
        """Drop the connection at once; ``detached`` follows when PB notices."""
        transport = getattr(getattr(self.mind, "broker", None), "transport", None)
        if transport is None:
            return
        if hasattr(transport, "abortConnection"):
            transport.abortConnection()
        else:
            transport.loseConnection()

    def wait_detached(self) -> defer.Deferred:
        """A Deferred that fires once this connection is fully torn down (its detach recorded,
        or its failed attach cleaned up), so its slave's name is free for another connection."""
        if self.released:
            return defer.succeed(None)
        d: defer.Deferred = defer.Deferred()
        self._detach_waiters.append(d)
        return d

    def _connection_lost(self) -> None:
        self.detached(self.mind)

    def login_completed(self) -> None:
        """The attach is done and PB's logout callback (`detached`) takes over from the
        attach's own disconnect notice (one callback per slave instead of two)."""
        broker = getattr(self.mind, "broker", None)
        if broker is not None and not broker.disconnected:
            broker.dontNotifyOnDisconnect(self._connection_lost)

    def detached(self, mind) -> None:
        """The connection is gone (PB's logout callback, or its disconnect notice)."""
        if mind is not self.mind or not self.attached:
            return
        self.attached = False
        self._ping_due = None  # its PingQueue entry is ignored when it comes due
        self.botmaster.slave_detached(self)

    released = False

    def release(self) -> None:
        """The BotMaster is done with this connection: `wait_detached` fires."""
        self.released = True
        waiters, self._detach_waiters = self._detach_waiters, []
        for d in waiters:
            d.callback(None)


NOT_KEPT_INFO = frozenset({"environ"})  # reported info only the database keeps

# Per-slave memory: every slave sends the same info keys, command names and versions; one
# shared copy of each short text instead of one per slave (interned strings go away with
# their last user).
SHARED_TEXT_MAX = 64


def _shared(value):
    """``value`` interned when it is a short str; anything else unchanged."""
    if type(value) is str and len(value) <= SHARED_TEXT_MAX:
        return sys.intern(value)
    return value


def _peer_of(mind) -> str:
    return describe_peer(getattr(getattr(mind, "broker", None), "transport", None))
