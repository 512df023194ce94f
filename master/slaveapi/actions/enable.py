"""``enable``: undo ``disable``; the slave takes builds again once its buildslave attaches."""

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, Arg
from buildfarm.master.slaveapi.actions.disable import add_note


class Enable(Action):
    name = "enable"
    repeatable = True  # enabled twice is enabled (a comment is noted once more)
    description = "take builds again"
    args = (Arg("comment", default=""),)

    async def run(self, ctx: ActionContext) -> None:
        db = ctx.master.db.slaveapi
        values = {"enabled": True, "disabled_reason": None, "disabled_by": None, "disabled_at": None}
        if ctx.args["comment"]:
            current = await db.get_settings(ctx.slave)
            values["notes"] = add_note(current["notes"], f"{ctx.requested_by}: {ctx.args['comment']}")
        await db.set_settings(ctx.slave, **values)
        ctx.runner.note_enabled(ctx.slave, True)
        attached = ctx.attached_slave() is not None
        ctx.say(f"enabled {ctx.slave} (by {ctx.requested_by}); "
                + ("it is attached and takes builds again" if attached
                   else "it takes builds once its buildslave attaches"))
        if attached:
            ctx.master.botmaster.maybe_start_builds()
