"""Building an ``.isolated`` from a directory tree, with a stat -> digest cache.

``build_isolated(root)`` walks ``root`` (symlinks are recorded as ``l`` and not followed,
paths matching the ``blacklist`` regex are left out, a matching directory with all under
it), hashes each regular file and returns the ``Isolated`` and a map of digest -> one local
path holding that content (what the archive pipeline uploads).  ``DigestCache`` maps
(dev, inode, size, mtime) to a digest, so an unchanged tree is not read again; it is kept in
a JSON state file written atomically.

Everything here reads the disk and hashes: callers on a reactor run it in a thread.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field

from buildfarm.common.atomicfile import write_atomically
from buildfarm.common.isolated import VERSION_1, FileEntry, Isolated, hash_file

DIGEST_CACHE_VERSION = 1


def isolated_mode(st_mode: int) -> int:
    """The ``m`` of a file: group write and all "other" bits dropped; group execute kept only
    (and then set) when user execute and group read are both set."""
    mode = stat.S_IMODE(st_mode) & ~(stat.S_IWGRP | stat.S_IRWXO)
    if mode & (stat.S_IXUSR | stat.S_IRGRP) == (stat.S_IXUSR | stat.S_IRGRP):
        return mode | stat.S_IXGRP
    return mode & ~stat.S_IXGRP


@dataclass
class DigestCache:
    """(dev, inode, size, mtime_ns) -> digest, per algo; ``hashed`` and ``hits`` count what
    ``digest`` did since this object was made."""

    algo: str = "sha-1"
    entries: dict[str, str] = field(default_factory=dict)
    hashed: int = 0
    hits: int = 0
    loaded: set[str] = field(default_factory=set)  # the keys read by load()

    @staticmethod
    def key(st: os.stat_result) -> str:
        return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"

    def digest(self, path: str, st: os.stat_result, key: str | None = None) -> str:
        """The digest of ``path`` whose ``lstat`` is ``st`` (and whose ``key(st)`` is ``key``
        when the caller has it), from the cache when the file's identity, size and mtime are
        unchanged."""
        key = key or self.key(st)
        found = self.entries.get(key)
        if found is not None:
            self.hits += 1
            return found
        digest = hash_file(path, self.algo)
        self.hashed += 1
        self.entries[key] = digest
        return digest

    @classmethod
    def load(cls, path: str, algo: str) -> DigestCache:
        """The cache stored at ``path``; an absent, unreadable or foreign file gives an empty
        cache (the cache is only an optimisation)."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError):
            return cls(algo=algo)
        if (not isinstance(doc, dict) or doc.get("version") != DIGEST_CACHE_VERSION
                or doc.get("algo") != algo or not isinstance(doc.get("entries"), dict)):
            return cls(algo=algo)
        entries = {k: v for k, v in doc["entries"].items() if isinstance(k, str) and isinstance(v, str)}
        return cls(algo=algo, entries=entries, loaded=set(entries))

    def save(self, path: str, keep: set[str] | None = None) -> None:
        """Write the cache to ``path`` atomically; ``keep``, when given, limits it to those keys
        (the files of the last walk), so it does not grow without bound."""
        if not self.hashed and (keep if keep is not None else self.entries.keys()) == self.loaded \
                and os.path.exists(path):
            return  # nothing new since it was loaded: spare rewriting a big file
        entries = self.entries if keep is None else {k: v for k, v in self.entries.items() if k in keep}
        doc = {"version": DIGEST_CACHE_VERSION, "algo": self.algo, "entries": entries}
        write_atomically(path, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())


@dataclass
class BuiltTree:
    """What ``build_isolated`` found: the document, a local path for each digest, and the
    digest-cache keys of the files it saw."""

    isolated: Isolated
    sources: dict[str, str]
    seen_keys: set[str]


def build_isolated(root: str, algo: str = "sha-1", blacklist: str | None = None,
                   cache: DigestCache | None = None, version: str = VERSION_1,
                   read_only: int | None = None) -> BuiltTree:
    """The ``.isolated`` of the tree under ``root``.  ``blacklist`` is a regex searched in each
    path relative to ``root`` (with ``/`` separators)."""
    try:
        excluded = re.compile(blacklist) if blacklist else None
    except re.error as e:
        raise ValueError(f"blacklist {blacklist!r} is not a regular expression: {e}") from None
    cache = cache if cache is not None else DigestCache(algo=algo)
    files: dict[str, FileEntry] = {}
    sources: dict[str, str] = {}
    seen: set[str] = set()
    pending = [(root, "")]
    while pending:  # scandir gives each entry's type without a stat: one lstat per file only
        dirpath, prefix = pending.pop()
        with os.scandir(dirpath) as listing:
            entries = list(listing)
        for entry in entries:
            rel = prefix + entry.name
            if excluded and excluded.search(rel):
                continue
            if entry.is_symlink():
                files[rel] = FileEntry(link=os.readlink(entry.path))
            elif entry.is_dir(follow_symlinks=False):
                pending.append((entry.path, rel + "/"))
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                key = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"  # DigestCache.key
                digest = cache.digest(entry.path, st, key)
                seen.add(key)
                sources.setdefault(digest, entry.path)
                files[rel] = FileEntry(digest=digest, size=st.st_size, mode=isolated_mode(st.st_mode))
            # sockets, fifos and devices have no content to archive: left out
    isolated = Isolated(algo=algo, version=version, files=dict(sorted(files.items())),
                        read_only=read_only)
    return BuiltTree(isolated=isolated, sources=sources, seen_keys=seen)
