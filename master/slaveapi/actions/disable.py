"""``disable``: the slave takes no new builds (recorded in the database, with why and who),
then its buildslave process stops gracefully, or, with ``force``, the machine reboots."""

from buildfarm.master.slaveapi.actions.base import Action, ActionContext, ActionFailed, Arg, bool_arg
from buildfarm.master.slaveapi.actions.reboot import comment_on_bug, reboot_slave
from buildfarm.master.slaveapi.actions.shutdown_buildslave import graceful_shutdown


def add_note(notes: str, line: str) -> str:
    """The notes with one more line."""
    return f"{notes}\n{line}" if notes else line


class Disable(Action):
    name = "disable"
    description = "no new builds; stop the buildslave gracefully (force: reboot)"
    args = (Arg("reason", default=""), Arg("force", bool_arg, default=False), Arg("comment", default=""))

    def may_repeat(self, args: dict) -> bool:
        """Disabled twice is disabled, and a second graceful stop stops what was asked to stop;
        with ``force`` it reboots, and a reboot is never sent twice behind the asker's back."""
        return not args.get("force")

    async def run(self, ctx: ActionContext) -> None:
        db = ctx.master.db.slaveapi
        reason = ctx.args["reason"] or "disabled through the SlaveAPI"
        values = {"enabled": False, "disabled_reason": reason, "disabled_by": ctx.requested_by,
                  "disabled_at": ctx.now()}
        if ctx.args["comment"]:
            current = await db.get_settings(ctx.slave)
            values["notes"] = add_note(current["notes"], f"{ctx.requested_by}: {ctx.args['comment']}")
        await db.set_settings(ctx.slave, **values)
        ctx.runner.note_enabled(ctx.slave, False)
        ctx.say(f"disabled {ctx.slave} ({reason}, by {ctx.requested_by}): it takes no new builds")
        bug_text = f"{ctx.slave} was disabled by {ctx.requested_by}: {reason}"
        if ctx.args["comment"]:
            bug_text += f"\n\n{ctx.args['comment']}"
        await comment_on_bug(ctx, bug_text, reopen=True)
        if ctx.args["force"]:
            await reboot_slave(ctx)
        elif ctx.attached_slave() is None:
            ctx.say(f"{ctx.slave} is not attached to this master; nothing to stop")
        else:
            try:
                await graceful_shutdown(ctx)
            except ActionFailed as e:
                raise ActionFailed(f"{e} (it stays disabled)") from None
