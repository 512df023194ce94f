"""What the original SlaveAPI (mozilla/build-slaveapi) answered, for the scripts written
against it (docs/slaveapi.md, "Coming from the original SlaveAPI").

* ``original_text``: the value the original put in a result's ``text`` (an uptime as an
  integer, the last activity as its structure, a created instance's tags); our story of
  the action stays in ``story``, and what it found out in ``data``.
* ``split_arguments``: the original ignored form fields it did not use; so do we, saying
  so in the action's story instead of refusing the request.
* ``machine_fields`` and ``original_job``: the names of its slave page and of buildapi's
  recent-job rows (``domain``, ``colo``, ``ipmi``, ``pdu``, ``buildbotslave``;
  ``buildnumber`` and an integer ``result``).
* ``SlaveFilters``: ``GET /slaves`` filters (``purpose``, ``environment``, ``pool``,
  ``enabled``, and our ``master``), each given any number of times.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from buildfarm.common.results import result_name
from buildfarm.master.fleet import ActionState

# Where the names of the arguments a request gave but its action does not take are kept
# (in the result's ``args``), for the story to tell.
IGNORED_KEY = "_ignored"
# The original's truthiness words (util.normalize_truthiness), case-insensitive.
TRUE_WORDS = ("y", "yes", "1", "true", "on")
FALSE_WORDS = ("n", "no", "0", "false", "off", "")


def _last_activity(data: dict) -> dict:
    return {key: data.get(key) for key in ("last_state", "last_activity_seconds", "uptime")}


def _created_instance(data: dict) -> dict:
    return {**data.get("tags", {}), "ip": data.get("private_ip")}


# The action (canonical name) -> the original's ``text`` of a success, from our ``data``.
ORIGINAL_TEXT: dict[str, Callable[[Any], Any]] = {
    "buildslave_uptime": lambda data: data["uptime"],
    "buildslave_last_activity": _last_activity,
    "aws_create_instance": _created_instance,
}


def original_text(action: str, state: int, story: str, data: Any) -> Any:
    """What the original answered in ``text``: the value a successful uptime, last activity
    or instance creation found; otherwise (and for every failure) the story."""
    value_of = ORIGINAL_TEXT.get(action)
    if state != ActionState.SUCCESS or value_of is None or not isinstance(data, dict):
        return story
    try:
        return value_of(data)
    except (KeyError, TypeError):
        return story


def split_arguments(accepted: set[str], given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The arguments an action takes, and the names of the others (ignored, as the original did)."""
    known = {name: value for name, value in given.items() if name in accepted}
    return known, sorted(name for name in given if name not in accepted)


def ignored_note(action: str, ignored: list[str], accepted: set[str]) -> str:
    """The story's line about the arguments that were given but not used."""
    takes = ", ".join(sorted(accepted)) or "none"
    names = ", ".join(repr(name) for name in ignored)
    return f"ignored the argument{'s' if len(ignored) > 1 else ''} {names}: {action} takes {takes}"


def parse_truth(value: Any) -> bool:
    """A boolean from any spelling the original accepted (``y``, ``yes``, ``1``, ``true``, ...)."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower() if isinstance(value, str | int) else None
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ValueError(f"must be one of {', '.join(TRUE_WORDS[:4])} or {', '.join(FALSE_WORDS[:4])}, "
                     f"not {value!r}")


def domain_of(fqdn: str | None) -> str | None:
    """``build.example.com`` of ``bs1.build.example.com``."""
    return fqdn.split(".", 1)[1] if fqdn and "." in fqdn else None


def colo_of(fqdn: str | None) -> str | None:
    """The original's rule: host names end in ``<colo>.<org>.<tld>``."""
    parts = fqdn.split(".") if fqdn else []
    return parts[-3] if len(parts) >= 4 else None


def _channel_host(settings: dict | None) -> str | None:
    return None if settings is None else settings.get("fqdn") or settings.get("host")


def machine_fields(location) -> dict:
    """The original's fields of a machine: ``fqdn``, ``domain``, ``ip``, ``colo``, ``ipmi``
    (``{"fqdn"}`` of its BMC) and ``pdu`` (``{"fqdn", "port"}``, the port being the outlet)."""
    if location is None:
        return {"fqdn": None, "domain": None, "ip": None, "colo": None, "ipmi": None, "pdu": None}
    bmc, pdu = location.channels.get("bmc"), location.channels.get("pdu")
    return {
        "fqdn": location.fqdn,
        "domain": domain_of(location.fqdn),
        "ip": location.ip,
        "colo": location.colo or colo_of(location.fqdn),
        "ipmi": {"fqdn": _channel_host(bmc)} if bmc is not None else None,
        "pdu": {"fqdn": _channel_host(pdu), "port": pdu.get("outlet")} if pdu is not None else None,
    }


def original_slave_fields(location, inventory: dict) -> dict:
    """``machine_fields``, plus ``purpose``, ``pool`` and ``buildbotslave`` (the machine that
    runs this one's buildslave, when the inventory names another)."""
    other = inventory.get(location.buildbotslave) if location and location.buildbotslave else None
    return {
        **machine_fields(location),
        "purpose": location.purpose if location else None,
        "pool": location.pool if location else None,
        "buildbotslave": machine_fields(other) if other is not None else None,
    }


def original_job(build: dict) -> dict:
    """A recent job with buildapi's names (``buildnumber``, ``buildername``, an integer
    ``result``, ``starttime``, ``endtime``) and ours (``buildid``, ``number``, ``result_name``)."""
    finished = bool(build["complete"])
    return {
        "buildid": build["buildid"],
        "buildername": build["buildername"],
        "buildnumber": build["number"],
        "number": build["number"],
        "starttime": _int_time(build["started_at"]),
        "endtime": _int_time(build["complete_at"]),
        "result": build["results"] if finished else None,
        "result_name": result_name(build["results"]) if finished else None,
    }


def _int_time(value: float | None) -> int | None:
    return None if value is None else int(value)


class BadFilter(ValueError):
    """A ``GET /slaves`` filter that cannot be used (the message names it)."""


@dataclass(frozen=True)
class SlaveFilters:
    """The ``GET /slaves`` filters: a slave is listed when it matches every filter given;
    a filter given several times (``?purpose=build&purpose=try``) matches any of its values."""

    purpose: frozenset[str] = frozenset()
    environment: frozenset[str] = frozenset()
    pool: frozenset[str] = frozenset()
    master: frozenset[str] = frozenset()
    enabled: bool | None = None

    @classmethod
    def from_args(cls, args: dict[bytes, list[bytes]]) -> "SlaveFilters":
        def values(*names: str) -> frozenset[str]:
            given = (value for name in names for value in args.get(name.encode(), []))
            return frozenset(value.decode("utf-8", "replace") for value in given)

        enabled = values("enabled") - {""}  # the original ignored an empty enabled=
        if len(enabled) > 1:
            raise BadFilter(f"enabled: give it once, not {sorted(enabled)}")
        try:
            wanted = parse_truth(next(iter(enabled))) if enabled else None
        except ValueError as e:
            raise BadFilter(f"enabled: {e}") from None
        return cls(values("purpose"), values("environment", "environ"), values("pool"), values("master"),
                   wanted)

    def match(self, summary: dict) -> bool:
        for name in ("purpose", "environment", "pool", "master"):
            wanted = getattr(self, name)
            if wanted and summary.get(name) not in wanted:
                return False
        return self.enabled is None or summary["enabled"] == self.enabled
