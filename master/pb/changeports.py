"""``ChangeSourcePorts``: the PB ports of the ``PBChangeSource``\\ s that have a port of their own.

A ``PBChangeSource`` without a ``port`` (or with the PB port) takes its logins on the slaves'
port.  One with a port of its own gets a PB listener there, under the same login gate,
limits and Dispatcher realm as the slaves' port, whose checker knows only the change sources
of that port: no slave can log in on it.  A reconfig opens the ports that appear and closes
those that go.
"""

from twisted.application import service
from twisted.internet import defer

from buildfarm.master.changes.pb import own_ports
from buildfarm.master.listener import ListeningService

LABEL = "change source (PB)"


class ChangeSourcePorts(service.MultiService):
    """One `ListeningService` per own port of the configured PBChangeSources."""

    name = "change source ports"

    def __init__(self, reactor, make_factory):
        """``make_factory(description)``: the PB factory of the change port ``description``."""
        super().__init__()
        self.reactor = reactor
        self._make_factory = make_factory
        self.ports: dict[str, ListeningService] = {}

    async def reconfigService(self, new_config) -> None:  # noqa: N802 - Twisted's name
        """Listen on each own port of ``new_config``'s PBChangeSources; stop the others."""
        wanted = own_ports(new_config.change_sources, new_config.pb_port)
        for description in [d for d in self.ports if d not in wanted]:
            await defer.maybeDeferred(self.ports.pop(description).disownServiceParent)
        for description in wanted:
            if description in self.ports:
                continue
            port = ListeningService()
            port.setName(f"{LABEL} {description}")
            port.setServiceParent(self)
            self.ports[description] = port
            await port.listen_on(self.reactor, description, lambda d=description: self._make_factory(d),
                                 LABEL)
