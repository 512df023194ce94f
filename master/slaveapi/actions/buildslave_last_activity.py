"""``buildslave_last_activity``: what the slave last did, from the master's live view.

Answers ``{"last_state", "last_activity_seconds", "uptime"}``: ``running_command`` while a
build runs on it (activity 0 s ago), ``ready`` when attached and idle (activity = since its
last build ended, or since it attached), ``stopped`` once it disconnected (activity = since
then), ``unknown`` for a slave no master has seen.  ``uptime`` is how long its buildslave
has been attached (None when it is not).  ``booting`` is reserved for out-of-band channels
that can see a machine starting.
"""

from buildfarm.master.slaveapi.actions.base import Action, ActionContext

UNKNOWN, BOOTING, STOPPED = "unknown", "booting", "stopped"
READY, RUNNING_COMMAND = "ready", "running_command"


class BuildslaveLastActivity(Action):
    name = "buildslave_last_activity"
    aliases = ("get_last_activity",)
    description = "last state and seconds since the last activity, from the master's view"

    async def run(self, ctx: ActionContext) -> dict:
        now = ctx.clock.seconds()
        row = await ctx.master.db.slaves.get(ctx.slave)
        slave = ctx.attached_slave()
        if slave is None:
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
