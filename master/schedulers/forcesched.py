"""``ForceScheduler``: lets a user request a build over the API, with typed parameters.

What a force request may carry in ``properties``:

- When the scheduler declares parameters (``properties=[util.StringParameter(...), ...]``),
  only those names are accepted; each value is checked and converted by its parameter,
  and a missing one takes the parameter's default (or is an error when ``required``).
  Every declared parameter becomes a build property.
- When it declares none, any names are accepted, but only with string values: they
  become build properties as submitted.

A rejected value raises ``ForceParameterError`` naming the field (the API answers 400).
"""

from buildfarm.master.schedulers.base import Scheduler
from buildfarm.master.schedulers.forceparams import BadValue, BaseParameter, StringParameter

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
    ``StringParameter`` that checks submitted reasons.
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
        self.unknown_args = sorted(kwargs)

    @property
    def default_reason(self) -> str:
        if isinstance(self.reason, BaseParameter):
            return self.reason.default or DEFAULT_REASON
        return self.reason

    def config_problems(self) -> list[str]:
        problems = super().config_problems()
        problems += [f"ForceScheduler got an unknown argument {a!r}" for a in self.unknown_args]
        if not isinstance(self.reason, str | StringParameter):
            problems.append(f"ForceScheduler {self.name!r}: reason must be a string or a StringParameter")
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
        return problems

    def force_properties(self, submitted: dict) -> dict:
        """The build properties for submitted ones (rules in the module docstring)."""
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
                properties[name] = parameter.value_from(submitted)
            except BadValue as e:
                raise ForceParameterError(name, str(e)) from None
        return properties

    def force_reason(self, reason: str | None) -> str:
        """The buildset's reason for a submitted one (None: the default)."""
        if not isinstance(self.reason, BaseParameter):
            return reason or self.reason
        try:
            submitted = {} if reason is None else {self.reason.name: reason}
            return self.reason.value_from(submitted) or DEFAULT_REASON
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
