"""`Bot`: the slave's PB "mind", the object the master calls after login."""

from __future__ import annotations

import json
import os
import platform
import shlex
import shutil
from typing import Any

from twisted.logger import Logger
from twisted.spread import pb

from buildfarm.common.redaction import redact_environ
from buildfarm.common.version import VERSION
from buildfarm.slave.builder import SlaveBuilder
from buildfarm.slave.commands.base import asText
from buildfarm.slave.runtime import SlaveRuntime

INFO_DIR = "info"
# The slave's own task dimensions ({key: value or [values]}, docs/tasks.md): reported parsed,
# as ``dimensions``, rather than as the text of an info file.
DIMENSIONS_FILE = "dimensions.json"
OS_RELEASE_PATH = "/etc/os-release"

log = Logger()


def readInfoDir(basedir: str) -> dict[str, str]:
    """``{filename: stripped content}`` for each file in ``BASEDIR/info/``."""
    infodir = os.path.join(basedir, INFO_DIR)
    info = {}
    try:
        names = sorted(os.listdir(infodir))
    except OSError:
        return info
    for name in names:
        path = os.path.join(infodir, name)
        if name.startswith(".") or name == DIMENSIONS_FILE or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                info[name] = f.read().strip()
        except OSError as e:
            log.warn("cannot read {path}: {e}", path=path, e=e)
    return info


def readDimensionsFile(basedir: str) -> dict[str, Any] | None:
    """The JSON object in ``BASEDIR/info/dimensions.json``; None when there is no such file, or
    when it is not a JSON object (a warning in the slave's log then: the slave still attaches)."""
    path = os.path.join(basedir, INFO_DIR, DIMENSIONS_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        log.warn("cannot read {path}: {e}; no dimensions reported from it", path=path, e=e)
        return None
    try:
        dimensions = json.loads(text)
    except ValueError as e:
        log.warn("{path} is not JSON ({e}); no dimensions reported from it", path=path, e=e)
        return None
    if not isinstance(dimensions, dict):
        log.warn("{path} must hold a JSON object {{key: value or [values]}}; no dimensions reported "
                 "from it", path=path)
        return None
    return dimensions


def readOsRelease(path: str = OS_RELEASE_PATH) -> dict[str, str]:
    """``{"os_id": ..., "os_version_id": ...}`` from an os-release file (empty if none)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    release = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or key.strip().startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        release["os_" + key.strip().lower()] = " ".join(words)
    return release


class Bot(pb.Referenceable):
    """The slave's side of the PB login: the master asks it who we are and which builders
    to set up, and tells it to shut down.  One Bot serves every connection of the slave."""

    def __init__(self, runtime: SlaveRuntime, osReleasePath: str = OS_RELEASE_PATH) -> None:
        self.runtime = runtime
        self.osReleasePath = osReleasePath
        self.builders: dict[str, SlaveBuilder] = {}

    def remote_print(self, message: Any) -> None:
        """Log ``message`` ("attached", "ping", ...); returns None."""
        log.info("message from master: {message}", message=asText(message))

    def remote_getSlaveInfo(self) -> dict[str, Any]:
        """One key per file in ``BASEDIR/info/`` plus ``environ`` (secret values redacted),
        ``system``, ``basedir``, ``os_family`` (``Linux``, ``Darwin``, ``Windows``), ``cpu``
        (the machine: ``x86_64``), ``python`` (its version), ``disk_free_mb`` (free space where
        the basedir is) and, when ``info/dimensions.json``
        holds a JSON object, ``dimensions`` (that object)."""
        info: dict[str, Any] = readInfoDir(self.runtime.basedir)
        info["environ"] = redact_environ(os.environ)  # the master need not keep our secrets
        info["system"] = os.name
        info["basedir"] = self.runtime.basedir
        info["os_family"] = platform.system()
        info["cpu"] = platform.machine()
        info["python"] = platform.python_version()
        try:  # the master quarantines a slave short of disk (no task reaches it)
            info["disk_free_mb"] = shutil.disk_usage(self.runtime.basedir).free // (1024 * 1024)
        except OSError:
            pass
        dimensions = readDimensionsFile(self.runtime.basedir)
        if dimensions is not None:
            info["dimensions"] = dimensions
        return info

    def remote_getWorkerInfo(self) -> dict[str, Any]:
        """getSlaveInfo plus ``version``, ``worker_commands``, ``numcpus`` and the ``os_*``
        keys of /etc/os-release (what 4.x masters ask for)."""
        info = self.remote_getSlaveInfo()
        info.update(readOsRelease(self.osReleasePath))
        info["version"] = VERSION
        info["worker_commands"] = self.remote_getCommands()
        info["numcpus"] = os.cpu_count() or 1
        info["delete_leftover_dirs"] = False
        return info

    def remote_getCommands(self) -> dict[str, str]:
        """``{command_name: version}`` for every command this slave runs."""
        return self.runtime.registry.versions()

    def remote_getVersion(self) -> str:
        """The buildfarm version of this slave."""
        return VERSION

    def remote_setBuilderList(self, wanted: Any) -> dict[str, SlaveBuilder]:
        """Set up exactly the builders in ``[(name, builddir), ...]`` and return
        ``{name: SlaveBuilder}``.  Existing builders are kept (their builddir updated),
        missing directories created, unlisted builders dropped; no directory is deleted."""
        wanted = [self._checkBuilderEntry(entry) for entry in wanted]
        builders = {}
        for name, builddir in wanted:
            builder = self.builders.get(name)
            if builder is None:
                builder = SlaveBuilder(name, builddir, self.runtime)
                log.info("added builder {name} in {dir}", name=name, dir=builddir)
            builder.builddir = builddir
            os.makedirs(builder.basedir, exist_ok=True)
            builders[name] = builder
        for name, builder in self.builders.items():
            if name not in builders:
                log.info("removed builder {name}", name=name)
                builder.stopCommand("builder removed")
        self.builders = builders
        return dict(builders)

    def _checkBuilderEntry(self, entry: Any) -> tuple[str, str]:
        """``(name, builddir)`` as text; a malformed entry or a builddir that leaves the
        basedir raises ``pb.Error`` (and nothing of the list is applied)."""
        if not isinstance(entry, list | tuple) or len(entry) != 2 or not all(
                isinstance(part, str | bytes) for part in entry):
            raise pb.Error(f"setBuilderList: expected (builder_name, builddir), got {entry!r}")
        name, builddir = asText(entry[0]), asText(entry[1])
        root = os.path.normpath(self.runtime.basedir)
        full = os.path.normpath(os.path.join(root, builddir))
        if full == root or os.path.commonpath([root, full]) != root:
            raise pb.Error(f"setBuilderList: builddir {builddir!r} of builder {name!r} is not"
                           f" inside the slave's basedir {root}")
        return name, builddir

    def remote_shutdown(self) -> None:
        """Stop the slave; it replies None first and stops shortly after."""
        self.runtime.requestShutdown()

    def lostConnection(self) -> None:
        """The master went away: kill running commands (their results cannot be reported)."""
        self.stopCommands("lost connection to master")

    def stopCommands(self, why: str) -> None:
        """Kill every running command, telling the master nothing."""
        for builder in self.builders.values():
            builder.stopCommand(why)
