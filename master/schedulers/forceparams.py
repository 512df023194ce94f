"""The typed parameters of a ``ForceScheduler`` (Buildbot's ``util.StringParameter`` & co.).

Each parameter names one build property.  When a build is forced, ``parse`` turns the
submitted value (JSON from the API: a string, number, boolean or list) into the property's
value or raises ``BadValue`` with a message for the user; the ForceScheduler reports it as
``ForceParameterError`` naming the parameter.  A value that is not submitted takes the
parameter's ``default``, unless the parameter is ``required``.
"""

import re
from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0", ""})


class BadValue(ValueError):
    """A submitted value this parameter does not accept; the message is for the user."""


# Buildbot's name for it (``buildbot.schedulers.forcesched.ValidationError``): a custom
# parameter raises it from ``parse_from_arg`` or ``updateFromKwargs``.
ValidationError = BadValue
# Buildbot's hooks a custom parameter (a subclass of ``BaseParameter``) may override.
BUILDBOT_HOOKS = ("parse_from_arg", "parse_from_args", "getFromKwargs", "updateFromKwargs")


class BaseParameter:
    """One named, typed field of a force request.

    A user's subclass may be written against Buildbot's API instead of ``parse``: it
    overrides ``parse_from_arg`` (one submitted value in, the property's value out),
    ``getFromKwargs`` (the submitted values by name in, the value out) or ``updateFromKwargs``
    (sets ``properties``, any number of them), and raises ``ValidationError``.  Buildbot
    checks no default of such a parameter when the config loads; neither does buildfarm.
    """

    type_name = "value"
    default_default: Any = None
    multiple = False

    def __init__(self, name, label=None, default=None, required=False, hide=False, **kwargs):
        self.name = name
        self.label = label if label is not None else name
        self.default = self.default_default if default is None else default
        self.required = required
        self.hide = hide
        # Buildbot's layout arguments (size, cols, rows, tablabel...) mean nothing without its UI.
        self.ignored = sorted(kwargs)

    def config_problems(self) -> list[str]:
        if not isinstance(self.name, str) or not self.name:
            return [f"force parameter name must be a non-empty string, not {self.name!r}"]
        problems = []
        if not self.required and not self.buildbot_custom():
            try:
                self.parse(self.default)
            except BadValue as e:
                problems.append(f"force parameter {self.name!r}: bad default {self.default!r}: {e}")
        return problems

    def value_from(self, submitted: dict) -> Any:
        """The property value for a force request's submitted properties."""
        if self.name not in submitted or submitted[self.name] is None:
            if self.required:
                raise BadValue("is required")
            return self.parse(self.default)
        value = self.parse(submitted[self.name])
        if self.required and value in ("", []):
            raise BadValue("is required")
        return value

    def parse(self, value: Any) -> Any:
        return self.parse_from_arg(value)

    # Buildbot's API, for parameters users write (see the class docstring).

    @property
    def fullName(self) -> str:  # noqa: N802 - Buildbot's name
        return self.name

    def buildbot_custom(self) -> bool:
        """Whether this parameter's class overrides one of Buildbot's hooks."""
        return any(getattr(type(self), hook) is not getattr(BaseParameter, hook) for hook in BUILDBOT_HOOKS)

    def parse_from_arg(self, s: Any) -> Any:
        return s

    def parse_from_args(self, values: list) -> Any:
        if self.multiple:
            return [self.parse_from_arg(v) for v in values]
        return self.parse_from_arg(values[0])

    def getFromKwargs(self, kwargs: dict) -> Any:  # noqa: N802 - Buildbot's name
        """The value from ``kwargs``, the submitted values by name, each a list (Buildbot's)."""
        values = [v for v in kwargs.get(self.fullName, []) if not (isinstance(v, str) and not v.strip())]
        if not values:
            if self.required:
                raise ValidationError(f"'{self.label}' needs to be specified")
            values = list(self.default) if self.multiple else [self.default]
        return self.parse_from_args(values)

    def updateFromKwargs(self, properties: dict, kwargs: dict, collector=None, **unused) -> None:  # noqa: N802
        properties[self.name] = self.getFromKwargs(kwargs)

    def properties_from(self, submitted: dict) -> dict:
        """The build properties this parameter gives a force request's submitted values;
        a parameter written against Buildbot's API gets them its way.  Raises ``BadValue``."""
        if not self.buildbot_custom():
            return {self.name: self.value_from(submitted)}
        properties: dict = {}
        kwargs = {k: v if isinstance(v, list) else [v] for k, v in submitted.items() if v is not None}
        try:
            self.updateFromKwargs(properties=properties, kwargs=kwargs, collector=None)
        except BadValue:
            raise
        except Exception as e:  # the user's code: its failure is the request's, not a server error
            raise BadValue(f"{type(e).__name__}: {e}") from e
        return properties


class StringParameter(BaseParameter):
    """A string; ``regex`` must match at its start (``re.match``, as in Buildbot)."""

    type_name = "string"
    default_default = ""

    def __init__(self, name, label=None, default=None, required=False, regex=None, maxsize=None, **kwargs):
        self.regex = regex
        self.maxsize = maxsize
        self._pattern, self._regex_problem = _compile(regex)
        super().__init__(name, label=label, default=default, required=required, **kwargs)

    def config_problems(self) -> list[str]:
        if self._regex_problem:
            return [f"force parameter {self.name!r}: {self._regex_problem}"]
        return super().config_problems()

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise BadValue(f"must be a string, not {value!r}")
        if self.maxsize is not None and len(value) > self.maxsize:
            raise BadValue(f"is longer than {self.maxsize} characters")
        if self._pattern is not None and value and not self._pattern.match(value):
            raise BadValue(f"{value!r} does not match {self._pattern.pattern!r}")
        return value


class TextParameter(StringParameter):
    """A multi-line string."""


class IntParameter(BaseParameter):
    """An integer; strings of digits are accepted (a form sends strings)."""

    type_name = "integer"
    default_default = 0

    def parse(self, value: Any) -> int:
        if isinstance(value, bool):
            raise BadValue(f"must be an integer, not {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        raise BadValue(f"must be an integer, not {value!r}")


class BooleanParameter(BaseParameter):
    """True or false; the strings true/false, yes/no, on/off, 1/0 are accepted."""

    type_name = "boolean"
    default_default = False

    def parse(self, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
        raise BadValue(f"must be true or false, not {value!r}")

    def value_from(self, submitted: dict) -> Any:
        # A required boolean makes no sense (false is a value); never "missing".
        if self.name not in submitted or submitted[self.name] is None:
            return self.parse(self.default)
        return self.parse(submitted[self.name])


class ChoiceStringParameter(BaseParameter):
    """One of ``choices`` (a list of them with ``multiple=True``); ``strict=False`` also
    accepts other strings.  The default is the first choice."""

    type_name = "choice"

    def __init__(self, name, choices=None, label=None, default=None, strict=True, multiple=False,
                 **kwargs):
        self.choices = list(choices) if isinstance(choices, list | tuple) else choices
        self.strict = strict
        self.multiple = multiple
        if default is None and isinstance(self.choices, list) and self.choices:
            default = [] if multiple else self.choices[0]
        super().__init__(name, label=label, default=default, **kwargs)

    def config_problems(self) -> list[str]:
        if not isinstance(self.choices, list) or not self.choices or \
                not all(isinstance(c, str) for c in self.choices):
            return [f"force parameter {self.name!r}: choices must be a non-empty list of strings"]
        return super().config_problems()

    def parse(self, value: Any) -> Any:
        if self.multiple:
            values = value if isinstance(value, list) else [value]
            return [self._one(v) for v in values]
        return self._one(value)

    def _one(self, value: Any) -> str:
        if not isinstance(value, str):
            raise BadValue(f"must be a string, not {value!r}")
        if self.strict and value not in self.choices:
            raise BadValue(f"{value!r} is not one of {', '.join(map(repr, self.choices))}")
        return value


class FixedParameter(BaseParameter):
    """A value the user cannot change: submitting a different one is an error."""

    type_name = "fixed"

    def parse(self, value: Any) -> Any:
        if value != self.default:
            raise BadValue(f"is fixed to {self.default!r}")
        return value

    def value_from(self, submitted: dict) -> Any:
        if self.name in submitted and submitted[self.name] != self.default:
            raise BadValue(f"is fixed to {self.default!r}")
        return self.default


DEFAULT_FIELD = object()  # CodebaseParameter's "a plain string input" (Buildbot's DefaultField)
CODEBASE_FIELDS = ("branch", "project", "repository", "revision")


class CodebaseParameter(BaseParameter):
    """Buildbot's ``util.CodebaseParameter``: what a forced build checks out of one codebase.

    ``branch``, ``revision``, ``repository`` and ``project`` are each a parameter named like
    the argument (any type: ``util.ChoiceStringParameter(name='branch', ...)``), a string
    (a ``FixedParameter`` with that value), None (no such field) or left out (a free string).
    A field is submitted under its full name, Buildbot's: ``<name>_<field>`` (``name``
    defaults to the codebase), or the bare field name for the codebase ``''``.
    ``value_from`` gives the codebase's sourcestamp, a dict as Buildbot's data API has it.
    """

    type_name = "codebase"

    def __init__(self, codebase, name=None, label=None, branch=DEFAULT_FIELD, revision=DEFAULT_FIELD,
                 repository=DEFAULT_FIELD, project=DEFAULT_FIELD, patch=None, **kwargs):
        self.codebase = codebase
        self.patch = patch
        self.fields: list[BaseParameter] = []
        given = {"branch": branch, "project": project, "repository": repository, "revision": revision}
        for field, value in given.items():  # Buildbot's order: sorted by field
            if value is DEFAULT_FIELD:
                value = StringParameter(field, label=f"{field.capitalize()}:")
            elif isinstance(value, str):
                value = FixedParameter(field, default=value)
            if value is not None:
                self.fields.append(value)
        if label is None:
            label = f"Codebase: {codebase}" if codebase else ""
        super().__init__(codebase if name is None else name, label=label, **kwargs)

    def full_name(self, field: BaseParameter) -> str:
        """The name a field is submitted under (Buildbot's ``fullName``)."""
        return f"{self.name}_{field.name}" if self.name else field.name

    def full_names(self) -> list[str]:
        return [self.full_name(f) for f in self.fields]

    def config_problems(self) -> list[str]:
        if not isinstance(self.codebase, str):
            return [f"CodebaseParameter: codebase must be a string, not {self.codebase!r}"]
        if not isinstance(self.name, str):
            return [f"CodebaseParameter {self.codebase!r}: name must be a string, not {self.name!r}"]
        about = f"CodebaseParameter {self.codebase!r}"
        problems = []
        if self.patch is not None:
            problems.append(f"{about}: patch= is not supported by buildfarm (a try-style build "
                            "takes its patch from a change's 'patch' property)")
        for field in self.fields:
            if not isinstance(field, BaseParameter):
                problems.append(f"{about}: {field!r} is not a force parameter, a string or None")
            elif field.name not in CODEBASE_FIELDS:
                problems.append(f"{about}: field {field.name!r} is not one of {', '.join(CODEBASE_FIELDS)}")
            else:
                problems += field.config_problems()
        return problems

    def value_from(self, submitted: dict) -> dict:
        """The codebase's sourcestamp for a force request's submitted fields (full names);
        a bad field raises ``BadField``."""
        stamp = {"codebase": self.codebase}
        for field in self.fields:
            full = self.full_name(field)
            given = {field.name: submitted[full]} if full in submitted else {}
            try:
                stamp[field.name] = field.value_from(given)
            except BadValue as e:
                raise BadField(full, str(e)) from None
        return stamp


class BadField(BadValue):
    """A field of a nested parameter is bad: ``field`` is the full name it was submitted under."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _compile(regex) -> tuple[re.Pattern | None, str | None]:
    if regex is None or isinstance(regex, re.Pattern):
        return regex, None
    try:
        return re.compile(regex), None
    except (re.error, TypeError) as e:
        return None, f"regex {regex!r} is not a regular expression: {e}"
