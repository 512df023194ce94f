"""``ChangeFilter``: which changes a scheduler looks at (Buildbot's ``util.ChangeFilter``).

Each attribute (``project``, ``repository``, ``branch``, ``category``, ``codebase``) can be
checked three ways, all of which must pass when several are given:

- ``branch='main'`` or ``branch=['main', 'release']``: the value is one of these;
- ``branch_re='release/.*'``: the regular expression matches at the start of the value
  (``re.match``, as Buildbot does; a ``None`` value never matches);
- ``branch_fn=callable``: the callable returns true for the value.

``filter_fn(change)`` sees the whole ``Change``.  For every attribute but ``branch``,
``None`` means "do not filter"; for ``branch``, ``None`` means "the default branch" (a change
without a branch) and leaving it out means "any branch", as in Buildbot.
"""

import re
from collections.abc import Callable
from typing import Any

from buildfarm.master.changes.change import Change
from buildfarm.master.configobject import fingerprint

FILTERED_FIELDS = ("project", "repository", "branch", "category", "codebase")


class _NotABranch:
    """The default of ``branch=``: any branch, including the default one."""

    def __repr__(self) -> str:
        return "NotABranch"


NotABranch: Any = _NotABranch()


class ChangeFilter:
    """A predicate over changes built from master.cfg arguments."""

    def __init__(
        self, filter_fn: Callable[[Change], bool] | None = None,
        project=None, project_re=None, project_fn=None,
        repository=None, repository_re=None, repository_fn=None,
        branch=NotABranch, branch_re=None, branch_fn=None,
        category=None, category_re=None, category_fn=None,
        codebase=None, codebase_re=None, codebase_fn=None,
        **unknown,
    ):
        given = dict(locals())
        self.filter_fn = filter_fn
        self.values: dict[str, list] = {}
        self.patterns: dict[str, Any] = {}
        self.functions: dict[str, Any] = {}
        self.problems = [f"ChangeFilter got an unknown argument {a!r}" for a in sorted(unknown)]
        for name in FILTERED_FIELDS:
            value = given[name]
            unset = NotABranch if name == "branch" else None
            if value is not unset:
                self.values[name] = list(value) if isinstance(value, list | tuple | set) else [value]
            if given[f"{name}_re"] is not None:
                self.patterns[name] = self._compile(f"{name}_re", given[f"{name}_re"])
            if given[f"{name}_fn"] is not None:
                self.functions[name] = self._callable(f"{name}_fn", given[f"{name}_fn"])
        if filter_fn is not None:
            self._callable("filter_fn", filter_fn)

    def _compile(self, argument: str, pattern):
        if isinstance(pattern, re.Pattern):
            return pattern
        try:
            return re.compile(pattern)
        except (re.error, TypeError) as e:
            self.problems.append(f"ChangeFilter {argument}={pattern!r} is not a regular expression: {e}")
            return None

    def _callable(self, argument: str, fn):
        if not callable(fn):
            self.problems.append(f"ChangeFilter {argument} must be callable, not {fn!r}")
        return fn

    def config_problems(self) -> list[str]:
        """What is wrong with the arguments (empty when nothing is)."""
        return list(self.problems)

    def filter_change(self, change: Change) -> bool:
        """Whether the change passes every check."""
        for name, allowed in self.values.items():
            if getattr(change, name) not in allowed:
                return False
        for name, pattern in self.patterns.items():
            value = getattr(change, name)
            if pattern is None or value is None or not pattern.match(value):
                return False
        for name, fn in self.functions.items():
            if not fn(getattr(change, name)):
                return False
        return self.filter_fn is None or bool(self.filter_fn(change))

    __call__ = filter_change

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and fingerprint(vars(self)) == fingerprint(vars(other))

    def __hash__(self) -> int:
        return hash(fingerprint(vars(self)))

    def __repr__(self) -> str:
        checks = [f"{n}={v!r}" for n, v in self.values.items()]
        checks += [f"{n}_re={p.pattern!r}" for n, p in self.patterns.items() if p is not None]
        checks += [f"{n}_fn={f!r}" for n, f in self.functions.items()]
        if self.filter_fn is not None:
            checks.append(f"filter_fn={self.filter_fn!r}")
        return f"ChangeFilter({', '.join(checks)})"
