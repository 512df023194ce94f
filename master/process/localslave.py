"""Slaves inside the master: ``LocalSlaves`` attaches each configured ``LocalSlaveConfig``
(a configurator's, such as the janitor's) to the BotMaster through an in-process connection.

Such a slave runs builds like any other (a build row, steps, logs, the builds list), but only
steps that do their work on the master (the janitor's steps, which use the database): it runs
no remote command, and a step that asks for one ends in EXCEPTION saying so.  It never logs in
over PB: it has no password, so the PB port refuses its name.
"""

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger

from buildfarm.master.pb.remotecommand import RemoteCommandFailed
from buildfarm.master.process.interfaces import IProcessMaster

log = Logger()

LOCAL_SLAVE_VERSION = "buildfarm-local"


class _LocalReference:
    """An in-process stand-in for a PB reference: ``callRemote(method, ...)`` calls
    ``remote_<method>`` and answers a Deferred, as PB does."""

    def callRemote(self, method: str, *args):  # noqa: N802 - PB's name
        handler = getattr(self, f"remote_{method}", None)
        if handler is None:
            return defer.fail(RemoteCommandFailed(f"{self.describe()} has no method {method!r}"))
        return defer.maybeDeferred(handler, *args)

    def notifyOnDisconnect(self, callback) -> None:  # noqa: N802 - PB's name
        """Never disconnected: nothing to notify."""

    def dontNotifyOnDisconnect(self, callback) -> None:  # noqa: N802
        """Never disconnected: nothing to forget."""

    def describe(self) -> str:
        raise NotImplementedError


class LocalSlaveBuilder(_LocalReference):
    """A local slave's place on one builder: builds start, commands are refused."""

    def __init__(self, slave: str, builder: str):
        self.slave = slave
        self.builder = builder

    def describe(self) -> str:
        return f"the master's local slave {self.slave}"

    def remote_print(self, message) -> None:
        """Greetings from the master: nothing to print."""

    def remote_setMaster(self, master) -> None:  # noqa: N802 - the slave protocol's name
        """The master's builder reference: a local slave does not call back."""

    def remote_startBuild(self) -> None:  # noqa: N802
        """A build starts: nothing to prepare."""

    def remote_startCommand(self, command, command_id, name, args):  # noqa: N802
        raise RemoteCommandFailed(f"{self.describe()} runs no commands ({name!r}): only steps that run on "
                                  "the master can run on it")


class LocalSlaveConnection(_LocalReference):
    """The "mind" of a local slave: the attach sequence, pings and builder references."""

    def __init__(self, name: str):
        self.name = name
        self.builders: dict[str, LocalSlaveBuilder] = {}

    def describe(self) -> str:
        return f"the master's local slave {self.name}"

    def remote_print(self, message) -> None:
        """Pings and greetings: a local slave always answers."""

    def remote_getWorkerInfo(self) -> dict:  # noqa: N802 - the slave protocol's name
        return {"admin": "the master itself", "host": "(inside the master)", "version": LOCAL_SLAVE_VERSION,
                "worker_commands": {}}

    def remote_setBuilderList(self, builders) -> dict:  # noqa: N802
        self.builders = {name: self.builders.get(name) or LocalSlaveBuilder(self.name, name)
                         for name, _builddir in builders}
        return dict(self.builders)

    def remote_shutdown(self) -> None:
        """A local slave lives as long as the master: nothing to stop."""


class LocalSlaves(service.Service):
    """Attaches the configured local slaves to the BotMaster once it has its builders, and the
    ones a reconfig adds (the BotMaster drops those a reconfig removes, as for any slave)."""

    name = "localslaves"

    def __init__(self, master: IProcessMaster):
        self.master = master

    def startService(self):  # noqa: N802
        super().startService()
        return defer.ensureDeferred(self.reconfigService(self.master.config))

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        botmaster = self.master.botmaster
        wanted = {name for name, slave in new_config.slaves.items() if slave.local}
        self._detach(set(self._attached()) - wanted)
        for name in sorted(wanted - set(botmaster.slaves)):
            await botmaster.slave_attaching(name, LocalSlaveConnection(name))
            log.info("local slave {name} runs inside the master", name=name)

    def stopService(self):  # noqa: N802
        """The local slaves detach (their detach is recorded like any slave's)."""
        self._detach(set(self._attached()))
        return super().stopService()

    def _attached(self) -> dict:
        """The attached slaves whose connection is a local one, by name."""
        return {name: slave for name, slave in self.master.botmaster.slaves.items()
                if isinstance(slave.mind, LocalSlaveConnection)}

    def _detach(self, names: set[str]) -> None:
        attached = self._attached()
        for name in sorted(names):
            attached[name].detached(attached[name].mind)  # what PB's logout callback does
