"""How the event bus is seen: ``IEventBus`` (what publishers and subscribers call), and how
the outbox publisher sees the master (``IMQMaster``)."""

from zope.interface import Attribute, Interface


class IEventBus(Interface):
    """Topic exchanges in the AMQP sense: a message goes to an exchange with a dotted routing
    key; a subscriber names an exchange and a pattern where ``*`` is one word and ``#`` zero
    or more words."""

    outboxed = Attribute(
        "True when published messages also go to the broker through the ``mq_outbox`` table: a "
        "caller that changes state in a transaction then writes its messages in that same "
        "transaction (``buildfarm.master.db.outbox.add``) and hands them to ``published``.")

    def publish(exchange, routing_key, payload):
        """Deliver ``payload`` (a JSON-able dict) to this master's subscribers of ``exchange``
        whose pattern matches ``routing_key``, and, when ``outboxed``, write it to the outbox
        (its own transaction) for the broker.  Returns a Deferred that fires once the message
        is safe (in the outbox, or delivered in-process)."""

    def message(exchanges, exchange, payload):
        """The ``Message`` of a declared ``exchange`` of ``exchanges`` (an ``ExchangeSet``) for
        ``payload``: named with this bus's exchange prefix, a new ``eventId`` added."""

    def exchange_name(exchanges, exchange):
        """A declared exchange's full name (``exchange/buildfarm/v1/build-finished``)."""

    def published(messages):
        """``messages`` (``Message``s) were written to the outbox by the caller's own
        transaction: deliver them to this master's subscribers and wake the publisher."""

    def subscribe(exchange, pattern, callback):
        """Call ``callback(Message)`` for each message of ``exchange`` whose routing key
        matches ``pattern`` from now on; returns the function that unsubscribes.  A callback's
        error (raised, or a failed Deferred) is logged, never propagated to the publisher."""


class IMQMaster(Interface):
    """What the event bus and its publisher read of the master."""

    reactor = Attribute("The master's reactor (time, connections).")
    db = Attribute("The DBConnector: ``db.outbox`` holds the messages not yet confirmed by the broker.")
    config = Attribute("The running MasterConfig: ``mq`` (``MQSettings``).")
    mq = Attribute("The master's IEventBus.")
    masterid = Attribute("This master's id in the database (the events' ``masterId``).")
