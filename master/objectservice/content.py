"""An object's bytes in the content-addressed store: measured (SHA-256, SHA-512, size) in one
pass on the store's thread pool, then stored under their SHA-256 in the ``sha256-flat``
namespace (uncompressed; the store verifies them again as it copies them in), and read back
as a stream.  Nothing here runs on the reactor thread but the scheduling."""

from __future__ import annotations

import hashlib

from twisted.internet import threads

from buildfarm.master.cas.namespaces import parse_namespace
from buildfarm.master.cas.verify import as_reader

NAMESPACE = parse_namespace("sha256-flat")
READ_CHUNK_BYTES = 1024 * 1024


def measure(data) -> dict:
    """``{sha256, sha512, size}`` of ``data`` (bytes, or a binary file read from its start)."""
    reader = as_reader(data)
    measured = measure_reader(reader)
    reader.seek(0)
    return measured


def measure_reader(reader) -> dict:
    """``{sha256, sha512, size}`` of what ``reader`` holds from where it is."""
    sha256, sha512, size = hashlib.sha256(), hashlib.sha512(), 0
    while True:
        chunk = reader.read(READ_CHUNK_BYTES)
        if not chunk:
            break
        sha256.update(chunk)
        sha512.update(chunk)
        size += len(chunk)
    return {"sha256": sha256.hexdigest(), "sha512": sha512.hexdigest(), "size": size}


class WrongSize(ValueError):
    """The bytes sent are not as many as the upload declared."""


async def store_content(cas, data, size: int | None = None) -> dict:
    """Store ``data`` (bytes or a spool file) in ``cas`` (the ``CASService``); what was measured.
    ``WrongSize`` (nothing stored) when ``size`` is given and the data has another."""
    received = await threads.deferToThreadPool(cas.master.reactor, cas.pool, measure, data)
    if size is not None and received["size"] != size:
        raise WrongSize(f"{received['size']} bytes were sent where the upload declared {size}")
    await cas.store.put(NAMESPACE, received["sha256"], received["size"], data)
    return received


def download_hashes(received: dict, declared: dict) -> dict:
    """The hashes a downloader checks: the declared ones, and the acceptable ones measured."""
    return {**declared, "sha256": received["sha256"], "sha512": received["sha512"]}


async def measure_stored(cas, digest: str) -> dict:
    """``{sha256, sha512, size}`` of the stored bytes of ``digest`` (read on the store's pool)."""
    reader, _ = await cas.store.open(NAMESPACE, digest)
    try:
        return await threads.deferToThreadPool(cas.master.reactor, cas.pool, measure_reader, reader)
    finally:
        await threads.deferToThreadPool(cas.master.reactor, cas.pool, reader.close)


async def stored_size(cas, digest: str) -> int:
    """The size of the stored bytes of ``digest`` (``NotStored`` when absent)."""
    reader, size = await cas.store.open(NAMESPACE, digest)
    await threads.deferToThreadPool(cas.master.reactor, cas.pool, reader.close)
    return size


async def check_stored(cas, name: str, digest: str) -> None:
    """``GoneFromStore`` unless the bytes of ``digest`` are still in the store (which refreshes
    them: an object read now and then outlives the store's expiry)."""
    if digest not in await cas.store.contains(NAMESPACE, {digest}):
        raise GoneFromStore(f"the bytes of object {name!r} are no longer in the store: it keeps an item "
                            f"{cas.settings.expiry_days:g} days after its last use (c['cas']['expiry_days'])")


class GoneFromStore(LookupError):
    """An object whose bytes the content-addressed store expired (404)."""


async def open_content(cas, digest: str):
    """``(reader, size)`` of the stored bytes of ``digest`` (``NotStored`` when gone)."""
    return await cas.store.open(NAMESPACE, digest)
