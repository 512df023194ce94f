"""``CASSettings``: ``c['cas']`` as the store and its API read it (master/config.py checks it),
and ``Expiry``: how long an item lives and when a presence check refreshes it."""

import secrets
from dataclasses import dataclass, field

DAY_S = 24 * 3600.0
HOUR_S = 3600.0
DEFAULT_EXPIRY_DAYS = 30
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024 * 1024  # 1 GiB, stored (compressed) or not
DEFAULT_INLINE_MAX_BYTES = 500  # Isolate's own threshold: smaller items go through store_inline
DEFAULT_RETRIEVE_INLINE_MAX_BYTES = 64 * 1024  # larger items are answered with a URL
DEFAULT_JANITOR_INTERVAL_S = HOUR_S
BACKENDS = ("file", "s3")
# A presence check refreshes an item only when its last refresh is older than this fraction of
# the expiry (at most a day): a warm archive of 10,000 files then writes no timestamp at all.
REFRESH_FRACTION = 0.1
MAX_REFRESH_AFTER_S = DAY_S
# An item is absent for preupload once its age reaches the expiry, but deleted only a grace
# later: a presence check that found an item has refreshed it long before the janitor may look.
GRACE_FRACTION = 0.1
MAX_GRACE_S = HOUR_S


@dataclass(frozen=True)
class Expiry:
    """When items expire: ``lifetime_s`` after their last refresh (a store or a presence check)."""

    lifetime_s: float = DEFAULT_EXPIRY_DAYS * DAY_S

    @property
    def refresh_after_s(self) -> float:
        """A presence check refreshes an item whose last refresh is older than this."""
        return min(self.lifetime_s * REFRESH_FRACTION, MAX_REFRESH_AFTER_S)

    @property
    def grace_s(self) -> float:
        """The janitor deletes an item ``lifetime_s + grace_s`` after its last refresh."""
        return min(self.lifetime_s * GRACE_FRACTION, MAX_GRACE_S)

    def is_live(self, age_s: float) -> bool:
        """Whether an item refreshed ``age_s`` ago is still present for preupload."""
        return age_s < self.lifetime_s

    def needs_refresh(self, age_s: float) -> bool:
        return age_s >= self.refresh_after_s

    def may_delete(self, age_s: float) -> bool:
        """Whether the janitor may delete an item refreshed ``age_s`` ago."""
        return age_s >= self.lifetime_s + self.grace_s


@dataclass(frozen=True)
class S3Location:
    """Where the S3 back-end keeps its items, and the credentials it uses (None: boto3's
    default chain: environment, ~/.aws, instance role)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CASSettings:
    """The store's configuration."""

    backend: str = "file"
    path: str = "cas"  # the file back-end's root, relative to the master's basedir
    expiry_days: float = DEFAULT_EXPIRY_DAYS
    max_item_bytes: int = DEFAULT_MAX_ITEM_BYTES
    inline_max_bytes: int = DEFAULT_INLINE_MAX_BYTES
    retrieve_inline_max_bytes: int = DEFAULT_RETRIEVE_INLINE_MAX_BYTES
    # Signs upload tickets; by default a random one per master process (tickets do not outlive
    # a restart).  Set it (c['cas']['upload_secret']) when several masters share one store.
    upload_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    secret_is_set: bool = False  # False: the random default, kept across a reconfig
    s3: S3Location | None = None  # the S3 back-end's bucket (backend 's3')
    janitor_interval_s: float = DEFAULT_JANITOR_INTERVAL_S

    @property
    def expiry(self) -> Expiry:
        return Expiry(self.expiry_days * DAY_S)

    def store_key(self) -> tuple:
        """What the back-end is made of: a reconfig that changes it makes a new store."""
        return (self.backend, self.path, self.s3, self.expiry_days)
