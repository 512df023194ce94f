"""``reboot``: restart the slave machine, escalating through its out-of-band channels.

Each method in ``REBOOT_METHODS`` is tried in order when the slave has that channel (and
this master implements it); a method that is missing is skipped, saying so.  No channel
exists yet, so for now every method is skipped and the action fails.
"""

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed
from buildfarm.master.slaveapi.channels.interfaces import REBOOT, ChannelError

# (channel name, what the method does), in escalation order.
REBOOT_METHODS = (
    ("ssh", "reboot over ssh"),
    ("bmc", "power cycle through the IPMI management controller"),
    ("pdu", "power cycle at the PDU outlet"),
    ("mozpool", "reboot through Mozpool"),
    ("bugzilla", "file a bug asking a human to reboot it"),
)
REBOOT_DEADLINE_S = 600.0


async def reboot_slave(ctx: ActionContext) -> None:
    """Try each reboot method in turn; raise ``ActionFailed`` when none worked."""
    for channel_name, what in REBOOT_METHODS:
        channel = ctx.runner.channels.get(channel_name)
        configured = ctx.location is not None and channel_name in ctx.location.channels
        if channel is None or not configured or not channel.configured_for(ctx.location):
            why = " (configured, but this master has no such channel yet)" if configured else ""
            ctx.say(f"{what}: slave has no {channel_name} channel{why}; skipped")
            continue
        ctx.say(f"{what}: trying")
        try:
            await channel.perform(REBOOT, ctx.location, ctx.say, ctx.clock, REBOOT_DEADLINE_S)
        except ChannelError as e:
            ctx.say(f"{what}: failed: {e}")
            continue
        ctx.say(f"{what}: done")
        return
    raise ActionFailed("no reboot method worked")


class Reboot(Action):
    name = "reboot"
    description = "reboot the machine: ssh, then IPMI, PDU, Mozpool, then a bug"

    async def run(self, ctx: ActionContext) -> None:
        await reboot_slave(ctx)
