"""``Dependent``: builds after a buildset of its upstream scheduler succeeds."""

from buildfarm.common.results import SUCCESS, WARNINGS
from buildfarm.master.changes.change import SOURCE_FIELDS
from buildfarm.master.schedulers.base import Scheduler

DOWNSTREAM_REASON = "downstream"
GOOD_RESULTS = (SUCCESS, WARNINGS)


class Dependent(Scheduler):
    """``Dependent('tests', upstream=build_scheduler, builderNames=[...])``.

    When a buildset of ``upstream`` (the upstream scheduler object, as in Buildbot; it is
    followed by name across reconfigs) completes with SUCCESS or WARNINGS, this scheduler
    requests builds of its builders for the same source: the upstream buildset's branch,
    revision, repository, project, codebase and changeids properties travel along.
    """

    def __init__(self, name, upstream, builderNames, properties=None, priority=0, **kwargs):  # noqa: N803
        super().__init__(name, builderNames, properties=properties, priority=priority)
        self.upstream = upstream
        self.unknown_args = sorted(kwargs)

    @property
    def upstream_name(self) -> str | None:
        return self.upstream.name if isinstance(self.upstream, Scheduler) else None

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        problems += [f"Dependent got an unknown argument {a!r}" for a in self.unknown_args]
        if not isinstance(self.upstream, Scheduler):
            problems.append(f"Dependent {self.name!r}: upstream must be another scheduler object, "
                            f"not {self.upstream!r}")
        elif self.upstream is self or self.upstream_name == self.name:
            problems.append(f"Dependent {self.name!r} cannot be its own upstream")
        return problems

    def cross_check(self, config) -> list[str]:
        name = self.upstream_name
        if name is None:
            return []
        if not any(s.name == name for s in config.schedulers):
            return [f"Dependent {self.name!r}: upstream scheduler {name!r} is not in c['schedulers']"]
        return []

    async def upstream_finished(self, buildset: dict, results: int) -> int | None:
        """An upstream buildset completed; return the new bsid, or None when not building."""
        return await self._locked(self._upstream_finished, buildset, results)

    async def _upstream_finished(self, buildset: dict, results: int) -> int | None:
        if results not in GOOD_RESULTS:
            return None
        upstream = buildset.get("properties") or {}
        source = {k: upstream[k] for k in (*SOURCE_FIELDS, "changeids") if k in upstream}
        bsid, _ = await self.add_buildset(DOWNSTREAM_REASON, source)
        return bsid
