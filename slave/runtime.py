"""What the Bot and its SlaveBuilders share: the slave's basedir, commands, reactor, clock."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import IReactorTime

from buildfarm.slave.commands.base import CommandRegistry


@dataclass(frozen=True)
class SlaveRuntime:
    """The slave-wide settings and tools handed down from the SlaveService service.

    ``requestShutdown`` is called when the master asks the slave to stop.
    """

    basedir: str
    registry: CommandRegistry
    reactor: Any
    clock: IReactorTime
    requestShutdown: Callable[[], None]
    usePTY: bool = False
