"""``SlaveEventsBridge``: the BotMaster's slave listener that publishes ``slave-attached`` and
``slave-detached`` (the BotMaster tells its listeners once the attach is recorded, and as the
slave's connection goes)."""

from twisted.logger import Logger

from buildfarm.master.mq import events
from buildfarm.master.mq.interfaces import IMQMaster

log = Logger()


class SlaveEventsBridge:
    """One of ``BotMaster.slave_listeners``."""

    def __init__(self, master: IMQMaster) -> None:
        self.master = master

    def slave_attached(self, slave) -> None:
        self._publish(events.slave_attached, slave.name)

    def slave_detached(self, slave) -> None:
        self._publish(events.slave_detached, slave.name)

    def slot_freed(self, slave) -> None:
        """Not an event of the bus."""

    def _publish(self, make, name: str) -> None:
        bus = self.master.mq
        d = events.publish(bus, make(bus, name, self.master.masterid, self.master.reactor.seconds()))
        d.addErrback(lambda f: log.failure("publishing the event of slave {name} failed", f, name=name))
