"""``IContentStore``: where the content-addressed store keeps its items.

One implementation per module (cas/filestore.py: the master's disk; an S3 store next).  Items
are kept as the namespace stores them (zlib-compressed in ``-gzip``/``-deflate`` namespaces),
under the digest of their uncompressed content.  Every method returns a Deferred and does its
I/O off the reactor thread.
"""

from zope.interface import Interface


class NotStored(KeyError):
    """The item asked for is not in the store."""


class ContentMismatch(ValueError):
    """Bytes offered for a digest whose hash or size they do not have (never stored)."""


class IContentStore(Interface):
    """A back-end of the content-addressed store."""

    def contains(namespace, digests):
        """Deferred: the set of those ``digests`` (hex strings) stored in ``namespace``
        (a ``Namespace``)."""

    def get(namespace, digest, offset=0, length=None):
        """Deferred: ``(data, total)``: the stored bytes of ``digest`` from ``offset`` on (at
        most ``length`` of them when given: /browse streams an item in pieces), and the
        stored size; fails with ``NotStored`` when it is absent (or ``offset`` is past its
        end: ``ValueError``)."""

    def put(namespace, digest, size, data):
        """Deferred: store ``data`` (the item as ``namespace`` stores it) under ``digest`` once
        its uncompressed content is verified to have that digest and ``size`` bytes; fails
        with ``ContentMismatch`` (and stores nothing) otherwise.  Atomic: the item is either
        absent or whole; concurrent puts of one digest are safe."""
