"""How the build logic (the BotMaster, builds and their steps) sees the master.

``IProcessMaster`` names every attribute of the master that ``master/process/`` reads;
``ISchedulers`` and ``IEnabledSlaves`` name what it asks of two services above it (the
schedulers and the SlaveAPI), which it may not import.  ``BuildMaster`` provides
``IProcessMaster``; tests check it, and the doubles they use, with ``verifyObject``.
"""

from zope.interface import Attribute, Interface


class ISchedulers(Interface):
    """The schedulers as builds see them (``master.scheduler``)."""

    def buildrequest_finished(buildrequest):
        """A build request (its database row) completed or was cancelled: complete its
        buildset, wake the Trigger steps waiting for it, start Dependent schedulers.
        Returns nothing and never raises."""

    def check_remote_completions():
        """With several masters: look for buildsets other masters completed that a Trigger
        step here waits for (a coroutine)."""

    def trigger(scheduler_name, properties, parent_buildid):
        """Trigger a Triggerable scheduler (a coroutine): ``(bsid, {builderid: brid},
        results)``, ``results`` a Deferred firing with the buildset's results.  Raises a
        ``KeyError`` naming the scheduler when no Triggerable of that name runs."""

    def cancel_requests(brids, reason):
        """Cancel build requests (a coroutine): waiting ones complete as CANCELLED, running
        builds of them are stopped with ``reason``."""


class IEnabledSlaves(Interface):
    """Which slaves the fleet lets take builds (``master.slaveapi``: its disable action)."""

    def is_enabled(name):
        """Whether slave ``name`` may take new builds (answers at once, no I/O)."""


class IMissingSlaves(Interface):
    """The slaves gone longer than their ``missing_timeout`` (``master.botmaster.missing``):
    what the status reads and what reporters listen to (Worker's ``notify_on_missing``)."""

    def is_missing(name):
        """Whether configured slave ``name`` is missing now (answers at once)."""

    def missing():
        """``{name: SlaveMissing}`` of the slaves missing now."""

    def subscribe(listener):
        """Call ``listener(SlaveMissing)`` each time a slave becomes missing (its ``name``,
        ``gone_since``, ``missing_timeout`` and ``notify``, the addresses of its
        ``notify_on_missing``); returns a function that unsubscribes it.  A listener's error
        (raised, or a Deferred that fails) is logged, never propagated."""


class IProcessMaster(Interface):
    """The master as the BotMaster, its builds and their steps see it."""

    reactor = Attribute("The master's clock (IReactorTime): every time and timeout of a build.")
    basedir = Attribute("The master's folder: master-side paths of transfer steps are relative to it.")
    masterid = Attribute("This master's id in the database (set at start-up, before any build).")
    config = Attribute("The running MasterConfig: builders, slaves, properties, ping timeouts, "
                       "collapse_requests, multi_master.")
    db = Attribute("The DBConnector: builders, buildrequests, builds, steps, logs and slaves tables.")
    botmaster = Attribute("The BotMaster: its ``locks`` (a LockManager) serve the steps of every build.")
    scheduler = Attribute("The schedulers (ISchedulers): told when build requests finish.")
    slaveapi = Attribute("Which slaves may take builds (IEnabledSlaves).")
    metrics = Attribute("The master's MasterMetrics: builds started and finished, log bytes.")
    logbus = Attribute("The master's LogBus: log lines and build changes pushed to live viewers.")
    buildevents = Attribute("The master's BuildEvents: builds and steps started and finished, "
                            "published once in the database (live pages and reporters listen).")
    mq = Attribute("The master's event bus (master/mq/interfaces.py IEventBus): build-started, "
                   "step-finished, build-finished (the last through the outbox in its transaction).")
