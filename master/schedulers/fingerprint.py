"""``fingerprint``: a comparable summary of configuration values, for reconfig.

A reconfig re-executes master.cfg, so every object in it is new; what matters is whether
the *configuration* changed.  Functions compare by their code and constants (a reloaded
``lambda c: c.branch == 'main'`` equals the old one), schedulers by their name (a Dependent
follows its upstream by name), regular expressions by their pattern, and configuration
objects (anything with a ``__dict__``) by their public attributes.
"""

import re
import types
from typing import Any


def fingerprint(value: Any) -> Any:
    """A hashable, ``==``-comparable stand-in for a configuration value."""
    from buildfarm.master.schedulers.base import Scheduler  # the base imports this module

    if isinstance(value, Scheduler):
        return ("scheduler", value.name)
    if isinstance(value, dict):
        return ("dict", tuple(sorted(((repr(k), fingerprint(v)) for k, v in value.items()))))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(fingerprint(v) for v in value))
    if isinstance(value, set | frozenset):
        return ("set", tuple(sorted(repr(fingerprint(v)) for v in value)))
    if isinstance(value, re.Pattern):
        return ("re", value.pattern, value.flags)
    if isinstance(value, types.FunctionType):
        return ("function", _code_fingerprint(value.__code__), fingerprint(value.__defaults__ or ()),
                tuple(fingerprint(_cell(c)) for c in value.__closure__ or ()))
    if isinstance(value, types.MethodType):
        return ("method", fingerprint(value.__func__), fingerprint(value.__self__))
    if isinstance(value, str | bytes | int | float | bool | type(None)):
        return value
    if hasattr(value, "__dict__"):
        public = {k: v for k, v in vars(value).items() if not k.startswith("_") and k != "config_line"}
        return (type(value).__module__, type(value).__qualname__, fingerprint(public))
    return ("repr", repr(value))


def _code_fingerprint(code: types.CodeType) -> tuple:
    consts = tuple(_code_fingerprint(c) if isinstance(c, types.CodeType) else repr(c)
                   for c in code.co_consts)
    return (code.co_name, code.co_code, consts, code.co_names)


def _cell(cell) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None
