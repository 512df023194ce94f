"""``ConfigObject``, the base of what master.cfg builds: where it was made, and how it compares.

Where: ``master.cfg`` and the helper modules it imports from beside it are executed with
``CONFIG_FILE_KEY`` in their globals (the file's name as checkconfig shows it), so a config
object can find the file and line that created it by walking up the stack to the first frame
running in one of them (for error messages with a file and line).  No global state is needed.

How it compares (``fingerprint``): a reconfig re-executes master.cfg, so every object in it
is new; what matters is whether the *configuration* changed.  Functions compare by their
code and constants (a reloaded ``lambda c: c.branch == 'main'`` equals the old one), objects
that others refer to by name (a Dependent follows its upstream scheduler by name) by their
name, regular expressions by their pattern, and configuration objects (anything with a
``__dict__``) by their public attributes.
"""

import re
import sys
import types
from typing import Any

CONFIG_MODULE_NAME = "__buildfarm_config__"
# In the globals of master.cfg and of its helper modules: the file's name relative to the basedir.
CONFIG_FILE_KEY = "__buildfarm_config_file__"


class ConfigLine(int):
    """A line number that also knows its file (``helpers/workers.py``), so code that treats
    lines as numbers (``item.config_line or default``) keeps working."""

    filename: str | None

    def __new__(cls, line: int, filename: str | None = None):
        self = super().__new__(cls, line)
        self.filename = filename
        return self


def caller_config_line() -> int | None:
    """The line of master.cfg or of a helper module currently executing (a ``ConfigLine``
    naming its file), or None outside a config load."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_globals.get(CONFIG_FILE_KEY)
        if filename is not None:
            return ConfigLine(frame.f_lineno, filename)
        if frame.f_globals.get("__name__") == CONFIG_MODULE_NAME:
            return frame.f_lineno
        frame = frame.f_back
    return None


class ConfigObject:
    """Base for objects built in master.cfg: remembers the line that built it."""

    config_line: int | None = None
    # Set by kinds that other configuration objects name (schedulers: "scheduler"): a value
    # holding one then compares by (kind, name) alone.  Such objects have a ``name``.
    referenced_by_name: str | None = None

    def _remember_config_line(self) -> None:
        self.config_line = caller_config_line()


def fingerprint(value: Any) -> Any:
    """A hashable, ``==``-comparable stand-in for a configuration value."""
    if isinstance(value, ConfigObject) and value.referenced_by_name is not None:
        return (value.referenced_by_name, value.name)
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
