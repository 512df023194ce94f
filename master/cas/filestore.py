"""``FileStore``: the content-addressed store on the master's disk, the default back-end.

An item of namespace ``ns`` with digest ``d`` is the file ``<root>/<ns>/<d[:2]>/<d>``,
holding the item as the namespace stores it.  A put writes a temporary file in
``<root>/<ns>/tmp/`` and renames it into place (``os.replace``: atomic on one filesystem),
so a half-written item is never visible, and two puts of one digest each rename a whole,
verified copy of the same content.  All disk work runs on a thread pool, never the reactor.
"""

import os
import tempfile

from twisted.internet import threads
from zope.interface import implementer

from buildfarm.master.cas.interfaces import ContentMismatch, IContentStore, NotStored
from buildfarm.master.cas.namespaces import Namespace

READ_CHUNK_BYTES = 1024 * 1024
TMP_DIR = "tmp"


@implementer(IContentStore)
class FileStore:
    """Items under ``root``; disk work on ``pool`` (a started ``ThreadPool``; by default the
    reactor's own pool, taken when first needed)."""

    def __init__(self, root: str, reactor, pool=None):
        self.root = os.path.abspath(root)
        self.reactor = reactor
        self.pool = pool

    def path_of(self, namespace: Namespace, digest: str) -> str:
        """Where the item ``digest`` of ``namespace`` lives (the digest is checked first)."""
        namespace.check_digest(digest)
        return os.path.join(self.root, namespace.name, digest[:2], digest)

    def _in_thread(self, fn, *args):
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        return threads.deferToThreadPool(self.reactor, pool, fn, *args)

    def contains(self, namespace: Namespace, digests):
        paths = {d: self.path_of(namespace, d) for d in digests}
        return self._in_thread(lambda: {d for d, p in paths.items() if os.path.isfile(p)})

    def get(self, namespace: Namespace, digest: str, offset: int = 0, length: int | None = None):
        return self._in_thread(_read, self.path_of(namespace, digest), digest, offset, length)

    def put(self, namespace: Namespace, digest: str, size: int, data: bytes):
        return self._in_thread(self._put, namespace, self.path_of(namespace, digest), digest, size, data)

    def _put(self, namespace: Namespace, path: str, digest: str, size: int, data: bytes) -> None:
        verify(namespace, digest, size, data)
        if os.path.isfile(path):
            return
        tmp_dir = os.path.join(self.root, namespace.name, TMP_DIR)
        os.makedirs(tmp_dir, exist_ok=True)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=digest[:16] + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise


def verify(namespace: Namespace, digest: str, size: int, data: bytes) -> None:
    """``ContentMismatch`` unless ``data`` (stored form) holds ``size`` bytes of content whose
    digest is ``digest``.  The content is inflated in chunks, never past ``size`` + 1 bytes,
    so a zlib bomb costs no memory."""
    hasher, seen = namespace.hasher(), 0
    inflater = namespace.decompressor()
    pending = data
    try:
        while True:
            chunk = inflater.decompress(pending, READ_CHUNK_BYTES) if namespace.compressed else pending
            seen += len(chunk)
            if seen > size:
                raise ContentMismatch(f"content is larger than the declared {size} bytes")
            hasher.update(chunk)
            pending = inflater.unconsumed_tail if namespace.compressed else b""
            if not pending:
                break
        if namespace.compressed:
            if not inflater.eof:
                raise ContentMismatch("the compressed stream is truncated")
            if inflater.unused_data:
                raise ContentMismatch("bytes follow the end of the compressed stream")
    except ContentMismatch:
        raise
    except Exception as e:  # zlib.error: not a zlib stream
        raise ContentMismatch(f"content is not a valid zlib stream: {e}") from None
    if seen != size:
        raise ContentMismatch(f"content is {seen} bytes, not the declared {size}")
    if hasher.hexdigest() != digest:
        raise ContentMismatch(f"content's {namespace.digest_hash} is {hasher.hexdigest()}, not {digest}")


def _read(path: str, digest: str, offset: int, length: int | None = None) -> tuple[bytes, int]:
    try:
        with open(path, "rb") as f:
            total = os.fstat(f.fileno()).st_size
            if offset > total:
                raise ValueError(f"offset {offset} is past the item's {total} stored bytes")
            f.seek(offset)
            return f.read(-1 if length is None else length), total
    except FileNotFoundError:
        raise NotStored(digest) from None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
