"""What checkconfig says about an import of a Buildbot module path that buildfarm does not
mirror: ``from buildfarm.master.data.resultspec import Filter`` is reported as ``not
supported by buildfarm: Filter (Buildbot's buildbot.data.resultspec.Filter)``, ``from
buildfarm.master.data import resultspec`` as ``not supported by buildfarm: resultspec
(Buildbot's module buildbot.data.resultspec)``, and a name missing from a module buildfarm
mirrors (``from buildfarm.master.worker import AbstractWorker``) as ``not supported by
buildfarm: AbstractWorker (Buildbot's buildbot.worker.AbstractWorker)``, not as a bare
``ModuleNotFoundError`` or ``ImportError``.  Buildbot's modules and names come from
``master/buildbotmodules.py``.
"""

import ast
import re

from buildfarm.master.buildbotmodules import BUILDBOT_MODULES

BUILDFARM_PACKAGE = "buildfarm.master"
_CANNOT_IMPORT = re.compile(r"cannot import name '([^']+)' from '([^']+)'")


def buildbot_counterpart(module: str) -> str | None:
    """Buildbot's path for a ``buildfarm.master`` module path (None for other modules)."""
    if module == BUILDFARM_PACKAGE or module.startswith(BUILDFARM_PACKAGE + "."):
        return "buildbot" + module[len(BUILDFARM_PACKAGE):]
    return None


def imported_modules(statement: ast.stmt | None) -> list[str]:
    """The modules (and possible submodules) an import statement names."""
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
        return [statement.module] + [f"{statement.module}.{a.name}" for a in statement.names if a.name != "*"]
    return []


def not_supported_message(error: ImportError, statement: ast.stmt | None = None) -> str | None:
    """``not supported by buildfarm: ...`` for an import of a Buildbot module or name that
    buildfarm does not mirror; None for any other import error."""
    if isinstance(error, ModuleNotFoundError):
        missing = error.name or ""
        if buildbot_counterpart(missing) is None:
            return None
        named = _names_from(statement, missing)
        if named:
            return named
        wanted = [m for m in imported_modules(statement) if m == missing or m.startswith(missing + ".")]
        for module in sorted(wanted, key=len, reverse=True) + [missing]:
            target = buildbot_counterpart(module)
            if target in BUILDBOT_MODULES:
                return f"not supported by buildfarm: {target.rpartition('.')[2]} (Buildbot's module {target})"
        return None
    match = _CANNOT_IMPORT.match(str(error))
    target = buildbot_counterpart(match.group(2)) if match else None
    if target is None:
        return None
    name = match.group(1)
    if f"{target}.{name}" in BUILDBOT_MODULES:
        return f"not supported by buildfarm: {name} (Buildbot's module {target}.{name})"
    if name in BUILDBOT_MODULES.get(target, ()):
        return f"not supported by buildfarm: {name} (Buildbot's {target}.{name})"
    return None


def _names_from(statement: ast.stmt | None, missing: str) -> str | None:
    """``from <missing>[.sub] import a, b`` of names Buildbot's module has: the message naming them."""
    if not (isinstance(statement, ast.ImportFrom) and statement.module and not statement.level
            and (statement.module == missing or statement.module.startswith(missing + "."))):
        return None
    target = buildbot_counterpart(statement.module)
    names = [a.name for a in statement.names]
    if any(n not in BUILDBOT_MODULES.get(target, ()) or f"{target}.{n}" in BUILDBOT_MODULES for n in names):
        return None
    return (f"not supported by buildfarm: {', '.join(names)} "
            f"(Buildbot's {', '.join(f'{target}.{n}' for n in names)})")
