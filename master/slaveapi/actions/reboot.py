"""``reboot``: restart the slave machine, escalating from peaceful to merciless.

The methods of ``REBOOT_METHODS`` are tried in order, each only when the slave's inventory
configures that channel (and this master has it); a missing one is skipped, saying so.
After each method the reboot is *verified*: the slave must attach again with a new
connection within ``c['slaveapi']['reboot_timeout']`` seconds (or, when that does not
happen and the slave has ssh, its uptime must have gone down).  When no method worked, the
slave's problem-tracking bug is filed or updated asking a human to reboot it, and the action
fails.  The outcome is commented on the slave's bug when it has one.
"""

from twisted.internet import defer

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed
from buildfarm.master.slaveapi.actions.shutdown_buildslave import graceful_shutdown
from buildfarm.master.slaveapi.channels.interfaces import (
    COMMENT_BUG,
    FILE_BUG,
    REBOOT,
    UPTIME,
    ChannelError,
)

# (channel name, what the method does), in escalation order.
REBOOT_METHODS = (
    ("ssh", "reboot command over ssh"),
    ("mozpool", "power cycle through Mozpool"),
    ("bmc", "chassis power cycle through the IPMI BMC"),
    ("pdu", "power cycle of the PDU outlet over SNMP"),
)
CHANNEL_DEADLINE_S = 120.0
BUG_DEADLINE_S = 60.0


async def uptime_over_ssh(ctx: ActionContext) -> float | None:
    """The machine's uptime through ssh, or None when it cannot be read."""
    channel = ctx.channel("ssh", UPTIME)
    if channel is None:
        return None
    try:
        return float(await channel.perform(UPTIME, ctx.location, lambda line: None, ctx.clock,
                                           ctx.settings.command_timeout))
    except (ChannelError, TypeError, ValueError):
        return None


async def reboot_slave(ctx: ActionContext) -> None:
    """Try each reboot method in turn until one is verified; raise ``ActionFailed`` otherwise."""
    for channel_name, what in REBOOT_METHODS:
        channel = ctx.channel(channel_name, REBOOT)
        if channel is None:
            ctx.say(f"{what}: skipped ({ctx.why_no_channel(channel_name)})")
            continue
        if await _try_method(ctx, channel, channel_name, what):
            await comment_on_bug(ctx, f"{ctx.slave} was rebooted by {what} (SlaveAPI request "
                                      f"{ctx.requestid}, asked by {ctx.requested_by}).")
            return
    await _ask_a_human(ctx)


async def _try_method(ctx: ActionContext, channel, channel_name: str, what: str) -> bool:
    botmaster = ctx.master.botmaster
    if channel_name == "ssh" and ctx.attached_slave() is not None:
        ctx.say("first, a graceful shutdown of the buildslave through the master")
        try:
            await graceful_shutdown(ctx)
        except ActionFailed as e:
            ctx.say(f"graceful shutdown did not complete ({e}); rebooting anyway")
    uptime_before = await uptime_over_ssh(ctx)
    before = botmaster.slaves.get(ctx.slave)
    reattached = botmaster.wait_for_attach(ctx.slave)
    ctx.say(f"{what}: trying")
    try:
        await channel.perform(REBOOT, ctx.location, ctx.say, ctx.clock, CHANNEL_DEADLINE_S)
    except ChannelError as e:
        reattached.addErrback(lambda f: f.trap(defer.CancelledError))
        reattached.cancel()
        ctx.say(f"{what}: failed: {e}")
        return False
    timeout_s = ctx.settings.reboot_timeout
    ctx.say(f"{what}: done; waiting up to {timeout_s:g} s for {ctx.slave} to attach again")
    started = ctx.clock.seconds()
    reattached.addTimeout(timeout_s, ctx.clock)
    try:
        slave = await reattached
    except defer.TimeoutError:
        uptime_after = await uptime_over_ssh(ctx)
        if uptime_before is not None and uptime_after is not None and uptime_after < uptime_before:
            ctx.say(f"verified: its uptime went down from {uptime_before:.0f} s to {uptime_after:.0f} s "
                    "(the buildslave has not attached again yet)")
            return True
        ctx.say(f"{what}: not verified: {ctx.slave} did not attach again within {timeout_s:g} s")
        return False
    if slave is before:  # cannot happen (a new connection is a new BuildSlave), but be sure
        ctx.say(f"{what}: not verified: the same connection answered")
        return False
    ctx.say(f"verified: {ctx.slave} attached again from {slave.peer} after "
            f"{ctx.clock.seconds() - started:.0f} s with a new connection")
    return True


async def _ask_a_human(ctx: ActionContext) -> None:
    channel = ctx.channel("bugzilla")
    if channel is None:
        ctx.say(f"asking a human: skipped ({ctx.why_no_channel('bugzilla')})")
        raise ActionFailed("no reboot method worked")
    text = (f"{ctx.slave} could not be rebooted automatically (SlaveAPI request {ctx.requestid}, "
            f"asked by {ctx.requested_by}). Please reboot it by hand.\n\nWhat was tried:\n"
            + "\n".join(ctx.lines))
    try:
        bug = await channel.perform(FILE_BUG, ctx.location, ctx.say, ctx.clock, BUG_DEADLINE_S,
                                    summary=f"{ctx.slave} needs a manual reboot", text=text)
    except ChannelError as e:
        ctx.say(f"asking a human in its bug failed: {e}")
        raise ActionFailed("no reboot method worked, and no bug could be filed") from None
    raise ActionFailed(f"no reboot method worked; asked for a manual reboot in bug {bug}")


async def comment_on_bug(ctx: ActionContext, text: str, reopen: bool = False) -> None:
    """Comment on the slave's bug, when it has a bug tracker; a failure is only told."""
    channel = ctx.channel("bugzilla")
    if channel is None:
        return
    try:
        await channel.perform(COMMENT_BUG, ctx.location, ctx.say, ctx.clock, BUG_DEADLINE_S,
                              text=text, reopen=reopen)
    except ChannelError as e:
        ctx.say(f"commenting on its bug failed: {e}")


class Reboot(Action):
    name = "reboot"
    description = "reboot the machine: ssh, Mozpool, IPMI, PDU, then a bug asking a human"

    async def run(self, ctx: ActionContext) -> None:
        await reboot_slave(ctx)
