"""``SlaveEventsBridge``: the BotMaster's slave listener that publishes ``slave-attached`` and
``slave-detached`` (the BotMaster tells its listeners once the attach is recorded, and as the
slave's connection goes).

On an outboxed bus the message is written in the attach's (detach's) own transaction: the
BotMaster asks ``in_transaction`` for what to write with the record, and the listener call
that follows hands that same message to this master's subscribers (``bus.published``)
instead of publishing it again."""

from twisted.logger import Logger

from buildfarm.master.mq import events
from buildfarm.master.mq.exchanges import Message
from buildfarm.master.mq.interfaces import IMQMaster

log = Logger()

MAKERS = {"slave_attached": events.slave_attached, "slave_detached": events.slave_detached}


class SlaveEventsBridge:
    """One of ``BotMaster.slave_listeners``."""

    def __init__(self, master: IMQMaster) -> None:
        self.master = master
        self._written: dict[tuple[str, str], Message] = {}  # (event, slave name): in the outbox

    def in_transaction(self, event: str, name: str, at: float) -> tuple[Message, ...]:
        """What to write to the outbox with the record of ``event`` ("slave_attached" or
        "slave_detached") of slave ``name`` at ``at``: its message when the bus is outboxed,
        nothing otherwise."""
        bus = self.master.mq
        written = events.in_transaction(bus, MAKERS[event](bus, name, self.master.masterid, at))
        if written:
            self._written[event, name] = written[0]
        return written

    def slave_attached(self, slave) -> None:
        self._publish("slave_attached", slave.name)

    def slave_detached(self, slave) -> None:
        self._publish("slave_detached", slave.name)

    def slot_freed(self, slave) -> None:
        """Not an event of the bus."""

    def _publish(self, event: str, name: str) -> None:
        bus = self.master.mq
        written = self._written.pop((event, name), None)
        if written is not None:  # in the outbox with its record already
            bus.published([written])
            return
        message = MAKERS[event](bus, name, self.master.masterid, self.master.reactor.seconds())
        d = events.publish(bus, message)
        d.addErrback(lambda f: log.failure("publishing the event of slave {name} failed", f, name=name))
