"""Dimensions: what a slave offers (``{key: [values]}``), what a task asks, and matching.

A slave's dimensions come from three places, merged key by key, the later winning for a key
it sets (docs/tasks.md):

1. what the slave reports at attach (``os``, ``cpu``, ``python``: :func:`reported_dimensions`);
2. ``info/dimensions.json`` in the slave's basedir (sent by the slave as ``dimensions``; a stock
   Buildbot worker sends the file's text as ``dimensions.json``);
3. ``dimensions={...}`` on the slave in master.cfg.

``id`` is always the slave's name, and ``pool`` (a security boundary: who may run what where)
comes only from master.cfg.

A task matches a slave when every ``key:value`` it asks is among the slave's; a value
``a|b`` asks for either.  A task's dimensions expand into at most ``MAX_COMBINATIONS`` plain
sets, and the task matches when one of them does.  Each distinct expanded set is a *queue*,
named by :func:`queue_key`; :class:`QueueCache` keeps, per slave, the queues it can serve.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_KEYS = 32
MAX_VALUES_PER_KEY = 16
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 256
MAX_COMBINATIONS = 8
KEY = re.compile(r"[a-zA-Z_.\-][0-9a-zA-Z_.\-]*")
ID_KEY, POOL_KEY = "id", "pool"
SINGLE_VALUED = (ID_KEY, POOL_KEY)
CONFIG_ONLY = (POOL_KEY,)  # keys a slave cannot give itself
DIMENSIONS_INFO_KEY = "dimensions"  # what our slaves report (the parsed file)
DIMENSIONS_FILE_KEY = "dimensions.json"  # what a stock worker reports (the file's text)

Dimensions = dict[str, list[str]]
Combination = frozenset[str]  # {"key:value", ...}


class DimensionsError(ValueError):
    """Dimensions that are not valid; ``problems`` has one message per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


# -- validation ------------------------------------------------------------------------------

def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str) or not KEY.fullmatch(key) or len(key) > MAX_KEY_CHARS:
        return (f"key {key!r} must be 1 to {MAX_KEY_CHARS} of [a-zA-Z0-9_.-], "
                "not starting with a digit")
    return None


def _value_problem(key: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value or value.strip() != value or len(value) > MAX_VALUE_CHARS:
        return (f"{key}: value {value!r} must be a string of 1 to {MAX_VALUE_CHARS} characters "
                "without leading or trailing spaces")
    return None


def slave_dimensions_problems(dims: Any, where: str = "dimensions") -> list[str]:
    """The problems of a slave's dimensions as master.cfg or dimensions.json give them:
    ``{key: value or [values]}``; one message each, starting with ``where``."""
    if not isinstance(dims, Mapping):
        return [f"{where} must be a dict of {{key: value or [values]}}, not {type(dims).__name__}"]
    problems = []
    if len(dims) > MAX_KEYS:
        problems.append(f"{where}: at most {MAX_KEYS} keys, not {len(dims)}")
    for key, values in dims.items():
        problem = _key_problem(key)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        values = [values] if isinstance(values, str) else values
        if not isinstance(values, list | tuple) or not values:
            problems.append(f"{where}: {key}: give a string or a non-empty list of strings")
            continue
        if len(values) > MAX_VALUES_PER_KEY:
            problems.append(f"{where}: {key}: at most {MAX_VALUES_PER_KEY} values, not {len(values)}")
        problems += [f"{where}: {p}" for v in values if (p := _value_problem(key, v))]
        problems += [f"{where}: {key}: {v!r} must not contain '|' (only a task asks for alternatives)"
                     for v in values if isinstance(v, str) and "|" in v]
        if key in SINGLE_VALUED and len(values) > 1:
            problems.append(f"{where}: {key} must have one value, not {len(values)}")
    if ID_KEY in dims:
        problems.append(f"{where}: id is always the slave's name and cannot be set")
    return problems


def as_value_lists(dims: Mapping[str, Any]) -> Dimensions:
    """``{key: value or [values]}`` as ``{key: [values]}`` (values sorted, no duplicates)."""
    return {key: sorted({values} if isinstance(values, str) else set(values)) for key, values in dims.items()}


def normalize_task_dimensions(dims: Mapping[str, list[str]]) -> list[Combination]:
    """Check a task's dimensions with Swarming's rules and expand their ``a|b`` alternatives:
    the list of plain ``{"key:value"}`` sets, any of which a slave must have.  DimensionsError
    lists every problem."""
    problems = []
    if not dims:
        problems.append("required, with a pool")
    if len(dims) > MAX_KEYS:
        problems.append(f"at most {MAX_KEYS} keys, not {len(dims)}")
    for key, values in dims.items():
        problem = _key_problem(key)
        if problem:
            problems.append(problem)
            continue
        if len(values) > MAX_VALUES_PER_KEY:
            problems.append(f"{key}: at most {MAX_VALUES_PER_KEY} values, not {len(values)}")
        if len(set(values)) != len(values):
            problems.append(f"{key}: a value is given twice")
        for value in values:
            problem = _value_problem(key, value)
            if problem is None and any(_value_problem(key, alt) for alt in value.split("|")):
                problem = f"{key}: {value!r} has an empty or padded alternative"
            if problem:
                problems.append(problem)
    if dims and POOL_KEY not in dims:
        problems.append("pool is required")
    for key in SINGLE_VALUED:
        if len(dims.get(key, ())) > 1:
            problems.append(f"{key} must have one value, not {len(dims[key])}")
    if any("|" in v for v in dims.get(POOL_KEY, ())):
        problems.append("pool must be one pool, not alternatives")
    if problems:
        raise DimensionsError(problems)
    count = 1
    for values in dims.values():
        for value in values:
            count *= len(set(value.split("|")))
    if count > MAX_COMBINATIONS:
        raise DimensionsError([f"the alternatives (a|b) expand to {count} combinations; "
                               f"at most {MAX_COMBINATIONS}"])
    return expand(dims)


def expand(dims: Mapping[str, Iterable[str]]) -> list[Combination]:
    """The plain ``{"key:value"}`` sets a task's dimensions stand for: the cross product of
    its ``a|b`` terms, sorted and without duplicates."""
    terms = [sorted({f"{key}:{alt}" for alt in value.split("|")})
             for key, values in sorted(dims.items()) for value in values]
    combos = {frozenset(choice) for choice in itertools.product(*terms)}
    return sorted(combos, key=sorted)


def flatten(dims: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """A slave's dimensions as the set of ``"key:value"`` it has."""
    return frozenset(f"{key}:{value}" for key, values in dims.items() for value in values)


def matches(task_dims: Mapping[str, Iterable[str]], slave_dims: Mapping[str, Iterable[str]]) -> bool:
    """Whether a slave with ``slave_dims`` can run a task asking ``task_dims``."""
    offered = flatten(slave_dims)
    return any(combo <= offered for combo in expand(task_dims))


def queue_key(task_dims: Mapping[str, Iterable[str]]) -> str:
    """The name of the queue of tasks asking ``task_dims``: a stable hash (16 hex digits) of
    the canonical expanded dimensions, so that ``a|b`` and ``b|a`` share a queue."""
    canonical = json.dumps([sorted(combo) for combo in expand(task_dims)], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NearMiss:
    """A slave that does not match a task, and what it lacks (for the NO_RESOURCE error)."""

    slave: str
    missing: tuple[str, ...]  # "key:value" pairs, sorted


def nearest_slaves(task_dims: Mapping[str, Iterable[str]], slaves: Mapping[str, Mapping[str, Iterable[str]]],
                   limit: int = 3) -> list[NearMiss]:
    """The ``limit`` slaves that lack the fewest of the pairs ``task_dims`` asks (with
    alternatives, the best combination for each slave), fewest first, then by name.  A slave
    that matches lacks nothing (an empty ``missing``)."""
    combos = expand(task_dims)
    misses = []
    for name, dims in slaves.items():
        offered = flatten(dims)
        missing = min((tuple(sorted(combo - offered)) for combo in combos), key=lambda m: (len(m), m))
        misses.append(NearMiss(name, missing))
    misses.sort(key=lambda m: (len(m.missing), m.slave))
    return misses[:limit]


def describe_no_resource(task_dims: Mapping[str, Iterable[str]], near: list[NearMiss]) -> str:
    """The NO_RESOURCE message: what was asked, and the nearest slaves with what each lacks."""
    asked = ", ".join(f"{k}:{v}" for k, values in sorted(task_dims.items()) for v in values)
    if not near:
        return f"no slave could run a task with dimensions {asked}: no slave was seen recently"
    nearest = "; ".join(f"{m.slave} lacks {', '.join(m.missing)}" for m in near)
    return f"no slave could run a task with dimensions {asked}; nearest: {nearest}"


# -- a slave's dimensions --------------------------------------------------------------------

_CPU = {"x86_64": ("x86", "64"), "amd64": ("x86", "64"), "i386": ("x86", "32"), "i686": ("x86", "32"),
        "x86": ("x86", "32"), "aarch64": ("arm64", "64"), "arm64": ("arm64", "64"),
        "armv7l": ("arm", "32"), "armv6l": ("arm", "32")}
_OS_FAMILY = {"linux": "Linux", "darwin": "Mac", "windows": "Windows", "freebsd": "FreeBSD"}


def reported_dimensions(info: Mapping[str, Any]) -> Dimensions:
    """The dimensions a slave's attach report gives: ``os`` (family, distribution and
    distribution-version: ``["Linux", "Debian", "Debian-12"]``), ``cpu`` (``["x86",
    "x86-64"]``) and ``python`` (``["3", "3.11", "3.11.7"]``).  Missing facts are left out, so an
    older slave or a stock worker gets fewer keys."""
    dims: Dimensions = {}
    family = _OS_FAMILY.get(str(info.get("os_family", "")).lower())
    if family is None and info.get("system") == "nt":
        family = "Windows"
    os_values = [family] if family else []
    distro = str(info.get("os_id") or "").strip()
    if distro and family != "Windows":
        distro = distro.capitalize()
        os_values.append(distro)
        version = str(info.get("os_version_id") or "").strip()
        if version:
            os_values.append(f"{distro}-{version}")
    if os_values:
        dims["os"] = os_values
    machine = str(info.get("cpu") or "").strip().lower()
    if machine:
        kind, bits = _CPU.get(machine, (machine, ""))
        dims["cpu"] = [kind, f"{kind}-{bits}"] if bits else [kind]
    python = str(info.get("python") or "").strip()
    if re.fullmatch(r"[0-9]+(\.[0-9]+)*\S*", python):
        parts = python.split(".")
        dims["python"] = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
    return {key: [v for v in values if not _value_problem(key, v)] for key, values in dims.items()}


def file_dimensions(info: Mapping[str, Any]) -> tuple[Dimensions, list[str]]:
    """The dimensions of the slave's ``info/dimensions.json`` and the warnings about them.
    Keys that are not valid, ``id`` and ``pool`` are dropped, each with a warning."""
    raw = info.get(DIMENSIONS_INFO_KEY)
    if raw is None and isinstance(info.get(DIMENSIONS_FILE_KEY), str):
        try:
            raw = json.loads(info[DIMENSIONS_FILE_KEY])
        except ValueError as e:
            return {}, [f"info/dimensions.json is not JSON ({e}); ignored"]
    if raw is None:
        return {}, []
    if not isinstance(raw, Mapping):
        return {}, ["info/dimensions.json must hold a JSON object {key: value or [values]}; ignored"]
    dims, warnings = {}, []
    for key, values in raw.items():
        if key in (ID_KEY, *CONFIG_ONLY):
            warnings.append(f"info/dimensions.json: {key} is set by the master only; ignored")
            continue
        problems = slave_dimensions_problems({key: values}, "info/dimensions.json")
        if problems:
            warnings += [p + "; ignored" for p in problems]
            continue
        dims[key] = values
    return as_value_lists(dims), warnings


def slave_dimensions(name: str, info: Mapping[str, Any], configured: Mapping[str, Any] | None
                     ) -> tuple[Dimensions, list[str]]:
    """A slave's dimensions, merged from its report, its dimensions.json and master.cfg (each
    key from the last that sets it), with ``id`` = ``name``; and the warnings to log."""
    from_file, warnings = file_dimensions(info)
    merged: Dimensions = {**reported_dimensions(info), **from_file, **as_value_lists(configured or {})}
    merged[ID_KEY] = [name]
    return dict(sorted(merged.items())), warnings


# -- queues ----------------------------------------------------------------------------------

class QueueCache:
    """For each slave, the task queues it can serve, so that reaping looks only at those.

    A queue is registered with the dimensions of its tasks (once per distinct set); a slave
    with its dimensions.  Registering a queue adds it to every slave it matches; a slave whose
    dimensions change is matched again against every queue (and only then: the same
    dimensions again change nothing).  All in memory, on the reactor thread: the number of
    queues is the number of distinct dimension sets asked, not of tasks.
    """

    def __init__(self) -> None:
        self._queues: dict[str, list[Combination]] = {}
        self._slaves: dict[str, frozenset[str]] = {}
        self._served: dict[str, set[str]] = {}

    def add_queue(self, task_dims: Mapping[str, Iterable[str]]) -> str:
        """Register the queue of ``task_dims`` (a no-op if known); its key."""
        key = queue_key(task_dims)
        if key not in self._queues:
            combos = expand(task_dims)
            self._queues[key] = combos
            for slave, offered in self._slaves.items():
                if any(combo <= offered for combo in combos):
                    self._served[slave].add(key)
        return key

    def remove_queue(self, key: str) -> None:
        """Forget a queue (no task waits in it any more)."""
        if self._queues.pop(key, None) is not None:
            for served in self._served.values():
                served.discard(key)

    def set_slave(self, name: str, dims: Mapping[str, Iterable[str]]) -> bool:
        """Record a slave's dimensions; True when they changed (its queues were worked out again)."""
        offered = flatten(dims)
        if self._slaves.get(name) == offered:
            return False
        self._slaves[name] = offered
        self._served[name] = {key for key, combos in self._queues.items()
                              if any(combo <= offered for combo in combos)}
        return True

    def remove_slave(self, name: str) -> None:
        self._slaves.pop(name, None)
        self._served.pop(name, None)

    def queues_for(self, name: str) -> frozenset[str]:
        """The keys of the queues slave ``name`` can serve (none for an unknown slave)."""
        return frozenset(self._served.get(name, ()))

    def slaves_for(self, key: str) -> list[str]:
        """The slaves that can serve queue ``key``, sorted."""
        return sorted(name for name, served in self._served.items() if key in served)
