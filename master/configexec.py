"""Running master.cfg and the helper modules it imports from beside it, so that one run finds
every problem: ``ConfigExecution``.

Each file runs one top-level statement at a time.  A statement that raises is reported at
the file and line where the error arose: the deepest frame in master.cfg or in a helper module
(``helpers/workers.py:5``, not the ``import`` line of master.cfg), and the next statement runs.
The names the failed statement would have bound are remembered, so that the ``NameError`` a
later use of one of them raises is not reported again.  A helper module with problems reports
each of them and then fails its import the same way (its importer's names are unbound too).
"""

import __future__

import ast
import builtins
import importlib.machinery
import importlib.util
import os
import sys
import traceback
import types
from dataclasses import dataclass

from buildfarm.master.buildbotimports import not_supported_message
from buildfarm.master.configobject import CONFIG_FILE_KEY, CONFIG_MODULE_NAME
from buildfarm.master.pluginspace import NotSupportedByBuildfarm, UnknownPluginName


@dataclass
class ConfigError:
    """One problem in master.cfg or a helper module, at a line when it is known."""

    filename: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.filename}:{self.line}" if self.line else self.filename
        return f"{where}: {self.message}"


class ConfigErrors(Exception):
    """Every problem found in one master.cfg."""

    def __init__(self, errors: list[ConfigError], warnings: list[str] | None = None):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors
        self.warnings = list(warnings or [])  # found too, on the way: checkconfig shows them all


class HelperModuleFailed(ImportError):
    """A helper module beside master.cfg had problems, each already reported; ``names`` are
    the names its top level binds (what ``from helper import *`` would have bound)."""

    def __init__(self, message: str, name: str, names: frozenset[str] = frozenset()):
        super().__init__(message, name=name)
        self.names = names


# Errors whose message is the whole story (no exception class name in front of it).
_PLAIN_MESSAGE_ERRORS = (NotSupportedByBuildfarm, UnknownPluginName)
# What ``from buildbot.plugins import *`` binds (its ``__all__``): after that import failed,
# their NameErrors are not reported again.
BUILDBOT_PLUGINS_ALL = ("changes", "reporters", "schedulers", "secrets", "statistics", "steps", "util",
                        "webhooks", "worker")


class ConfigExecution:
    """One run of master.cfg (``run``) with the problems it found (``errors``)."""

    def __init__(self, path: str):
        self.path = os.path.abspath(path)
        self.basedir = os.path.dirname(self.path)
        self.errors: list[ConfigError] = []
        self.source = ""  # master.cfg's text, once read
        self._unbound: set[str] = set()  # names a failed statement would have bound
        # The c['key']s a failed statement of master.cfg would have set: problems that may
        # only follow from their absence (an unknown slave) are not reported about them.
        self.failed_keys: set[str] = set()
        self._files: dict[str, str] = {self.path: os.path.basename(self.path)}
        self.importer = BesideConfigImporter(self.basedir, self)

    def run(self) -> dict:
        """Run master.cfg; its namespace (``BuildmasterConfig`` is in it unless it failed)."""
        try:
            with open(self.path, encoding="utf-8") as f:
                self.source = f.read()
        except OSError as e:
            self.errors.append(ConfigError(self.path, None, f"cannot read: {e.strerror}"))
            return {}
        namespace = {"__file__": self.path, "__name__": CONFIG_MODULE_NAME,
                     "__builtins__": self.importer.builtins, CONFIG_FILE_KEY: self._files[self.path]}
        self.run_source(self.source, self.path, namespace)
        return namespace

    def unbound_names(self) -> frozenset[str]:
        """The names failed statements would have bound, so far."""
        return frozenset(self._unbound)

    def display_name(self, path: str) -> str:
        """How a file of the configuration is named in messages (relative to the basedir)."""
        return os.path.relpath(path, self.basedir)

    def run_source(self, source: str, path: str, namespace: dict) -> bool:
        """Run ``source`` statement by statement in ``namespace``; False if any failed."""
        name = self._files.setdefault(path, self.display_name(path))
        before = len(self.errors)
        try:
            tree = ast.parse(source, path)
        except SyntaxError as e:
            self.errors.append(ConfigError(name, e.lineno, f"syntax error: {e.msg}"))
            return False
        flags = 0
        for statement in tree.body:
            if isinstance(statement, ast.ImportFrom) and statement.module == "__future__":
                for alias in statement.names:
                    feature = getattr(__future__, alias.name, None)
                    flags |= getattr(feature, "compiler_flag", 0)
            code = compile(ast.Module(body=[statement], type_ignores=[]), path, "exec",
                           flags=flags, dont_inherit=True)
            try:
                exec(code, namespace)
            except Exception as e:
                self._failed(statement, e, name)
        return len(self.errors) == before

    def _failed(self, statement: ast.stmt, error: Exception, filename: str) -> None:
        if not self._is_cascade(error):
            problem = self._located(error, filename, statement.lineno, statement)
            if problem not in self.errors:  # one cause met through several imports: once
                self.errors.append(problem)
        self._unbound |= _bound_names(statement)
        self._unbound |= _submodule_names(statement)
        if isinstance(error, HelperModuleFailed) and isinstance(statement, ast.ImportFrom) \
                and any(alias.name == "*" for alias in statement.names):
            self._unbound |= error.names
        self.failed_keys |= _subscript_keys(statement)

    def _is_cascade(self, error: Exception) -> bool:
        """Whether ``error`` only follows from a statement that failed before (reported)."""
        if isinstance(error, HelperModuleFailed):
            return True
        if isinstance(error, NameError):
            return error.name in self._unbound
        if isinstance(error, KeyError) and len(error.args) == 1:
            # c['schedulers'].extend(...) after a failed c['schedulers'] = ...
            return error.args[0] in self.failed_keys
        if isinstance(error, AttributeError) and isinstance(getattr(error, "obj", None), types.ModuleType):
            return f"{error.obj.__name__}.{error.name}" in self._unbound  # import pkg.mod failed
        return False

    def _located(self, error: Exception, filename: str, line: int,
                 statement: ast.stmt | None = None) -> ConfigError:
        if isinstance(error, SyntaxError) and error.filename in self._files:
            return ConfigError(self._files[error.filename], error.lineno, f"syntax error: {error.msg}")
        for frame in reversed(traceback.extract_tb(error.__traceback__)):
            if frame.filename in self._files:
                filename, line = self._files[frame.filename], frame.lineno
            elif _is_users_file(frame.filename):  # a module of the user's outside the basedir
                filename, line = self.display_name(frame.filename), frame.lineno
            else:
                continue
            statement = _statement_at(frame.line) or statement
            break
        plain = isinstance(error, _PLAIN_MESSAGE_ERRORS)
        message = str(error) if plain else f"{type(error).__name__}: {error}"
        if isinstance(error, ImportError):
            message = not_supported_message(error, statement) or message
        if isinstance(error, ModuleNotFoundError) and (error.name or "").partition(".")[0] == "buildbot":
            message += (": buildfarm does not import Buildbot; import from buildfarm.master.plugins "
                        "(docs/porting.md)")
        return ConfigError(filename, line, message)


def _bound_names(statement: ast.stmt) -> set[str]:
    """The names a top-level statement binds (assignments, imports, defs, loop targets)."""
    names: set[str] = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").partition(".")[0] == "buildbot" \
                and any(alias.name == "*" for alias in node.names):
            names.update(BUILDBOT_PLUGINS_ALL)
        elif isinstance(node, ast.alias):
            names.add(node.asname or node.name.partition(".")[0])
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
    return names


def _statement_at(text: str | None) -> ast.stmt | None:
    """The one-line statement a traceback shows (an ``import`` the error names), if it parses."""
    try:
        body = ast.parse((text or "").strip()).body
    except SyntaxError:
        return None
    return body[0] if len(body) == 1 else None


def _submodule_names(statement: ast.stmt) -> set[str]:
    """What a failed ``import pkg.mod`` leaves unset: ``pkg.mod``, and ``mod`` (a package's
    ``__init__`` that imports its own submodule gets it as a global)."""
    names: set[str] = set()
    if isinstance(statement, ast.Import):
        for alias in statement.names:
            if "." in alias.name and alias.asname is None:
                names |= {alias.name, alias.name.rpartition(".")[2]}
    return names


_BUILDFARM_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_NOT_USERS = tuple(os.path.join(os.path.realpath(p), "") for p in {
    sys.prefix, sys.base_prefix, sys.exec_prefix, _BUILDFARM_DIR})


def _is_users_file(filename: str) -> bool:
    """Whether a traceback's file is the user's (not Python's, a package's or buildfarm's)."""
    if not os.path.isabs(filename) or not os.path.isfile(filename):
        return False
    return not os.path.realpath(filename).startswith(_NOT_USERS)


def _subscript_keys(statement: ast.stmt) -> set[str]:
    """The constant string keys a statement subscripts (``c['workers']``)."""
    return {node.slice.value for node in ast.walk(statement)
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)}


class BesideConfigImporter:
    """The ``__import__`` of master.cfg and of the modules it loads from beside it: a module
    not yet imported that lies in the master's basedir (a top-level module or package, and
    the submodules of such a package) is loaded from there, statement by statement like
    master.cfg (as if the basedir led ``sys.path``); every other import is Python's own.  No
    global state changes (``sys.path`` stays as it is), so master.cfg may be loaded in a
    worker thread while the reactor thread imports."""

    def __init__(self, basedir: str, execution: ConfigExecution | None = None):
        self.basedir = basedir
        self.execution = execution
        self.builtins = dict(builtins.__dict__, __import__=self)

    def __call__(self, name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002 - __import__'s
        absolute = name
        if level:
            package = (globals or {}).get("__package__") or ""
            absolute = importlib.util.resolve_name("." * level + name, package) if package else ""
        if absolute:
            module = self._ensure(absolute)
            for item in fromlist or ():
                if module is not None and item != "*" and hasattr(module, "__path__") \
                        and not hasattr(module, item):
                    self._ensure(f"{absolute}.{item}")
        return builtins.__import__(name, globals, locals, fromlist, level)

    def _ensure(self, dotted: str):
        """Load ``dotted`` (and its parents) from the basedir when they belong there; the
        module, or None when it is not one of the basedir's."""
        parts = dotted.split(".")
        module = None
        for i in range(1, len(parts) + 1):
            name = ".".join(parts[:i])
            parent = module
            module = sys.modules.get(name)
            if module is not None:
                if i == 1 and CONFIG_FILE_KEY not in vars(module) and not _is_beside(module, self.basedir):
                    return None
                continue
            if i == 1:
                search = [self.basedir]
            elif parent is not None and hasattr(parent, "__path__"):
                search = list(parent.__path__)
            else:
                return None
            spec = importlib.machinery.PathFinder.find_spec(name, search)
            if spec is None or (spec.loader is None and not spec.submodule_search_locations):
                return None
            module = self._load(name, spec)
            if parent is not None:
                setattr(parent, parts[i - 1], module)
        return module

    def _load(self, name: str, spec):
        module = importlib.util.module_from_spec(spec)
        module.__builtins__ = self.builtins  # its own imports of modules beside it work too
        sys.modules[name] = module
        if spec.origin is None:  # a directory without __init__.py: a namespace package, as in Buildbot
            setattr(module, CONFIG_FILE_KEY, self.execution.display_name(spec.submodule_search_locations[0])
                    if self.execution else name)
            return module
        try:
            source = spec.loader.get_source(name) if self.execution and spec.origin else None
            if source is None:
                spec.loader.exec_module(module)
            else:
                setattr(module, CONFIG_FILE_KEY, self.execution.display_name(spec.origin))
                if not self.execution.run_source(source, spec.origin, vars(module)):
                    names = frozenset(n for n in vars(module) if not n.startswith("_"))
                    raise HelperModuleFailed(f"{name} has problems (reported above)", name=name,
                                             names=names | self.execution.unbound_names())
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


def _is_beside(module, basedir: str) -> bool:
    filename = getattr(module, "__file__", None) or ""
    return os.path.dirname(os.path.abspath(filename)) == basedir if filename else False
