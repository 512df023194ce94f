"""``Triggerable``: builds when a ``Trigger`` step of another build asks it to."""

from buildfarm.master.schedulers.base import Scheduler


class Triggerable(Scheduler):
    """Requests builds of its builders for a triggering build (``steps.Trigger``)."""

    def __init__(self, name, builderNames, reason=None, properties=None, priority=0,  # noqa: N803
                 codebases=None, **kwargs):
        super().__init__(name, builderNames, properties=properties, priority=priority)
        self.reason = reason
        self.codebases = codebases
        self.unknown_args = sorted(kwargs)

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        problems += [f"Triggerable got an unknown argument {a!r}" for a in self.unknown_args]
        if self.reason is not None and not isinstance(self.reason, str):
            problems.append(f"Triggerable {self.name!r}: reason must be a string")
        return problems

    async def trigger(self, properties: dict, parent_buildid: int | None) -> tuple[int, dict[int, int]]:
        """Add the buildset for one trigger; return ``(bsid, {builderid: brid})``.

        The reason is the ``reason`` property when the trigger sets one, else the
        configured reason, else one naming this scheduler (as Buildbot does).
        """
        reason = properties.get("reason") or self.reason or \
            f"The Triggerable scheduler named '{self.name}' triggered this build"
        return await self.add_buildset(str(reason), properties, parent_buildid=parent_buildid)

