"""The check every item passes before it is stored: its content, inflated in chunks from the
stored bytes, must have the declared size and digest.  The stored bytes are read in chunks
from a file (or bytes), copied to a sink as they are checked, and their MD5 taken on the way,
so that a 1 GiB upload costs one pass over it and a few MiB of memory.  Runs on a thread."""

import base64
import hashlib
import io
from typing import BinaryIO

from buildfarm.master.cas.interfaces import ContentMismatch
from buildfarm.master.cas.namespaces import Namespace

READ_CHUNK_BYTES = 1024 * 1024


def as_reader(data) -> BinaryIO:
    """``data`` (bytes, or a binary file) as a binary file positioned at its start."""
    if isinstance(data, bytes | bytearray | memoryview):
        return io.BytesIO(data)
    data.seek(0)
    return data


def copy_verified(namespace: Namespace, digest: str, size: int, reader: BinaryIO,
                  sink: BinaryIO | None = None) -> tuple[int, str]:
    """``(stored bytes, base64 MD5 of them)`` once the stored bytes read from ``reader`` (each
    written to ``sink`` too) hold ``size`` bytes of content whose digest is ``digest``;
    ``ContentMismatch`` otherwise.  Content is never inflated past ``size`` + 1 bytes, so a
    zlib bomb costs no memory."""
    hasher, md5, seen, stored = namespace.hasher(), hashlib.md5(), 0, 0
    inflater = namespace.decompressor()
    try:
        while True:
            chunk = reader.read(READ_CHUNK_BYTES)
            if not chunk:
                break
            stored += len(chunk)
            md5.update(chunk)
            if sink is not None:
                sink.write(chunk)
            pending = chunk
            while pending:
                if namespace.compressed:
                    if inflater.eof:
                        raise ContentMismatch("bytes follow the end of the compressed stream")
                    content = inflater.decompress(pending, READ_CHUNK_BYTES)
                    pending = inflater.unconsumed_tail
                else:
                    content, pending = pending, b""
                seen += len(content)
                if seen > size:
                    raise ContentMismatch(f"content is larger than the declared {size} bytes")
                hasher.update(content)
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
    return stored, base64.b64encode(md5.digest()).decode("ascii")


def verify(namespace: Namespace, digest: str, size: int, data: bytes) -> None:
    """``ContentMismatch`` unless ``data`` (stored form) is ``size`` bytes of content with ``digest``."""
    copy_verified(namespace, digest, size, as_reader(data))
