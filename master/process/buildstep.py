"""``BuildStep``: the base of every step type, and the rules that fold step results into
the build's result (Buildbot's halt/flunk/warn semantics).

A step object comes from master.cfg and describes the step; it holds no per-build state, so
one instance serves every build.  ``run`` gets a ``StepContext`` with what one run needs
(the slave, logs, properties) and returns the step's result and its final state string.
"""

import copy
from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
    worst_result,
)
from buildfarm.master.configobject import ConfigObject
from buildfarm.master.pb.remotecommand import StepLog
from buildfarm.master.process.interfaces import IProcessMaster
from buildfarm.master.process.properties import Renderable


class StepContext(Protocol):
    """What a step may use while it runs in one build."""

    builddir: str
    env: dict
    properties: Any
    build: Any
    master: IProcessMaster  # the master as the build logic sees it
    clock: IReactorTime  # the build's time (the master's reactor)

    async def add_log(self, name: str) -> StepLog: ...
    async def run_command(self, name: str, args: dict, log: StepLog | None) -> dict: ...
    def command_version(self, name: str) -> str | None: ...
    def master_path(self, path: str) -> str: ...


class BuildStep(ConfigObject):
    """A step description: its name and how its result affects the build.

    ``renderables`` names the attributes rendered against the build's properties each time
    the step runs (on a copy: the step object itself never changes).
    """

    default_name = "step"
    renderables: tuple[str, ...] = ("name", "description", "descriptionDone")

    def __init__(
        self, name=None, haltOnFailure=False, flunkOnFailure=True, warnOnFailure=False,  # noqa: N803
        warnOnWarnings=False, flunkOnWarnings=False, alwaysRun=False, description=None,  # noqa: N803
        descriptionDone=None, doStepIf=True, hideStepIf=False, locks=None,  # noqa: N803
        **unknown,
    ):
        self._remember_config_line()
        self.name = name or self.default_name
        self.haltOnFailure = haltOnFailure
        self.flunkOnFailure = flunkOnFailure
        self.warnOnFailure = warnOnFailure
        self.warnOnWarnings = warnOnWarnings
        self.flunkOnWarnings = flunkOnWarnings
        self.alwaysRun = alwaysRun
        self.description = description
        self.descriptionDone = descriptionDone
        self.doStepIf = doStepIf
        self.hideStepIf = hideStepIf
        self.locks = list(locks or [])
        self.unknown_args = sorted(unknown)

    def config_problems(self) -> list[str]:
        """What is wrong with this step's arguments (empty when nothing is)."""
        problems = [f"{type(self).__name__} got an unknown argument {a!r}" for a in self.unknown_args]
        if not isinstance(self.name, str | Renderable) or not self.name:
            problems.append(f"step name must be a non-empty string, not {self.name!r}")
        return problems

    def rendered(self, properties) -> "BuildStep":
        """A copy of this step with its renderable attributes rendered."""
        step = copy.copy(self)
        for attribute in self.renderables:
            if hasattr(self, attribute):
                setattr(step, attribute, properties.render(getattr(self, attribute)))
        return step

    def should_run(self, ctx: StepContext) -> bool:
        """``doStepIf``: a bool, or a function of the step context."""
        condition = self.doStepIf
        return bool(condition(ctx) if callable(condition) else condition)

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        """Run the step; return its result code and final state string."""
        raise NotImplementedError


def fold_step_result(build_results: int, step: BuildStep, step_results: int) -> tuple[int, bool]:
    """The build's result after a step, and whether the build must stop here."""
    halt = False
    if step_results == FAILURE:
        if step.flunkOnFailure:
            build_results = worst_result(build_results, FAILURE)
        elif step.warnOnFailure:
            build_results = worst_result(build_results, WARNINGS)
        halt = step.haltOnFailure
    elif step_results == WARNINGS:
        if step.flunkOnWarnings:
            build_results = worst_result(build_results, FAILURE)
        elif step.warnOnWarnings:
            build_results = worst_result(build_results, WARNINGS)
    elif step_results == SKIPPED:
        pass
    elif step_results in (EXCEPTION, RETRY, CANCELLED):
        build_results = worst_result(build_results, step_results)
        halt = True
    elif step_results != SUCCESS:
        build_results = worst_result(build_results, step_results)
    return build_results, halt
