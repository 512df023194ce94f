"""The local content-addressed cache shared by the ``isolateserver`` CLI and the slave.

Layout: ``<cache_dir>/<hexdigest>`` files, each read-only, and ``state.json``, the LRU list
of digest -> (size, last use, mtime_ns), oldest first, written atomically.  ``CachePolicies``
bound it by total size, free disk space, item count and age; eviction goes oldest first and
never removes a *protected* item (one of the tree being mapped).  A missing entry, or one
whose size changed, or whose mtime changed and whose content no longer hashes to its name,
is a miss: it is dropped and fetched again.  ``map_tree`` lays a tree out in a target
directory with hardlinks to the cache, or copies where a link cannot serve (another
filesystem, writable files, a mode the cache file does not have).

All of this is blocking disk work: a caller on a reactor runs it in a thread.  Time comes from
the ``clock`` given (an ``IReactorTime``), so tests can advance it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

from buildfarm.common.atomicfile import write_atomically
from buildfarm.common.isolated import FileEntry, check_digest, hash_file, new_hasher

STATE_FILE = "state.json"
STATE_VERSION = 1
TMP_PREFIX = ".tmp-"
GIB = 1024 ** 3
DAY_S = 24 * 3600
CACHE_FILE_MODE = 0o444


@dataclass(frozen=True)
class CachePolicies:
    """Limits of a cache; 0 means no limit.  The defaults are ``isolateserver download``'s."""

    max_cache_size: int = 50 * GIB
    min_free_space: int = 2 * GIB
    max_items: int = 100_000
    max_age_secs: float = 0

    def __post_init__(self) -> None:
        for name in ("max_cache_size", "min_free_space", "max_items", "max_age_secs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"cache policy {name} must be a number >= 0, not {value!r}")


RUN_ISOLATED_POLICIES = CachePolicies(max_age_secs=21 * DAY_S)


class NoMoreSpace(Exception):
    """The cache cannot take an item without evicting one that is protected."""


class CacheMiss(KeyError):
    """The digest is not in the cache (or its entry was missing or corrupt and is dropped)."""


class ContentMismatch(ValueError):
    """Content written to the cache does not match its digest or size."""


class MappingError(ValueError):
    """A tree cannot be mapped into its target (a path through a symlink, a file where a
    directory must be)."""


def _free_space(path: str) -> int:
    return shutil.disk_usage(path).free


class DiskCache:
    """A directory of content named by digest, with an LRU state and ``CachePolicies``.

    ``free_space(path) -> bytes`` and ``link(src, dst)`` are seams for tests (a full disk, a
    link across filesystems failing with ``EXDEV``)."""

    def __init__(self, cache_dir: str, policies: CachePolicies, clock: IReactorTime,
                 algo: str = "sha-1", free_space: Callable[[str], int] = _free_space,
                 link: Callable[[str, str], None] = os.link) -> None:
        self.cache_dir = os.path.abspath(cache_dir)
        self.policies = policies
        self.algo = algo
        self._clock = clock
        self._free_space = free_space
        self._link = link
        # digest -> [size, last_use_s, mtime_ns]; oldest use first
        self._lru: OrderedDict[str, list] = OrderedDict()
        # The fetch pipeline writes from a thread pool: state changes hold this lock.
        self._lock = threading.RLock()
        self._total = 0  # sum of the sizes in _lru, kept so that a write is O(1)
        # room made for writes in flight (bytes, items), so parallel writes cannot overshoot
        self._reserved = [0, 0]
        self._protected: dict[str, int] = {}
        self.evicted: list[str] = []
        self.linked = 0
        self.copied = 0
        os.makedirs(self.cache_dir, exist_ok=True)
        self._load()

    # -- state --------------------------------------------------------------------------

    @property
    def state_path(self) -> str:
        return os.path.join(self.cache_dir, STATE_FILE)

    def _load(self) -> None:
        try:
            with open(self.state_path, encoding="utf-8") as f:
                doc = json.load(f)
            ours = doc.get("version") == STATE_VERSION and doc.get("algo") == self.algo
            items = doc["items"] if ours else []
        except (OSError, ValueError, KeyError, AttributeError):
            items = []  # no state (or a foreign one): cleanup() drops the unknown files
        for item in items:
            try:
                digest, (size, last_use, mtime_ns) = item
                check_digest(digest, self.algo)
                self._lru[digest] = [int(size), float(last_use), int(mtime_ns)]
                self._total += int(size)
            except (TypeError, ValueError):
                continue

    def save(self) -> None:
        """Write the LRU state atomically."""
        with self._lock:
            self._save()

    def _save(self) -> None:
        doc = {"version": STATE_VERSION, "algo": self.algo,
               "items": [[d, v] for d, v in self._lru.items()]}
        write_atomically(self.state_path, json.dumps(doc, separators=(",", ":")).encode())

    def __len__(self) -> int:
        return len(self._lru)

    @property
    def total_size(self) -> int:
        return self._total

    def digests(self) -> list[str]:
        """The cached digests, least recently used first."""
        with self._lock:
            return list(self._lru)

    def path(self, digest: str) -> str:
        return os.path.join(self.cache_dir, check_digest(digest, self.algo))

    # -- lookups ------------------------------------------------------------------------

    def _verified(self, digest: str) -> bool:
        """Whether the entry of ``digest`` is present and sound; an unsound one is dropped."""
        entry = self._lru.get(digest)
        if entry is None:
            return False
        try:
            st = os.lstat(self.path(digest))
        except FileNotFoundError:
            self._forget(digest)
            return False
        if not stat.S_ISREG(st.st_mode) or st.st_size != entry[0]:
            self._drop(digest)
            return False
        if st.st_mtime_ns != entry[2]:
            if hash_file(self.path(digest), self.algo) != digest:
                self._drop(digest)
                return False
            entry[2] = st.st_mtime_ns
        return True

    def has(self, digest: str) -> bool:
        """Whether ``digest`` is cached and sound (does not mark it used)."""
        check_digest(digest, self.algo)
        with self._lock:
            return self._verified(digest)

    def touch(self, digest: str) -> str:
        """The path of a sound entry for ``digest``, marked most recently used, or ``CacheMiss``."""
        check_digest(digest, self.algo)
        with self._lock:
            if not self._verified(digest):
                raise CacheMiss(digest)
            self._lru[digest][1] = self._clock.seconds()
            self._lru.move_to_end(digest)
        return self.path(digest)

    # -- protection and eviction ----------------------------------------------------------

    @contextlib.contextmanager
    def protecting(self, digests: Iterable[str]) -> Iterator[None]:
        """While inside, no eviction removes any of ``digests`` (the tree being mapped)."""
        held = list(digests)
        with self._lock:
            for d in held:
                self._protected[d] = self._protected.get(d, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                for d in held:
                    self._protected[d] -= 1
                    if not self._protected[d]:
                        del self._protected[d]

    def _forget(self, digest: str) -> None:
        entry = self._lru.pop(digest, None)
        if entry is not None:
            self._total -= entry[0]

    def _drop(self, digest: str) -> None:
        self._forget(digest)
        path = self.path(digest)
        try:
            os.chmod(path, 0o644)
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _evict_oldest(self) -> bool:
        """Evict the least recently used unprotected entry; False when there is none."""
        for digest in self._lru:
            if digest not in self._protected:
                self._drop(digest)
                self.evicted.append(digest)
                return True
        return False

    def _over_limits(self, incoming: int = 0, incoming_items: int = 0) -> str | None:
        """The first limit the cache breaks with ``incoming`` more bytes in ``incoming_items``
        more items, as a message with the numbers, or None."""
        p = self.policies
        incoming += self._reserved[0]
        incoming_items += self._reserved[1]
        total = self.total_size + incoming
        if p.max_cache_size and total > p.max_cache_size:
            return f"{total} bytes would exceed max_cache_size {p.max_cache_size}"
        count = len(self._lru) + incoming_items
        if p.max_items and count > p.max_items:
            return f"{count} items would exceed max_items {p.max_items}"
        if p.min_free_space:
            free = self._free_space(self.cache_dir) - incoming
            if free < p.min_free_space:
                return f"{free} bytes free would be under min_free_space {p.min_free_space}"
        return None

    def trim(self) -> list[str]:
        """Apply the policies: entries older than max_age, then the oldest until size, count
        and free space hold, protected entries excepted.  Saves the state; returns the evicted."""
        with self._lock:
            before = len(self.evicted)
            if self.policies.max_age_secs:
                oldest_allowed = self._clock.seconds() - self.policies.max_age_secs
                for digest, (_, last_use, _) in list(self._lru.items()):
                    if last_use < oldest_allowed and digest not in self._protected:
                        self._drop(digest)
                        self.evicted.append(digest)
            while self._over_limits() and self._evict_oldest():
                pass
            self.save()
            return self.evicted[before:]

    def _make_room(self, size: int) -> None:
        while (reason := self._over_limits(size, 1)) and self._evict_oldest():
            pass
        if reason:
            protected = [d for d in self._lru if d in self._protected]
            held = sum(self._lru[d][0] for d in protected)
            raise NoMoreSpace(
                f"not enough space to fetch the whole isolated tree: an item of {size} bytes: "
                f"{reason}; {len(protected)} protected items hold {held} bytes")

    # -- writes -----------------------------------------------------------------------------

    def write(self, digest: str, chunks: Iterable[bytes], size: int | None = None) -> str:
        """Store the content ``chunks`` under ``digest`` (and ``size`` when known, to make room
        first), checked for hash and size before it enters the cache.  Returns its path."""
        check_digest(digest, self.algo)
        reserved = self._reserve(size) if size is not None else None
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(dir=self.cache_dir, prefix=TMP_PREFIX)
            hasher = new_hasher(self.algo)
            written = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    written += len(chunk)
                    if size is not None and written > size:
                        # a stream longer than announced is cut off, not written to the end
                        raise ContentMismatch(f"content for {digest} is longer than {size} bytes")
                    hasher.update(chunk)
                    f.write(chunk)
            actual = hasher.hexdigest()
            if actual != digest or (size is not None and written != size):
                raise ContentMismatch(
                    f"content for {digest} ({size} bytes) hashes to {actual} ({written} bytes)")
            os.chmod(tmp, CACHE_FILE_MODE)
            with self._lock:
                self._release(reserved)
                reserved = None
                if size is None:
                    self._make_room(written)
                os.replace(tmp, self.path(digest))
                st = os.lstat(self.path(digest))
                self._forget(digest)
                self._lru[digest] = [written, self._clock.seconds(), st.st_mtime_ns]
                self._total += written
        except BaseException:
            self._release(reserved)
            if tmp is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            raise
        return self.path(digest)

    def _reserve(self, size: int) -> tuple[int, int]:
        with self._lock:
            self._make_room(size)
            self._reserved[0] += size
            self._reserved[1] += 1
        return (size, 1)

    def _release(self, reserved: tuple[int, int] | None) -> None:
        if reserved is not None:
            with self._lock:
                self._reserved[0] -= reserved[0]
                self._reserved[1] -= reserved[1]

    def cleanup(self) -> None:
        """Remove files the state does not know (and leftover temporaries), drop entries whose
        file is missing or corrupt, and save.  Run it when no write is in flight (at start)."""
        with self._lock:
            for name in os.listdir(self.cache_dir):
                if name == STATE_FILE or name in self._lru:
                    continue
                full = os.path.join(self.cache_dir, name)
                with contextlib.suppress(FileNotFoundError):
                    if os.path.isdir(full) and not os.path.islink(full):
                        remove_tree(full)
                    else:
                        os.unlink(full)
            for digest in list(self._lru):
                self._verified(digest)
            self._save()

    # -- mapping ----------------------------------------------------------------------------

    def map_tree(self, files: Mapping[str, FileEntry], target: str, read_only: int = 1) -> None:
        """Lay ``files`` (all cached) out under ``target``.  ``read_only`` 0 gives writable
        copies with their ``m``; 1 read-only files (see ``_mode_for``), hardlinked to the cache
        (copied for executables, whose mode the cache file does not have, and across
        filesystems); 2 also makes the directories read-only."""
        with self.protecting(e.digest for e in files.values() if e.digest):
            made: set[str] = set()
            for rel, entry in sorted(files.items()):
                dest = os.path.join(target, *rel.split("/"))
                self._make_parents(target, rel, made)
                try:
                    if entry.link is not None:
                        os.symlink(entry.link, dest)
                    else:
                        self._place(entry, dest, read_only)
                except FileExistsError:
                    raise MappingError(f"cannot map {rel!r}: {dest} already exists") from None
            if read_only == 2:
                for directory in sorted(made, key=len, reverse=True):
                    os.chmod(directory, 0o555)
                os.chmod(target, 0o555)

    @staticmethod
    def _make_parents(target: str, rel: str, made: set[str]) -> None:
        parts = rel.split("/")[:-1]
        current = target
        for part in parts:
            current = os.path.join(current, part)
            if current in made:
                continue
            try:
                os.mkdir(current)
            except FileExistsError:
                st = os.lstat(current)
                if not stat.S_ISDIR(st.st_mode):
                    kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a file"
                    raise MappingError(f"cannot map {rel!r}: {current} is {kind}, not a directory") from None
            made.add(current)

    def _place(self, entry: FileEntry, dest: str, read_only: int) -> None:
        assert entry.digest is not None
        source = self.touch(entry.digest)
        wanted = _mode_for(entry, read_only)
        if read_only and wanted == CACHE_FILE_MODE:
            try:
                self._link(source, dest)
                self.linked += 1
                return
            except OSError as e:
                if e.errno not in (errno.EXDEV, errno.EMLINK, errno.EPERM):
                    raise
        shutil.copyfile(source, dest)
        os.chmod(dest, wanted)
        self.copied += 1


def _mode_for(entry: FileEntry, read_only: int) -> int:
    """The mode a mapped file gets.  Writable (``read_only`` 0): its ``m``, or 0o644.
    Read-only: readable by all, executable by all when ``m`` has user execute, writable by none
    (0o444 or 0o555).  The group and other bits of ``m`` are not kept there: a hardlink shares
    its mode with the cache entry (0o444), so the common case, a plain file, can be a link; the
    run directory itself is private to the slave's user."""
    if not read_only:
        return entry.mode if entry.mode is not None else 0o644
    if entry.mode is not None and entry.mode & stat.S_IXUSR:
        return 0o555
    return CACHE_FILE_MODE


def remove_tree(path: str) -> None:
    """Delete ``path`` even where ``map_tree`` made directories read-only."""
    def make_writable_and_retry(func, failed_path, _exc_info):
        parent = os.path.dirname(failed_path)
        os.chmod(parent, 0o755)
        func(failed_path)

    for dirpath, dirnames, _ in os.walk(path):
        os.chmod(dirpath, 0o755)
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, 0o755)
    shutil.rmtree(path, onerror=make_writable_and_retry)  # onexc is 3.12+
