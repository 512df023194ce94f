"""``buildslave_last_activity``: what the slave last did, from the master's live view, or
from its twistd.log over ssh when it is not attached here.

Answers ``{"last_state", "last_activity_seconds", "uptime"}``: ``running_command`` while a
build runs on it (activity 0 s ago), ``ready`` when attached and idle (activity = since its
last build ended, or since it attached), ``stopped`` once it disconnected (activity = since
then), ``unknown`` for a slave no master has seen.  ``uptime`` is how long its buildslave
has been attached (None when it is not).

A slave not attached to this master whose inventory has ssh with its ``basedir`` is read
from the tail of its ``twistd.log``: ``stopped`` when the buildslave logged its end,
``running_command`` when a command it started has not ended, ``ready`` otherwise;
``last_activity_seconds`` is the age of the last timestamped line, ``uptime`` the
machine's uptime over ssh, and ``booting`` when the machine came up after that last line
(its buildslave has not logged anything yet).  When ssh fails, the master's records answer.
"""

from buildfarm.master.slaveapi.actions.base import Action, ActionContext
from buildfarm.master.slaveapi.actions.shutdown_buildslave import read_slave_log, ssh_channel
from buildfarm.master.slaveapi.channels.interfaces import READ_LOG, UPTIME, ChannelError
from buildfarm.master.slaveapi.slavelog import log_state

UNKNOWN, BOOTING, STOPPED = "unknown", "booting", "stopped"
READY, RUNNING_COMMAND = "ready", "running_command"


class BuildslaveLastActivity(Action):
    name = "buildslave_last_activity"
    repeatable = True  # a read
    aliases = ("get_last_activity",)
    description = "last state and seconds since the last activity, from the master's view or twistd.log"

    async def run(self, ctx: ActionContext) -> dict:
        now = ctx.clock.seconds()
        row = await ctx.master.db.slaves.get(ctx.slave)
        slave = ctx.attached_slave()
        if slave is None:
            channel = ssh_channel(ctx, READ_LOG, needs_basedir=True)
            if channel is not None:
                try:
                    return await activity_from_log(ctx, channel, now)
                except ChannelError as e:
                    ctx.say(f"cannot read the twistd.log of {ctx.slave} over ssh ({e}); "
                            "answering from the master's records")
            return _detached(ctx, row, now)
        connected_at = (row or {}).get("last_connected_at") or now
        uptime = int(now - connected_at)
        if ctx.master.botmaster.builds_running_on(slave):
            ctx.say(f"{ctx.slave} is attached and running a build")
            return {"last_state": RUNNING_COMMAND, "last_activity_seconds": 0, "uptime": uptime}
        last = connected_at
        if row is not None:
            builds = await ctx.master.db.builds.get_all(slaveid=row["slaveid"], limit=1)
            if builds and builds[0]["complete_at"]:
                last = max(last, builds[0]["complete_at"])
        ctx.say(f"{ctx.slave} is attached and idle; its last activity was {now - last:.0f} s ago")
        return {"last_state": READY, "last_activity_seconds": int(now - last), "uptime": uptime}


def _detached(ctx: ActionContext, row: dict | None, now: float) -> dict:
    if row is None or row.get("last_disconnected_at") is None:
        ctx.say(f"no master has seen {ctx.slave} attach and disconnect; its state is unknown")
        return {"last_state": UNKNOWN, "last_activity_seconds": None, "uptime": None}
    if row.get("connected_masterid") is not None:
        ctx.say(f"{ctx.slave} is attached to another master; ask that one")
        return {"last_state": UNKNOWN, "last_activity_seconds": None, "uptime": None}
    since = int(now - row["last_disconnected_at"])
    ctx.say(f"{ctx.slave} is not attached; it disconnected {since} s ago")
    return {"last_state": STOPPED, "last_activity_seconds": since, "uptime": None}


async def activity_from_log(ctx: ActionContext, channel, now: float) -> dict:
    """The slave's state from the tail of its twistd.log over ssh (``ChannelError`` when the
    log cannot be read)."""
    text = await read_slave_log(ctx, channel)
    state = log_state(text)
    uptime = await _machine_uptime(ctx, channel)
    if state is None:
        ctx.say(f"{ctx.slave} is not attached, and its twistd.log (over ssh) has no timestamped line")
        return {"last_state": UNKNOWN, "last_activity_seconds": None, "uptime": uptime}
    since = max(0, int(now - state.last.when))
    if uptime is not None and uptime < since:
        ctx.say(f"{ctx.slave} is not attached; its machine came up {uptime} s ago, after the last line "
                f"of its twistd.log ({since} s ago): booting")
        return {"last_state": BOOTING, "last_activity_seconds": since, "uptime": uptime}
    ctx.say(f"{ctx.slave} is not attached; its twistd.log (over ssh) says {state.state} as of {since} s "
            f"ago: {state.last.text.strip()}")
    return {"last_state": state.state, "last_activity_seconds": since, "uptime": uptime}


async def _machine_uptime(ctx: ActionContext, channel) -> int | None:
    if UPTIME not in channel.operations:
        return None
    try:
        return int(await channel.perform(UPTIME, ctx.location, lambda line: None, ctx.clock,
                                          ctx.settings.command_timeout))
    except (ChannelError, TypeError, ValueError) as e:
        ctx.say(f"the machine's uptime over ssh could not be read: {e}")
        return None
