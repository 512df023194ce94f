"""``TaskSettings``: ``c['tasks']`` as the Swarming API reads it (master/config.py checks it).

``min_timeout_secs`` is the least ``expiration_secs``, ``execution_timeout_secs`` and
non-zero ``io_timeout_secs`` a request may ask.  ``quarantine_below_free_mb`` quarantines a slave
that reports less free disk in its basedir (100 MB by default; 0: never), and ``quarantined``
(``{slave name: reason}``) is an admin's quarantine: a quarantined slave takes no task.

Swarming refuses timeouts under 30 s, except on its local development server, where 1 s is
allowed so that its smoke tests run quickly; a test master here does the same with
``c['tasks'] = {'min_timeout_secs': 1}``.
"""

from dataclasses import dataclass

DEFAULT_MIN_TIMEOUT_S = 30
LEAST_MIN_TIMEOUT_S = 1
DEFAULT_QUARANTINE_BELOW_FREE_MB = 100
TASKS_KEYS = frozenset({"min_timeout_secs", "quarantine_below_free_mb", "quarantined"})


@dataclass(frozen=True)
class TaskSettings:
    """``c['tasks']``: see the module."""

    min_timeout_secs: int = DEFAULT_MIN_TIMEOUT_S
    quarantine_below_free_mb: int = DEFAULT_QUARANTINE_BELOW_FREE_MB
    quarantined: tuple[tuple[str, str], ...] = ()  # (slave name, reason), as an admin set them


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
    below = tasks.get("quarantine_below_free_mb", DEFAULT_QUARANTINE_BELOW_FREE_MB)
    if isinstance(below, bool) or not isinstance(below, int) or below < 0:
        problems.append(("tasks", f"c['tasks']['quarantine_below_free_mb'] must be a whole number of MB "
                                  f">= 0, not {below!r}"))
        below = DEFAULT_QUARANTINE_BELOW_FREE_MB
    quarantined = tasks.get("quarantined", {})
    if not isinstance(quarantined, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in quarantined.items()):
        problems.append(("tasks", "c['tasks']['quarantined'] must be a dict of {slave name: reason}, "
                                  "each reason a non-empty string"))
        quarantined = {}
    return TaskSettings(min_timeout_secs=least, quarantine_below_free_mb=below,
                        quarantined=tuple(sorted(quarantined.items()))), problems
