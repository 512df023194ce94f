"""``SlaveAPISettings``: ``c['slaveapi']`` validated into plain data (``c['users']`` is the
master's: master/config.py validates it for the ``auth`` service).

``validate_slaveapi_config(raw, basedir)`` is what master/config.py calls with the whole
``BuildmasterConfig`` dict; it answers the settings and a list of ``(key, message)``
problems, ``key`` being the ``c[...]`` key at fault.
"""

from dataclasses import dataclass, field

from buildfarm.master.slaveapi.inventory import SlaveLocation, validate_inventory

DEFAULT_MAX_CONCURRENCY = 4
DEFAULT_SHUTDOWN_TIMEOUT_S = 300.0
DEFAULT_COMMAND_TIMEOUT_S = 30.0
DEFAULT_REBOOT_TIMEOUT_S = 600.0
SLAVEAPI_KEYS = frozenset({"port", "max_concurrency", "shutdown_timeout", "command_timeout",
                           "reboot_timeout", "slaves"})
ENDPOINT_KINDS = ("tcp", "tcp6", "ssl", "unix")


@dataclass
class SlaveAPISettings:
    """What the ActionRunner and the SlaveAPI resources read."""

    port: str | None = None
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_S
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT_S
    reboot_timeout: float = DEFAULT_REBOOT_TIMEOUT_S
    slaves: dict[str, SlaveLocation] = field(default_factory=dict)


def validate_slaveapi_config(raw: dict, basedir: str | None = None
                             ) -> tuple[SlaveAPISettings, list[tuple[str, str]]]:
    """``c['slaveapi']`` of a BuildmasterConfig: settings and problems."""
    settings = SlaveAPISettings()
    problems: list[tuple[str, str]] = []
    section = raw.get("slaveapi", {})
    if not isinstance(section, dict):
        return settings, problems + [("slaveapi", "c['slaveapi'] must be like {'port': 8081}")]
    for key in sorted(set(section) - SLAVEAPI_KEYS, key=str):
        problems.append(("slaveapi", f"c['slaveapi']: unknown key {key!r} "
                                     f"(allowed: {', '.join(sorted(SLAVEAPI_KEYS))})"))
    if section.get("port") is not None:
        settings.port, why = endpoint_description(section["port"])
        if why:
            problems.append(("slaveapi", f"c['slaveapi']['port']: {why}"))
    concurrency = section.get("max_concurrency", DEFAULT_MAX_CONCURRENCY)
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        problems.append(("slaveapi", f"c['slaveapi']['max_concurrency'] must be an integer >= 1, "
                                     f"not {concurrency!r}"))
    else:
        settings.max_concurrency = concurrency
    for key in ("shutdown_timeout", "command_timeout", "reboot_timeout"):
        value = section.get(key, getattr(settings, key))
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            problems.append(("slaveapi", f"c['slaveapi'][{key!r}] must be a positive number of "
                                         f"seconds, not {value!r}"))
        else:
            setattr(settings, key, float(value))
    settings.slaves, inventory_problems = validate_inventory(section.get("slaves", {}), basedir)
    problems += [("slaveapi", p) for p in inventory_problems]
    return settings, problems


def endpoint_description(port) -> tuple[str | None, str | None]:
    """A strports description for a port number or description; else ``(None, why)``."""
    if isinstance(port, int) and not isinstance(port, bool) or isinstance(port, str) and port.isdigit():
        if not 0 < int(port) < 65536:
            return None, f"port {port!r} must be between 1 and 65535"
        return f"tcp:{int(port)}", None
    if isinstance(port, str) and port.split(":", 1)[0] in ENDPOINT_KINDS:
        return port, None
    return None, f"bad port {port!r}: give a number or an endpoint like 'tcp:8081'"
