"""What every action shares: declared arguments, the context it runs in, how it fails.

An action is a small class (one module per action, as buildbot-worker's commands): a
``name``, maybe ``aliases``, the ``args`` it accepts, and ``async run(ctx)`` that tells its
story with ``ctx.say(...)`` and returns its data (or None), or raises ``ActionFailed``.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from buildfarm.master.fleet import BadArgument
from buildfarm.master.slaveapi.compat import parse_truth
from buildfarm.master.slaveapi.interfaces import IActionHost, ISlaveAPIMaster
from buildfarm.master.slaveapi.inventory import SlaveLocation
from buildfarm.master.slaveapi.settings import SlaveAPISettings


class ActionFailed(Exception):
    """The action ran and did not achieve what it was asked; the message says why."""


def text_arg(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def bool_arg(value: Any) -> bool:
    """Every spelling the original SlaveAPI accepted: y/yes/1/true, n/no/0/false (any case)."""
    return parse_truth(value)


def int_arg(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise ValueError(f"must be an integer, not {value!r}")


def choice_arg(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, not {value!r}")
        return value
    return parse


@dataclass(frozen=True)
class Arg:
    """One argument an action accepts: its name, parser, and whether it must be given."""

    name: str
    parse: Callable[[Any], Any] = text_arg
    required: bool = False
    default: Any = None


class Action:
    """Base of the actions; subclasses set ``name``, ``args``, ``description`` and ``run``."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    description: str = ""
    args: tuple[Arg, ...] = ()
    # Whether the action may run again from its start after the master running it died (it
    # may have had an effect already): true for reads and for what ends the same when done
    # twice; false for what acts twice (a reboot sent again, a second instance created).
    repeatable: bool = False

    def may_repeat(self, args: dict[str, Any]) -> bool:
        """Whether this action, with ``args``, is safe to run again after it was cut short by
        the death of the master running it (master/slaveapi/runner.py)."""
        return self.repeatable

    def parse_args(self, given: dict[str, Any]) -> dict[str, Any]:
        """The arguments with their defaults; raise ``BadArgument`` naming the field."""
        allowed = {arg.name for arg in self.args}
        for name in sorted(given):
            if name not in allowed:
                accepted = ", ".join(sorted(allowed)) or "none"
                raise BadArgument(name, f"{self.name} takes no argument {name!r} (it takes: {accepted})")
        parsed = {}
        for arg in self.args:
            if arg.name not in given:
                if arg.required:
                    raise BadArgument(arg.name, "is required")
                parsed[arg.name] = arg.default
                continue
            try:
                parsed[arg.name] = arg.parse(given[arg.name])
            except ValueError as e:
                raise BadArgument(arg.name, str(e)) from None
        return parsed

    async def run(self, ctx: "ActionContext") -> Any:
        raise NotImplementedError


@dataclass
class ActionContext:
    """Everything an action may use while it runs."""

    requestid: int
    slave: str
    args: dict[str, Any]
    requested_by: str
    master: ISlaveAPIMaster
    runner: IActionHost
    settings: SlaveAPISettings
    location: SlaveLocation | None
    lines: list[str] = field(default_factory=list)

    @property
    def clock(self):
        return self.master.reactor

    def now(self) -> int:
        return int(self.clock.seconds())

    def say(self, line: str) -> None:
        """Add one step to the action's story (its result's ``text``)."""
        self.lines.append(line)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def channel(self, name: str, operation: str | None = None):
        """The channel ``name`` when the slave's inventory configures it, this master has it
        and it can do ``operation`` (when given); else None."""
        configured = self.location is not None and name in self.location.channels
        channel = self.runner.channels.get(name) if configured else None
        if channel is None or not channel.configured_for(self.location):
            return None
        if operation is not None and operation not in channel.operations:
            return None
        return channel

    def why_no_channel(self, name: str) -> str:
        """Why ``channel(name)`` is None, for the story."""
        configured = self.location is not None and name in self.location.channels
        if configured and name not in self.runner.channels:
            return f"{name} is configured, but this master cannot use that channel"
        return f"the slave has no {name} channel"

    def attached_slave(self):
        """The master's live ``BuildSlave`` perspective of this slave, or None."""
        slave = self.master.botmaster.slaves.get(self.slave)
        return slave if slave is not None and slave.attached else None
