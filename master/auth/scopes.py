"""Scopes, scope expressions and role expansion, as Taskcluster defines them (docs/taskcluster.md,
"Scopes and roles"; shared semantics in PEERS.md 3.1).  Pure logic: no I/O, no clock.

- A granted scope ending in ``*`` covers every scope that starts with what precedes the ``*``;
  the star counts only at the end.
- An expression is a scope string, ``{"AllOf": [expr, ...]}`` or ``{"AnyOf": [expr, ...]}``,
  nested.  ``satisfies(granted, expr)`` says whether ``granted`` meets it, ``unsatisfied``
  gives what is missing (Taskcluster's ``removeGivenScopes``: None when satisfied).
- ``RoleIndex(roles).expand(scopes)``: ``assume:<roleId>`` brings the role's scopes, again and
  again until nothing new comes (a fixed point); a roleId ending in ``*`` applies to every
  ``assume:`` scope it prefixes, and ``<..>`` in such a role's scopes is replaced by what its
  ``*`` matched (a match that itself ends in ``*`` cuts the scope after it); a granted
  ``assume:prefix*`` (or ``*``) takes every role under the prefix.  The result is normalised:
  sorted, without duplicates and without scopes that a ``*`` scope of the set covers.
"""

import bisect
from collections.abc import Iterable, Mapping, Sequence

ASSUME = "assume:"
PARAM = "<..>"
# A parameterised role can feed itself forever (``a*`` -> ``assume:a<..>x``): expansion stops
# with ``ExpansionTooLarge`` past this many scopes.
MAX_EXPANDED_SCOPES = 100_000
MAX_SCOPE_CHARS = 4096
MAX_EXPANDED_SCOPE_CHARS = 2 * MAX_SCOPE_CHARS  # a role's scope with a parameter as long as itself
ALL_OF = "AllOf"
ANY_OF = "AnyOf"

Expression = str | Mapping[str, list]


class ScopeError(ValueError):
    """A malformed scope, expression or role."""


class ExpansionTooLarge(ScopeError):
    """Role expansion passed ``MAX_EXPANDED_SCOPES`` (a role that feeds itself through ``<..>``)."""


# -- single scopes ------------------------------------------------------------------------

def scope_problem(scope: object) -> str | None:
    """Why ``scope`` cannot be granted or required (None when it is fine): printable ASCII,
    at most ``MAX_SCOPE_CHARS``, not ending in ``**`` (ambiguous)."""
    if not isinstance(scope, str):
        return f"a scope is a string, not {scope!r}"
    if len(scope) > MAX_SCOPE_CHARS:
        return f"scope {scope[:40]!r}... is longer than {MAX_SCOPE_CHARS} characters"
    if any(not (" " <= ch <= "~") for ch in scope):
        return f"scope {scope!r} holds a character that is not printable ASCII"
    if scope.endswith("**"):
        return f"scope {scope!r} ends in '**', which is ambiguous"
    return None


def check_scopes(scopes: object, what: str = "scopes") -> list[str]:
    """``scopes`` as a list of valid scopes; ``ScopeError`` naming the first bad one."""
    if not isinstance(scopes, list | tuple):
        raise ScopeError(f"{what} must be a list of strings")
    for scope in scopes:
        problem = scope_problem(scope)
        if problem:
            raise ScopeError(f"{what}: {problem}")
    return list(scopes)


def covers(granted: str, needed: str) -> bool:
    """Whether the one scope ``granted`` covers ``needed``."""
    return needed.startswith(granted[:-1]) if granted.endswith("*") else granted == needed


class ScopeSet:
    """Granted scopes, asked ``has(scope)`` fast: exact ones in a set, ``*`` prefixes in a set
    looked up by each prefix of the needed scope."""

    def __init__(self, granted: Iterable[str]):
        self.exact = set()
        self.prefixes = set()
        for scope in granted:
            if scope.endswith("*"):
                self.prefixes.add(scope[:-1])
            else:
                self.exact.add(scope)
        self._lengths = sorted({len(p) for p in self.prefixes})

    def has(self, needed: str) -> bool:
        if needed in self.exact:
            return True
        return any(needed[:n] in self.prefixes for n in self._lengths if n <= len(needed))


def _as_set(granted) -> ScopeSet:
    return granted if isinstance(granted, ScopeSet) else ScopeSet(granted)


# -- expressions ---------------------------------------------------------------------------

def check_expression(expr: object) -> Expression:
    """``expr`` if it is a valid expression; ``ScopeError`` saying what is wrong otherwise."""
    if isinstance(expr, str):
        problem = scope_problem(expr)
        if problem:
            raise ScopeError(problem)
        return expr
    if isinstance(expr, Mapping) and len(expr) == 1:
        (kind, items), = expr.items()
        if kind in (ALL_OF, ANY_OF) and isinstance(items, list):
            for item in items:
                check_expression(item)
            return expr
    raise ScopeError(f"a scope expression is a scope, {{'AllOf': [...]}} or {{'AnyOf': [...]}}, not {expr!r}")


def satisfies(granted: Iterable[str] | ScopeSet, expr: Expression) -> bool:
    """Whether ``granted`` (expanded scopes) meets ``expr``.  ``AllOf: []`` is always met,
    ``AnyOf: []`` never."""
    return unsatisfied(granted, expr) is None


def unsatisfied(granted: Iterable[str] | ScopeSet, expr: Expression) -> Expression | None:
    """The part of ``expr`` that ``granted`` does not meet, simplified (an ``AllOf`` keeps its
    unmet members, an ``AnyOf`` is met by any one member; one member stands for its list);
    None when ``expr`` is met."""
    return _remove_given(_as_set(granted), check_expression(expr))


def _remove_given(granted: ScopeSet, expr: Expression) -> Expression | None:
    if isinstance(expr, str):
        return None if granted.has(expr) else expr
    (kind, items), = expr.items()
    left = [e for e in (_remove_given(granted, item) for item in items) if e is not None]
    if kind == ANY_OF and len(left) < len(items):
        return None
    if kind == ALL_OF and not left:
        return None
    if len(left) == 1:
        return left[0]
    return {kind: left}


def scopes_of(expr: Expression) -> list[str]:
    """Every scope named in ``expr``."""
    if isinstance(expr, str):
        return [expr]
    (_kind, items), = expr.items()
    return [s for item in items for s in scopes_of(item)]


def describe(expr: Expression) -> str:
    """``expr`` as text for an error message: ``a``, ``(a and b)``, ``(a or b)``."""
    if isinstance(expr, str):
        return expr
    (kind, items), = expr.items()
    joiner = " and " if kind == ALL_OF else " or "
    return "(" + joiner.join(describe(item) for item in items) + ")"


# -- normalisation -------------------------------------------------------------------------

def normalize(scopes: Iterable[str]) -> list[str]:
    """Sorted, without duplicates and without scopes that a ``*`` scope of the set covers."""
    ordered = sorted(set(scopes))
    prefixes = {s[:-1] for s in ordered if s.endswith("*")}
    lengths = sorted({len(p) for p in prefixes})
    kept = []
    for scope in ordered:
        own = scope[:-1] if scope.endswith("*") else None
        if any(scope[:n] in prefixes and scope[:n] != own for n in lengths if n <= len(scope)):
            continue
        kept.append(scope)
    return kept


# -- roles ---------------------------------------------------------------------------------

def check_role(role_id: object, scopes: object) -> list[str]:
    """The scopes of a valid role; ``ScopeError`` for a bad id or scope (``<..>`` only in a role
    whose id ends in ``*``, once per scope, never right after a ``*``)."""
    if not isinstance(role_id, str) or not role_id or scope_problem(role_id) or role_id.endswith("**"):
        raise ScopeError(f"a roleId is a non-empty printable ASCII string not ending in '**', "
                         f"not {role_id!r}")
    scopes = check_scopes(scopes, f"role {role_id!r}: scopes")
    for scope in scopes:
        if PARAM not in scope:
            continue
        if not role_id.endswith("*"):
            raise ScopeError(f"role {role_id!r}: {scope!r} uses <..> but the roleId does not end in '*'")
        if scope.count(PARAM) > 1:
            raise ScopeError(f"role {role_id!r}: parameterized scope {scope!r} contains multiple '<..>'")
        if "*" + PARAM in scope:
            raise ScopeError(f"role {role_id!r}: parameterized scope {scope!r} has '*<..>', "
                             f"an ambiguous star")
    return scopes


def _substitute(scope: str, param: str) -> str:
    """``scope`` with its ``<..>`` replaced by ``param``; a ``param`` ending in ``*`` covers
    everything after it, so the rest of the scope is cut."""
    head, sep, tail = scope.partition(PARAM)
    if not sep:
        return scope
    return head + param if param.endswith("*") else head + param + tail


def feeds_assume(role_id: str, scopes: Iterable[str]) -> bool:
    """Whether the ``*`` role ``role_id`` puts its parameter into an ``assume:`` scope: only
    such roles can make expansion endless."""
    return role_id.endswith("*") and any(
        PARAM in s and (s.startswith(ASSUME) or ASSUME.startswith(s.partition(PARAM)[0])) for s in scopes)


def check_expansion_ends(index: "RoleIndex") -> None:
    """``ExpansionTooLarge`` when some role makes expansion endless: every role at once (``*``),
    then each role that feeds its parameter into ``assume:`` with a concrete parameter."""
    index.expand(["*"])
    for role_id, scopes in index.roles.items():
        if feeds_assume(role_id, scopes):
            index.expand([ASSUME + role_id[:-1] + "x"])


class RoleIndex:
    """Roles ``{roleId: scopes}`` indexed for expansion: exact ids in a dict, ``*`` ids by their
    prefix (looked up by each prefix of an ``assume:`` scope) and all ids sorted (a granted
    ``assume:prefix*`` takes the range of ids starting with the prefix, by bisection)."""

    def __init__(self, roles: Mapping[str, Sequence[str]]):
        self.roles = {role_id: list(scopes) for role_id, scopes in roles.items()}
        self.exact = {r: s for r, s in self.roles.items() if not r.endswith("*")}
        self.starred = {r[:-1]: s for r, s in self.roles.items() if r.endswith("*")}
        self._star_lengths = sorted({len(p) for p in self.starred})
        self.sorted_ids = sorted(self.roles)

    def direct(self, scope: str) -> list[str]:
        """The scopes one step of expansion gives ``scope`` (not recursive)."""
        if scope.endswith("*") and ASSUME.startswith(scope[:-1]):
            return self._under("")  # "*", "a*", ... "assume*": every role
        if not scope.startswith(ASSUME):
            return []
        name = scope[len(ASSUME):]
        found: list[str] = []
        if name.endswith("*"):
            found += self._under(name[:-1])
        else:
            found += self.exact.get(name, ())
        # ``*`` roles whose prefix the name starts with (for a starred name: whose prefix is at
        # most as long as the name's; longer ones were taken by ``_under``).
        stem = name[:-1] if name.endswith("*") else name
        for n in self._star_lengths:
            if n > len(stem):
                break
            scopes = self.starred.get(stem[:n])
            if scopes is not None:
                param = name[n:]
                found += [_substitute(s, param) for s in scopes]
        return found

    def _under(self, prefix: str) -> list[str]:
        """Scopes of every role whose id starts with ``prefix`` (what ``assume:prefix*`` takes);
        a ``*`` role's ``<..>`` gets ``*``, i.e. the scope is cut there.  Roles whose ``*`` prefix
        is shorter than ``prefix`` are the caller's business."""
        start = bisect.bisect_left(self.sorted_ids, prefix)
        found: list[str] = []
        for role_id in self.sorted_ids[start:]:
            if not role_id.startswith(prefix):
                break
            if role_id.endswith("*") and len(role_id) - 1 < len(prefix):
                continue  # ``ab*`` under "ab": taken by the prefix lookup with its parameter
            param = "*" if role_id.endswith("*") else None
            found += [_substitute(s, param) if param else s for s in self.roles[role_id]]
        return found

    def expand(self, scopes: Iterable[str], limit: int = MAX_EXPANDED_SCOPES) -> list[str]:
        """``scopes`` with every role they assume, recursively, normalised.  Cycles end (a scope
        is expanded once); ``ExpansionTooLarge`` past ``limit`` scopes."""
        seen: set[str] = set()
        todo = list(scopes)
        while todo:
            scope = todo.pop()
            if scope in seen:
                continue
            seen.add(scope)
            if len(seen) > limit or len(scope) > MAX_EXPANDED_SCOPE_CHARS:
                raise ExpansionTooLarge(f"role expansion passed {limit} scopes or made a scope longer than "
                                        f"{MAX_EXPANDED_SCOPE_CHARS} characters (a role assuming itself "
                                        f"through <..>?)")
            todo += [s for s in self.direct(scope) if s not in seen]
        return normalize(seen)
