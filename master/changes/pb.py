"""``PBChangeSource``: changes sent over PB by ``buildbot sendchange`` (and Buildbot's
``buildbot.clients.sendchange.Sender``), with a user name and password.

In ``c['change_source']`` it names a login on the master's PB port (the slaves' port): the
PB realm (master/pb/dispatcher.py) gives that login a ``ChangePerspective``, never a slave's,
and its one remote method, ``addChange``, hands the change to the schedulers.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from twisted.application import service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.spread import pb

from buildfarm.master.changes.hooks import change_problem

log = Logger()

DEFAULT_USER = "change"
DEFAULT_PASSWORD = "changepw"
# What a sendchange may say, as text; anything else in its dict is refused.
TEXT_FIELDS = ("author", "committer", "comments", "branch", "revision", "repository", "project",
               "codebase", "category")
# Fields Buildbot's client sends that buildfarm does not store.
DROPPED_FIELDS = ("revlink", "src", "links", "isdir")
MAX_FILES = 10_000


class PBChangeSource(service.Service):
    """Accept changes from ``buildbot sendchange --master host:port --auth user:passwd``.

    ``port`` is None or the master's PB port (logins on the slaves' port), or a port of its
    own (a number or an endpoint such as ``'tcp:9990:interface=127.0.0.1'``), where only
    change logins are taken.  ``prefix``: only files under it are kept, without it."""

    def __init__(self, user: str = DEFAULT_USER, passwd: str = DEFAULT_PASSWORD, port=None,
                 prefix: str | None = None, name: str | None = None):
        self.user = user
        self.passwd = passwd
        self.port = port
        self.prefix = prefix
        self.name = name or (f"PBChangeSource:{prefix}:{port}" if prefix else f"PBChangeSource:{port}")

    def problems(self, pb_port: str, slaves) -> list[str]:
        """What is wrong with this source under a master whose PB port is ``pb_port``."""
        problems = []
        if not (isinstance(self.user, str) and self.user and isinstance(self.passwd, str) and self.passwd):
            problems.append(f"{self.name}: user and passwd must be non-empty strings")
        elif self.user in slaves and self.own_port(pb_port) is None:
            problems.append(f"{self.name}: user {self.user!r} is also a slave's name; give it another")
        if self.prefix is not None and not isinstance(self.prefix, str):
            problems.append(f"{self.name}: prefix must be a string")
        if self.port is not None and not _is_port(self.port):
            problems.append(f"{self.name}: bad port {self.port!r}: give a number or an endpoint "
                            "like 'tcp:9990'")
        return problems

    def own_port(self, pb_port: str) -> str | None:
        """The endpoint description of this source's own port; None when it logs in on the PB port."""
        if self.port is None or _port_of(self.port) == _port_of(pb_port) or not _is_port(self.port):
            return None
        return f"tcp:{int(self.port)}" if str(self.port).isdigit() else str(self.port)

    def describe(self) -> str:
        return f"PBChangeSource on the PB port{f' (prefix {self.prefix!r})' if self.prefix else ''}"


def _port_of(port) -> str:
    """The port number of ``9989``, ``'9989'`` or an endpoint such as ``'tcp:9989:interface=...'``
    (the description itself when it names none)."""
    text = str(port)
    for part in text.split(":")[1:]:
        if part.isdigit():
            return part
        if part.startswith("port="):
            return part[len("port="):]
    return text


def _is_port(port) -> bool:
    if isinstance(port, bool):
        return False
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        return 0 < int(port) < 65536
    return isinstance(port, str) and port.split(":", 1)[0] in ("tcp", "tcp6", "ssl", "unix")


def change_source_for(sources, user: str, pb_port: str, own_port: str | None = None) -> PBChangeSource | None:
    """The PBChangeSource among ``sources`` that ``user`` logs in as on ``own_port`` (one of
    the sources' own ports), or on the PB port ``pb_port`` when ``own_port`` is None."""
    return next((s for s in sources if isinstance(s, PBChangeSource) and s.user == user
                 and s.own_port(pb_port) == own_port), None)


def own_ports(sources, pb_port: str) -> list[str]:
    """The distinct own ports of the PBChangeSources among ``sources``, in their order."""
    ports = [s.own_port(pb_port) for s in sources if isinstance(s, PBChangeSource)]
    return list(dict.fromkeys(p for p in ports if p is not None))


class ChangePerspective(pb.Avatar):
    """What a ``sendchange`` login gets: one remote method, ``addChange``."""

    def __init__(self, source: PBChangeSource, add_change: Callable[..., Awaitable[int]], clock):
        self.source = source
        self._add_change = add_change
        self._clock = clock

    def perspective_addChange(self, changedict):  # noqa: N802 - the remote name Buildbot's client calls
        """Buildbot's change dict (``who``, ``files``, ``comments``, ``branch``, ``revision``,
        ``when``, ``properties``, ...); answers the new change's id.  A malformed dict fails
        with a ``pb.Error`` saying what is wrong."""
        return defer.ensureDeferred(self._add(changedict))

    async def _add(self, changedict) -> int:
        change = change_from_sendchange(changedict, self.source.prefix, self._clock.seconds())
        changeid = await self._add_change(**change)
        log.info("sendchange as {user}: change {id}", user=self.source.user, id=changeid)
        return changeid


def change_from_sendchange(changedict: Any, prefix: str | None, now: float) -> dict:
    """``SchedulerManager.add_change`` arguments from what Buildbot's sendchange sends."""
    if not isinstance(changedict, dict):
        raise pb.Error("addChange takes a dict")
    change = {_text(k): v for k, v in changedict.items()}
    if "who" in change:
        change.setdefault("author", change.pop("who"))
    if "when" in change:
        change.setdefault("when_timestamp", change.pop("when"))
    for name in DROPPED_FIELDS:
        change.pop(name, None)
    unknown = sorted(set(change) - set(TEXT_FIELDS) - {"files", "properties", "when_timestamp"})
    if unknown:
        raise pb.Error(f"addChange: unknown field {unknown[0]!r}")
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        value = change.get(name)
        if value in (None, "", b""):
            continue
        if not isinstance(value, str | bytes):
            raise pb.Error(f"addChange: {name} must be text")
        out[name] = _text(value)
    out.setdefault("author", "unknown")
    out.setdefault("comments", "")
    out["files"] = _files(change.get("files") or [], prefix)
    properties = change.get("properties") or {}
    if not isinstance(properties, dict):
        raise pb.Error("addChange: properties must be a dict")
    out["properties"] = {_text(k): _property_value(v) for k, v in properties.items()}
    when = change.get("when_timestamp")
    if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
        raise pb.Error("addChange: when must be epoch seconds")
    out["when_timestamp"] = float(when) if when is not None else now
    out["created_at"] = now
    problem = change_problem(out)
    if problem is not None:
        raise pb.Error(f"addChange: {problem}")
    return out


def _files(files, prefix: str | None) -> list[str]:
    if not isinstance(files, list | tuple) or len(files) > MAX_FILES:
        raise pb.Error(f"addChange: files must be a list of at most {MAX_FILES} paths")
    kept = []
    for path in files:
        if not isinstance(path, str | bytes):
            raise pb.Error("addChange: files must be paths")
        path = _text(path)
        if prefix:
            if not path.startswith(prefix):
                continue
            path = path[len(prefix):]
        kept.append(path)
    return kept


def _property_value(value):
    """Buildbot's sendchange sends ``--property name:value`` as text; a property may also be
    ``(value, source)`` as Buildbot's data API takes it: the value is kept."""
    if isinstance(value, tuple | list) and len(value) == 2 and isinstance(value[1], str | bytes):
        value = value[0]
    return _text(value) if isinstance(value, bytes) else value


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
