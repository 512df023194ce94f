"""The builder page's force form, generated from its ForceScheduler's parameters.

``form_fields`` describes the inputs to render (one per parameter, plus the reason);
``submitted_values`` turns the posted form back into what ``ForceScheduler.force`` takes, so
the server validates with the scheduler's own rules and the page shows its messages beside
the fields.  A scheduler that declares no parameters gets ``FREE_PROPERTY_ROWS`` pairs of
name / value inputs (it accepts any string properties).
"""

from dataclasses import dataclass, field
from typing import Any

from buildfarm.master.schedulers.forceparams import BaseParameter

FREE_PROPERTY_ROWS = 3
INPUT_KINDS = {"string": "text", "integer": "number", "boolean": "checkbox", "choice": "select",
               "fixed": "fixed", "value": "text"}


@dataclass
class FormField:
    """One input of the force form."""

    name: str
    label: str
    kind: str  # text, textarea, number, checkbox, select, fixed, hidden
    value: Any = ""
    choices: list[str] = field(default_factory=list)
    multiple: bool = False
    required: bool = False


def parameter_field(parameter: BaseParameter, values: dict | None = None, name: str | None = None,
                    hide: bool = False) -> FormField:
    """The input for one parameter, showing ``values[name]`` (a re-shown form) or the default;
    ``name`` is the field's name when it is not the parameter's (a codebase's fields)."""
    name = parameter.name if name is None else name
    kind = "textarea" if type(parameter).__name__ == "TextParameter" else \
        INPUT_KINDS.get(parameter.type_name, "text")
    if parameter.hide or hide:
        kind = "hidden"
    value = parameter.default if values is None or name not in values else values[name]
    try:
        choices = list(getattr(parameter, "choices", None) or [])
    except Exception:  # a user's parameter computes its choices (Buildbot's API) and failed
        choices = []
    return FormField(name, str(parameter.label), kind, value, choices,
                     bool(getattr(parameter, "multiple", False)), bool(parameter.required))


def form_fields(scheduler, values: dict | None = None) -> list[FormField]:
    """The inputs of ``scheduler``'s force form (the reason comes first in the template), then
    each codebase's fields under their full names."""
    return [parameter_field(p, values) for p in scheduler.parameters] + [
        parameter_field(f, values, codebase.full_name(f), codebase.hide)
        for codebase in scheduler.codebase_parameters() for f in codebase.fields]


def reason_default(scheduler) -> str:
    return scheduler.default_reason


def submitted_values(scheduler, form: dict[str, list[str]]) -> tuple[str | None, dict]:
    """``(reason, properties)`` for ``ForceScheduler.force`` from the posted form fields.

    Booleans come as checkboxes (absent: false); multiple choices as repeated fields; fixed
    parameters are not taken from the form at all (the scheduler uses their value).
    """
    reason = _last(form, "reason")
    fields = {}
    for codebase in scheduler.codebase_parameters():
        for part in codebase.fields:
            full = codebase.full_name(part)
            if part.type_name != "fixed" and _last(form, full) is not None:
                fields[full] = _last(form, full)
    if not scheduler.parameters:
        properties = dict(fields)
        for row in range(FREE_PROPERTY_ROWS):
            name = (_last(form, f"propname{row}") or "").strip()
            if name:
                properties[name] = _last(form, f"propvalue{row}") or ""
        return reason, properties
    properties: dict[str, Any] = dict(fields)
    for parameter in scheduler.parameters:
        name = parameter.name
        if parameter.type_name == "fixed":
            continue
        if parameter.type_name == "boolean":
            properties[name] = "true" if _last(form, name) is not None else "false"
        elif getattr(parameter, "multiple", False):
            properties[name] = form.get(name, [])
        elif _last(form, name) not in (None, "") or parameter.type_name == "string":
            # An empty number field means "the default"; an empty string is a value.
            if _last(form, name) is not None:
                properties[name] = _last(form, name)
    return reason, properties


def _last(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[-1] if values else None
