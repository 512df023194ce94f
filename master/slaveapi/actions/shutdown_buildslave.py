"""``shutdown_buildslave``: stop the buildslave process gracefully, and confirm it stopped.

The master stops giving the slave builds and tells it to shut down once idle
(``botmaster.request_slave_shutdown``).  When the slave's inventory has ssh with its
``basedir``, the shutdown is confirmed from the slave's own ``twistd.log`` read over ssh
(a new "Server Shut Down." / "Main loop terminated." line); a slave that is not attached is
then stopped over ssh (``buildslave stop``).  Without ssh the confirmation is the disconnect
the master sees.  Either way the action fails at ``shutdown_timeout`` saying what was seen.
"""

from twisted.internet import defer, task

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed
from buildfarm.master.slaveapi.channels.interfaces import READ_LOG, SHUTDOWN_SLAVE, ChannelError
from buildfarm.master.slaveapi.slavelog import last_stop, shutdown_announcement, timestamped_lines

LOG_LINES = 200
LOG_POLL_INTERVAL_S = 2.0


class ShutdownBuildslave(Action):
    name = "shutdown_buildslave"
    description = ("graceful shutdown of the buildslave process, confirmed from its twistd.log "
                   "over ssh or by its disconnect")

    async def run(self, ctx: ActionContext) -> None:
        await graceful_shutdown(ctx)


def ssh_channel(ctx: ActionContext, operation: str, needs_basedir: bool = False):
    """The slave's ssh channel when it can do ``operation`` (and the inventory gives the
    slave's ``basedir`` when ``needs_basedir``); else None."""
    channel = ctx.channel("ssh", operation)
    if channel is None or (needs_basedir and not ctx.location.channels["ssh"].get("basedir")):
        return None
    return channel


async def read_slave_log(ctx: ActionContext, channel, deadline_s: float | None = None) -> str:
    """The tail of the slave's twistd.log over ssh (``ChannelError`` when it cannot be read)."""
    return await channel.perform(READ_LOG, ctx.location, lambda line: None, ctx.clock,
                                 deadline_s or ctx.settings.command_timeout, lines=LOG_LINES)


async def graceful_shutdown(ctx: ActionContext) -> None:
    """Shut the slave down gracefully and confirm it; raise ``ActionFailed`` when it does not go."""
    channel = ssh_channel(ctx, READ_LOG, needs_basedir=True)
    if channel is None:
        await _shutdown_seen_by_master(ctx)
        return
    try:
        before = await read_slave_log(ctx, channel)
    except ChannelError as e:
        if ctx.attached_slave() is None:
            raise ActionFailed(f"{ctx.slave} is not attached to this master, and its twistd.log cannot "
                               f"be read over ssh: {e}") from None
        ctx.say(f"cannot read the twistd.log of {ctx.slave} over ssh ({e}); confirming the shutdown "
                "by its disconnect instead")
        await _shutdown_seen_by_master(ctx)
        return
    await _shutdown_confirmed_by_log(ctx, channel, before)


async def _shutdown_seen_by_master(ctx: ActionContext) -> None:
    slave = ctx.attached_slave()
    if slave is None:
        raise ActionFailed(f"slave {ctx.slave} is not attached to this master, and it has no other "
                           "channel to stop its buildslave process")
    deadline_s = ctx.settings.shutdown_timeout
    started = ctx.clock.seconds()
    gone = slave.wait_detached()
    _ask_master(ctx, slave, "disconnect")
    gone.addTimeout(deadline_s, ctx.clock)
    try:
        await gone
    except defer.TimeoutError:
        raise ActionFailed(f"{ctx.slave} did not disconnect within {deadline_s:g} s: "
                           f"{_master_view(ctx)}") from None
    ctx.say(f"{ctx.slave} disconnected after {ctx.clock.seconds() - started:.0f} s")


def _ask_master(ctx: ActionContext, slave, waiting_for: str) -> None:
    botmaster = ctx.master.botmaster
    botmaster.request_slave_shutdown(ctx.slave)
    running = botmaster.builds_running_on(slave)
    ctx.say(f"asked the master for a graceful shutdown of {ctx.slave} "
            f"({_builds(running)} running; it stops once idle); waiting up to "
            f"{ctx.settings.shutdown_timeout:g} s for it to {waiting_for}")


async def _shutdown_confirmed_by_log(ctx: ActionContext, channel, before: str) -> None:
    deadline_s = ctx.settings.shutdown_timeout
    started = ctx.clock.seconds()
    old_lines = {line.text for line in timestamped_lines(before)}
    slave = ctx.attached_slave()
    if slave is not None:
        gone = slave.wait_detached()
        _ask_master(ctx, slave, "log its shutdown in twistd.log (read over ssh)")
    else:
        stopped = last_stop(before)
        if stopped is not None:
            ctx.say(f"{ctx.slave} is not attached, and its twistd.log (over ssh) says it already "
                    f"stopped: {stopped.text.strip()}")
            return
        gone = None
        ctx.say(f"{ctx.slave} is not attached to this master; stopping its buildslave over ssh")
        try:
            await channel.perform(SHUTDOWN_SLAVE, ctx.location, ctx.say, ctx.clock, deadline_s)
        except ChannelError as e:
            raise ActionFailed(f"stopping {ctx.slave} over ssh failed: {e}") from None
    seen = before
    last_error = None
    while True:
        stop = last_stop(seen)
        if stop is not None and stop.text not in old_lines:
            break
        remaining = started + deadline_s - ctx.clock.seconds()
        if remaining <= 0:
            raise ActionFailed(f"{ctx.slave} did not shut down within {deadline_s:g} s: "
                               f"{_log_view(seen, last_error)}; {_master_view(ctx)}")
        await task.deferLater(ctx.clock, min(LOG_POLL_INTERVAL_S, remaining), lambda: None)
        try:
            seen = await read_slave_log(ctx, channel, max(1.0, min(ctx.settings.command_timeout, remaining)))
            last_error = None
        except ChannelError as e:
            last_error = e
    why = shutdown_announcement(seen)
    told = f" ('{_message(why)}')" if why is not None and why.text not in old_lines else ""
    disconnect = " (the master saw it disconnect)" if gone is not None and gone.called else ""
    ctx.say(f"confirmed from its twistd.log over ssh: {ctx.slave} shut down{told} after "
            f"{ctx.clock.seconds() - started:.0f} s{disconnect}: {stop.text.strip()}")


def _message(line) -> str:
    """A log line without its timestamp and system."""
    return line.text.split("] ", 1)[-1].strip()


def _log_view(text: str, error: ChannelError | None) -> str:
    if error is not None:
        return f"its twistd.log could not be read over ssh: {error}"
    lines = timestamped_lines(text)
    return f"its twistd.log ends with {lines[-1].text.strip()!r}" if lines else "its twistd.log is empty"


def _master_view(ctx: ActionContext) -> str:
    still = ctx.attached_slave()
    if still is None:
        return "it is no longer attached to the master"
    botmaster = ctx.master.botmaster
    return (f"it is still attached, {'shutting down' if still.shutting_down else 'not shutting down'}, "
            f"with {_builds(botmaster.builds_running_on(still))} running")


def _builds(count: int) -> str:
    return "1 build" if count == 1 else f"{count} builds"
