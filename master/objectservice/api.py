"""Taskcluster's Object service at ``/api/object/v1/`` (docs/taskcluster.md, "Artifacts and the
Object service"), in Taskcluster's shapes so that the official client's ``taskcluster.Object``
and its ``upload``/``download`` helpers drive it.

- ``createUpload`` (``object:upload:<projectId>:<name>``) begins an upload: ``dataInline`` (the
  bytes in the call, base64, at most ``MAX_INLINE_BYTES``) is stored at once; ``putUrl`` answers
  a signed URL of the master (``/api/object/v1/data/<token>``, objectservice/dataurls.py) that
  takes one PUT of the bytes, streamed by the site to a spool file, measured and stored in the
  content-addressed store on its thread pool;
- ``finishUpload`` checks the declared ``sha256``/``sha512`` against the bytes received and makes
  the object immutable;
- ``startDownload`` (``object:download:<name>``) answers ``getUrl`` (with the hashes) or
  ``simple``: a signed URL of the master that streams the bytes from the store; ``object``
  answers the metadata; ``download`` redirects (303) to that URL.

Errors have Taskcluster's shape (master/http/tcservice.py).
"""

from __future__ import annotations

import base64
import binascii
import re

from twisted.logger import Logger

from buildfarm.master.auth.interfaces import iso, parse_iso
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.download import stream_to
from buildfarm.master.cas.interfaces import ContentMismatch, NotStored, StoreUnavailable
from buildfarm.master.http.body import json_object, read_body
from buildfarm.master.http.routes import PUBLIC, APIEntry, RouteTable, api_prefix
from buildfarm.master.http.routing import bounded_klein
from buildfarm.master.http.tcservice import add_taskcluster_error_handlers, error_answer, json_answer
from buildfarm.master.objectservice import apireference as ref
from buildfarm.master.objectservice.content import (
    GoneFromStore,
    WrongSize,
    check_stored,
    download_hashes,
    open_content,
    store_content,
)
from buildfarm.master.objectservice.dataurls import GET, PUT, URL_TTL_S, BadDataToken, DataGrant, signer_of
from buildfarm.master.objectservice.objects import (
    HASH_ALGORITHMS,
    ObjectConflict,
    ObjectInputError,
    ObjectStore,
    StoredObject,
    UnknownObject,
)

log = Logger()

PREFIX = api_prefix(ref.SERVICE_NAME)
DATA_PREFIX = f"{PREFIX}/data/"  # the signed URLs of the bytes: an upload's body streams to a spool file
MAX_BODY_BYTES = 64 * 1024  # a JSON call (dataInline's 8 KiB in base64 included)
MAX_INLINE_BYTES = 8192  # Taskcluster's dataInline bound (the client proposes it below that)
NAME_RE = re.compile(r"^[\x20-\x7e]{1,1100}$")  # printable ASCII, as Taskcluster's
PROJECT_ID_RE = re.compile(r"^[a-zA-Z0-9._/-]{1,500}$")
UPLOAD_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")  # a slugid
HASH_RE = {"sha256": re.compile(r"^[a-z0-9]{64}$"), "sha512": re.compile(r"^[a-z0-9]{128}$")}
DOWNLOAD_METHODS = ("getUrl", "simple")  # in order of preference (Taskcluster's)
DEFAULT_CONTENT_TYPE = "application/octet-stream"


class ObjectAPIError(Exception):
    """An error answered in Taskcluster's shape with ``status``."""

    def __init__(self, status: int, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra or {}


def api_entry(name: str, title: str, description: str, category: str, *, input: str | None = None,  # noqa: A002
              output: str | None = None) -> APIEntry:
    """The ``APIEntry`` of one Object service method (its place in the ``object`` reference)."""
    return APIEntry(ref.SERVICE_NAME, name, title, description, category, input=input, output=output)


def object_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ObjectAPIError(400, "an object name is 1 to 1100 printable ASCII characters")
    return value


def base_url(request) -> str:
    """``scheme://host[:port]`` as the client reached the master (what its URLs start with)."""
    return IsolateAPI._base_url(request)


def download_url(request, signer, found: StoredObject, now: float) -> tuple[str, float]:
    """A signed URL of ``found``'s bytes and when it expires."""
    expires = min(now + URL_TTL_S, found.expires)
    token = signer.sign(DataGrant(GET, found.name, expires, content_type=found.content_type,
                                  digest=found.digest or ""))
    return f"{base_url(request)}{DATA_PREFIX}{token}", expires


class ObjectAPI:
    """The Object service's routes over ``master.db`` (its ``objects``) and ``master.cas`` (the
    bytes); ``master`` gives ``auth``, ``db``, ``cas`` and ``reactor``."""

    app = bounded_klein()
    routes = RouteTable(app, "object")

    def __init__(self, master):
        self.master = master
        self.clock = master.reactor
        self.objects = ObjectStore(master.db)
        self.signer = signer_of(master)
        self.started = self.clock.seconds()

    def resource(self):
        return self.app.resource()

    # -- errors, in Taskcluster's shape ----------------------------------------------------

    @app.handle_errors(ObjectAPIError)
    def _api_error(self, request, failure):
        return self._error(request, failure.value.status, failure.value.message, failure.value.extra)

    @app.handle_errors(ObjectConflict)
    def _conflict(self, request, failure):
        return self._error(request, 409, str(failure.value))

    @app.handle_errors(ObjectInputError, WrongSize, ContentMismatch)
    def _bad_input(self, request, failure):
        return self._error(request, 400, str(failure.value))

    @app.handle_errors(UnknownObject, NotStored)
    def _unknown(self, request, failure):
        return self._error(request, 404, f"object {failure.value.args[0]!r} not found")

    @app.handle_errors(GoneFromStore)
    def _gone(self, request, failure):
        return self._error(request, 404, str(failure.value))

    @app.handle_errors(BadDataToken)
    def _bad_token(self, request, failure):
        return self._error(request, 403, str(failure.value))

    @app.handle_errors(StoreUnavailable)
    def _store_unavailable(self, request, failure):
        log.error("the store failed on {path}: {why}", path=request.path, why=str(failure.value))
        return self._error(request, 503, f"the store is unavailable: {failure.value}")

    add_taskcluster_error_handlers(app, "Object API", lambda api: api.clock)

    def _error(self, request, status: int, message: str, extra: dict | None = None) -> bytes:
        return error_answer(request, status, message, self.clock.seconds(), extra)

    # -- input -------------------------------------------------------------------------------

    def _body(self, request) -> dict:
        cached = getattr(request, "_object_body", None)
        if cached is None:
            cached = request._object_body = json_object(read_body(request, MAX_BODY_BYTES))
        return cached

    async def _project_values(self, request, name) -> dict:
        project_id = self._body(request).get("projectId")
        if not isinstance(project_id, str) or not PROJECT_ID_RE.match(project_id):
            raise ObjectAPIError(400, "projectId must be 1 to 500 of [a-zA-Z0-9._/-]")
        return {"projectId": project_id, "name": object_name(name)}

    def _upload_id(self, body: dict) -> str:
        upload_id = body.get("uploadId")
        if not isinstance(upload_id, str) or not UPLOAD_ID_RE.match(upload_id):
            raise ObjectAPIError(400, "uploadId must be a slugid")
        return upload_id

    @staticmethod
    def _hashes(body: dict) -> dict:
        hashes = body.get("hashes", {})
        if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
            raise ObjectAPIError(400, "hashes must be an object {algorithm: hex digest}")
        for algorithm in HASH_ALGORITHMS:
            if algorithm in hashes and not HASH_RE[algorithm].match(hashes[algorithm]):
                raise ObjectAPIError(400, f"hashes.{algorithm} is not a {algorithm} hex digest")
        return hashes

    # -- routes ------------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/ping", "GET", scope=PUBLIC,
                  api=api_entry("ping", "Ping Server", "`{alive, uptime}`.", "Ping Server", output=ref.PING))
    def ping(self, request):
        """``ping``: ``{"alive": true, "uptime": seconds}``."""
        return json_answer(request, {"alive": True, "uptime": self.clock.seconds() - self.started})

    @routes.route(f"{PREFIX}/upload/<path:name>", "PUT", scope="object:upload:{projectId}:{name}",
                  resolve=_project_values,
                  api=api_entry("createUpload", "Begin upload of a new object",
                                "Create an object (or repeat the call: the same uploadId, projectId and "
                                "expires) and agree an upload method: `dataInline` (stored at once, at "
                                "most 8 KiB) or `putUrl` (a signed URL of the master taking one PUT of "
                                "the bytes).", "Upload", input=ref.CREATE_UPLOAD,
                                output=ref.CREATE_UPLOAD_RESPONSE))
    async def create_upload(self, request, name):
        """``createUpload``: ``{projectId, uploadId, expires, hashes?, proposedUploadMethods}`` ->
        ``{projectId, uploadId, expires, uploadMethod}``."""
        body = self._body(request)
        name = object_name(name)
        upload_id = self._upload_id(body)
        expires = _date(body.get("expires"), "expires")
        methods = body.get("proposedUploadMethods", {})
        if not isinstance(methods, dict):
            raise ObjectAPIError(400, "proposedUploadMethods must be an object")
        now = self.clock.seconds()
        if expires <= now:
            raise ObjectAPIError(400, "expires must be in the future")
        project_id = body["projectId"]
        await self.objects.create_upload(name, project_id, upload_id, expires, self._hashes(body), now)
        if "dataInline" in methods:
            method = await self._inline(name, upload_id, methods["dataInline"])
        elif "putUrl" in methods:
            method = self._put_url(request, name, upload_id, methods["putUrl"], now)
        else:
            method = {}
        return json_answer(request, {"projectId": project_id, "uploadId": upload_id,
                                     "expires": body["expires"], "uploadMethod": method})

    async def _inline(self, name: str, upload_id: str, proposed) -> dict:
        if not isinstance(proposed, dict) or not isinstance(proposed.get("objectData"), str):
            raise ObjectAPIError(400, "dataInline must be {contentType, objectData: base64}")
        try:
            data = base64.b64decode(proposed["objectData"], validate=True)
        except (binascii.Error, ValueError):
            raise ObjectAPIError(400, "dataInline.objectData is not valid base64") from None
        if len(data) > MAX_INLINE_BYTES:
            raise ObjectAPIError(400, f"dataInline takes at most {MAX_INLINE_BYTES} bytes: use putUrl")
        received = await store_content(self.master.cas, data)
        await self.objects.record_data(name, upload_id, _content_type(proposed), received)
        return {"dataInline": True}

    def _put_url(self, request, name: str, upload_id: str, proposed, now: float) -> dict:
        size = proposed.get("contentLength") if isinstance(proposed, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ObjectAPIError(400, "putUrl must be {contentType, contentLength: bytes}")
        cap = self.master.cas.max_upload_bytes()
        if size > cap:
            raise ObjectAPIError(400, f"the object is {size} bytes, over the {cap} bytes this master "
                                      "stores (c['cas']['max_item_bytes'])")
        content_type = _content_type(proposed)
        expires = now + URL_TTL_S
        token = self.signer.sign(DataGrant(PUT, name, expires, upload_id, size, content_type))
        return {"putUrl": {"url": f"{base_url(request)}{DATA_PREFIX}{token}", "expires": iso(expires),
                           "headers": {"Content-Type": content_type, "Content-Length": str(size)}}}

    @routes.route(f"{PREFIX}/finish-upload/<path:name>", "POST", scope="object:upload:{projectId}:{name}",
                  resolve=_project_values,
                  api=api_entry("finishUpload", "Mark an upload as complete.",
                                "Check the declared `sha256`/`sha512` against the bytes received and make "
                                "the object immutable; again on a finished object it is idempotent.",
                                "Upload", input=ref.FINISH_UPLOAD))
    async def finish_upload(self, request, name):
        """``finishUpload``: ``{projectId, uploadId, hashes?}`` -> ``{}``."""
        body = self._body(request)
        await self.objects.finish(object_name(name), body["projectId"], self._upload_id(body),
                                  self._hashes(body))
        return json_answer(request, {})

    @routes.route(f"{PREFIX}/start-download/<path:name>", "PUT", scope="object:download:{name}",
                  api=api_entry("startDownload", "Download object data",
                                "Pick a download method of those accepted: `getUrl` (a signed URL of the "
                                "master, with the hashes to check) or `simple`; 406 when neither is.",
                                "Download", input=ref.DOWNLOAD_REQUEST, output=ref.DOWNLOAD_RESPONSE))
    async def start_download(self, request, name):
        """``startDownload``: ``{acceptDownloadMethods: {getUrl?, simple?}}`` -> ``{method, url, ...}``."""
        accepted = self._body(request).get("acceptDownloadMethods")
        if not isinstance(accepted, dict):
            raise ObjectAPIError(400, "acceptDownloadMethods must be an object")
        now = self.clock.seconds()
        found = await self.objects.finished(object_name(name), now)
        method = next((m for m in DOWNLOAD_METHODS if accepted.get(m)), None)
        if method is None:
            raise ObjectAPIError(406, f"object supports methods {', '.join(DOWNLOAD_METHODS)}",
                                 {"code": "NoMatchingMethod"})
        await check_stored(self.master.cas, found.name, found.digest)
        url, expires = download_url(request, self.signer, found, now)
        if method == "simple":
            return json_answer(request, {"method": "simple", "url": url})
        return json_answer(request, {"method": "getUrl", "url": url, "expires": iso(expires),
                                     "hashes": download_hashes(found.received, found.hashes)})

    @routes.route(f"{PREFIX}/metadata/<path:name>", "GET", scope="object:download:{name}",
                  api=api_entry("object", "Get an object's metadata", "`{projectId, expires, hashes}`.",
                                "Objects", output=ref.OBJECT))
    async def object(self, request, name):
        """``object``: the metadata of a finished object."""
        found = await self.objects.finished(object_name(name), self.clock.seconds())
        return json_answer(request, {"projectId": found.project_id, "expires": iso(found.expires),
                                     "hashes": download_hashes(found.received, found.hashes)})

    @routes.route(f"{PREFIX}/download/<path:name>", "GET", scope="object:download:{name}",
                  api=api_entry("download", "Get an object's data",
                                "A 303 to a signed URL of the master serving the bytes (for simple HTTP "
                                "clients; a bewit signs this URL).", "Download"))
    async def download(self, request, name):
        """``download``: 303 to the bytes."""
        now = self.clock.seconds()
        found = await self.objects.finished(object_name(name), now)
        await check_stored(self.master.cas, found.name, found.digest)
        url, _ = download_url(request, self.signer, found, now)
        request.setHeader(b"location", url.encode())
        return json_answer(request, {"method": "simple", "url": url}, 303)

    @routes.route(f"{DATA_PREFIX}<string:token>", "PUT", scope=PUBLIC,
                  api=api_entry("uploadData", "Upload an object's bytes",
                                "The bytes of an upload, PUT to the `putUrl` createUpload answered (signed: "
                                "no credentials); not a Taskcluster call (its `putUrl` is a backend's).",
                                "Upload"))
    async def upload_data(self, request, token):
        """The raw bytes of the token's upload: measured, checked against the declared length and
        stored, off the reactor thread (the site spooled the body to a file)."""
        grant = self.signer.check(token, PUT)
        found = await self.objects.get(grant.name)
        if found is None or found.upload_id != grant.upload_id:
            raise ObjectConflict(f"object {grant.name!r} has no unfinished upload {grant.upload_id}")
        if request.content is None:
            raise ObjectAPIError(400, "the upload's body is missing")
        received = await store_content(self.master.cas, request.content, grant.size)
        await self.objects.record_data(grant.name, grant.upload_id, grant.content_type, received)
        return json_answer(request, {})

    @routes.route(f"{DATA_PREFIX}<string:token>", "GET", scope=PUBLIC,
                  api=api_entry("downloadData", "Download an object's bytes",
                                "The bytes of an object, from the URL startDownload, download or the "
                                "Queue's getArtifact gave (signed: no credentials); not a Taskcluster call.",
                                "Download"))
    async def download_data(self, request, token):
        """The object's bytes, streamed from the store as read (never held whole)."""
        grant = self.signer.check(token, GET)
        reader, total = await open_content(self.master.cas, grant.digest)
        request.setHeader(b"content-type", (grant.content_type or DEFAULT_CONTENT_TYPE).encode("latin-1"))
        request.setHeader(b"content-length", str(total).encode())
        cas = self.master.cas
        await stream_to(request, reader, self.clock, cas.pool, lambda size: None)
        return None


def _date(value, field: str) -> float:
    seconds = parse_iso(value)
    if seconds is not None:
        return seconds
    raise ObjectAPIError(400, f"{field} must be a date like '2030-01-01T00:00:00.000Z'")


def _content_type(proposed: dict) -> str:
    content_type = proposed.get("contentType", DEFAULT_CONTENT_TYPE)
    if not isinstance(content_type, str) or not content_type.isascii() or len(content_type) > 255 \
            or any(c in content_type for c in "\r\n"):
        raise ObjectAPIError(400, "contentType must be at most 255 printable ASCII characters")
    return content_type
