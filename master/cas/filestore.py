"""``FileStore``: the content-addressed store on the master's disk, the default back-end.

An item of namespace ``ns`` with digest ``d`` is the file ``<root>/<ns>/<d[:2]>/<d>``,
holding the item as the namespace stores it.  A put copies the stored bytes into a temporary
file in ``<root>/<ns>/tmp/`` while it verifies them, fsyncs it and renames it into place
(``os.replace``: atomic on one filesystem), so a half-written item is never visible, and two
puts of one digest each rename a whole, verified copy of the same content.

Expiry: an item's last refresh is its file's mtime, set from the injected clock when it is
stored and by ``os.utime`` when a presence check or a put refreshes it (no sidecar to keep in
step).  The janitor walks the tree, and deletes an expired item under ``lock`` after reading
its mtime again; puts rename and refresh under the shared side of the same lock
(cas/locking.py), so an item refreshed after the janitor listed it stays.  All disk work runs
on a thread pool, never the reactor.
"""

import os
import tempfile

from twisted.internet import threads
from zope.interface import implementer

from buildfarm.master.cas.interfaces import ExpiryPass, IContentStore, NotStored, Stored, unavailable_on
from buildfarm.master.cas.locking import SharedLock
from buildfarm.master.cas.namespaces import BadNamespace, Namespace, parse_namespace
from buildfarm.master.cas.settings import Expiry
from buildfarm.master.cas.verify import as_reader, copy_verified

TMP_DIR = "tmp"
# A temporary file older than this is what a crash left behind: the janitor removes it.
STALE_TMP_S = 24 * 3600.0


@implementer(IContentStore)
class FileStore:
    """Items under ``root``; disk work on ``pool`` (a started ``ThreadPool``; by default the
    reactor's own pool, taken when first needed); times from ``reactor.seconds()``."""

    def __init__(self, root: str, reactor, pool=None, expiry: Expiry | None = None, lock=None):
        self.root = os.path.abspath(root)
        self.reactor = reactor
        self.pool = pool
        self.expiry = expiry or Expiry()
        self.lock = lock or SharedLock()

    def path_of(self, namespace: Namespace, digest: str) -> str:
        """Where the item ``digest`` of ``namespace`` lives (the digest is checked first)."""
        namespace.check_digest(digest)
        return os.path.join(self.root, namespace.name, digest[:2], digest)

    def _in_thread(self, fn, *args):
        """``fn(*args)`` on the pool; a disk failure becomes ``StoreUnavailable``."""
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        guarded = unavailable_on((OSError,), f"the store's disk at {self.root}")(fn)
        return threads.deferToThreadPool(self.reactor, pool, guarded, *args)

    def contains(self, namespace: Namespace, digests):
        paths = {d: self.path_of(namespace, d) for d in digests}
        return self._in_thread(self._contains, paths, self.reactor.seconds())

    def _contains(self, paths: dict, now: float) -> set:
        present = set()
        for digest, path in paths.items():
            try:
                age = now - os.stat(path).st_mtime
                if not self.expiry.is_live(age):
                    continue  # expired: the client uploads it again, which refreshes it
                if self.expiry.needs_refresh(age):
                    os.utime(path, (now, now))
            except FileNotFoundError:
                continue
            present.add(digest)
        return present

    def get(self, namespace: Namespace, digest: str, offset: int = 0, length: int | None = None):
        return self._in_thread(_read, self.path_of(namespace, digest), digest, offset, length)

    def open(self, namespace: Namespace, digest: str, offset: int = 0):
        return self._in_thread(_open, self.path_of(namespace, digest), digest, offset)

    def put(self, namespace: Namespace, digest: str, size: int, data):
        return self._in_thread(self._put, namespace, self.path_of(namespace, digest), digest, size, data,
                               self.reactor.seconds())

    def _put(self, namespace: Namespace, path: str, digest: str, size: int, data, now: float) -> Stored:
        tmp_dir = os.path.join(self.root, namespace.name, TMP_DIR)
        os.makedirs(tmp_dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=digest[:16] + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                stored, md5 = copy_verified(namespace, digest, size, as_reader(data), f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with self.lock.shared():
                try:
                    os.utime(path, (now, now))  # there already: refreshed, the copy dropped
                    return Stored(False, stored, md5)
                except FileNotFoundError:
                    os.replace(tmp, path)
                    os.utime(path, (now, now))  # under the lock: the janitor sees it fresh
                    return Stored(True, stored, md5)
        finally:
            _remove(tmp)

    def expire(self, batch: int):
        return self._in_thread(self._expire, batch, self.reactor.seconds())

    def _expire(self, batch: int, now: float) -> ExpiryPass:
        found = ExpiryPass()
        candidates: list[tuple[str, str]] = []
        for namespace, path, stat in self._walk(now):
            if self.expiry.may_delete(now - stat.st_mtime):
                candidates.append((namespace, path))
                if len(candidates) >= batch:
                    self._delete(candidates, now, found)
                    candidates = []
            else:
                found.count(found.stored, namespace, stat.st_size)
        self._delete(candidates, now, found)
        return found

    def _delete(self, candidates: list[tuple[str, str]], now: float, found: ExpiryPass) -> None:
        with self.lock.exclusive():
            for namespace, path in candidates:
                try:
                    stat = os.stat(path)
                    if self.expiry.may_delete(now - stat.st_mtime):
                        os.remove(path)
                        found.count(found.deleted, namespace, stat.st_size)
                    else:  # refreshed since the walk saw it
                        found.count(found.stored, namespace, stat.st_size)
                except FileNotFoundError:
                    pass

    def _walk(self, now: float):
        """``(namespace, path, stat)`` of every item; stale temporary files are removed."""
        for name in _listdir(self.root):
            try:
                parse_namespace(name)
            except BadNamespace:
                continue
            for shard in _listdir(os.path.join(self.root, name)):
                folder = os.path.join(self.root, name, shard)
                for entry in _scandir(folder):
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    if shard == TMP_DIR:
                        if now - stat.st_mtime > STALE_TMP_S:
                            _remove(entry.path)
                    elif entry.is_file():
                        yield name, entry.path, stat


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _scandir(path: str):
    try:
        with os.scandir(path) as entries:
            yield from entries
    except (FileNotFoundError, NotADirectoryError):
        return


def _read(path: str, digest: str, offset: int, length: int | None = None) -> tuple[bytes, int]:
    f, total = _open(path, digest, offset)
    with f:
        return f.read(-1 if length is None else length), total


def _open(path: str, digest: str, offset: int):
    """The item's file open at ``offset``, and its size.  Once open, it reads whole even if
    the janitor deletes the item meanwhile."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotStored(digest) from None
    try:
        total = os.fstat(f.fileno()).st_size
        if offset > total:
            raise ValueError(f"offset {offset} is past the item's {total} stored bytes")
        f.seek(offset)
    except BaseException:
        f.close()
        raise
    return f, total


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
