"""``/browse``: the content-addressed store's items as HTML pages (docs/cas.md, "Browsing a tree")::

    GET /browse                                              a form: namespace and digest
    GET /browse?namespace=NS&digest=D                        an .isolated tree, or a file's page
    GET /browse/content?namespace=NS&digest=D&as=NAME        the content, as an attachment NAME
    GET /browse/content?namespace=NS&digest=D&view=text      the content as text/plain (capped)

An ``.isolated`` tree is shown merged with its ``includes`` as clients resolve them
(common/isolated.py's ``resolve``: the root wins over its includes, earlier includes over later
ones), each file with its size, mode, digest, the ``.isolated`` it came from and links to its
download and text view; symlinks with their target.  An item that is no ``.isolated`` gets a
file page.  Content is inflated for compressed namespaces in pieces (``STORED_PIECE_BYTES`` read,
at most ``INFLATED_PIECE_BYTES`` inflated at a time, on the thread pool) and written with flow
control, so a large item never sits whole in the master's memory.

Every route needs ``cas:read:<namespace>`` (the query's ``namespace``, ``default-gzip`` when
absent), like the Isolate API's ``retrieve``.  The pages are rendered by the web UI's ``render``
(handed in by www/site.py: this package does not import www), errors as HTML pages with their
status.  ``browse_url(namespace, digest)`` is the link other pages (a task's inputs) give.
"""

from __future__ import annotations

import json
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from twisted.internet import threads
from twisted.logger import Logger
from werkzeug.exceptions import MethodNotAllowed, NotFound

from buildfarm.common.isolated import (
    KNOWN_KEYS,
    FileEntry,
    Isolated,
    IsolatedFormatError,
    algo_for_namespace,
    effective_read_only,
    from_json,
    parse,
    resolve,
)
from buildfarm.master.auth.identity import AuthError
from buildfarm.master.cas.interfaces import NotStored, StoreUnavailable
from buildfarm.master.cas.namespaces import BadNamespace, Namespace, parse_namespace
from buildfarm.master.http.flow import safe_filename, write_pieces
from buildfarm.master.http.routes import RouteTable
from buildfarm.master.http.routing import bounded_klein

log = Logger()

DEFAULT_NAMESPACE = "default-gzip"  # the Isolate clients' default, as in the API
STORED_PIECE_BYTES = 1024 * 1024  # read from the store at a time
INFLATED_PIECE_BYTES = 1024 * 1024  # inflated (and written to the client) at a time
MAX_ISOLATED_BYTES = 32 * 1024 * 1024  # a larger item is shown as a file, never parsed
MAX_ISOLATED_DOCUMENTS = 1000  # the root and its includes, transitively
TEXT_VIEW_MAX_BYTES = 1024 * 1024  # the text view shows at most this much
BINARY_SNIFF_BYTES = 8000  # a NUL byte in these makes a file binary (as git decides)
INDENT = "\u00a0" * 4  # one directory level in the listing (the pages' CSP allows no inline style)
ISOLATED_MARKS = frozenset({"files", "includes", "algo"})
READ_ONLY_MEANINGS = {0: "0: writable copies", 1: "1: files read-only", 2: "2: the whole tree read-only"}
TEXT_HEADERS = {
    b"content-type": b"text/plain; charset=utf-8",
    b"x-content-type-options": b"nosniff",
    b"content-security-policy": b"default-src 'none'; sandbox",
    b"cache-control": b"no-store",
}


class BrowseError(Exception):
    """An error page: ``status``, a title and a message saying what is wrong."""

    def __init__(self, status: int, message: str, title: str = "Error"):
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title


def browse_url(namespace: str, digest: str) -> str:
    """The page of item ``digest`` of ``namespace`` (its tree for an ``.isolated``)."""
    return "/browse?" + urlencode({"namespace": namespace, "digest": digest})


def content_url(namespace: str, digest: str, name: str | None = None, view: bool = False) -> str:
    """The download of an item as a file called ``name``, or (``view``) its text view."""
    query = {"namespace": namespace, "digest": digest}
    if name:
        query["as"] = name
    if view:
        query["view"] = "text"
    return "/browse/content?" + urlencode(query)


def mode_text(mode: int | None, link: bool = False) -> str:
    """``-rwxr-xr-x`` of a file's mode (``lrwxrwxrwx`` for a symlink; empty: no mode given)."""
    if link:
        return "lrwxrwxrwx"
    return "" if mode is None else stat.filemode(stat.S_IFREG | mode)


def size_text(size: int) -> str:
    """``512 B``, ``1.5 KiB``, ``3.2 MiB``..."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


# -- the tree ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    """One line of a tree's listing: a directory or an entry of ``files``."""

    kind: str  # "dir", "file" or "link"
    path: str
    name: str
    depth: int
    anchor: str
    entry: FileEntry | None = None
    source: str | None = None  # the .isolated it came from
    files: int = 0  # a directory's files, counted down the tree
    size: int = 0  # a directory's bytes, or a file's
    target_anchor: str | None = None  # a symlink whose target is in the tree

    @property
    def indent(self) -> str:
        return INDENT * self.depth

    @property
    def mode(self) -> str:
        return "" if self.entry is None else mode_text(self.entry.mode, self.entry.is_link)


@dataclass(frozen=True)
class Tree:
    """An ``.isolated`` merged with its includes, as the tree page shows it."""

    root: Isolated
    rows: list[Row]
    isolated: list[tuple[str, int]]  # each .isolated (merge order) and how many files it gave
    files: int
    size: int


def looks_like_isolated(doc) -> bool:
    """Whether a JSON document is meant as an ``.isolated`` (only its keys, and at least one
    of files/includes/algo): another JSON file, such as a package.json, gets a file page."""
    return isinstance(doc, dict) and bool(doc) and set(doc) <= KNOWN_KEYS and bool(ISOLATED_MARKS & set(doc))


def classify(content: bytes, algo: str) -> Isolated | None:
    """The ``.isolated`` that ``content`` is, None if it is another file;
    ``IsolatedFormatError`` if it is meant as one but is not a valid one (blocking: a thread)."""
    try:
        doc = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not looks_like_isolated(doc):
        return None
    return from_json(doc, algo)  # the document decoded once


def merge(root: str, documents: dict[str, bytes], parsed: dict[str, Isolated], algo: str) -> Tree:
    """The tree of ``root`` from its fetched ``documents``, merged by common/isolated.py's
    ``resolve`` (so exactly as clients map it), with the ``.isolated`` each file came from
    (blocking: a thread)."""

    async def fetch(digest: str) -> bytes:
        return documents[digest]

    # Every fetch answers at once, so resolve never suspends: one send runs it to the end.
    running = resolve(root, fetch, algo, verify=False)
    try:
        running.send(None)
    except StopIteration as done:
        resolved = done.value
    else:  # pragma: no cover - resolve awaited something that was not a fetch
        running.close()
        raise RuntimeError("resolve suspended on a fetch that answers at once")
    sources: dict[str, str] = {}
    for digest in resolved.isolated_digests:
        for path in parsed[digest].files:
            sources.setdefault(path, digest)
    contributed = {digest: 0 for digest in resolved.isolated_digests}
    for digest in sources.values():
        contributed[digest] += 1
    rows = listing(resolved.files, sources)
    sizes = [entry.size or 0 for entry in resolved.files.values()]
    return Tree(resolved.root, rows, list(contributed.items()), len(sizes), sum(sizes))


def listing(files, sources: dict[str, str]) -> list[Row]:
    """The rows of a tree: entries sorted by path, each directory once before its contents
    with its files and bytes counted down the tree."""
    paths = sorted(files, key=lambda p: p.split("/"))
    totals: dict[tuple[str, ...], list[int]] = {}
    for path in paths:
        parts = tuple(path.split("/"))[:-1]
        for depth in range(1, len(parts) + 1):
            counted = totals.setdefault(parts[:depth], [0, 0])
            counted[0] += 1
            counted[1] += files[path].size or 0
    anchors = {"/".join(d): f"d{i}" for i, d in enumerate(totals)}
    anchors.update({path: f"f{i}" for i, path in enumerate(paths)})
    rows: list[Row] = []
    shown: tuple[str, ...] = ()
    for path in paths:
        parts = tuple(path.split("/"))
        for depth in range(len(parts) - 1):
            if shown[:depth + 1] != parts[:depth + 1]:
                directory = "/".join(parts[:depth + 1])
                count, size = totals[parts[:depth + 1]]
                rows.append(Row("dir", directory, parts[depth] + "/", depth, anchors[directory],
                                files=count, size=size))
        shown = parts[:-1]
        entry = files[path]
        target = None
        if entry.is_link:
            pointed = posixpath.normpath(posixpath.join(posixpath.dirname(path), entry.link))
            target = anchors.get(pointed)
        rows.append(Row("link" if entry.is_link else "file", path, parts[-1], len(parts) - 1, anchors[path],
                        entry=entry, source=sources[path], size=entry.size or 0, target_anchor=target))
    return rows


# -- reading content -----------------------------------------------------------------------

def _read_piece(reader, digest: str) -> bytes:
    """At most ``STORED_PIECE_BYTES`` of an open item (b"" at its end); a failing read (a disk
    error, an S3 stream cut) is ``StoreUnavailable``."""
    try:
        return reader.read(STORED_PIECE_BYTES)
    except Exception as e:  # the back-ends' own errors (OSError, botocore's): one answer, 503
        raise StoreUnavailable(f"reading {digest} failed: {e}") from e


def _inflate_piece(inflater, stored: bytes) -> tuple[bytes, bytes]:
    """At most ``INFLATED_PIECE_BYTES`` of content from ``stored``, and what is left of it."""
    piece = inflater.decompress(stored, INFLATED_PIECE_BYTES)
    return piece, inflater.unconsumed_tail


async def read_prefix(pieces: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """The first ``limit`` bytes of ``pieces`` and whether that is all of them (at most one
    piece more is read to know)."""
    taken: list[bytes] = []
    count = 0
    async for piece in pieces:
        taken.append(piece)
        count += len(piece)
        if count > limit:
            return b"".join(taken)[:limit], False
    return b"".join(taken), True


class CASBrowser:
    """The ``/browse`` pages of the store ``store_of()`` answers (an ``IContentStore``: the one in
    use, which a reconfig may change).  ``master`` gives ``auth`` (an
    ``IHTTPMaster``); ``render(request, template, code, **context)`` is the web UI's page
    renderer and ``stream_off_thread(request, template, in_thread, code, **context)`` the
    same with the template rendered by ``in_thread`` and written in pieces as the client takes
    them (the tree page, whose Jinja work and size grow with the tree, is rendered on
    ``pool``); ``pool`` runs reading, parsing, inflating and that rendering (None: the
    reactor's pool)."""

    app = bounded_klein()
    routes = RouteTable(app, "browse")

    def __init__(self, master, store_of: Callable[[], Any], render: Callable[..., bytes],
                 stream_off_thread: Callable[..., Awaitable[bytes]], reactor, pool=None):
        self.master = master
        self.store_of = store_of  # the store in use now: a reconfig may change the back-end
        self.render = render
        self.stream_off_thread = stream_off_thread
        self.reactor = reactor
        self.pool = pool

    def resource(self):
        """The twisted.web resource serving these pages."""
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------

    def _error_page(self, request, status: int, title: str, message: str) -> bytes:
        return self.render(request, "error.html", status, title=title, status=status, message=message)

    @app.handle_errors(BrowseError)
    def _browse_error(self, request, failure):
        error = failure.value
        return self._error_page(request, error.status, error.title, error.message)

    @app.handle_errors(AuthError)
    def _auth_error(self, request, failure):
        error = failure.value
        if error.retry_after_header() is not None:
            request.setHeader(b"retry-after", error.retry_after_header())
        if error.status == 401:
            return self._error_page(request, 401, "Login required", "Log in to see this page.")
        title = "Too many attempts" if error.status == 429 else "Forbidden"
        return self._error_page(request, error.status, title, error.message)

    @app.handle_errors(NotFound)
    def _not_found(self, request, failure):
        return self._error_page(request, 404, "Not found",
                                f"There is no page at {request.path.decode('utf-8', 'replace')}.")

    @app.handle_errors(MethodNotAllowed)
    def _bad_method(self, request, failure):
        return self._error_page(request, 405, "Method not allowed",
                                f"{request.method.decode('ascii', 'replace')} is not allowed here.")

    @app.handle_errors(StoreUnavailable)
    def _unavailable(self, request, failure):
        log.warn("browse page {path}: {error}", path=request.path, error=str(failure.value))
        return self._error_page(request, 503, "Store unavailable",
                                f"The store cannot be read now: {failure.value}")

    @app.handle_errors(Exception)
    def _internal_error(self, request, failure):
        log.failure("browse page {path} failed", failure, path=request.path)
        return self._error_page(request, 500, "Internal error",
                                "Something went wrong; the master's twistd.log says what.")

    def _in_thread(self, fn, *args):
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        return threads.deferToThreadPool(self.reactor, pool, fn, *args)

    async def _query_namespace(self, request) -> dict:
        return {"namespace": self._namespace(request).name}

    def _namespace(self, request) -> Namespace:
        try:
            return parse_namespace(_query(request, "namespace") or DEFAULT_NAMESPACE)
        except BadNamespace as e:
            raise BrowseError(400, str(e), "Bad namespace") from None

    def _digest(self, request, namespace: Namespace) -> str:
        try:
            return namespace.check_digest(_query(request, "digest"))
        except BadNamespace as e:
            raise BrowseError(400, str(e), "Bad digest") from None

    async def pieces(self, namespace: Namespace, digest: str) -> AsyncIterator[bytes]:
        """The content of an item in pieces of at most ``INFLATED_PIECE_BYTES`` (the first one
        may be empty); ``BrowseError`` 404 when it is not stored, ``StoreUnavailable`` when
        the back-end fails.  The item is opened once and read from that reader, so it reads
        whole even if the janitor deletes it meanwhile (as the API's downloads do)."""
        try:
            reader, _ = await self.store_of().open(namespace, digest, 0)
        except NotStored:
            raise BrowseError(404, f"{digest} is not stored in namespace {namespace.name!r}.",
                              "Not found") from None
        try:
            inflater = namespace.decompressor()
            while stored := await self._in_thread(_read_piece, reader, digest):
                if not namespace.compressed:
                    yield stored
                    continue
                while stored:
                    piece, stored = await self._in_thread(_inflate_piece, inflater, stored)
                    yield piece
        finally:
            await self._in_thread(reader.close)

    async def _content_prefix(self, namespace: Namespace, digest: str, limit: int) -> tuple[bytes, bool]:
        pieces = self.pieces(namespace, digest)
        try:
            return await read_prefix(pieces, limit)
        finally:
            await pieces.aclose()

    # -- the pages -------------------------------------------------------------------------

    @routes.route("/browse", "GET", scope="cas:read:{namespace}", resolve=_query_namespace)
    async def browse(self, request):
        """The form (no ``digest``), an ``.isolated``'s tree, or a file's page."""
        namespace = self._namespace(request)
        if not _query(request, "digest"):
            return self.render(request, "cas_browse_form.html", title="Browse the store",
                               namespace=namespace.name)
        digest = self._digest(request, namespace)
        pieces = self.pieces(namespace, digest)
        try:
            first = await _first(pieces)
            head = first
            complete = True
            if first.lstrip().startswith(b"{"):  # perhaps an .isolated: read it whole (capped)
                rest, complete = await read_prefix(pieces, MAX_ISOLATED_BYTES - len(first))
                head = first + rest
            isolated = None
            if complete:
                isolated = await self._parse(namespace, digest, head, classify)
            if isolated is None:
                size = len(head)
                async for piece in pieces:
                    size += len(piece)
                return self.file_page(request, namespace, digest, size)
        finally:
            await pieces.aclose()
        tree = await self.tree(namespace, digest, head, isolated)
        # 10,000 files: ~0.4 s of Jinja and 7 MB of HTML, on the pool and streamed, so the
        # reactor serves PB and builds meanwhile and the page never sits whole in memory
        return await self.stream_off_thread(
            request, "cas_browse.html", self._in_thread, title=f"Tree {digest[:12]}",
            namespace=namespace.name, digest=digest, tree=tree,
            read_only_meaning=READ_ONLY_MEANINGS.get(effective_read_only(tree.root)),
            browse_url=browse_url, content_url=content_url, size_text=size_text)

    def file_page(self, request, namespace: Namespace, digest: str, size: int) -> bytes:
        return self.render(request, "cas_browse_file.html", title=f"File {digest[:12]}",
                           namespace=namespace.name, digest=digest, size=size, size_text=size_text,
                           download=content_url(namespace.name, digest, digest),
                           view=content_url(namespace.name, digest, view=True))

    async def _parse(self, namespace: Namespace, digest: str, content: bytes, how) -> Isolated | None:
        try:
            return await self._in_thread(how, content, algo_for_namespace(namespace.name))
        except IsolatedFormatError as e:
            raise BrowseError(422, f"{digest} is a corrupt .isolated: {e}", "Corrupt .isolated") from None

    async def tree(self, namespace: Namespace, root: str, content: bytes, isolated: Isolated) -> Tree:
        """``root``'s tree: its includes fetched (each once, at most ``MAX_ISOLATED_DOCUMENTS``
        in all), then merged on the thread pool."""
        documents, parsed = {root: content}, {root: isolated}
        wanted = list(isolated.includes)
        while wanted:
            digest = wanted.pop(0)
            if digest in documents:
                continue
            if len(documents) >= MAX_ISOLATED_DOCUMENTS:
                raise BrowseError(422, f"{root} includes more than {MAX_ISOLATED_DOCUMENTS} .isolated files.",
                                  "Corrupt .isolated")
            try:
                data, complete = await self._content_prefix(namespace, digest, MAX_ISOLATED_BYTES)
            except BrowseError:
                raise BrowseError(404, f"{digest}, included by the tree {root}, is not stored in namespace "
                                       f"{namespace.name!r}.", "Include not found") from None
            if not complete:
                raise BrowseError(422, f"{digest}, included by the tree {root}, is over "
                                       f"{MAX_ISOLATED_BYTES} bytes: no .isolated here.", "Corrupt .isolated")
            documents[digest] = data
            parsed[digest] = await self._parse(namespace, digest, data, parse)
            wanted.extend(parsed[digest].includes)
        try:
            return await self._in_thread(merge, root, documents, parsed, algo_for_namespace(namespace.name))
        except IsolatedFormatError as e:
            raise BrowseError(422, f"The tree {root} cannot be resolved: {e}", "Corrupt .isolated") from None

    @routes.route("/browse/content", "GET", scope="cas:read:{namespace}", resolve=_query_namespace)
    async def content(self, request):
        """The content as an attachment named ``as`` (the digest by default), or with
        ``view=text`` as text/plain: at most ``TEXT_VIEW_MAX_BYTES``, with a note when it is
        cut or binary."""
        namespace = self._namespace(request)
        digest = self._digest(request, namespace)
        view = _query(request, "view")
        if view not in (None, "", "text"):
            raise BrowseError(400, f"view must be 'text', not {view[:40]!r}.", "Bad request")
        if view == "text":
            return await self.text_view(request, namespace, digest)
        name = posixpath.basename((_query(request, "as") or digest).replace("\\", "/")) or digest
        pieces = self.pieces(namespace, digest)
        try:
            first = await _first(pieces)  # a 404 before any header is sent
            request.setHeader(b"content-type", b"application/octet-stream")
            request.setHeader(b"x-content-type-options", b"nosniff")
            request.setHeader(b"content-disposition", (
                f"attachment; filename=\"{safe_filename(name)}\"; filename*=UTF-8''{quote(name, safe='')}"
            ).encode("ascii"))
            try:
                await write_pieces(request, _chain(first, pieces))
            except StoreUnavailable as e:
                # Part of the body is sent: no error page can follow it.  Cutting the connection
                # (no last chunk) tells the client the download is incomplete.
                log.warn("browse download of {digest} cut: {error}", digest=digest, error=str(e))
                request.loseConnection()
        finally:
            await pieces.aclose()
        return b""

    async def text_view(self, request, namespace: Namespace, digest: str) -> bytes:
        shown, complete = await self._content_prefix(namespace, digest, TEXT_VIEW_MAX_BYTES)
        for name, value in TEXT_HEADERS.items():
            request.setHeader(name, value)
        download = content_url(namespace.name, digest)
        if b"\0" in shown[:BINARY_SNIFF_BYTES]:
            request.setHeader(b"x-buildfarm-view", b"binary")
            size = f"{len(shown)} bytes" if complete else f"over {TEXT_VIEW_MAX_BYTES} bytes"
            return (f"[binary file ({size}): not shown as text; download it: {download}]\n").encode()
        text = shown.decode("utf-8", "replace")
        if complete:
            return text.encode("utf-8")
        request.setHeader(b"x-buildfarm-view", b"truncated")
        note = (f"\n\n[truncated: the first {TEXT_VIEW_MAX_BYTES} bytes are shown; the file is longer; "
                f"download it whole: {download}]\n")
        return (text + note).encode("utf-8")


async def _first(pieces: AsyncIterator[bytes]) -> bytes:
    """The first piece (``anext(pieces, default)`` of Python 3.11 leaves the generator marked
    running when driven by Twisted's coroutine runner)."""
    try:
        return await pieces.__anext__()
    except StopAsyncIteration:
        return b""


async def _chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for piece in rest:
        yield piece


def _query(request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None
