"""The Isolate v1 API under ``/_ah/api/isolateservice/v1/`` (shared/SWARMING-ISOLATE-API.md,
docs/cas.md), so that Isolate's own clients archive to and download from the master.

- ``preupload {items:[{digest,size,is_isolated}], namespace}`` answers only the missing items,
  each with a signed ``upload_ticket`` (cas/tickets.py) and, for items over
  ``inline_max_bytes`` that are not ``.isolated`` files, a ``gs_upload_url`` on this server;
- ``store_inline {upload_ticket, content}`` takes base64 of the item as stored;
- ``PUT <gs_upload_url>`` takes the raw stored bytes and answers ``x-goog-hash: md5=...``;
  ``finalize_gs_upload {upload_ticket}`` then confirms the item is stored;
- ``retrieve {digest, namespace, offset}`` answers ``{content}`` or ``{url}`` (a GET of it
  honours ``offset``/``Range`` with ``Content-Range``);
- ``server_details`` answers the version and the store's expiry;
- ``GET /auth/api/v1/server/oauth_config`` and ``.../accounts/self``, where Isolate's client
  signs in with Google OAuth, answer a JSON 404 (only ``--auth-disabled`` is supported;
  master/http/endpoints.py, shared with the Swarming API).

Every item is verified (hash and size of its uncompressed content) before it is stored; one
that does not match is refused with 400 and never stored.  Scopes: ``cas:read:<namespace>``
and ``cas:write:<namespace>`` through the master's auth service.  Errors are JSON, in the
shape of Cloud Endpoints: ``{"error": {"code", "message", "errors": [{"message", "reason"}]}}``.
"""

import base64
import binascii
import json
import re

from twisted.internet import threads
from twisted.logger import Logger

from buildfarm.common.version import VERSION
from buildfarm.master.cas import apireference as ref
from buildfarm.master.cas.download import stream_to
from buildfarm.master.cas.grants import GrantingView
from buildfarm.master.cas.interfaces import ContentMismatch, NotStored, Stored, StoreUnavailable
from buildfarm.master.cas.isolated import BadIsolated, check_isolated
from buildfarm.master.cas.namespaces import BadNamespace, Namespace, parse_namespace
from buildfarm.master.cas.settings import CASSettings
from buildfarm.master.cas.tickets import BadTicket, Ticket, TicketSigner
from buildfarm.master.http.body import BadBody, json_object, read_body
from buildfarm.master.http.endpoints import (
    NO_OAUTH,
    SIGN_IN_PREFIX,
    EndpointsError,
    add_endpoints_error_handlers,
    endpoints_error,
    error_body,
)
from buildfarm.master.http.routes import (
    AUDIT_BATCHED,
    AUDIT_REFUSED,
    PUBLIC,
    APIEntry,
    AuditBatch,
    RouteTable,
)
from buildfarm.master.http.routing import bounded_klein

log = Logger()

PREFIX = "/_ah/api/isolateservice/v1"
DEFAULT_NAMESPACE = "default-gzip"  # the clients' default, and a namespace object's
UPLOAD_PREFIX = f"{PREFIX}/upload/"  # the upload URLs: their bodies stream to a spool file
MAX_PREUPLOAD_ITEMS = 1000  # the client sends at most 100 a batch
MAX_JSON_BODY_BYTES = 16 * 1024 * 1024
HOST_RE = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")
UNSATISFIABLE = "requestedRangeNotSatisfiable"
RANGE_RE = re.compile(r"bytes=([0-9]{1,20})-([0-9]{0,20})")


class CASError(EndpointsError):
    """An error answered in the Endpoints shape with ``status``."""


def cas_error_body(status: int, message: str) -> tuple[bytes, bytes]:
    """The refusals made before any handler ran (the site's body caps), in the same shape."""
    return b"application/json", error_body(status, message)


def _api(name: str, title: str, description: str, category: str, *, query: tuple[str, ...] = (),
         input: str | None = None, output: str | None = None) -> APIEntry:
    """An entry of the ``cas`` service's reference (cas/apireference.py)."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, query=query, input=input,
                    output=output)


class IsolateAPI:
    """The Isolate v1 API over ``store`` (an ``IContentStore``); ``master`` gives ``auth``."""

    app = bounded_klein()
    routes = RouteTable(app, "cas", api_base=PREFIX)  # also served at /api/cas/v1 (www/site.py)

    def __init__(self, master, store, settings: CASSettings, reactor, pool=None, metrics=None):
        # The route table checks every caller's scope through this view: a build grant
        # (master/cas/grants.py) gives its scopes only; any other caller is the master's auth's.
        self.master = GrantingView(master, lambda: self.settings.upload_secret, reactor)
        self.store = store
        self.settings = settings
        self.reactor = reactor
        self.pool = pool  # for parsing .isolated files; None: the reactor's pool
        self.metrics = metrics  # a CASMetrics (master/metrics.py), or None: nothing counted
        self.signer = TicketSigner(settings.upload_secret, reactor)
        # the item writes' audit rows, summed per caller (docs/security.md, "Audit")
        self.audit_batch = AuditBatch(reactor, PREFIX)

    def reconfigure(self, store, settings: CASSettings) -> None:
        """Serve ``store`` with ``settings`` from the next request on; a new upload secret
        refuses the tickets signed with the old one."""
        if settings.upload_secret != self.settings.upload_secret:
            self.signer = TicketSigner(settings.upload_secret, self.reactor)
        self.store, self.settings = store, settings

    def resource(self):
        """The twisted.web resource serving this API."""
        return self.app.resource()

    # -- plumbing --------------------------------------------------------------------------

    @app.handle_errors(StoreUnavailable)
    def _store_unavailable(self, request, failure):
        log.error("CAS back-end failed on {path}: {why}", path=request.path, why=str(failure.value))
        return endpoints_error(request, 503, f"the store is unavailable: {failure.value}", "backendError")

    add_endpoints_error_handlers(app, "Isolate API")  # after the handlers above

    @staticmethod
    def _json(request, value) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(value).encode()

    def _body(self, request) -> dict:
        """The request's JSON object body (parsed once, kept on the request)."""
        cached = getattr(request, "_cas_body", None)
        if cached is None:
            try:
                cached = json_object(read_body(request, MAX_JSON_BODY_BYTES))
            except BadBody as e:
                raise CASError(e.status, e.message) from None
            request._cas_body = cached
        return cached

    def _namespace(self, value) -> Namespace:
        """The namespace ``value`` names: its name (as this project's client sends it) or the
        API's namespace object ``{namespace, digest_hash, compression}`` (as Isolate's own
        client sends it in ``preupload`` and ``retrieve``), whose ``digest_hash`` and
        ``compression``, when given, must be what the name says."""
        try:
            if not isinstance(value, dict):
                return parse_namespace(value)
            namespace = parse_namespace(value.get("namespace", DEFAULT_NAMESPACE))
        except BadNamespace as e:
            raise CASError(400, str(e)) from None
        for field in ("digest_hash", "compression"):
            given, meant = value.get(field), getattr(namespace, field)
            if given is not None and given != meant:
                raise CASError(400, f"namespace {namespace.name!r} has {field} {meant!r}, "
                                    f"not {str(given)[:40]!r}")
        return namespace

    def _ticket(self, text) -> Ticket:
        try:
            return self.signer.check(text)
        except BadTicket as e:
            raise CASError(400, str(e)) from None

    # -- what each route's scope is about --------------------------------------------------

    async def _body_namespace(self, request) -> dict:
        return {"namespace": self._namespace(self._body(request).get("namespace", DEFAULT_NAMESPACE)).name}

    async def _body_ticket(self, request) -> dict:
        return {"namespace": self._ticket(self._body(request).get("upload_ticket")).namespace}

    async def _path_ticket(self, request, ticket) -> dict:
        return {"namespace": self._ticket(ticket).namespace}

    # -- the API ---------------------------------------------------------------------------

    # preupload and retrieve are a check and a read: only their refusals are audited; the item
    # writes are audited in batches (their refusals and failures each at once)
    @routes.route(f"{PREFIX}/preupload", "POST", scope="cas:write:{namespace}", resolve=_body_namespace,
                  audit=AUDIT_REFUSED,
                  api=_api("preupload", "Pre-upload",
                           "Which of these items the store lacks, each with a signed `upload_ticket` (and "
                           "a `gs_upload_url` for a big one).", "Items", input=ref.PREUPLOAD,
                           output=ref.PREUPLOAD_RESPONSE))
    async def preupload(self, request):
        """``{items:[{digest, size, is_isolated}], namespace}`` -> ``{items:[{index,
        upload_ticket, gs_upload_url?}]}`` for the items not stored yet (``{}``: none)."""
        body = self._body(request)
        namespace = self._namespace(body.get("namespace", DEFAULT_NAMESPACE))
        items = body.get("items")
        if not isinstance(items, list) or len(items) > MAX_PREUPLOAD_ITEMS:
            raise CASError(400, f"items must be a list of at most {MAX_PREUPLOAD_ITEMS} items")
        wanted = [self._item(namespace, i, item) for i, item in enumerate(items)]
        present = await self.store.contains(namespace, {digest for digest, _, _ in wanted})
        if self.metrics is not None:
            hits = sum(1 for digest, _, _ in wanted if digest in present)
            self.metrics.looked_up(namespace.name, hits, len(wanted) - hits)
        answer, offered = [], set()
        for index, (digest, size, is_isolated) in enumerate(wanted):
            if digest in present or digest in offered:
                continue
            offered.add(digest)
            ticket = self.signer.issue(namespace.name, digest, size, is_isolated)
            entry = {"index": str(index), "digest": digest, "upload_ticket": ticket}
            if size > self.settings.inline_max_bytes and not is_isolated:
                entry["gs_upload_url"] = f"{self._base_url(request)}{PREFIX}/upload/{ticket}"
            answer.append(entry)
        return self._json(request, {"items": answer} if answer else {})

    def _item(self, namespace: Namespace, index: int, item) -> tuple[str, int, bool]:
        if not isinstance(item, dict):
            raise CASError(400, f"items[{index}] must be an object {{digest, size, is_isolated}}")
        try:
            digest = namespace.check_digest(item.get("digest"))
        except BadNamespace as e:
            raise CASError(400, f"items[{index}]: {e}") from None
        size = _int(item.get("size"), f"items[{index}].size")
        if size > self.settings.max_item_bytes:
            raise CASError(400, f"items[{index}] is {size} bytes, over the {self.settings.max_item_bytes} "
                                f"bytes this server stores")
        is_isolated = item.get("is_isolated", False)
        if not isinstance(is_isolated, bool):
            raise CASError(400, f"items[{index}].is_isolated must be true or false")
        return digest, size, is_isolated

    @routes.route(f"{PREFIX}/store_inline", "POST", scope="cas:write:{namespace}", resolve=_body_ticket,
                  audit=AUDIT_BATCHED,
                  api=_api("storeInline", "Store an item inline",
                           "The stored bytes of a ticket's item, in base64; verified before it is stored.",
                           "Items", input=ref.STORE_INLINE, output=ref.OK))
    async def store_inline(self, request):
        """``{upload_ticket, content: base64 of the stored bytes}`` -> ``{"ok": true}``."""
        body = self._body(request)
        ticket = self._ticket(body.get("upload_ticket"))
        content = body.get("content")
        if not isinstance(content, str):
            raise CASError(400, "content must be the base64 of the item's stored bytes")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            raise CASError(400, "content is not valid base64") from None
        await self._put(ticket, data)
        return self._json(request, {"ok": True})

    @routes.route(f"{PREFIX}/upload/<string:ticket>", "PUT", scope="cas:write:{namespace}",
                  resolve=_path_ticket, audit=AUDIT_BATCHED,
                  api=_api("upload", "Upload an item",
                           "The raw stored bytes of a ticket's item (not JSON: the client cannot send it; "
                           "use the `gs_upload_url` preupload answered); answers `x-goog-hash: md5=...`.",
                           "Items"))
    async def upload(self, request, ticket):
        """The raw stored bytes of the ticket's item; answers ``x-goog-hash: md5=<base64>``.
        The body is not read here: the site streamed it to a spool file (``CASService.spool``),
        which the store verifies and copies on its thread pool."""
        if request.content is None:
            raise CASError(400, "the upload's body is missing")
        stored = await self._put(self._ticket(ticket), request.content)
        request.setHeader(b"x-goog-hash", f"md5={stored.md5_b64}".encode())
        return self._json(request, {})

    @routes.route(f"{PREFIX}/finalize_gs_upload", "POST", scope="cas:write:{namespace}",
                  resolve=_body_ticket, audit=AUDIT_BATCHED,
                  api=_api("finalizeUpload", "Finalize an upload",
                           "Confirm the item of a ticket whose bytes were PUT.", "Items",
                           input=ref.FINALIZE, output=ref.OK))
    async def finalize_gs_upload(self, request):
        """``{upload_ticket}`` -> ``{"ok": true}`` once the PUT stored the item; 400 if it did not."""
        ticket = self._ticket(self._body(request).get("upload_ticket"))
        namespace = self._namespace(ticket.namespace)
        if ticket.digest not in await self.store.contains(namespace, {ticket.digest}):
            raise CASError(400, f"{ticket.digest} was not uploaded: PUT it to its gs_upload_url first")
        return self._json(request, {"ok": True})

    async def _put(self, ticket: Ticket, data) -> Stored:
        """Store ``data`` (bytes, or the spool file of an upload) as the ticket's item."""
        namespace = self._namespace(ticket.namespace)
        try:
            if ticket.is_isolated:  # checked first: a bad manifest is never stored
                pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
                await threads.deferToThreadPool(self.reactor, pool, _check_isolated, namespace, data,
                                                ticket.size)
            stored = await self.store.put(namespace, ticket.digest, ticket.size, data)
        except (ContentMismatch, BadIsolated) as e:
            log.info("CAS refused {digest} in {namespace}: {why}", digest=ticket.digest,
                     namespace=namespace.name, why=str(e))
            raise CASError(400, f"{ticket.digest} refused: {e}") from None
        if self.metrics is not None:
            self.metrics.stored(namespace.name, stored.new, stored.stored_bytes)
        return stored

    @routes.route(f"{PREFIX}/retrieve", "POST", scope="cas:read:{namespace}", resolve=_body_namespace,
                  audit=AUDIT_REFUSED,
                  api=_api("retrieve", "Retrieve an item",
                           "An item's stored bytes from `offset` in base64, or the URL of its content.",
                           "Items", input=ref.RETRIEVE, output=ref.RETRIEVE_RESPONSE))
    async def retrieve(self, request):
        """``{digest, namespace, offset}`` -> ``{content: base64}`` of the stored bytes from
        ``offset``, or ``{url}`` for a large item; 404 when it is not stored."""
        body = self._body(request)
        namespace = self._namespace(body.get("namespace", DEFAULT_NAMESPACE))
        digest = self._digest(namespace, body.get("digest"))
        offset = _int(body.get("offset", 0), "offset")
        reader, total = await self._open(namespace, digest, offset)
        try:
            if total > self.settings.retrieve_inline_max_bytes:  # never read into memory
                return self._json(request, {"url": f"{self._base_url(request)}{PREFIX}/content/"
                                                   f"{namespace.name}/{digest}"})
            data = await self._in_pool(reader.read)
        finally:
            await self._in_pool(reader.close)
        self._sent(namespace, len(data))
        return self._json(request, {"content": base64.b64encode(data).decode("ascii")})

    def _sent(self, namespace: Namespace, size: int) -> None:
        if self.metrics is not None:
            self.metrics.sent(namespace.name, size)

    def _in_pool(self, fn, *args):
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        return threads.deferToThreadPool(self.reactor, pool, fn, *args)

    @routes.route(f"{PREFIX}/content/<string:namespace>/<string:digest>", "GET", scope="cas:read:{namespace}",
                  api=_api("content", "An item's content",
                           "The raw stored bytes (`offset`, or a `Range` header, answers 206 from there).",
                           "Items", query=("offset",)))
    async def content(self, request, namespace, digest):
        """The raw stored bytes; ``Range: bytes=N-`` (or ``?offset=N``) answers 206 from ``N``
        with ``Content-Range``.  Streamed as read (cas/download.py), never held whole."""
        ns = self._namespace(namespace)
        digest = self._digest(ns, digest)
        offset = self._range_start(request)
        reader, total = await self._open(ns, digest, offset)
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", str(total - offset).encode())
        if offset:
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {offset}-{max(offset, total - 1)}/{total}".encode())
        pool = self.pool if self.pool is not None else self.reactor.getThreadPool()
        await stream_to(request, reader, self.reactor, pool, lambda size: self._sent(ns, size))
        return None

    def _range_start(self, request) -> int:
        header = request.getHeader(b"range")
        if header is not None:
            match = RANGE_RE.fullmatch(header.decode("latin-1").strip())
            if match is None:
                raise CASError(416, "only Range: bytes=N- (or bytes=N-M) is supported", UNSATISFIABLE)
            return int(match.group(1))
        values = (request.args or {}).get(b"offset")
        return _int(values[-1].decode("ascii", "replace"), "offset") if values else 0

    def _digest(self, namespace: Namespace, digest) -> str:
        try:
            return namespace.check_digest(digest)
        except BadNamespace as e:
            raise CASError(400, str(e)) from None

    async def _open(self, namespace: Namespace, digest: str, offset: int):
        """``(reader, total)`` of the stored item from ``offset``; 404 or 416 otherwise."""
        try:
            return await self.store.open(namespace, digest, offset)
        except NotStored:
            raise CASError(404, f"{digest} is not stored in namespace {namespace.name!r}",
                           "notFound") from None
        except ValueError as e:
            raise CASError(416, str(e), UNSATISFIABLE) from None

    @routes.route(f"{PREFIX}/server_details", "POST", scope=PUBLIC,
                  api=_api("serverDetails", "Server details",
                           "The server's version and how long an item lives after its last use.", "Server",
                           input=ref.EMPTY, output=ref.SERVER))
    def server_details(self, request):
        """``{}`` -> ``{"server_version", "expiry_secs"}``: ``expiry_secs`` (an int64 string,
        an extra field that Isolate's clients ignore) is how long an item lives after its last
        refresh, so that a client knows how long a tree it found whole stays whole."""
        return self._json(request, {"server_version": f"buildfarm-{VERSION}",
                                    "expiry_secs": str(int(self.settings.expiry.lifetime_s))})

    # Swarming's and Isolate's clients without --auth-disabled ask these first: one answer for
    # both services (master/http/endpoints.py), served here since both share this path.
    @routes.route(f"{SIGN_IN_PREFIX}/server/oauth_config", "GET", scope=PUBLIC)
    @routes.route(f"{SIGN_IN_PREFIX}/accounts/self", "GET", scope=PUBLIC)
    def client_sign_in(self, request):
        """The OAuth sign-in of Swarming's and Isolate's clients: not served (a JSON 404 saying
        what to use)."""
        raise CASError(404, NO_OAUTH, "notFound")

    @staticmethod
    def _base_url(request) -> str:
        """``scheme://host[:port]`` as the client reached this server (the Host header when it
        is a plain host name or address, else the listening address)."""
        scheme = "https" if request.isSecure() else "http"
        host = (request.getHeader(b"host") or b"").decode("latin-1")
        if not HOST_RE.fullmatch(host):
            address = request.getHost()
            host = f"{address.host}:{address.port}"
        return f"{scheme}://{host}"


def _isolated_bytes(data) -> bytes:
    """An ``.isolated`` item's bytes: ``data`` itself, or read from its upload's spool file
    (at most ``MAX_JSON_BODY_BYTES``: a manifest is no bigger than a JSON call)."""
    if isinstance(data, bytes):
        return data
    data.seek(0)
    raw = data.read(MAX_JSON_BODY_BYTES + 1)
    if len(raw) > MAX_JSON_BODY_BYTES:
        raise BadIsolated(f"an .isolated file must be at most {MAX_JSON_BODY_BYTES} bytes")
    return raw


def _check_isolated(namespace: Namespace, data, size: int) -> None:
    """``check_isolated`` of bytes or of an upload's spool file (on a pool thread)."""
    check_isolated(namespace, _isolated_bytes(data), size)


def _int(value, field: str) -> int:
    """A non-negative integer given as a JSON number or a string of digits (Endpoints' int64)."""
    if isinstance(value, bool):
        raise CASError(400, f"{field} must be a non-negative integer")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    raise CASError(400, f"{field} must be a non-negative integer")
