"""``aws_create_instance``, ``aws_start_instance`` (alias ``start``), ``aws_stop_instance``
(``stop``), ``aws_terminate_instance`` (``terminate``): the cloud slave's EC2 instance,
through the ``aws`` channel (channels/aws.py says which settings and tags it uses).

Malformed arguments are refused with 400 before anything runs; an ``instance_type`` this
slave has no settings for, or anything AWS refuses, ends the action FAILURE saying why.
The story names the instance and its state; the data is ``{"instance_id", "name", "state",
"private_ip"}``.
"""

from typing import Any

from buildfarm.master.slaveapi.actions.base import (
    Action,
    ActionContext,
    ActionFailed,
    Arg,
    BadArgument,
    int_arg,
)
from buildfarm.master.slaveapi.channels.interfaces import (
    INSTANCE_CREATE,
    INSTANCE_START,
    INSTANCE_STOP,
    INSTANCE_TERMINATE,
    ChannelError,
)

INSTANCE_TYPES = ("build", "test")
AWS_DEADLINE_S = 900.0  # EC2 takes minutes to start or stop an instance
MAX_EMAIL_CHARS = 254
MAX_DISAMBIG_CHARS = 64


def email_arg(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_EMAIL_CHARS:
        raise ValueError(f"must be an email address of at most {MAX_EMAIL_CHARS} characters")
    return value.strip()


def disambig_arg(value: Any) -> str:
    ok = (isinstance(value, str) and 0 < len(value) <= MAX_DISAMBIG_CHARS
          and value[0].isalnum() and all(c.isalnum() or c in "._-" for c in value) and value.isascii())
    if not ok:
        raise ValueError(f"must be letters, digits, '.', '_' or '-' (at most {MAX_DISAMBIG_CHARS}), "
                         f"not {value!r}")
    return value


BUG = Arg("bug", int_arg)
ARCHES = ("32", "64")


def instance_type_arg(value: Any) -> str:
    """``build`` or ``test``, in any case (the original compared them case-insensitively)."""
    if isinstance(value, str) and value.strip().lower() in INSTANCE_TYPES:
        return value.strip().lower()
    raise ValueError(f"must be one of {', '.join(INSTANCE_TYPES)}, not {value!r}")


def arch_arg(value: Any) -> str:
    """``32`` or ``64`` bits (the original's ``arch``; also ``x86``/``x86_64``)."""
    word = str(value).strip().lower().removeprefix("x86_").removesuffix("bit")
    word = {"x86": "32", "i386": "32", "i686": "32", "amd64": "64"}.get(word, word)
    if word not in ARCHES:
        raise ValueError(f"must be 32 or 64, not {value!r}")
    return word


class AWSAction(Action):
    """An action on the slave's EC2 instance through the ``aws`` channel."""

    verb = ""
    operation = ""
    args = (BUG,)

    async def run(self, ctx: ActionContext) -> dict:
        if ctx.location is None or "aws" not in ctx.location.channels:
            raise ActionFailed("no AWS settings for this slave")
        channel = ctx.runner.channels.get("aws")
        if channel is None:
            raise ActionFailed(f"cannot {self.verb} the instance: this master cannot use the aws channel "
                               "(is boto3 installed?)")
        try:
            answer = await channel.perform(self.operation, ctx.location, ctx.say, ctx.clock, AWS_DEADLINE_S,
                                           **self.channel_kwargs(ctx.args))
        except ChannelError as e:
            raise ActionFailed(f"cannot {self.verb} the instance: {e}") from None
        ctx.say(f"instance {answer['instance_id']} of {ctx.slave} is {answer['state']}")
        return answer

    def channel_kwargs(self, args: dict) -> dict:
        return {}


class AWSCreateInstance(AWSAction):
    name = "aws_create_instance"
    verb = "create"
    operation = INSTANCE_CREATE
    description = ("create the slave's EC2 instance (instance_type build|test, email of its owner, bug, "
                   "disambig for a second instance, arch 32|64)")
    args = (Arg("instance_type", instance_type_arg, required=True), BUG,
            Arg("email", email_arg), Arg("disambig", disambig_arg), Arg("arch", arch_arg))

    def parse_args(self, given: dict[str, Any]) -> dict[str, Any]:
        parsed = super().parse_args(given)
        if parsed["instance_type"] == "build" and parsed["arch"] == "32":
            raise BadArgument("arch", "32-bit instances are not used for building")
        return parsed

    async def run(self, ctx: ActionContext) -> dict:
        if ctx.args.get("arch"):
            ctx.say(f"arch {ctx.args['arch']}: the instance's image and type come from the slave's "
                    f"{ctx.args['instance_type']!r} aws settings")
        return await super().run(ctx)

    def channel_kwargs(self, args: dict) -> dict:
        return {key: args.get(key) for key in ("instance_type", "email", "bug", "disambig")}


class AWSStartInstance(AWSAction):
    name = "aws_start_instance"
    repeatable = True  # EC2 answers a second call with the state reached
    aliases = ("start",)
    verb = "start"
    operation = INSTANCE_START
    description = "start the slave's EC2 instance"


class AWSStopInstance(AWSAction):
    name = "aws_stop_instance"
    repeatable = True  # EC2 answers a second call with the state reached
    aliases = ("stop",)
    verb = "stop"
    operation = INSTANCE_STOP
    description = "stop the slave's EC2 instance"


class AWSTerminateInstance(AWSAction):
    name = "aws_terminate_instance"
    repeatable = True  # EC2 answers a second call with the state reached
    aliases = ("terminate",)
    verb = "terminate"
    operation = INSTANCE_TERMINATE
    description = "terminate the slave's EC2 instance"
