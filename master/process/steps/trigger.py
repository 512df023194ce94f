"""``Trigger``: start builds through Triggerable schedulers, optionally waiting for them.

The triggered buildsets get ``set_properties`` (rendered against the triggering build),
the triggering build's properties named in ``copy_properties``, and its source properties
(branch, revision, repository, project, codebase) when it has them, the way Buildbot hands
the triggering build's source stamps on.  Their ``parent_buildid`` is the triggering build.
``sourceStamps`` (a list of dicts with ``codebase``, ``branch``, ``revision``, ``repository``,
``project``; renderable) gives the triggered builds exactly those stamps instead: their
``sourcestamps`` property, and with one stamp its fields as properties too.  With
``alwaysUseLatest`` they get no source at all (each builds the newest revision).

Without ``waitForFinish`` the step succeeds once the buildsets exist.  With it, the step
ends when they all complete, with the worst of their results (Buildbot's ordering:
CANCELLED, RETRY, EXCEPTION, FAILURE, WARNINGS, SUCCESS, SKIPPED, worst first).
"""

from twisted.internet import defer, task

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    result_name,
)
from buildfarm.master.changes.change import SOURCE_FIELDS
from buildfarm.master.process.buildstep import BuildStep, StepContext
from buildfarm.master.process.properties import Renderable

LOG_NAME = "triggered"
STOP_CHECK_INTERVAL_S = 1.0  # how often a waiting Trigger looks whether its build was stopped


def worst_status(first: int, second: int) -> int:
    """Buildbot's ``worst_status``: the worse of two results, CANCELLED being the worst."""
    for candidate in (CANCELLED, RETRY, EXCEPTION, FAILURE, WARNINGS, SUCCESS, SKIPPED):
        if candidate in (first, second):
            return candidate
    return first


class Trigger(BuildStep):
    """``steps.Trigger(schedulerNames=['tests'], waitForFinish=True)``."""

    default_name = "trigger"
    renderables = BuildStep.renderables + ("schedulerNames", "set_properties", "copy_properties",
                                           "sourceStamps")

    def __init__(self, schedulerNames=None, waitForFinish=False, copy_properties=None,  # noqa: N803
                 set_properties=None, updateSourceStamp=True, sourceStamps=None,  # noqa: N803
                 alwaysUseLatest=False, **kwargs):  # noqa: N803
        super().__init__(**kwargs)
        self.sourceStamps = sourceStamps
        self.alwaysUseLatest = alwaysUseLatest
        self.schedulerNames = list(schedulerNames) if isinstance(schedulerNames, list | tuple) \
            else schedulerNames
        self.waitForFinish = waitForFinish
        self.copy_properties = list(copy_properties or [])
        self.set_properties = dict(set_properties or {}) if not isinstance(set_properties, Renderable) \
            else set_properties
        self.updateSourceStamp = updateSourceStamp

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        names = self.schedulerNames
        if not isinstance(names, Renderable) and (
                not isinstance(names, list) or not names
                or not all(isinstance(n, str | Renderable) for n in names)):
            problems.append(f"Trigger needs schedulerNames, a non-empty list of names, not {names!r}")
        if not isinstance(self.waitForFinish, bool):
            problems.append(f"Trigger waitForFinish must be True or False, not {self.waitForFinish!r}")
        if not all(isinstance(n, str) for n in self.copy_properties):
            problems.append("Trigger copy_properties must be a list of property names")
        stamps = self.sourceStamps
        if stamps is not None and not isinstance(stamps, Renderable) and (
                not isinstance(stamps, list | tuple) or not all(isinstance(s, dict) for s in stamps)):
            problems.append(f"Trigger sourceStamps must be a list of dicts, not {stamps!r}")
        elif stamps and self.alwaysUseLatest:
            problems.append("Trigger takes sourceStamps or alwaysUseLatest, not both")
        return problems

    def cross_check(self, config) -> list[str]:
        """Scheduler names that are not Triggerable schedulers of the configuration."""
        from buildfarm.master.schedulers.triggerable import Triggerable

        if not isinstance(self.schedulerNames, list):
            return []
        triggerable = {s.name for s in config.schedulers if isinstance(s, Triggerable)}
        return [f"Trigger names {name!r}, which is not a Triggerable scheduler"
                for name in self.schedulerNames if isinstance(name, str) and name not in triggerable]

    def trigger_properties(self, ctx: StepContext) -> dict:
        """The properties the triggered buildsets get."""
        props = ctx.properties
        result = {}
        if self.sourceStamps:
            stamps = [dict(stamp) for stamp in props.render(self.sourceStamps)]
            result["sourcestamps"] = stamps
            if len(stamps) == 1:
                result.update({k: stamps[0][k] for k in SOURCE_FIELDS if stamps[0].get(k) is not None})
        elif self.updateSourceStamp and not self.alwaysUseLatest:
            result.update({k: props.getProperty(k) for k in SOURCE_FIELDS if props.hasProperty(k)})
        result.update({k: props.getProperty(k) for k in self.copy_properties if props.hasProperty(k)})
        result.update(props.render(self.set_properties))
        return result

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        names = [str(n) for n in ctx.properties.render(self.schedulerNames)]
        properties = self.trigger_properties(ctx)
        log = await ctx.add_log(LOG_NAME)
        waiting, results, problems = [], SUCCESS, []
        for name in names:
            try:
                bsid, brids, finished = await ctx.master.scheduler.trigger(
                    name, properties, ctx.build.buildid)
            except KeyError as e:
                problems.append(name)
                log.add_stderr(f"cannot trigger {name}: {e}\n")
                results = EXCEPTION
                continue
            log.add_stdout(f"triggered {name}: buildset {bsid}, build requests "
                           f"{', '.join(str(b) for b in brids.values())}\n")
            waiting.append((name, bsid, brids, finished))
        if not self.waitForFinish:
            state = f"triggered {', '.join(names)}" if not problems else \
                f"could not trigger {', '.join(problems)}"
            return results, state
        if await self._build_stopped_first(ctx, [finished for _, _, _, finished in waiting]):
            reason = f"the triggering build was stopped: {ctx.build.stopped}"
            await ctx.master.scheduler.cancel_requests(
                [brid for _, _, brids, _ in waiting for brid in brids.values()], reason)
            log.add_stderr("stopped while waiting; the triggered build requests are cancelled\n")
            return CANCELLED, f"triggered {', '.join(names)}: cancelled"
        for name, bsid, _, finished in waiting:
            buildset_results = finished.result
            log.add_stdout(f"{name}: buildset {bsid} finished: {result_name(buildset_results)}\n")
            results = worst_status(results, buildset_results)
        return results, f"triggered {', '.join(names)}: {result_name(results)}"

    @staticmethod
    async def _build_stopped_first(ctx: StepContext, finished: list[defer.Deferred]) -> bool:
        """Wait until every triggered buildset finished (False) or the build is stopped (True)."""
        stopped: defer.Deferred = defer.Deferred()

        def check() -> None:
            if ctx.build.stopped is not None and not stopped.called:
                stopped.callback(True)

        watcher = task.LoopingCall(check)
        watcher.clock = ctx.master.reactor
        watcher.start(STOP_CHECK_INTERVAL_S, now=True)
        everything = defer.gatherResults(finished, consumeErrors=True)
        everything.addCallback(lambda _: False)
        try:
            first, _ = await defer.DeferredList([everything, stopped], fireOnOneCallback=True,
                                                fireOnOneErrback=True, consumeErrors=True)
            return first
        finally:
            watcher.stop()
