"""``BuildStep``: the base of every step type, and the rules that fold step results into
the build's result (Buildbot's halt/flunk/warn semantics).

A step object comes from master.cfg and describes the step; it holds no per-build state, so
one instance serves every build.  ``run`` gets a ``StepContext`` with what one run needs
(the slave, logs, properties) and returns the step's result and its final state string.

Custom steps written for Buildbot 4 work too (master/process/stepapi.py): a subclass whose
``run(self)`` takes no context is bound to the run first and its result code becomes
``(results, state)``; a step class defined outside buildfarm (in master.cfg or a helper
module) is made anew from its constructor arguments for each build, as Buildbot does, so
what its ``__init__`` sets up (a log observer and its counts) starts afresh each build.
"""

import copy
import inspect
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
from buildfarm.master.process.stepapi import (
    BuildStepFailed,
    ShellMixin,
    StepAPI,
    takes_no_context,
)

__all__ = [
    "BuildStep", "BuildStepFailed", "CANCELLED", "EXCEPTION", "FAILURE", "RETRY", "SKIPPED",
    "SUCCESS", "ShellMixin", "StepContext", "WARNINGS", "fold_step_result",
]
_UNSET = object()


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


class BuildStep(StepAPI, ConfigObject):
    """A step description: its name and how its result affects the build.

    ``renderables`` names the attributes rendered against the build's properties each time
    the step runs (on a copy: the step object itself never changes).  Each option left out
    of the constructor takes the class's attribute (``class Compile(...): haltOnFailure =
    True``, ``name = "compile"``), as in Buildbot.
    """

    default_name = "step"
    renderables: tuple[str, ...] = ("name", "description", "descriptionDone", "descriptionSuffix")
    haltOnFailure = False  # noqa: N815 - Buildbot's names
    flunkOnFailure = True  # noqa: N815
    warnOnFailure = False  # noqa: N815
    warnOnWarnings = False  # noqa: N815
    flunkOnWarnings = False  # noqa: N815
    alwaysRun = False  # noqa: N815
    description = None
    descriptionDone = None  # noqa: N815
    descriptionSuffix = None  # noqa: N815
    doStepIf = True  # noqa: N815
    hideStepIf = False  # noqa: N815
    _OPTIONS = ("haltOnFailure", "flunkOnFailure", "warnOnFailure", "warnOnWarnings", "flunkOnWarnings",
                "alwaysRun", "description", "descriptionDone", "descriptionSuffix", "doStepIf", "hideStepIf")

    def __new__(cls, *args, **kwargs):
        step = super().__new__(cls)
        step._factory_args = (args, kwargs)  # to make a step of a master.cfg class anew per build
        return step

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        run = cls.__dict__.get("run")
        if run is not None and takes_no_context(run):
            cls.run = _run_in_context(run)

    def __init__(
        self, name=None, haltOnFailure=_UNSET, flunkOnFailure=_UNSET, warnOnFailure=_UNSET,  # noqa: N803
        warnOnWarnings=_UNSET, flunkOnWarnings=_UNSET, alwaysRun=_UNSET, description=_UNSET,  # noqa: N803
        descriptionDone=_UNSET, descriptionSuffix=_UNSET, doStepIf=_UNSET, hideStepIf=_UNSET,  # noqa: N803
        locks=None, **unknown,
    ):
        self._remember_config_line()
        class_name = getattr(type(self), "name", None)
        self.name = name or (class_name if isinstance(class_name, str) else None) or self.default_name
        given = dict(haltOnFailure=haltOnFailure, flunkOnFailure=flunkOnFailure, warnOnFailure=warnOnFailure,
                     warnOnWarnings=warnOnWarnings, flunkOnWarnings=flunkOnWarnings, alwaysRun=alwaysRun,
                     description=description, descriptionDone=descriptionDone,
                     descriptionSuffix=descriptionSuffix, doStepIf=doStepIf, hideStepIf=hideStepIf)
        for option in self._OPTIONS:
            setattr(self, option, getattr(type(self), option) if given[option] is _UNSET else given[option])
        self.locks = list(locks or [])
        self.unknown_args = sorted(unknown)

    def config_problems(self) -> list[str]:
        """What is wrong with this step's arguments (empty when nothing is)."""
        problems = [f"{type(self).__name__} got an unknown argument {a!r}" for a in self.unknown_args]
        if not isinstance(self.name, str | Renderable) or not self.name:
            problems.append(f"step name must be a non-empty string, not {self.name!r}")
        return problems

    def rendered(self, properties) -> "BuildStep":
        """A copy of this step with its renderable attributes rendered (a step of a class
        defined outside buildfarm is made anew from its constructor arguments)."""
        if type(self).__module__.startswith("buildfarm.") or "_factory_args" not in self.__dict__:
            step = copy.copy(self)
        else:
            args, kwargs = self._factory_args
            step = type(self)(*args, **kwargs)
        for attribute in step.renderables:
            if hasattr(step, attribute):
                setattr(step, attribute, properties.render(getattr(step, attribute)))
        return step

    def should_run(self, ctx: StepContext) -> bool:
        """``doStepIf``: a bool, or a function of the step context."""
        condition = self.doStepIf
        return bool(condition(ctx) if callable(condition) else condition)

    async def run(self, ctx: StepContext) -> tuple[int, str]:
        """Run the step; return its result code and final state string."""
        raise NotImplementedError


def _run_in_context(run):
    """Buildbot's ``run(self)`` (async, ``inlineCallbacks`` or plain, returning a result code)
    as buildfarm's ``run(self, ctx)`` returning ``(results, state)``.  Called without a
    context (``super().run()`` inside a subclass's run) it is the original, already bound."""

    async def run_with_context(self, ctx=None):
        if ctx is None:
            result = run(self)
            return (await result) if inspect.isawaitable(result) else result
        self.bind_run(ctx)
        try:
            result = run(self)
            if inspect.isawaitable(result):
                result = await result
        except BuildStepFailed:
            result = FAILURE
        await self.finish_run_logs()
        if not isinstance(result, int) or not SUCCESS <= result <= CANCELLED:
            raise TypeError(f"{type(self).__name__}.run returned {result!r}, not a result code")
        return result, self.final_state(result)

    run_with_context.__name__ = run.__name__
    run_with_context.__qualname__ = getattr(run, "__qualname__", run.__name__)
    run_with_context.__doc__ = run.__doc__
    run_with_context.buildbot_run = run
    return run_with_context


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
