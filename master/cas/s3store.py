"""``S3Store``: the content-addressed store in an S3-compatible bucket (boto3), for fleets with
several masters or more data than one disk.

An item of namespace ``ns`` with digest ``d`` is the object ``<prefix><ns>/<d>``, holding the
item as the namespace stores it.  A put verifies the stored bytes (size and digest of the
inflated content) on a thread before anything is sent, then sends them in one ``PutObject``
with their ``Content-MD5``: S3 stores an object whole or not at all (a failed or corrupted
upload leaves nothing, the MD5 refuses bytes changed on the way), so a half-written item is
never visible, and two puts of one digest each store the same whole content.  Reads with an
offset are ranged ``GetObject`` calls.

Expiry: an item's last refresh (the injected clock's seconds) is in its metadata
(``x-amz-meta-refreshed``), written by the put and, for a refresh, by a ``CopyObject`` of the
object onto itself with new metadata (S3 cannot change metadata in place; the copy is made
inside S3, no bytes go through the master).  The janitor lists the bucket, takes the objects
whose ``LastModified`` is old enough (give or take ``CLOCK_SKEW_S``; a refresh moves it too)
as candidates, reads each candidate's metadata again under the exclusive side of the lock and
deletes the expired ones with ``DeleteObjects``, a batch at a time.

boto3 blocks: every call runs on the thread pool, with botocore's own timeouts and retries.
"""

import io
import threading

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from twisted.internet import defer, threads
from zope.interface import implementer

from buildfarm.master.cas.interfaces import ExpiryPass, IContentStore, NotStored, Stored, unavailable_on
from buildfarm.master.cas.locking import SharedLock
from buildfarm.master.cas.namespaces import BadNamespace, Namespace, parse_namespace
from buildfarm.master.cas.settings import Expiry, S3Location
from buildfarm.master.cas.verify import as_reader, copy_verified

CONNECT_TIMEOUT_S = 10
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 3
REFRESHED_KEY = "refreshed"  # x-amz-meta-refreshed: the clock's seconds of the last refresh
HEADS_PER_CALL = 10  # presence checks of one pool call (the calls of a batch run in parallel)
MAX_DELETE_KEYS = 1000  # DeleteObjects takes at most this many keys a call
MISSING_CODES = ("404", "NoSuchKey", "NotFound")
# How far S3's clock (LastModified) may run ahead of the master's: the listing takes objects
# this much younger as candidates too; their metadata, in the master's time, decides.
CLOCK_SKEW_S = 300.0


@implementer(IContentStore)
class S3Store:
    """Items in ``location``'s bucket; calls on ``pool`` (a started ``ThreadPool``; by default
    the reactor's own pool); times from ``reactor.seconds()``."""

    def __init__(self, location: S3Location, reactor, pool=None, expiry: Expiry | None = None, lock=None):
        self.location = location
        self.reactor = reactor
        self.pool = pool
        self.expiry = expiry or Expiry()
        self.lock = lock or SharedLock()
        self._client = None
        self._client_lock = threading.Lock()

    @property
    def bucket(self) -> str:
        return self.location.bucket

    def key_of(self, namespace: Namespace, digest: str) -> str:
        """The object key of ``digest`` in ``namespace`` (the digest is checked first)."""
        namespace.check_digest(digest)
        return f"{self.location.prefix}{namespace.name}/{digest}"

    def client(self):
        """The boto3 S3 client (made on first use, on a pool thread: making one is slow)."""
        with self._client_lock:
            if self._client is None:
                loc = self.location
                config = Config(connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S,
                                retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                                s3={"addressing_style": "path"} if loc.endpoint_url else None)
                session = boto3.session.Session(aws_access_key_id=loc.access_key_id,
                                                aws_secret_access_key=loc.secret_access_key,
                                                region_name=loc.region)
                self._client = session.client("s3", endpoint_url=loc.endpoint_url, config=config)
            return self._client

    def _in_thread(self, fn, *args):
        """``fn(*args)`` on the pool; an S3 failure becomes ``StoreUnavailable``."""
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        guarded = unavailable_on((ClientError, BotoCoreError), f"S3 bucket {self.bucket!r}")(fn)
        return threads.deferToThreadPool(self.reactor, pool, guarded, *args)

    # -- presence and refresh ---------------------------------------------------------------

    def contains(self, namespace: Namespace, digests):
        """One ``HeadObject`` an item, ``HEADS_PER_CALL`` of them a pool call, the calls in
        parallel (a batch of 100 costs about ten round trips, not a hundred)."""
        keys = sorted((d, self.key_of(namespace, d)) for d in digests)
        now = self.reactor.seconds()
        calls = [self._in_thread(self._contains, dict(keys[i:i + HEADS_PER_CALL]), now)
                 for i in range(0, len(keys), HEADS_PER_CALL)]
        d = defer.gatherResults(calls, consumeErrors=True)
        d.addCallback(lambda found: set().union(*found))
        d.addErrback(lambda failure: failure.value.subFailure)  # the first call's own failure
        return d

    def _contains(self, keys: dict, now: float) -> set:
        present = set()
        for digest, key in keys.items():
            refreshed = self._refreshed(key)
            if refreshed is None or not self.expiry.is_live(now - refreshed):
                continue  # absent or expired: the client uploads it again, which refreshes it
            if self.expiry.needs_refresh(now - refreshed) and not self._refresh(key, now):
                continue
            present.add(digest)
        return present

    def _refreshed(self, key: str) -> float | None:
        """When ``key`` was last refreshed; None when it is absent."""
        try:
            head = self.client().head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _missing(e):
                return None
            raise
        return _refresh_time(head)

    def _refresh(self, key: str, now: float) -> bool:
        """Mark ``key`` refreshed at ``now``; False if it is gone."""
        try:
            self.client().copy_object(Bucket=self.bucket, Key=key,
                                      CopySource={"Bucket": self.bucket, "Key": key},
                                      Metadata={REFRESHED_KEY: repr(now)}, MetadataDirective="REPLACE")
        except ClientError as e:
            if _missing(e):
                return False
            raise
        return True

    # -- reads ------------------------------------------------------------------------------

    def get(self, namespace: Namespace, digest: str, offset: int = 0, length: int | None = None):
        return self._in_thread(self._get, self.key_of(namespace, digest), digest, offset, length)

    def _get(self, key: str, digest: str, offset: int, length: int | None) -> tuple[bytes, int]:
        body, total = self._open(key, digest, offset)
        with body:  # closing the body part way drops the rest of the ranged answer
            return body.read() if length is None else body.read(length), total

    def open(self, namespace: Namespace, digest: str, offset: int = 0):
        return self._in_thread(self._open, self.key_of(namespace, digest), digest, offset)

    def _open(self, key: str, digest: str, offset: int):
        """The object's body from ``offset`` (a ranged ``GetObject``, read as it streams) and
        its size."""
        extra = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            answer = self.client().get_object(Bucket=self.bucket, Key=key, **extra)
        except ClientError as e:
            if _missing(e):
                raise NotStored(digest) from None
            if e.response.get("Error", {}).get("Code") == "InvalidRange":
                return io.BytesIO(), self._past_the_end(key, digest, offset)
            raise
        if offset:
            total = int(answer["ContentRange"].rsplit("/", 1)[1])
        else:
            total = answer["ContentLength"]
        return answer["Body"], total

    def _past_the_end(self, key: str, digest: str, offset: int) -> int:
        """S3 refuses a range that starts at the end: the size (the rest is empty), or past
        it, ValueError."""
        try:
            total = self.client().head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        except ClientError as e:
            if _missing(e):
                raise NotStored(digest) from None
            raise
        if offset > total:
            raise ValueError(f"offset {offset} is past the item's {total} stored bytes")
        return total

    # -- writes -----------------------------------------------------------------------------

    def put(self, namespace: Namespace, digest: str, size: int, data):
        return self._in_thread(self._put, namespace, self.key_of(namespace, digest), digest, size, data,
                               self.reactor.seconds())

    def _put(self, namespace: Namespace, key: str, digest: str, size: int, data, now: float) -> Stored:
        reader = as_reader(data)
        stored, md5 = copy_verified(namespace, digest, size, reader)
        with self.lock.shared():
            if self._refreshed(key) is not None and self._refresh(key, now):
                return Stored(False, stored, md5)
            reader.seek(0)
            body = reader.getvalue() if isinstance(reader, io.BytesIO) else reader
            self.client().put_object(Bucket=self.bucket, Key=key, Body=body, ContentLength=stored,
                                     ContentMD5=md5, ContentType="application/octet-stream",
                                     Metadata={REFRESHED_KEY: repr(now)})
        return Stored(True, stored, md5)

    # -- the janitor ------------------------------------------------------------------------

    def expire(self, batch: int):
        return self._in_thread(self._expire, max(1, min(batch, MAX_DELETE_KEYS)), self.reactor.seconds())

    def _expire(self, batch: int, now: float) -> ExpiryPass:
        found = ExpiryPass()
        candidates: list[tuple[str, str, int]] = []
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                        Prefix=self.location.prefix)
        for page in pages:
            for obj in page.get("Contents", []):
                namespace = self._namespace_of(obj["Key"])
                if namespace is None:
                    continue
                if self.expiry.may_delete(now - obj["LastModified"].timestamp() + CLOCK_SKEW_S):
                    candidates.append((namespace, obj["Key"], obj["Size"]))
                    if len(candidates) >= batch:
                        self._delete(candidates, now, found)
                        candidates = []
                else:
                    found.count(found.stored, namespace, obj["Size"])
        self._delete(candidates, now, found)
        return found

    def _namespace_of(self, key: str) -> str | None:
        """The namespace of an item's key; None for any other object under the prefix."""
        name, _, digest = key[len(self.location.prefix):].partition("/")
        try:
            parse_namespace(name).check_digest(digest)
        except BadNamespace:
            return None
        return name

    def _delete(self, candidates: list[tuple[str, str, int]], now: float, found: ExpiryPass) -> None:
        if not candidates:
            return
        with self.lock.exclusive():
            doomed = []
            for namespace, key, size in candidates:
                refreshed = self._refreshed(key)
                if refreshed is None:
                    continue
                if self.expiry.may_delete(now - refreshed):
                    doomed.append((namespace, key, size))
                else:  # refreshed since the listing saw it
                    found.count(found.stored, namespace, size)
            if not doomed:
                return
            answer = self.client().delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": key} for _, key, _ in doomed], "Quiet": True})
        failed = {error["Key"] for error in answer.get("Errors", [])}
        for namespace, key, size in doomed:
            found.count(found.stored if key in failed else found.deleted, namespace, size)


def _missing(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in MISSING_CODES


def _refresh_time(head: dict) -> float:
    """The refresh time in an object's metadata, or its LastModified if it has none."""
    try:
        return float(head.get("Metadata", {})[REFRESHED_KEY])
    except (KeyError, ValueError):
        return head["LastModified"].timestamp()
