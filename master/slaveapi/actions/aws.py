"""``aws_create_instance``, ``aws_start_instance``, ``aws_stop_instance``,
``aws_terminate_instance``: cloud slaves.  Their arguments are checked now; the AWS channel
comes later, so each ends FAILURE saying the slave has no AWS settings (or no channel)."""

from buildfarm.master.slaveapi.actions.base import (
    Action,
    ActionContext,
    ActionFailed,
    Arg,
    choice_arg,
    int_arg,
)

INSTANCE_TYPES = ("build", "test")
BUG = Arg("bug", int_arg)


class AWSAction(Action):
    """An action on the slave's EC2 instance."""

    verb = ""
    args = (BUG,)

    async def run(self, ctx: ActionContext) -> None:
        if ctx.location is None or "aws" not in ctx.location.channels:
            raise ActionFailed("no AWS settings for this slave")
        channel = ctx.runner.channels.get("aws")
        if channel is None:
            raise ActionFailed(f"cannot {self.verb} the instance: this master has no AWS channel yet")
        raise ActionFailed(f"cannot {self.verb} the instance: not implemented")


class AWSCreateInstance(AWSAction):
    name = "aws_create_instance"
    verb = "create"
    description = "create the slave's EC2 instance (instance_type build|test, bug)"
    args = (Arg("instance_type", choice_arg(*INSTANCE_TYPES), required=True), BUG)


class AWSStartInstance(AWSAction):
    name = "aws_start_instance"
    verb = "start"
    description = "start the slave's EC2 instance"


class AWSStopInstance(AWSAction):
    name = "aws_stop_instance"
    verb = "stop"
    description = "stop the slave's EC2 instance"


class AWSTerminateInstance(AWSAction):
    name = "aws_terminate_instance"
    verb = "terminate"
    description = "terminate the slave's EC2 instance"
