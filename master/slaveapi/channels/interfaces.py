"""``IChannel``: a way to reach a slave that does not go through the master's PB connection.

Each channel (ssh, bmc for IPMI, pdu, mozpool, bugzilla, aws) will live in its own module of
this package and be registered with the ``ActionRunner`` by name.  An action asks each
channel it may use whether the slave's inventory entry configures it, then asks it to
perform an operation, telling the story through ``say``.
"""

from zope.interface import Attribute, Interface

# Operations an action may ask of a channel.
REBOOT = "reboot"              # restart the machine (ssh reboot, IPMI/PDU power cycle)
SHUTDOWN_SLAVE = "shutdown"    # stop the buildslave process (ssh: buildslave stop)
UPTIME = "uptime"              # the machine's uptime in seconds
READ_LOG = "read_log"          # the tail of the slave's twistd.log
FILE_BUG = "file_bug"          # ask a human (bugzilla): kwargs summary, text; answers the bug id
COMMENT_BUG = "comment_bug"    # comment on the slave's bug: kwargs text, reopen (bool)
BUG_STATUS = "bug_status"      # the slave's bug: {"id": int, "is_open": bool} or None
INSTANCE_CREATE = "instance_create"        # aws: kwargs instance_type, email, bug, disambig
INSTANCE_START = "instance_start"          # aws
INSTANCE_STOP = "instance_stop"            # aws
INSTANCE_TERMINATE = "instance_terminate"  # aws


class IChannel(Interface):
    """One out-of-band channel to slaves."""

    name = Attribute("The inventory key of this channel: 'ssh', 'bmc', 'pdu', ...")
    operations = Attribute("The operations it can perform (a frozenset of the names above).")

    def configured_for(location):
        """Whether ``location`` (a ``SlaveLocation``) has settings for this channel."""

    def perform(operation, location, say, clock, deadline_s, **kwargs):
        """Perform ``operation`` on the slave at ``location`` within ``deadline_s`` seconds.

        ``kwargs`` are the operation's own arguments (see the operation names above).

        ``say(line)`` adds a line to the action's story (never a secret).  Returns a
        Deferred firing with the operation's value (True for reboots that happened, the
        uptime in seconds, the log text), or failing with ``ChannelError`` saying why.
        """


class ChannelError(Exception):
    """A channel could not do what it was asked; the message says what was seen."""


class IChannelHost(Interface):
    """What a channel sees of the SlaveAPI that made it (the ``ActionRunner``)."""

    reactor = Attribute("The master's reactor: the connections a channel makes, and the time of "
                        "the tools it runs.")
    basedir = Attribute("The master's base directory: relative paths in the inventory (ssh keys, "
                        "known_hosts) are relative to it.")
