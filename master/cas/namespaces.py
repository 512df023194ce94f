"""Isolate namespaces: what a namespace's name says about its items.

A name such as ``default-gzip`` or ``sha256-deflate`` picks the digest algorithm (SHA-256 or
SHA-512 for a ``sha256-``/``sha512-`` prefix, SHA-1 otherwise) and the compression (a zlib
stream on the wire and at rest for a ``-gzip`` or ``-deflate`` suffix, none otherwise).
Digests and sizes are always those of the uncompressed bytes.
"""

import hashlib
import re
import zlib
from dataclasses import dataclass

MAX_NAMESPACE_CHARS = 64
NAMESPACE_RE = re.compile(r"[a-zA-Z0-9._\-]+")
DIGEST_RE = re.compile(r"[0-9a-f]+")
# Prefix of the name -> (hashlib name, the contract's digest_hash, hex digits of a digest).
ALGORITHMS = (("sha256-", "sha256", "sha-256", 64), ("sha512-", "sha512", "sha-512", 128))
DEFAULT_ALGORITHM = ("sha1", "sha-1", 40)
COMPRESSED_SUFFIXES = ("-gzip", "-deflate")
COMPRESSION_LEVEL = 7  # what the Isolate client sends; a server's choice does not matter


class BadNamespace(ValueError):
    """A namespace name or a digest that does not fit the namespace's rules."""


@dataclass(frozen=True)
class Namespace:
    """One namespace: its name, its digest algorithm and whether items are zlib-compressed."""

    name: str
    algorithm: str  # a hashlib name: sha1, sha256, sha512
    digest_hash: str  # as the API's namespace object spells it: sha-1, sha-256, sha-512
    digest_chars: int
    compressed: bool

    @property
    def compression(self) -> str:
        """The API's ``compression`` field: ``flate`` or empty."""
        return "flate" if self.compressed else ""

    def api_object(self) -> dict:
        """The namespace object of the Isolate v1 API."""
        return {"namespace": self.name, "digest_hash": self.digest_hash, "compression": self.compression}

    def hasher(self):
        """A new hashlib object of this namespace's algorithm."""
        return hashlib.new(self.algorithm)

    def check_digest(self, digest) -> str:
        """``digest`` if it is the lower-case hex form of a digest of this namespace."""
        if not isinstance(digest, str) or len(digest) != self.digest_chars or not DIGEST_RE.fullmatch(digest):
            raise BadNamespace(f"digest must be {self.digest_chars} lower-case hex digits "
                               f"({self.digest_hash} in namespace {self.name!r}), not {str(digest)[:140]!r}")
        return digest

    def decompressor(self):
        """An object with ``decompress(data)``/``flush()`` turning stored bytes into content."""
        return zlib.decompressobj() if self.compressed else _Identity()

    def compress(self, content: bytes) -> bytes:
        """``content`` as stored and sent in this namespace."""
        return zlib.compress(content, COMPRESSION_LEVEL) if self.compressed else content


class _Identity:
    """The decompressor of an uncompressed namespace."""

    eof = True
    unconsumed_tail = b""

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def parse_namespace(name) -> Namespace:
    """The ``Namespace`` called ``name``; ``BadNamespace`` if it is no valid name."""
    if not isinstance(name, str) or not name:
        raise BadNamespace("namespace must be a non-empty string")
    if len(name) > MAX_NAMESPACE_CHARS or not NAMESPACE_RE.fullmatch(name):
        raise BadNamespace(f"namespace must be at most {MAX_NAMESPACE_CHARS} characters of letters, "
                           f"digits, '.', '_' and '-', not {name[:140]!r}")
    algorithm, digest_hash, chars = DEFAULT_ALGORITHM
    for prefix, alg, dh, n in ALGORITHMS:
        if name.startswith(prefix):
            algorithm, digest_hash, chars = alg, dh, n
    return Namespace(name, algorithm, digest_hash, chars, name.endswith(COMPRESSED_SUFFIXES))
