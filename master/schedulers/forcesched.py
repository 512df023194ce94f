"""``ForceScheduler``: lets a user request a build over the API, with typed parameters.

What a force request may carry in ``properties``:

- When the scheduler declares parameters (``properties=[util.StringParameter(...), ...]``),
  only those names are accepted; each value is checked and converted by its parameter,
  and a missing one takes the parameter's default (or is an error when ``required``).
  Every declared parameter becomes a build property.
- When it declares none, any names are accepted, but only with string values: they
  become build properties as submitted.

With ``codebases=[...]`` (codebase names or ``util.CodebaseParameter``s), a request also
carries each codebase's ``branch``, ``revision``, ``repository`` and ``project`` under
Buildbot's field names (``<codebase>_branch``, or ``branch`` for the codebase ``''``) among
its ``properties``.  The build gets a ``sourcestamps`` property (one dict per codebase, as
Buildbot's data API has them), which the source steps check out; with one codebase, also the
``branch``, ``revision``, ``repository``, ``project`` and ``codebase`` properties, as
Buildbot sets them.  Without ``codebases`` a build has no ``sourcestamps``.

``reason`` is a string (the default reason) or any force parameter, which checks and converts
the submitted reason.

A rejected value raises ``ForceParameterError`` naming the field (the API answers 400).
"""

from buildfarm.master.schedulers.base import Scheduler
from buildfarm.master.schedulers.forceparams import (
    BadField,
    BadValue,
    BaseParameter,
    BooleanParameter,
    ChoiceStringParameter,
    CodebaseParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
    TextParameter,
    ValidationError,
)

# Also where Buildbot's ``buildbot.schedulers.forcesched`` has them, for configs importing them from there.
__all__ = ["BaseParameter", "BooleanParameter", "ChoiceStringParameter", "CodebaseParameter",
           "FixedParameter", "ForceParameterError", "ForceScheduler", "IntParameter",
           "StringParameter", "TextParameter", "ValidationError"]

DEFAULT_REASON = "force build"


class ForceParameterError(ValueError):
    """A submitted force field is not acceptable: ``field`` names it, ``message`` says why."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ForceScheduler(Scheduler):
    """Builds on demand: ``POST /api/v1/builders/<name>/force`` for its builders.

    ``properties`` is the list of parameters (as in Buildbot); a dict instead gives fixed
    properties every forced build gets.  ``reason`` is the default reason, a string or a
    force parameter that checks submitted reasons.  ``codebases`` lists the codebases a forced
    build checks out (names or ``CodebaseParameter``s).
    """

    def __init__(self, name, builderNames, reason=DEFAULT_REASON, properties=None,  # noqa: N803
                 priority=0, buttonName=None, label=None, username=None, codebases=None,  # noqa: N803
                 **kwargs):
        fixed = properties if isinstance(properties, dict) else None
        super().__init__(name, builderNames, properties=fixed, priority=priority)
        self.parameters = [] if properties is None or fixed is not None else properties
        self.reason = reason
        self.buttonName = buttonName
        self.label = label
        self.username = username  # accepted without effect (checkconfig warns)
        self.codebases = codebases
        self.unknown_args = sorted(kwargs)

    @property
    def default_reason(self) -> str:
        if isinstance(self.reason, BaseParameter):
            default = self.reason.default
            default = ", ".join(map(str, default)) if isinstance(default, list) else default
            return str(default) if default not in (None, "") else DEFAULT_REASON
        return self.reason

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        problems += [f"ForceScheduler got an unknown argument {a!r}" for a in self.unknown_args]
        if isinstance(self.reason, BaseParameter):
            problems += self.reason.config_problems()
        elif not isinstance(self.reason, str):
            problems.append(f"ForceScheduler {self.name!r}: reason must be a string or a force parameter "
                            "(util.StringParameter, util.ChoiceStringParameter, ...)")
        problems += self._codebase_problems()
        if not isinstance(self.parameters, list | tuple):
            problems.append(f"ForceScheduler {self.name!r}: properties must be a list of parameters")
            return problems
        seen: set[str] = set()
        for parameter in self.parameters:
            if not isinstance(parameter, BaseParameter):
                problems.append(f"ForceScheduler {self.name!r}: {parameter!r} is not a force parameter "
                                "(util.StringParameter, util.IntParameter, ...)")
                continue
            problems += parameter.config_problems()
            if parameter.name in seen:
                problems.append(f"ForceScheduler {self.name!r}: duplicate parameter {parameter.name!r}")
            seen.add(parameter.name)
        fields = {n for c in self.codebase_parameters() if isinstance(c, CodebaseParameter)
                  and not c.config_problems() for n in c.full_names()}
        for name in sorted(seen & fields):
            problems.append(f"ForceScheduler {self.name!r}: parameter {name!r} has the name of a "
                            "codebase field")
        return problems

    def _codebase_problems(self) -> list[str]:
        about = f"ForceScheduler {self.name!r}"
        if self.codebases is None:
            return []
        if not isinstance(self.codebases, list) or not self.codebases:
            return [f"{about}: codebases must be a non-empty list of codebase names or "
                    f"util.CodebaseParameter, not {self.codebases!r} "
                    "(one unnamed codebase: [util.CodebaseParameter(codebase='')])"]
        problems, seen = [], set()
        for codebase in self.codebase_parameters():
            if not isinstance(codebase, CodebaseParameter):
                problems.append(f"{about}: codebases must hold codebase names or util.CodebaseParameter, "
                                f"not {codebase!r}")
                continue
            problems += [f"{about}: {p}" for p in codebase.config_problems()]
            if codebase.codebase in seen:
                problems.append(f"{about}: codebase {codebase.codebase!r} is listed twice")
            seen.add(codebase.codebase)
        return problems

    def codebase_parameters(self) -> list:
        """``codebases`` with each name as a ``CodebaseParameter`` (empty without codebases)."""
        if not isinstance(self.codebases, list):
            return []
        return [CodebaseParameter(c) if isinstance(c, str) else c for c in self.codebases]

    def force_sourcestamps(self, submitted: dict) -> list[dict]:
        """The build's sourcestamps (one per codebase) for the submitted fields."""
        stamps = []
        for codebase in self.codebase_parameters():
            try:
                stamps.append(codebase.value_from(submitted))
            except BadField as e:
                raise ForceParameterError(e.field, str(e)) from None
        return stamps

    def force_properties(self, submitted: dict) -> dict:
        """The build properties for submitted ones (rules in the module docstring)."""
        fields = {n for c in self.codebase_parameters() for n in c.full_names()}
        stamps = self.force_sourcestamps(submitted)
        properties = self._declared_properties({k: v for k, v in submitted.items() if k not in fields})
        if stamps:
            properties["sourcestamps"] = stamps
        if len(stamps) == 1:  # Buildbot's "old interface": the one stamp as properties
            for key in ("branch", "revision", "repository", "project", "codebase"):
                properties[key] = stamps[0].get(key, "")
        return properties

    def _declared_properties(self, submitted: dict) -> dict:
        if not self.parameters:
            for name, value in submitted.items():
                if not isinstance(value, str):
                    raise ForceParameterError(
                        name, f"must be a string (scheduler {self.name!r} declares no parameters)")
            return dict(submitted)
        declared = {p.name: p for p in self.parameters}
        for name in submitted:
            if name not in declared:
                raise ForceParameterError(
                    name, f"unknown property; scheduler {self.name!r} accepts {', '.join(sorted(declared))}")
        properties = {}
        for name, parameter in declared.items():
            try:
                properties.update(parameter.properties_from(submitted))
            except BadValue as e:
                raise ForceParameterError(name, str(e)) from None
        return properties

    def force_reason(self, reason: str | None) -> str:
        """The buildset's reason for a submitted one (None: the default)."""
        if not isinstance(self.reason, BaseParameter):
            return reason or self.reason
        try:
            submitted = {} if reason is None else {self.reason.name: reason}
            value = self.reason.value_from(submitted)
            value = ", ".join(map(str, value)) if isinstance(value, list) else value
            return str(value) if value not in (None, "") else DEFAULT_REASON
        except BadValue as e:
            raise ForceParameterError("reason", str(e)) from None

    async def force(self, buildername: str, reason: str | None, properties: dict,
                    owner: str | None = None) -> int:
        """Validate, add a one-request buildset for ``buildername``; return the request id."""
        props = self.force_properties(properties)
        if owner:
            props["owner"] = owner
        _, brids = await self.add_buildset(self.force_reason(reason), props, [buildername])
        return next(iter(brids.values()))
