"""``IClusterMaster``: the master as its liveness and wake-up services (master/cluster/) see it."""

from zope.interface import Attribute, Interface


class IClusterMaster(Interface):
    """What the liveness service reads of the master."""

    reactor = Attribute("The master's clock (``IReactorTime``): heartbeats and their timestamps.")
    basedir = Attribute("The master's directory: a relative SQLite path of ``c['db']`` is relative to it.")
    masterid = Attribute("This master's row in ``masters`` (set by the recovery service before).")
    config = Attribute("The ``MasterConfig``: ``multi_master_settings`` (heartbeat, dead after).")
    db = Attribute("The ``DBConnector``: ``db.masters`` writes heartbeats and reclaims dead masters.")
    botmaster = Attribute("The BotMaster: ``maybe_start_builds()`` once requests were reclaimed, or "
                          "another master told of new ones (wakeups).")
    slaveapi = Attribute("The SlaveAPI runner: ``pick_up_addressed()`` runs the actions another master "
                         "recorded for a slave attached here (wakeups).")
    mq = Attribute("The event bus (``IEventBus``): with the broker's wake-ups, its ``request-submitted`` "
                   "messages of other masters wake the BotMaster.")
    tasks = Attribute("The task engine: ``end_tries_lost_with_master(tries)`` ends a dead master's tries.")
