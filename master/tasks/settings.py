"""``TaskSettings``: ``c['tasks']`` as the Swarming API reads it (master/config.py checks it).

``min_timeout_secs`` is the least ``expiration_secs``, ``execution_timeout_secs`` and
non-zero ``io_timeout_secs`` a request may ask.  Swarming refuses less than 30 s, except on
its local development server, where 1 s is allowed so that its smoke tests run quickly; a test
master here does the same with ``c['tasks'] = {'min_timeout_secs': 1}``.
"""

from dataclasses import dataclass

DEFAULT_MIN_TIMEOUT_S = 30
LEAST_MIN_TIMEOUT_S = 1
TASKS_KEYS = frozenset({"min_timeout_secs"})


@dataclass(frozen=True)
class TaskSettings:
    """``c['tasks']``: see the module."""

    min_timeout_secs: int = DEFAULT_MIN_TIMEOUT_S


def validate_tasks_config(raw: dict) -> tuple[TaskSettings, list[tuple[str, str]]]:
    """The ``TaskSettings`` of ``raw['tasks']`` and the ``(key, message)`` problems found."""
    tasks = raw.get("tasks", {})
    if not isinstance(tasks, dict):
        return TaskSettings(), [("tasks", "c['tasks'] must be a dict like {'min_timeout_secs': 30}")]
    unknown = sorted(set(tasks) - TASKS_KEYS, key=str)
    problems = [("tasks", f"unknown c['tasks'] key {key!r}") for key in unknown]
    least = tasks.get("min_timeout_secs", DEFAULT_MIN_TIMEOUT_S)
    if isinstance(least, bool) or not isinstance(least, int) \
            or not LEAST_MIN_TIMEOUT_S <= least <= DEFAULT_MIN_TIMEOUT_S:
        problems.append(("tasks", f"c['tasks']['min_timeout_secs'] must be a whole number of seconds from "
                                  f"{LEAST_MIN_TIMEOUT_S} to {DEFAULT_MIN_TIMEOUT_S}, not {least!r}"))
        least = DEFAULT_MIN_TIMEOUT_S
    return TaskSettings(min_timeout_secs=least), problems
