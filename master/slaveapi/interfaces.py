"""``ISlaveAPIMaster``: the master as the SlaveAPI sees it.

The runner, its HTTP resources and its actions read exactly these of the ``BuildMaster``
(master/service.py declares it); nothing else of the master is theirs to touch.  The
channels see even less: the runner as an ``IChannelHost`` (channels/interfaces.py).
"""

from zope.interface import Attribute, Interface


class ISlaveAPIMaster(Interface):
    """The master as the SlaveAPI's runner, resources and actions see it."""

    reactor = Attribute("The master's reactor: the SlaveAPI's time (IReactorTime) and the "
                        "connections its channels make.")
    basedir = Attribute("The master's base directory (ssh key and known_hosts paths are relative to it).")
    masterid = Attribute("This master's id in the database (int; None before start-up has found it).")
    config = Attribute("The running MasterConfig: ``slaves`` (names known to master.cfg), ``slaveapi`` "
                       "(SlaveAPISettings), ``buildbot_url`` and ``www_port`` (a slave page's master_url), "
                       "``www_limits`` (the SlaveAPI port's HTTP limits).")
    db = Attribute("The DBConnector: ``slaveapi`` (results, audit, settings), ``slaves``, ``builds``.")
    botmaster = Attribute("The BotMaster: ``slaves`` (the live BuildSlaves by name), ``builders``, "
                          "``request_slave_shutdown(name)``, ``builds_running_on(slave)``, "
                          "``maybe_start_builds()``, ``wait_for_attach(name)``.")
    auth = Attribute("The auth service: the route table (master/http/routes.py) checks each "
                     "SlaveAPI caller with it.")
    mq = Attribute("The master's event bus (master/mq/interfaces.py IEventBus): action-finished.")


class IActionHost(Interface):
    """The ``ActionRunner`` as an action sees it (``ActionContext.runner``)."""

    channels = Attribute("The channels this master can use, by inventory name (IChannel providers).")

    def note_enabled(name, enabled):
        """Remember at once that slave ``name`` may (or may not) take new builds."""
