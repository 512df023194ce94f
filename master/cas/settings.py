"""``CASSettings``: ``c['cas']`` as the store and its API read it (master/config.py checks it)."""

import secrets
from dataclasses import dataclass, field

DEFAULT_EXPIRY_DAYS = 30
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024 * 1024  # 1 GiB, stored (compressed) or not
DEFAULT_INLINE_MAX_BYTES = 500  # Isolate's own threshold: smaller items go through store_inline
DEFAULT_RETRIEVE_INLINE_MAX_BYTES = 64 * 1024  # larger items are answered with a URL
BACKENDS = ("file",)


@dataclass(frozen=True)
class CASSettings:
    """The store's configuration."""

    backend: str = "file"
    path: str = "cas"  # the file back-end's root, relative to the master's basedir
    expiry_days: float = DEFAULT_EXPIRY_DAYS  # kept for the janitor (not yet applied)
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    retrieve_inline_max_bytes: int = DEFAULT_RETRIEVE_INLINE_MAX_BYTES
    # Signs upload tickets; by default a random one per master process (tickets do not outlive
    # a restart).  Set it (c['cas']['upload_secret']) when several masters share one store.
    upload_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
