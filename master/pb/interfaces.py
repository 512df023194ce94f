"""How the PB layer (the slave port, logins, the master's perspective of a slave) sees the master.

``IPBMaster`` names what ``master/pb/`` reads of the master; ``ISlaveRoster`` names what it
asks of the BotMaster, which lives above it (in process) and which pb may not import.
``BuildMaster`` provides ``IPBMaster`` and ``BotMaster`` ``ISlaveRoster``; tests check both,
and the doubles they use, with ``verifyObject``.
"""

from zope.interface import Attribute, Interface


class ISlaveRoster(Interface):
    """Who keeps the attached slaves: the PB layer hands it every login and every loss."""

    def slave_attaching(name, mind):
        """Slave ``name`` proved its password on a connection whose remote root is ``mind``:
        run its attach sequence (a coroutine) and return its perspective, a ``BuildSlave``.
        Fails (the login fails) when it cannot attach, e.g. a live duplicate."""

    def slave_detached(slave):
        """The connection of ``slave`` (a ``BuildSlave``) is gone."""

    def maybe_shut_down_slave(slave):
        """``slave`` finished a build: if it is shutting down gracefully and idle, stop it."""


class IPBMaster(Interface):
    """The master as the slave port and its logins see it."""

    reactor = Attribute("The master's reactor: the port's clock (login deadlines, pings) and listener.")
    config = Attribute("The running MasterConfig: ``slaves`` (passwords), ``change_sources`` "
                       "(PBChangeSource logins), ``pb_limits``, ``pb_port`` and ``listen_backlog``.")
    botmaster = Attribute("Who takes the slaves that log in (ISlaveRoster).")
    scheduler = Attribute("Who takes the changes of ``buildbot sendchange`` logins: "
                          "``add_change(**change)``, a coroutine answering the change's id.")
