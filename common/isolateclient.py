"""The Isolate client: talk to an Isolate v1 server, archive trees to it, download them from it.

``IsolateServer`` speaks the v1 API (shared/SWARMING-ISOLATE-API.md) over treq: ``preupload``,
``store_inline``, a PUT to the upload URL then ``finalize_gs_upload``, ``retrieve`` (inline, or
by URL with a ``Range`` resume) and ``server_details``.  Every failure is an
``IsolateServerError`` whose message says what failed, the HTTP status, the server's message
and the URL.

``archive`` hashes files and trees (a directory becomes an ``.isolated``), checks which items
the server lacks in batches of 20, 20, 50, 50, 50 then 100, several in flight, and uploads only
those, compressed on a thread pool with a bounded number in flight (so a big tree is never all
in memory); the ``.isolated`` files go last, after their files.  ``download_tree`` fetches an
``.isolated`` (and its includes) and every file a ``DiskCache`` lacks, in parallel, each checked
for hash and size before it enters the cache, then maps the tree into a target directory with
hardlinks, its items protected from eviction meanwhile.  ``download_files`` does the same for
single files.  Disk and CPU work (hashing, compression, the cache) runs on a thread pool; the
reactor only moves bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import defer, task, threads
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError, TimeoutError
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, ResponseFailed

from buildfarm.common import cascache
from buildfarm.common.atomicfile import write_atomically
from buildfarm.common.isolated import (
    VERSION_1,
    FileEntry,
    Isolated,
    IsolatedFormatError,
    algo_for_namespace,
    digest_of,
    effective_read_only,
    new_hasher,
    resolve,
    serialise,
)
from buildfarm.common.isolated_tree import BuiltTree, DigestCache, build_isolated

log = Logger()

API_PATH = "/_ah/api/isolateservice/v1"
USER_AGENT = b"buildfarm-isolateserver/1.0"
# preupload batch sizes, as Isolate's client cuts them: small first so uploads start early
FIRST_BATCH_SIZES = (20, 20, 50, 50, 50)
BATCH_SIZE = 100
PREUPLOADS_IN_FLIGHT = 4
UPLOADS_IN_FLIGHT = 8
DOWNLOADS_IN_FLIGHT = 8
COMPRESSION_LEVEL = 7
# already-compressed content gains nothing from zlib: stored at level 0
INCOMPRESSIBLE_EXTENSIONS = frozenset({
    "7z", "avi", "bz2", "cab", "gif", "gz", "jar", "jpeg", "jpg", "mp3", "mp4", "mkv", "pdf",
    "png", "tgz", "webm", "webp", "whl", "xz", "zip", "zst"})
# Items up to this size are compressed in memory; larger ones are compressed into a temporary
# file in chunks and sent from it, so memory stays bounded by UPLOADS_IN_FLIGHT * this.
IN_MEMORY_ITEM_BYTES = 8 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
# a downloaded body is spilled to a temporary file (on a thread) past this many bytes
SPILL_BYTES = 4 * 1024 * 1024
REQUEST_TIMEOUT_S = 120
RETRIES = 3  # 5xx, 408 and a body cut short are tried again
RETRY_DELAY_S = 0.5
RESUMES = 3  # a retrieve by URL cut short is resumed with Range this many times
# A tree whose .isolated and files this client found on the server less than this long ago
# is trusted when its .isolated is still there (ConfirmedTrees): at most an hour, and at most
# this fraction of the items' lifetime on the server when it says (``expiry_secs`` of
# server_details; Isolate's own server kept items for days and did not say).
CONFIRMED_FRESH_S = 3600
CONFIRMED_FRACTION_OF_EXPIRY = 0.1
RETRYABLE_STATUS = frozenset({408, 500, 502, 503, 504})


class IsolateServerError(Exception):
    """A call to the Isolate server (or an item it sent) failed; the message says which, with
    the HTTP status, the server's message and the URL."""

    def __init__(self, message: str, status: int | None = None, url: str | None = None):
        super().__init__(message)
        self.status = status
        self.url = url


def is_compressed_namespace(namespace: str) -> bool:
    """Whether items of ``namespace`` travel and are stored as zlib streams."""
    return namespace.endswith(("-gzip", "-deflate"))


def batch_sizes() -> Iterator[int]:
    """20, 20, 50, 50, 50, then 100 forever."""
    yield from FIRST_BATCH_SIZES
    while True:
        yield BATCH_SIZE


def batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    """``items`` cut into preupload batches (see ``batch_sizes``)."""
    out, start = [], 0
    sizes = batch_sizes()
    while start < len(items):
        size = next(sizes)
        out.append(items[start:start + size])
        start += size
    return out


def _server_message(body: bytes) -> str:
    """The message of an Endpoints error body, or the start of the body."""
    try:
        doc = json.loads(body)
        return str(doc["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode("utf-8", "replace").strip()
        return text or "(empty body)"


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass
class TransferStats:
    """What a transfer did: items checked (with the server for an archive, the cache for a
    download), hits (already there), misses, items and bytes (as sent, compressed) uploaded
    and downloaded, and the seconds it took."""

    checked: int = 0
    hits: int = 0
    misses: int = 0
    uploaded: int = 0
    uploaded_bytes: int = 0
    downloaded: int = 0
    downloaded_bytes: int = 0
    hashed: int = 0  # files read and hashed (the rest came from the digest cache)
    trusted: int = 0  # hits not asked: files of a tree confirmed recently (see ConfirmedTrees)
    seconds: float = 0.0

    def __str__(self) -> str:
        trusted = f" ({self.trusted} confirmed recently)" if self.trusted else ""
        return (f"{self.checked} items checked: {self.hits} hits{trusted}, {self.misses} misses; "
                f"uploaded {self.uploaded} items ({_human_bytes(self.uploaded_bytes)}), "
                f"downloaded {self.downloaded} items ({_human_bytes(self.downloaded_bytes)}); "
                f"hashed {self.hashed} files; {self.seconds:.2f} s")


@dataclass
class ArchiveResult:
    """``items``: ``(hash, path)`` for each path archived, in the order given."""

    items: list[tuple[str, str]]
    stats: TransferStats


@dataclass(frozen=True)
class MappedTree:
    """A downloaded tree: the root ``.isolated``'s run settings (``command``, ``relative_cwd``),
    ``read_only`` as it was mapped (the tree's own, or the caller's override), the merged
    ``files`` (root and includes), and the digests of the ``.isolated`` files read, root first."""

    command: tuple[str, ...] | None
    relative_cwd: str | None
    read_only: int
    files: Mapping[str, FileEntry]
    isolated_digests: tuple[str, ...]
    root: Isolated


@dataclass
class DownloadResult:
    """``isolated``: the tree mapped (a ``MappedTree``); ``stats``: what it took."""

    isolated: MappedTree
    stats: TransferStats

    @property
    def command(self) -> tuple[str, ...] | None:
        return self.isolated.command

    @property
    def relative_cwd(self) -> str | None:
        return self.isolated.relative_cwd

    @property
    def read_only(self) -> int:
        return self.isolated.read_only

    @property
    def files(self) -> Mapping[str, FileEntry]:
        return self.isolated.files


@dataclass(frozen=True)
class PushTicket:
    """What preupload answered for one missing item."""

    index: int
    upload_ticket: str
    upload_url: str | None = None


class IsolateServer:
    """A client of one namespace of an Isolate v1 server at ``url``.

    ``headers`` (e.g. ``{"Authorization": "Bearer ..."}``) go on every request; ``pool`` is the
    ``HTTPConnectionPool`` to use (by default a persistent one of this object's own, closed by
    ``close()``)."""

    def __init__(self, url: str, namespace: str, *, reactor, headers: dict[str, str] | None = None,
                 pool: HTTPConnectionPool | None = None):
        self.url = url.rstrip("/")
        self.namespace = namespace
        self.algo = algo_for_namespace(namespace)
        self.compressed = is_compressed_namespace(namespace)
        self.reactor = reactor
        self.headers = {"User-Agent": USER_AGENT.decode(), **(headers or {})}
        self._own_pool = pool is None
        if pool is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = max(UPLOADS_IN_FLIGHT, DOWNLOADS_IN_FLIGHT) + PREUPLOADS_IN_FLIGHT
            pool.retryAutomatically = False
        self.pool = pool
        self._http = HTTPClient(Agent(reactor, pool=pool))

    async def close(self) -> None:
        """Close the connections of this client's own pool."""
        if self._own_pool:
            await self.pool.closeCachedConnections()

    # -- HTTP plumbing ---------------------------------------------------------------------

    async def _request(self, what: str, method: str, url: str, *, data: Any = None,
                       headers: dict[str, str] | None = None, ok: Iterable[int] = (200,),
                       stream: bool = False):
        """The response to one request (retried on 5xx and 408), its body read unless
        ``stream``; anything else than ``ok`` is an ``IsolateServerError``."""
        all_headers = {**self.headers, **(headers or {})}
        for attempt in range(RETRIES):
            # a callable ``data`` opens the body afresh for each attempt (a file is read once)
            sent = data() if callable(data) else data
            try:
                response = await self._http.request(method, url, data=sent, headers=all_headers,
                                                    timeout=REQUEST_TIMEOUT_S, unbuffered=stream)
                if response.code in ok:
                    if stream:
                        return response, b""
                    return response, await response.content()
                body = await response.content()
            except (ConnectionRefusedError, DNSLookupError, ConnectError) as e:
                raise IsolateServerError(f"{what} failed: cannot connect to {self.url}: {e}",
                                         url=url) from None
            except (TimeoutError, defer.CancelledError):
                raise IsolateServerError(f"{what} failed: no answer within {REQUEST_TIMEOUT_S} s "
                                         f"({url})", url=url) from None
            except ResponseFailed as e:
                if attempt + 1 < RETRIES:
                    await task.deferLater(self.reactor, RETRY_DELAY_S * 2 ** attempt, lambda: None)
                    continue
                raise IsolateServerError(f"{what} failed: the connection broke: {e.reasons[0].value} "
                                         f"({url})", url=url) from None
            finally:
                if sent is not data:
                    sent.close()
            if response.code in RETRYABLE_STATUS and attempt + 1 < RETRIES:
                await task.deferLater(self.reactor, RETRY_DELAY_S * 2 ** attempt, lambda: None)
                continue
            raise IsolateServerError(f"{what} failed: HTTP {response.code}: {_server_message(body)} "
                                     f"({url})", status=response.code, url=url)
        raise AssertionError("unreachable")

    async def _call(self, name: str, body: dict) -> dict:
        """POST ``body`` to the v1 method ``name``; its JSON object answer."""
        url = f"{self.url}{API_PATH}/{name}"
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        _, raw = await self._request(name, "POST", url, data=data,
                                     headers={"Content-Type": "application/json; charset=UTF-8"})
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise IsolateServerError(f"{name} failed: the answer is not a JSON object ({url})", url=url)
        return answer

    # -- the v1 API --------------------------------------------------------------------------

    async def server_details(self) -> dict:
        """The server's ``{"server_version": ..., "expiry_secs"?: ...}``."""
        return await self._call("server_details", {})

    async def trust_window_s(self) -> float:
        """How long a tree found whole on this server may be trusted to stay whole: a tenth of
        the items' lifetime the server answers (``expiry_secs``), at most ``CONFIRMED_FRESH_S``;
        ``CONFIRMED_FRESH_S`` when it does not say (Isolate's own server kept items for days);
        0 (trust nothing: check every file) when the call fails."""
        try:
            details = await self.server_details()
        except IsolateServerError:
            return 0.0
        try:
            expiry_s = float(details["expiry_secs"])
        except (KeyError, TypeError, ValueError):
            return CONFIRMED_FRESH_S
        if not expiry_s >= 0:  # NaN or negative: a server that does not know
            return CONFIRMED_FRESH_S
        return min(CONFIRMED_FRESH_S, expiry_s * CONFIRMED_FRACTION_OF_EXPIRY)

    async def preupload(self, items: Sequence[tuple[str, int, bool]]) -> list[PushTicket]:
        """Which of ``items`` (``(digest, size, is_isolated)``) the server lacks: a ticket each."""
        body = {"namespace": self.namespace,
                "items": [{"digest": d, "size": s, "is_isolated": i} for d, s, i in items]}
        answer = await self._call("preupload", body)
        tickets = []
        for entry in answer.get("items", []):
            try:
                index = int(entry["index"])
                tickets.append(PushTicket(index, str(entry["upload_ticket"]), entry.get("gs_upload_url")))
            except (KeyError, TypeError, ValueError):
                raise IsolateServerError(f"preupload failed: a malformed item {entry!r} in the answer "
                                         f"({self.url})") from None
            if not 0 <= index < len(items):
                raise IsolateServerError(f"preupload failed: index {index} out of range ({self.url})")
        return tickets

    async def store_inline(self, ticket: str, stored: bytes) -> None:
        """Store ``stored`` (the item as the namespace stores it) through ``store_inline``."""
        await self._expect_ok("store_inline", {"upload_ticket": ticket,
                                               "content": base64.b64encode(stored).decode("ascii")})

    async def _expect_ok(self, name: str, body: dict) -> None:
        answer = await self._call(name, body)
        if answer.get("ok") is not True:
            raise IsolateServerError(f"{name} failed: the server did not answer ok ({answer!r})")

    async def upload(self, ticket: PushTicket, stored: bytes | str) -> None:
        """PUT ``stored`` (bytes, or the path of a file holding them) to the ticket's upload
        URL, check the ``x-goog-hash`` md5 it answers, then ``finalize_gs_upload``."""
        assert ticket.upload_url is not None
        if isinstance(stored, bytes):
            md5 = hashlib.md5(stored).digest()
            response, _ = await self._request("upload", "PUT", ticket.upload_url, data=stored,
                                              headers=_PUT_HEADERS)
        else:
            md5 = await threads.deferToThread(_md5_of_file, stored)
            response, _ = await self._request("upload", "PUT", ticket.upload_url,
                                              data=lambda: open(stored, "rb"),  # treq reads it in chunks
                                              headers=_PUT_HEADERS)
        want = "md5=" + base64.b64encode(md5).decode("ascii")
        got = ",".join(v.decode("latin-1") for v in response.headers.getRawHeaders(b"x-goog-hash", []))
        if want not in got.replace(" ", "").split(","):
            raise IsolateServerError(f"upload failed: the server's x-goog-hash {got!r} is not {want} "
                                     f"({ticket.upload_url})", url=ticket.upload_url)
        await self._expect_ok("finalize_gs_upload", {"upload_ticket": ticket.upload_ticket})

    async def push(self, ticket: PushTicket, stored: bytes | str) -> None:
        """Store one item the way its ticket says: inline, or PUT + finalize."""
        if ticket.upload_url:
            await self.upload(ticket, stored)
        else:
            if not isinstance(stored, bytes):
                stored = await threads.deferToThread(_read_file, stored)
            await self.store_inline(ticket.upload_ticket, stored)

    async def retrieve(self, digest: str, offset: int = 0, sink=None) -> bytes:
        """The stored bytes of ``digest`` from ``offset`` (inline, or from the URL the server
        answers, resumed with ``Range`` if the connection breaks).  With ``sink`` (an object
        with ``write(bytes)``, called on the reactor), the bytes go there and ``b""`` is
        returned."""
        answer = await self._call("retrieve", {"digest": digest, "namespace": self.namespace,
                                               "offset": offset})
        if "content" in answer:
            try:
                data = base64.b64decode(answer["content"], validate=True)
            except (ValueError, TypeError):
                raise IsolateServerError(f"retrieve failed: {digest}'s content is not base64 "
                                         f"({self.url})") from None
            if sink is None:
                return data
            sink.write(data)
            return b""
        url = answer.get("url")
        if not isinstance(url, str):
            raise IsolateServerError(f"retrieve failed: the answer for {digest} has neither content "
                                     f"nor url ({self.url})")
        collected: list[bytes] = []
        target = sink if sink is not None else _ListSink(collected)
        await self._fetch_url(url, offset, target)
        return b"".join(collected)

    async def _fetch_url(self, url: str, offset: int, sink) -> None:
        received = 0
        for attempt in range(RESUMES + 1):
            start = offset + received
            headers = {"Range": f"bytes={start}-"} if start else {}
            response, _ = await self._request("retrieve", "GET", url, headers=headers,
                                              ok=(200, 206), stream=True)
            if start:
                _check_content_range(response, start, url)

            def write(chunk: bytes) -> None:
                nonlocal received
                received += len(chunk)
                sink.write(chunk)
            try:
                await treq.collect(response, write)
                return
            except ResponseFailed as e:
                if attempt == RESUMES:
                    raise IsolateServerError(f"retrieve failed: the download broke {RESUMES + 1} times, "
                                             f"last: {e.reasons[0].value} ({url})", url=url) from None


_PUT_HEADERS = {"Content-Type": "application/octet-stream", "Cache-Control": "public, max-age=31536000"}


def _check_content_range(response, start: int, url: str) -> None:
    values = response.headers.getRawHeaders(b"content-range", [])
    match = re.fullmatch(r"bytes (\d+)-\d+/\d+", values[0].decode("latin-1").strip()) if values else None
    if response.code != 206 or match is None or int(match.group(1)) != start:
        raise IsolateServerError(f"retrieve failed: asked for bytes from {start}, got HTTP "
                                 f"{response.code} with Content-Range {values!r} ({url})", url=url)


class _ListSink:
    def __init__(self, chunks: list[bytes]):
        self.chunks = chunks

    def write(self, data: bytes) -> None:
        self.chunks.append(data)


def _read_file(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _md5_of_file(path: str) -> bytes:
    md5 = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            md5.update(chunk)
    return md5.digest()


def _in_thread(reactor, pool, fn, *args, **kwargs):
    pool = pool if pool is not None else reactor.getThreadPool()
    return threads.deferToThreadPool(reactor, pool, fn, *args, **kwargs)


# -- archive ---------------------------------------------------------------------------------


@dataclass
class _Item:
    """One item to archive: content in a local file (``source``) or in memory (``content``)."""

    digest: str
    size: int
    is_isolated: bool = False
    source: str | None = None
    content: bytes | None = None


@dataclass
class _Plan:
    """What the hashing found: the result hash of each path, the file items and the
    ``.isolated`` items (uploaded after the files)."""

    results: list[tuple[str, str]] = field(default_factory=list)
    loose: dict[str, _Item] = field(default_factory=dict)  # the files given as paths
    isolateds: dict[str, _Item] = field(default_factory=dict)
    trees: dict[str, BuiltTree] = field(default_factory=dict)  # .isolated digest -> its tree
    hashed: int = 0
    confirmed: dict[str, float] = field(default_factory=dict)  # see ConfirmedTrees


def _combined_blacklist(blacklist: Sequence[str] | str | None) -> str | None:
    if not blacklist:
        return None
    if isinstance(blacklist, str):
        blacklist = [blacklist]
    for regex in blacklist:
        try:
            re.compile(regex)
        except re.error as e:
            raise ValueError(f"blacklist {regex!r} is not a regular expression: {e}") from None
    return "|".join(f"(?:{regex})" for regex in blacklist)


def plan_archive(paths: Sequence[str], algo: str, blacklist: Sequence[str] | str | None = None,
                 digest_cache_path: str | None = None) -> _Plan:
    """Hash ``paths`` (blocking: run it in a thread): a file is one item; a directory is the
    ``.isolated`` of its tree plus its files."""
    pattern = _combined_blacklist(blacklist)
    cache = DigestCache.load(digest_cache_path, algo) if digest_cache_path else DigestCache(algo=algo)
    plan = _Plan()
    seen_keys: set[str] = set()
    for path in paths:
        try:
            st = os.stat(path)
        except OSError as e:
            raise ValueError(f"cannot archive {path}: {e.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            built = build_isolated(path, algo=algo, blacklist=pattern, cache=cache, version=VERSION_1,
                                   read_only=1)
            seen_keys |= built.seen_keys
            data = serialise(built.isolated)
            digest = digest_of(data, algo)
            plan.isolateds.setdefault(digest, _Item(digest, len(data), True, content=data))
            plan.trees[digest] = built
        elif stat.S_ISREG(st.st_mode):
            digest = cache.digest(path, st)
            seen_keys.add(DigestCache.key(st))
            plan.loose.setdefault(digest, _Item(digest, st.st_size, source=path))
        else:
            raise ValueError(f"cannot archive {path}: not a file or a directory")
        plan.results.append((digest, path))
    plan.hashed = cache.hashed
    if digest_cache_path:
        cache.save(digest_cache_path, keep=seen_keys)
        plan.confirmed = ConfirmedTrees.load(confirmed_path(digest_cache_path))
    return plan


def items_to_check(plan: _Plan, trusted: set[str]) -> tuple[list[_Item], int]:
    """The file items to ask the server about: the loose files and those of the trees not
    ``trusted``, biggest first (they are the likely misses and the longest uploads); and how
    many distinct files the trusted trees hold besides."""
    items: dict[str, _Item] = dict(plan.loose)
    for digest, built in plan.trees.items():
        if digest in trusted:
            continue
        for entry in built.isolated.files.values():
            if entry.digest is not None and entry.digest not in items:
                items[entry.digest] = _Item(entry.digest, entry.size or 0, source=built.sources[entry.digest])
    trusted_files: set[str] = set()
    for digest in trusted:
        trusted_files.update(plan.trees[digest].sources)
    return sorted(items.values(), key=lambda i: -i.size), len(trusted_files - items.keys())


def confirmed_path(digest_cache_path: str) -> str:
    """Where the trees confirmed on servers are recorded, next to the digest cache."""
    return digest_cache_path + ".confirmed"


class ConfirmedTrees:
    """``<server url> <namespace> <.isolated digest>`` -> when this client last found the
    ``.isolated`` *and every one of its files* on that server.  Within the server's trust
    window of that (``IsolateServer.trust_window_s``: ``CONFIRMED_FRESH_S``, less when the
    server keeps items for less than ten hours), an archive of the same tree asks the server
    about the ``.isolated`` alone (still there: its files are too, since they were found at
    most a tenth of their lifetime ago); past it, every file is checked again.  The record is
    only an optimisation: a missing or unreadable one means "nothing confirmed"."""

    VERSION = 1

    @staticmethod
    def key(server: IsolateServer, digest: str) -> str:
        return f"{server.url} {server.namespace} {digest}"

    @classmethod
    def load(cls, path: str) -> dict[str, float]:
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
            entries = doc["entries"] if doc.get("version") == cls.VERSION else {}
            return {k: float(v) for k, v in entries.items() if isinstance(k, str)}
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return {}

    @classmethod
    def save(cls, path: str, entries: dict[str, float], now: float) -> None:
        fresh = {k: v for k, v in entries.items() if now - v < CONFIRMED_FRESH_S}
        write_atomically(path, json.dumps({"version": cls.VERSION, "entries": fresh}).encode())


def _level_for(path: str | None) -> int:
    ext = os.path.splitext(path or "")[1].lstrip(".").lower()
    return 0 if ext in INCOMPRESSIBLE_EXTENSIONS else COMPRESSION_LEVEL


def prepare_upload(item: _Item, algo: str, compressed: bool) -> tuple[bytes | str, int]:
    """The bytes to send for ``item`` (or the path of a temporary file holding them, for a big
    one) and their length; the content is hashed on the way and must still match its digest
    (blocking: run it in a thread)."""
    if item.content is not None:
        data = zlib.compress(item.content, COMPRESSION_LEVEL) if compressed else item.content
        return data, len(data)
    assert item.source is not None
    hasher = new_hasher(algo)
    compressor = zlib.compressobj(_level_for(item.source)) if compressed else None
    spill = item.size > IN_MEMORY_ITEM_BYTES
    out_fd, out_path = tempfile.mkstemp(prefix="isolate-upload-") if spill else (None, None)
    parts: list[bytes] = []
    length = 0
    read = 0
    try:
        sink = os.fdopen(out_fd, "wb") if spill else contextlib.nullcontext()
        with open(item.source, "rb") as f, sink as out:
            def emit(data: bytes) -> None:
                nonlocal length
                if data:
                    length += len(data)
                    out.write(data) if spill else parts.append(data)
            while chunk := f.read(CHUNK_BYTES):
                read += len(chunk)
                hasher.update(chunk)
                emit(compressor.compress(chunk) if compressor else chunk)
            if compressor:
                emit(compressor.flush())
        actual = hasher.hexdigest()
        if actual != item.digest or read != item.size:
            raise IsolateServerError(f"{item.source} changed while archiving: it was {item.digest} "
                                     f"({item.size} bytes), it is now {actual} ({read} bytes)")
    except BaseException:
        if out_path:
            os.unlink(out_path)
        raise
    return (out_path if spill else b"".join(parts)), length


class _Archiver:
    """One archive run: preuploads in batches, pushes of the misses, the statistics."""

    def __init__(self, server: IsolateServer, reactor, pool):
        self.server = server
        self.reactor = reactor
        self.pool = pool
        self.stats = TransferStats()
        self.preuploads = defer.DeferredSemaphore(PREUPLOADS_IN_FLIGHT)
        self.uploads = defer.DeferredSemaphore(UPLOADS_IN_FLIGHT)

    async def upload_missing(self, items: Sequence[_Item]) -> None:
        """Check ``items`` with the server in batches, several in flight; push each miss."""
        if not items:
            return
        pushes: list[defer.Deferred] = []

        async def check(batch: Sequence[_Item]) -> None:
            tickets = await self.server.preupload([(i.digest, i.size, i.is_isolated) for i in batch])
            self.stats.checked += len(batch)
            self.stats.misses += len(tickets)
            self.stats.hits += len(batch) - len(tickets)
            for ticket in tickets:
                pushes.append(defer.ensureDeferred(self.push(batch[ticket.index], ticket)))

        checks = [self.preuploads.run(lambda b=b: defer.ensureDeferred(check(b))) for b in batches(items)]
        await _gather(checks)
        await _gather(pushes)

    async def still_there(self, isolateds: Sequence[_Item]) -> set[str]:
        """Which of ``isolateds`` the server still has (one preupload; nothing is pushed)."""
        if not isolateds:
            return set()
        tickets = await self.server.preupload([(i.digest, i.size, True) for i in isolateds])
        missing = {isolateds[t.index].digest for t in tickets}
        present = {i.digest for i in isolateds} - missing
        self.stats.checked += len(present)
        self.stats.hits += len(present)
        return present

    async def push(self, item: _Item, ticket: PushTicket) -> None:
        await self.uploads.acquire()
        stored: bytes | str | None = None
        try:
            stored, length = await _in_thread(self.reactor, self.pool, prepare_upload, item,
                                              self.server.algo, self.server.compressed)
            await self.server.push(ticket, stored)
            self.stats.uploaded += 1
            self.stats.uploaded_bytes += length
        finally:
            self.uploads.release()
            if isinstance(stored, str):
                with contextlib.suppress(OSError):
                    os.unlink(stored)


async def _gather(deferreds: list[defer.Deferred]) -> None:
    """Wait for all of ``deferreds``; the first failure is raised (after all have ended)."""
    results = await defer.DeferredList(deferreds, consumeErrors=True)
    for ok, value in results:
        if not ok:
            value.raiseException()


def archive(server: IsolateServer, paths: Sequence[str], *, blacklist: Sequence[str] | str | None = None,
            digest_cache_path: str | None = None, reactor, pool=None) -> defer.Deferred:
    """Archive ``paths`` (files and directories) to ``server``: ``Deferred[ArchiveResult]``.
    A directory becomes an ``.isolated`` of its tree, uploaded after its files."""
    return defer.ensureDeferred(_archive(server, paths, blacklist, digest_cache_path, reactor, pool))


async def _archive(server, paths, blacklist, digest_cache_path, reactor, pool) -> ArchiveResult:
    started = reactor.seconds()
    plan = await _in_thread(reactor, pool, plan_archive, list(paths), server.algo, blacklist,
                            digest_cache_path)
    archiver = _Archiver(server, reactor, pool)
    candidates = _recently_confirmed(server, plan, started, CONFIRMED_FRESH_S)
    if candidates:  # one call more, and only for an archive that may skip its checks
        candidates = _recently_confirmed(server, plan, started, await server.trust_window_s())
    trusted = await archiver.still_there(candidates)
    files, trusted_files = await _in_thread(reactor, pool, items_to_check, plan, trusted)
    await archiver.upload_missing(files)
    await archiver.upload_missing([i for d, i in plan.isolateds.items() if d not in trusted])
    archiver.stats.checked += trusted_files
    archiver.stats.hits += trusted_files
    archiver.stats.trusted = trusted_files
    archiver.stats.hashed = plan.hashed
    if digest_cache_path:
        now = reactor.seconds()
        confirmed = dict(plan.confirmed)
        confirmed.update({ConfirmedTrees.key(server, d): now for d in plan.isolateds if d not in trusted})
        await _in_thread(reactor, pool, ConfirmedTrees.save, confirmed_path(digest_cache_path),
                         confirmed, now)
    archiver.stats.seconds = reactor.seconds() - started
    return ArchiveResult(items=plan.results, stats=archiver.stats)


def _recently_confirmed(server: IsolateServer, plan: _Plan, now: float, window_s: float) -> list[_Item]:
    """The ``.isolated`` items of ``plan`` confirmed whole on ``server`` less than ``window_s``
    ago."""
    return [item for digest, item in plan.isolateds.items()
            if (when := plan.confirmed.get(ConfirmedTrees.key(server, digest))) is not None
            and now - when < window_s]


# -- download --------------------------------------------------------------------------------


class _Spool:
    """Collects a download's stored bytes: in memory, spilled to a temporary file past
    ``SPILL_BYTES`` (the file writes run on a thread, one at a time)."""

    def __init__(self, reactor, pool):
        self.reactor = reactor
        self.pool = pool
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.total = 0
        self.path: str | None = None
        self.writing: defer.Deferred | None = None

    def write(self, data: bytes) -> None:
        self.pending.append(data)
        self.pending_bytes += len(data)
        self.total += len(data)
        if self.pending_bytes >= SPILL_BYTES and self.writing is None:
            self._spill()

    def _spill(self) -> None:
        chunks, self.pending, self.pending_bytes = self.pending, [], 0
        self.writing = _in_thread(self.reactor, self.pool, self._append, chunks)

        def done(result):
            self.writing = None
            if self.pending_bytes >= SPILL_BYTES:
                self._spill()
            return result
        self.writing.addBoth(done)

    def _append(self, chunks: list[bytes]) -> None:
        if self.path is None:
            fd, self.path = tempfile.mkstemp(prefix="isolate-download-")
            os.close(fd)
        with open(self.path, "ab") as f:
            f.writelines(chunks)

    async def finish(self) -> None:
        while self.writing is not None:
            await self.writing
        if self.path is not None and self.pending:
            chunks, self.pending = self.pending, []
            await _in_thread(self.reactor, self.pool, self._append, chunks)

    def chunks(self) -> Iterator[bytes]:
        """The stored bytes, in chunks (blocking when spilled)."""
        if self.path is not None:
            with open(self.path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
        else:
            yield from self.pending

    def discard(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _decompressed(chunks: Iterable[bytes], compressed: bool, size: int | None) -> Iterator[bytes]:
    """The content of stored ``chunks``; a zlib stream is inflated at most a chunk at a time
    and never past ``size`` (plus one byte, so that a longer stream is seen)."""
    if not compressed:
        yield from chunks
        return
    inflater = zlib.decompressobj()
    limit = None if size is None else size + 1
    produced = 0
    try:
        for chunk in chunks:
            data = chunk
            while data:
                room = CHUNK_BYTES if limit is None else max(1, min(CHUNK_BYTES, limit - produced))
                out = inflater.decompress(data, room)
                produced += len(out)
                yield out
                if limit is not None and produced >= limit:
                    return
                data = inflater.unconsumed_tail
        yield inflater.flush()
    except zlib.error as e:
        raise cascache.ContentMismatch(f"the stored bytes are not a zlib stream: {e}") from None


class _Fetcher:
    """Fetches items into a ``DiskCache``, several in flight, each checked on the way in."""

    def __init__(self, server: IsolateServer, cache: cascache.DiskCache, reactor, pool,
                 stats: TransferStats):
        self.server = server
        self.cache = cache
        self.reactor = reactor
        self.pool = pool
        self.stats = stats
        self.slots = defer.DeferredSemaphore(DOWNLOADS_IN_FLIGHT)

    async def fetch(self, digest: str, size: int | None) -> None:
        """Download ``digest`` into the cache (checked for hash and ``size``)."""
        await self.slots.acquire()
        spool = _Spool(self.reactor, self.pool)
        try:
            try:
                await self.server.retrieve(digest, sink=spool)
            except IsolateServerError as e:
                if e.status == 404:
                    raise IsolateServerError(f"{digest} is not on {self.server.url} in namespace "
                                             f"{self.server.namespace!r}", status=404, url=e.url) from None
                raise
            await spool.finish()
            try:
                await _in_thread(self.reactor, self.pool, self.cache.write, digest,
                                 _decompressed(spool.chunks(), self.server.compressed, size), size)
            except cascache.ContentMismatch as e:
                raise IsolateServerError(f"retrieve failed: the server sent bad content for {digest}: {e} "
                                         f"({self.server.url})") from None
            self.stats.downloaded += 1
            self.stats.downloaded_bytes += spool.total
        finally:
            spool.discard()
            self.slots.release()

    async def fetch_missing(self, wanted: dict[str, int | None]) -> None:
        """Check ``wanted`` (digest -> size) against the cache; fetch the misses in parallel."""
        missing = await _in_thread(self.reactor, self.pool, _missing_from, self.cache, list(wanted))
        self.stats.checked += len(wanted)
        self.stats.misses += len(missing)
        self.stats.hits += len(wanted) - len(missing)
        await _gather([defer.ensureDeferred(self.fetch(d, wanted[d])) for d in missing])

    async def read_isolated(self, digest: str) -> bytes:
        """An ``.isolated``'s bytes, from the cache or fetched into it."""
        self.stats.checked += 1
        try:
            data = await _in_thread(self.reactor, self.pool, _read_cached, self.cache, digest)
            self.stats.hits += 1
            return data
        except cascache.CacheMiss:
            self.stats.misses += 1
        await self.fetch(digest, None)
        return await _in_thread(self.reactor, self.pool, _read_cached, self.cache, digest)


def _missing_from(cache: cascache.DiskCache, digests: list[str]) -> list[str]:
    return [d for d in digests if not cache.has(d)]


def _read_cached(cache: cascache.DiskCache, digest: str) -> bytes:
    return _read_file(cache.touch(digest))


def download_tree(server: IsolateServer, digest: str, target: str, cache: cascache.DiskCache, *,
                  reactor, pool=None, read_only: int | None = None) -> defer.Deferred:
    """Fetch the ``.isolated`` ``digest`` (and its includes) and the files ``cache`` lacks,
    then map the tree into ``target``: ``Deferred[DownloadResult]``.  ``read_only`` overrides
    the tree's own setting."""
    return defer.ensureDeferred(_download_tree(server, digest, target, cache, reactor, pool, read_only))


async def _download_tree(server, digest, target, cache, reactor, pool, read_only) -> DownloadResult:
    started = reactor.seconds()
    stats = TransferStats()
    fetcher = _Fetcher(server, cache, reactor, pool, stats)
    try:
        tree = await resolve(digest, fetcher.read_isolated, server.algo, verify=False)
    except IsolatedFormatError as e:
        raise IsolateServerError(f"{digest} is not a usable .isolated: {e}") from None
    mode = effective_read_only(tree.root) if read_only is None else read_only
    wanted = {e.digest: e.size for e in tree.files.values() if e.digest is not None}
    with cache.protecting([*wanted, *tree.isolated_digests]):
        await fetcher.fetch_missing(wanted)
        await _in_thread(reactor, pool, _map_and_save, cache, tree.files, target, mode)
    stats.seconds = reactor.seconds() - started
    mapped = MappedTree(command=tree.root.command, relative_cwd=tree.root.relative_cwd, read_only=mode,
                        files=tree.files, isolated_digests=tree.isolated_digests, root=tree.root)
    return DownloadResult(isolated=mapped, stats=stats)


def _map_and_save(cache: cascache.DiskCache, files, target: str, read_only: int) -> None:
    os.makedirs(target, exist_ok=True)
    try:
        cache.map_tree(files, target, read_only)
    finally:
        cache.save()


def download_files(server: IsolateServer, files: Sequence[tuple[str, str]], cache: cascache.DiskCache, *,
                   reactor, pool=None) -> defer.Deferred:
    """Fetch each ``(digest, dest)`` the cache lacks and copy it to ``dest`` (a writable file):
    ``Deferred[TransferStats]``."""
    return defer.ensureDeferred(_download_files(server, list(files), cache, reactor, pool))


async def _download_files(server, files, cache, reactor, pool) -> TransferStats:
    started = reactor.seconds()
    stats = TransferStats()
    fetcher = _Fetcher(server, cache, reactor, pool, stats)
    digests = {d: None for d, _ in files}
    with cache.protecting(digests):
        await fetcher.fetch_missing(digests)
        await _in_thread(reactor, pool, _copy_out, cache, files)
    stats.seconds = reactor.seconds() - started
    return stats


def _copy_out(cache: cascache.DiskCache, files: Sequence[tuple[str, str]]) -> None:
    try:
        for digest, dest in files:
            parent = os.path.dirname(os.path.abspath(dest))
            os.makedirs(parent, exist_ok=True)
            shutil.copyfile(cache.touch(digest), dest)
            os.chmod(dest, 0o644)
    finally:
        cache.save()


__all__ = ["ArchiveResult", "DownloadResult", "FileEntry", "IsolateServer", "IsolateServerError",
           "Isolated", "MappedTree", "PushTicket", "TransferStats", "archive", "batch_sizes", "batches",
           "download_files", "download_tree"]
