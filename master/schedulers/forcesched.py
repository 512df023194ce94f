"""``ForceScheduler``: lets a user request a build over the API."""

from buildfarm.master.schedulers.base import Scheduler

DEFAULT_REASON = "force build"


class ForceScheduler(Scheduler):
    """Builds on demand: ``POST /api/v1/builders/<name>/force`` for its builders."""

    def __init__(self, name, builderNames, reason=DEFAULT_REASON, properties=None,  # noqa: N803
                 priority=0, **kwargs):
        super().__init__(name, builderNames, properties=properties, priority=priority)
        self.default_reason = reason
        self.unknown_args = sorted(kwargs)

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        problems += [f"ForceScheduler got an unknown argument {a!r}" for a in self.unknown_args]
        return problems
