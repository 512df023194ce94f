"""Named caches of a slave: directories a task keeps from one run to the next (Swarming's
``caches: [{name, path}]``), used by ``run_isolated`` (slave/commands/isolated.py).

Each cache is ``<basedir>/named-caches/<name>``.  A run holds an exclusive ``flock`` on
``<basedir>/named-caches/<name>.lock`` while it has the cache, so two runs of one slave never
share a cache at once (the second waits); the caches of a run are locked in name order, so two
runs never wait for each other.  While the run has it, the cache directory is *moved* (a
rename: same file system) to ``path`` in the run directory, and after the run it is moved back
with whatever the command left in it.  A slave killed mid-run loses the caches of that run (the
next run's sweep deletes the run directory, and the cache starts empty).

Blocking functions (the renames, the locks' files) are called on a thread.
"""

from __future__ import annotations

import fcntl
import os
import re

from buildfarm.common import cascache
from buildfarm.slave.commands.base import text

CACHES_DIR = "named-caches"
MAX_CACHES = 32
_NAME = re.compile(r"[a-z0-9_]{1,128}")


class CacheError(Exception):
    """A named cache cannot be put in place; the message says which and why."""


def relativePath(value: object) -> str:
    """A relative path with ``/`` separators inside the run directory: no ``..``, not absolute."""
    path = text(value)
    if not path or path.startswith("/") or "\\" in path:
        raise ValueError(f"must be a relative path with / separators, not {path!r}")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError(f"must stay inside the run directory (no '..'), not {path!r}")
    if any(part in ("", ".") for part in parts):
        raise ValueError(f"must have no empty or '.' components, not {path!r}")
    return path


def optionalRelativePath(value: object) -> str | None:
    """None, "" (the run directory itself) or a `relativePath`."""
    if value is None or value in ("", b""):
        return None
    return relativePath(value)


def cacheList(value: object) -> list[tuple[str, str]]:
    """None or a list of ``{name, path}``: names ``[a-z0-9_]`` (1 to 128), relative paths, both
    unique; as ``[(name, path)]`` sorted by name (the order they are locked in)."""
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > MAX_CACHES:
        raise ValueError(f"must be a list of at most {MAX_CACHES} {{name, path}}")
    caches: dict[str, str] = {}
    for entry in value:
        if not isinstance(entry, dict) or set(map(text, entry)) != {"name", "path"}:
            raise ValueError(f"must hold {{name, path}} dicts, not {entry!r}")
        given = {text(k): v for k, v in entry.items()}
        name, path = text(given["name"]), relativePath(given["path"])
        if not _NAME.fullmatch(name):
            raise ValueError(f"has a bad cache name {name!r}: 1 to 128 of [a-z0-9_]")
        if name in caches:
            raise ValueError(f"names the cache {name!r} twice")
        if path in caches.values():
            raise ValueError(f"puts two caches at {path!r}")
        caches[name] = path
    return sorted(caches.items())


def cacheDir(basedir: str, name: str) -> str:
    return os.path.join(basedir, CACHES_DIR, name)


def tryLock(basedir: str, name: str) -> int | None:
    """The fd of the cache's lock, held exclusively; None when another run holds it."""
    os.makedirs(os.path.join(basedir, CACHES_DIR), exist_ok=True)
    return tryFlock(cacheDir(basedir, name) + ".lock")


def tryFlock(path: str) -> int | None:
    """The fd of ``path`` (made if absent) flock'ed exclusively, or None when another holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def install(basedir: str, name: str, target: str) -> bool:
    """Move the cache (or a new empty directory) to ``target``; whether it held files before.
    The cache's lock must be held."""
    if os.path.lexists(target):
        raise CacheError(f"named cache {name!r}: {target} is already in the run directory")
    os.makedirs(os.path.dirname(target), exist_ok=True)
    source = cacheDir(basedir, name)
    if os.path.isdir(source) and not os.path.islink(source):
        os.rename(source, target)
        return True
    if os.path.lexists(source):  # a file or a symlink: not a cache, never followed
        os.remove(source)
    os.makedirs(target)
    return False


def keep(basedir: str, name: str, target: str) -> bool:
    """Move the cache back from ``target`` (as the command left it); whether there was one
    to keep (the command may have deleted it, or put a file there).  The lock must be held."""
    if not os.path.isdir(target) or os.path.islink(target):
        return False
    source = cacheDir(basedir, name)
    if os.path.lexists(source):
        cascache.remove_tree(source)
    os.rename(target, source)
    return True


__all__ = ["CACHES_DIR", "CacheError", "cacheList", "install", "keep", "optionalRelativePath",
           "relativePath", "tryLock"]
