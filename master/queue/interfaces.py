"""``IQueueMaster``: the master as the Queue service (master/queue/service.py) sees it."""

from zope.interface import Attribute, Interface


class IQueueMaster(Interface):
    """What the Queue service needs from the master."""

    db = Attribute("The ``DBConnector``: the Queue's tables, and ``db.tasks`` for the engine's tasks.")
    reactor = Attribute("The master's reactor: the reconciler's interval and every date of a run.")
    config = Attribute("The current ``MasterConfig``: ``queue.task_queues`` (c['queue']) and ``tasks``.")
    tasks = Attribute("The ``ITaskEngine`` that runs the Queue's tasks on the PB slaves.")
    auth = Attribute("The ``auth`` service: ``auth.clients`` holds the issuer of HTTP workers' claim "
                     "credentials (master/queue/claimcreds.py).")
    mq = Attribute("The master's ``IEventBus``: the Queue's exchanges (master/queue/events.py).")
    cas = Attribute("The ``CASService``: a payload's mounts and artifacts (master/queue/payload.py).")
