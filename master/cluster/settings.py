"""``MultiMasterSettings``: ``c['multiMasterSettings']``, how masters sharing one database tell
each other they are alive (master/config.py checks it).

``heartbeat_secs`` is how often a master writes ``masters.last_active``; a master whose last
heartbeat is older than ``dead_after_secs`` is dead, and another master reclaims what it held
(master/cluster/liveness.py).  ``dead_after_secs`` must leave room for several missed
heartbeats: a master is not declared dead for one slow write.

``wakeups`` is how a master hears at once of the requests another master added
(master/cluster/wakeups.py): ``'postgresql'`` (``LISTEN/NOTIFY``), ``'broker'`` (the
``request-submitted`` events the master consumes from the broker, with ``c['mq']`` amqp), or
``'auto'`` (the default): PostgreSQL's on PostgreSQL, else the broker's.
"""

from dataclasses import dataclass

DEFAULT_HEARTBEAT_S = 10.0
DEFAULT_DEAD_AFTER_S = 60.0
# dead_after_secs is at least this many heartbeats: one late write never kills a master.
LEAST_HEARTBEATS_TO_DEATH = 2
MULTI_MASTER_KEY = "multiMasterSettings"
MULTI_MASTER_KEYS = frozenset({"heartbeat_secs", "dead_after_secs", "wakeups"})
WAKEUPS_AUTO, WAKEUPS_POSTGRESQL, WAKEUPS_BROKER = "auto", "postgresql", "broker"
WAKEUPS = (WAKEUPS_AUTO, WAKEUPS_POSTGRESQL, WAKEUPS_BROKER)


@dataclass(frozen=True)
class MultiMasterSettings:
    """``c['multiMasterSettings']``: see the module."""

    heartbeat_secs: float = DEFAULT_HEARTBEAT_S
    dead_after_secs: float = DEFAULT_DEAD_AFTER_S
    wakeups: str = WAKEUPS_AUTO


def validate_multimaster_config(raw: dict) -> tuple[MultiMasterSettings, list[tuple[str, str]]]:
    """The settings of ``raw['multiMasterSettings']`` and the ``(key, message)`` problems found."""
    key = MULTI_MASTER_KEY
    section = raw.get(key, {})
    if not isinstance(section, dict):
        return MultiMasterSettings(), [(key, f"c[{key!r}] must be a dict like "
                                             "{'heartbeat_secs': 10, 'dead_after_secs': 60}")]
    problems = [(key, f"unknown c[{key!r}] key {name!r}")
                for name in sorted(set(section) - MULTI_MASTER_KEYS, key=str)]
    values = {}
    for name, default in (("heartbeat_secs", DEFAULT_HEARTBEAT_S), ("dead_after_secs", DEFAULT_DEAD_AFTER_S)):
        value = section.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append((key, f"c[{key!r}][{name!r}] must be a positive number of seconds, "
                                  f"not {value!r}"))
            value = default
        values[name] = float(value)
    wakeups = section.get("wakeups", WAKEUPS_AUTO)
    if wakeups not in WAKEUPS:
        problems.append((key, f"c[{key!r}]['wakeups'] must be one of {', '.join(WAKEUPS)}, not {wakeups!r}"))
        wakeups = WAKEUPS_AUTO
    heartbeat, dead_after = values["heartbeat_secs"], values["dead_after_secs"]
    if dead_after < LEAST_HEARTBEATS_TO_DEATH * heartbeat:
        problems.append((key, f"c[{key!r}]['dead_after_secs'] ({dead_after:g}) must be at least "
                              f"{LEAST_HEARTBEATS_TO_DEATH} times heartbeat_secs ({heartbeat:g})"))
        values = {"heartbeat_secs": DEFAULT_HEARTBEAT_S, "dead_after_secs": DEFAULT_DEAD_AFTER_S}
    return MultiMasterSettings(**values, wakeups=wakeups), problems
