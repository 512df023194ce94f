"""``shutdown_buildslave``: stop the buildslave process gracefully through the master.

The master stops giving the slave builds and tells it to shut down once idle
(``botmaster.request_slave_shutdown``); the action succeeds when the master sees the
slave's connection go, and fails when that has not happened by the deadline.
"""

from twisted.internet import defer

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed


class ShutdownBuildslave(Action):
    name = "shutdown_buildslave"
    description = "graceful shutdown of the buildslave process, confirmed by its disconnect"

    async def run(self, ctx: ActionContext) -> None:
        await graceful_shutdown(ctx)


async def graceful_shutdown(ctx: ActionContext) -> None:
    """Shut the attached slave down gracefully; raise ``ActionFailed`` when it does not go."""
    slave = ctx.attached_slave()
    if slave is None:
        raise ActionFailed(f"slave {ctx.slave} is not attached to this master, and it has no other "
                           "channel to stop its buildslave process")
    botmaster = ctx.master.botmaster
    deadline_s = ctx.settings.shutdown_timeout
    started = ctx.clock.seconds()
    gone = slave.wait_detached()
    botmaster.request_slave_shutdown(ctx.slave)
    running = botmaster.builds_running_on(slave)
    ctx.say(f"asked the master for a graceful shutdown of {ctx.slave} "
            f"({_builds(running)} running; it stops once idle); waiting up to {deadline_s:g} s "
            "for it to disconnect")
    gone.addTimeout(deadline_s, ctx.clock)
    try:
        await gone
    except defer.TimeoutError:
        still = ctx.attached_slave()
        seen = ("it is still attached, " + ("shutting down" if still.shutting_down else "not shutting down")
                + f", with {_builds(botmaster.builds_running_on(still))} running") if still else \
            "it is no longer attached, but its disconnect was not seen in time"
        raise ActionFailed(f"{ctx.slave} did not disconnect within {deadline_s:g} s: {seen}") from None
    ctx.say(f"{ctx.slave} disconnected after {ctx.clock.seconds() - started:.0f} s")


def _builds(count: int) -> str:
    return "1 build" if count == 1 else f"{count} builds"
