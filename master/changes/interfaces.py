"""What the ``ChangeSourceManager`` asks of a change source, and what a change source may use
of the master.

A change source is a Twisted service (``IService``) in ``c['change_source']``.  The manager
gives it the master (``activate``) before making it its child, and compares configured
sources with ``config_fingerprint`` on a reconfig: an unchanged source keeps running.  It
reports each change with ``master.scheduler.add_change(**fields)`` (``db.changes.add``'s
arguments), as the change API does.
"""

from zope.interface import Attribute, Interface


class IChangeSource(Interface):
    """A configured source of changes (a poller, a PB change source, ...)."""

    name = Attribute("unique among the change sources of the configuration")

    def activate(master) -> None:
        """Run against ``master`` (an ``IChangeSourceMaster``) once started."""

    def config_fingerprint():
        """A comparable summary of the configuration: equal means unchanged."""

    def config_problems() -> list[str]:
        """What is wrong with the arguments (checkconfig reports each one)."""

    def no_effect_args() -> list[str]:
        """The arguments given that have no effect (checkconfig warns about each one)."""


class IPollingChangeSource(IChangeSource):
    """A change source that polls (GitPoller, HgPoller, SVNPoller): it can be made to poll now
    (``POST /api/v1/changesources/<name>/poll``, the ``poller`` change hook)."""

    def poll_now():
        """Poll now; a Deferred firing with ``poll_status()`` once a poll that started after
        the call has finished (it fails only when the source is not running)."""

    def poll_status() -> dict:
        """``polling``, ``last_poll``, ``last_error``, ``polled_here``, ``next_poll``,
        ``poll_interval`` (master/changes/base.py)."""


class IChangeSourceMaster(Interface):
    """What a change source uses of the master."""

    reactor = Attribute("IReactorTime (and, on a real master, IReactorProcess)")
    basedir = Attribute("the master's base directory (pollers' workdirs are relative to it)")
    db = Attribute("the DBConnector: ``state`` (state and claims), ``changes``")
    config = Attribute("the running MasterConfig: ``multi_master``, ``change_sources``")
    masterid = Attribute("this master's id in the shared database")
    scheduler = Attribute("the SchedulerManager: ``add_change(**fields)``")
