"""The actions the SlaveAPI offers, one module each, by name (and alias)."""

from buildfarm.master.slaveapi.actions.aws import (
    AWSCreateInstance,
    AWSStartInstance,
    AWSStopInstance,
    AWSTerminateInstance,
)
from buildfarm.master.slaveapi.actions.base import Action
from buildfarm.master.slaveapi.actions.buildslave_last_activity import BuildslaveLastActivity
from buildfarm.master.slaveapi.actions.buildslave_uptime import BuildslaveUptime
from buildfarm.master.slaveapi.actions.disable import Disable
from buildfarm.master.slaveapi.actions.enable import Enable
from buildfarm.master.slaveapi.actions.reboot import Reboot
from buildfarm.master.slaveapi.actions.shutdown_buildslave import ShutdownBuildslave

ACTION_CLASSES: tuple[type[Action], ...] = (
    ShutdownBuildslave, BuildslaveLastActivity, BuildslaveUptime, Disable, Enable, Reboot,
    AWSCreateInstance, AWSStartInstance, AWSStopInstance, AWSTerminateInstance,
)


def action_table() -> dict[str, Action]:
    """Every action by its name and by each of its aliases."""
    table: dict[str, Action] = {}
    for cls in ACTION_CLASSES:
        action = cls()
        for name in (action.name, *action.aliases):
            table[name] = action
    return table
