"""``IContentStore``: where the content-addressed store keeps its items, and ``ICASMaster``:
the master as the store's service sees it.

One implementation per module (cas/filestore.py: the master's disk; cas/s3store.py: an
S3-compatible bucket).  Items are kept as the namespace stores them (zlib-compressed in
``-gzip``/``-deflate`` namespaces), under the digest of their uncompressed content.  Every
method returns a Deferred and does its I/O off the reactor thread.  Times are the injected
reactor's ``seconds()``, read on the reactor thread when the call is made.
"""

from dataclasses import dataclass, field

from zope.interface import Attribute, Interface


class NotStored(KeyError):
    """The item asked for is not in the store."""


class ContentMismatch(ValueError):
    """Bytes offered for a digest whose hash or size they do not have (never stored)."""


class StoreUnavailable(Exception):
    """The back-end failed (a disk error, S3 unreachable or refusing): the message says what;
    the API answers 503."""


def unavailable_on(errors: tuple, where: str):
    """A wrapper of a back-end function that turns ``errors`` into ``StoreUnavailable``."""

    def wrap(fn):
        def call(*args):
            try:
                return fn(*args)
            except errors as e:
                raise StoreUnavailable(f"{where}: {e}") from e

        return call

    return wrap


@dataclass(frozen=True)
class Stored:
    """What a put did: whether it added a new item (False: it was there, and is refreshed),
    the stored bytes' size and their MD5 (base64, for the upload's ``x-goog-hash``)."""

    new: bool
    stored_bytes: int
    md5_b64: str


@dataclass
class ExpiryPass:
    """What one janitor pass found: per namespace name, ``[items, bytes]`` deleted and
    ``[items, bytes]`` still stored after it."""

    deleted: dict[str, list[int]] = field(default_factory=dict)
    stored: dict[str, list[int]] = field(default_factory=dict)

    def count(self, table: dict, namespace: str, size: int) -> None:
        entry = table.setdefault(namespace, [0, 0])
        entry[0] += 1
        entry[1] += size


class IContentStore(Interface):
    """A back-end of the content-addressed store."""

    def contains(namespace, digests):
        """Deferred: the set of those ``digests`` (hex strings) stored in ``namespace`` (a
        ``Namespace``) and not expired.  Items whose last refresh is older than the expiry's
        ``refresh_after_s`` are refreshed (all in one call on the thread pool)."""

    def get(namespace, digest, offset=0, length=None):
        """Deferred: ``(data, total)``: the stored bytes of ``digest`` from ``offset`` on (at
        most ``length`` of them when given: /browse streams an item in pieces), and the
        stored size; fails with ``NotStored`` when it is absent (or ``offset`` is past its
        end: ``ValueError``)."""

    def open(namespace, digest, offset=0):
        """Deferred: ``(reader, total)``: a reader of the stored bytes of ``digest`` from
        ``offset`` on (blocking ``read(n)`` and ``close()``: call them on a thread) and the
        stored size; fails as ``get`` does.  For streaming a large item."""

    def put(namespace, digest, size, data):
        """Deferred ``Stored``: store ``data`` (bytes, or a binary file positioned at its start:
        the item as ``namespace`` stores it) under ``digest`` once its uncompressed content is
        verified to have that digest and ``size`` bytes; fails with ``ContentMismatch`` (and
        stores nothing) otherwise.  Atomic: the item is either absent or whole; concurrent
        puts of one digest are safe.  An item already there is refreshed."""

    def expire(batch):
        """Deferred ``ExpiryPass``: delete the items the expiry allows to (``may_delete``),
        ``batch`` at a time, each checked again just before it goes (one refreshed since the
        pass listed it stays), and count what stays."""


class ICASMaster(Interface):
    """The master as the content-addressed store's service (cas/service.py) sees it."""

    config = Attribute("The current ``MasterConfig``: ``cas`` (``CASSettings``), replaced on reconfig.")
    basedir = Attribute("The master's base directory: the file back-end's root is under it.")
    reactor = Attribute("The master's reactor: the time of every expiry, and the thread pools' results.")
    metrics = Attribute("The master's ``MasterMetrics``: ``cas`` (``CASMetrics``) counts the store's work.")
    auth = Attribute("The ``AuthService``: the identity and scopes of each API request.")
    db = Attribute("The ``DBConnector``: ``db.leases`` (the janitor's lease, with several masters).")
    masterid = Attribute("This master's row in ``masters``: the holder of the janitor's lease.")
