"""``SchedulerManager``: the configured schedulers, and turning their wishes into requests."""

from twisted.application import service

from buildfarm.master.schedulers.forcesched import ForceScheduler


class UnknownBuilder(LookupError):
    """No builder of that name is configured."""


class NotForceable(LookupError):
    """The builder exists but no ForceScheduler lists it."""


class SchedulerManager(service.Service):
    """Holds the schedulers of the current configuration."""

    name = "scheduler"

    def __init__(self, master):
        self.master = master

    def force_scheduler_for(self, buildername: str) -> ForceScheduler:
        """The ForceScheduler that may build ``buildername``."""
        config = self.master.config
        if config.builder(buildername) is None:
            raise UnknownBuilder(f"no builder named {buildername!r}")
        for scheduler in config.schedulers:
            if isinstance(scheduler, ForceScheduler) and buildername in scheduler.builderNames:
                return scheduler
        raise NotForceable(f"builder {buildername!r} has no ForceScheduler")

    async def force(self, buildername: str, reason: str | None, properties: dict,
                    owner: str | None = None) -> int:
        """Request a build of ``buildername``; return the new build request's id."""
        scheduler = self.force_scheduler_for(buildername)
        builder = self.master.botmaster.builders[buildername]
        props = {**scheduler.properties, **properties}
        props["scheduler"] = scheduler.name
        if owner:
            props["owner"] = owner
        brid = await self.master.db.buildrequests.add(
            builder.builderid, reason or scheduler.default_reason, props,
            self.master.reactor.seconds(), priority=scheduler.priority,
        )
        self.master.botmaster.maybe_start_builds()
        return brid
