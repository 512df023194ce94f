"""``Builder`` and the master-side ``SlaveBuilder``: which slaves may run a builder's builds."""

import enum

from buildfarm.master.process.builderconfig import BuilderConfig
from buildfarm.master.process.locks import as_access


class SlaveBuilderState(enum.Enum):
    """Whether a slave's place on a builder can take a build."""

    IDLE = "idle"
    BUILDING = "building"


class SlaveBuilder:
    """One attached slave's place on one builder, with its remote SlaveBuilder reference."""

    def __init__(self, builder: "Builder", slave, remote):
        self.builder = builder
        self.slave = slave
        self.remote = remote
        self.state = SlaveBuilderState.IDLE
        self.last_build_started: float = 0.0

    def is_available(self) -> bool:
        """Idle, attached and willing to take a build."""
        return (
            self.state is SlaveBuilderState.IDLE
            and self.slave.attached
            and self.builder.slave_accepts_build(self.slave)
        )


class Builder:
    """A configured builder and the slaves attached to it right now."""

    def __init__(self, config: BuilderConfig, builderid: int, botmaster):
        self.config = config
        self.builderid = builderid
        self.botmaster = botmaster
        self.slavebuilders: dict[str, SlaveBuilder] = {}

    @property
    def name(self) -> str:
        return self.config.name

    def add_slave(self, slave, remote) -> None:
        """A slave that serves this builder attached."""
        self.slavebuilders[slave.name] = SlaveBuilder(self, slave, remote)

    def remove_slave(self, slave) -> None:
        """That slave's connection is gone (its running build ends through its own command)."""
        current = self.slavebuilders.get(slave.name)
        if current is not None and current.slave is slave:
            del self.slavebuilders[slave.name]

    def slave_accepts_build(self, slave) -> bool:
        """Whether the slave may start one more build (shutdown, max_builds)."""
        return self.botmaster.slave_accepts_build(slave)

    def available_slavebuilders(self) -> list[SlaveBuilder]:
        """Free slaves whose build locks are free too, the one that has waited longest first."""
        locks = self.build_lock_accesses()
        free = [sb for sb in self.slavebuilders.values()
                if sb.is_available() and self.botmaster.locks.available(locks, sb.slave.name)]
        return sorted(free, key=lambda sb: sb.last_build_started)

    def build_lock_accesses(self) -> list:
        return [as_access(item) for item in self.config.locks]

    def choose_slavebuilder(self, free: list[SlaveBuilder], request: dict) -> SlaveBuilder | None:
        """The slave for a request: ``canStartBuild`` filters, ``nextSlave`` picks."""
        if self.config.canStartBuild is not None:
            free = [sb for sb in free if self.config.canStartBuild(self, sb, request)]
        if not free:
            return None
        if self.config.nextSlave is not None:
            chosen = self.config.nextSlave(self, free, request)
            return chosen if chosen in free else None
        return free[0]
