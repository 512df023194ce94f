"""Out-of-band channels to slaves (``IChannel`` providers), one module each.

``channel_table(runner)`` builds one instance of each channel this master has, by its
inventory name.  A channel module that cannot be imported (say, a library it needs is not
installed) is left out with a log line; actions then skip that channel, saying so.
"""

import importlib

from twisted.logger import Logger

log = Logger()

# inventory name -> "module:Class"; each class is built as ``Class(runner)``.
CHANNEL_CLASSES = {
    "ssh": "buildfarm.master.slaveapi.channels.ssh:SSHChannel",
    "mozpool": "buildfarm.master.slaveapi.channels.mozpool:MozpoolChannel",
    "bmc": "buildfarm.master.slaveapi.channels.ipmi:IPMIChannel",
    "pdu": "buildfarm.master.slaveapi.channels.pdu:PDUChannel",
    "bugzilla": "buildfarm.master.slaveapi.channels.bugzilla:BugzillaChannel",
    "aws": "buildfarm.master.slaveapi.channels.aws:AWSChannel",
}


def channel_table(runner) -> dict:
    """Every channel this master can use, by inventory name; each sees ``runner`` (the
    ``ActionRunner``) as its ``IChannelHost``."""
    table = {}
    for name, where in CHANNEL_CLASSES.items():
        module_name, class_name = where.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except ImportError as e:
            log.warn("SlaveAPI: the {name} channel is not available: {e}", name=name, e=e)
            continue
        table[name] = cls(runner)
    return table
