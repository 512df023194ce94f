"""The ``cas`` service of Taskcluster's layout: the Isolate v1 API's title, description and
schemas.

Its routes are the Isolate API's (cas/api.py) under ``/_ah/api/isolateservice/v1``, each
declared once with an ``APIEntry``; the web site serves them at ``/api/cas/v1/`` too
(www/site.py).  The upload and content URLs the API answers keep pointing at
``/_ah/api/isolateservice/v1/`` (docs/cas.md).
"""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "cas"

schemas = SchemaRegistry(SERVICE_NAME)


def _object(properties: dict, required: tuple[str, ...], title: str) -> dict:
    return {"title": title, "type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


_TEXT = {"type": "string"}
_DIGEST = {"type": "string", "description": "the hex digest of the uncompressed item"}
NAMESPACE = {"description": "the namespace (hash and compression, docs/cas.md; `default-gzip` when absent): "
                            "its name, or Isolate's `{namespace, digest_hash, compression}`",
             "anyOf": [_TEXT, {"type": "object", "properties": {"namespace": _TEXT, "digest_hash": _TEXT,
                                                                "compression": _TEXT}}]}
PREUPLOAD = schemas.add("preupload-request", _object(
    {"items": {"type": "array", "items": {"type": "object", "properties": {
        "digest": _DIGEST, "size": {"type": ["integer", "string"]}, "is_isolated": {"type": "boolean"}},
        "required": ["digest"]}}, "namespace": NAMESPACE}, ("items",), "Items to upload"))
PREUPLOAD_RESPONSE = schemas.add("preupload-response", _object(
    {"items": {"type": "array", "items": {"type": "object", "properties": {
        "index": {"type": ["integer", "string"]}, "upload_ticket": _TEXT, "gs_upload_url": _TEXT},
        "required": ["index", "upload_ticket"]}}}, (), "The missing items, each with its ticket"))
STORE_INLINE = schemas.add("store-inline-request", _object(
    {"upload_ticket": _TEXT, "content": {"type": "string", "description": "base64 of the stored bytes"}},
    ("upload_ticket", "content"), "An item inline"))
FINALIZE = schemas.add("finalize-request", _object({"upload_ticket": _TEXT}, ("upload_ticket",),
                                                   "Confirm an uploaded item"))
OK = schemas.add("ok-response", _object({"ok": {"const": True}}, ("ok",), "Stored"))
RETRIEVE = schemas.add("retrieve-request", _object(
    {"digest": _DIGEST, "namespace": NAMESPACE, "offset": {"type": ["integer", "string"]}},
    ("digest",), "An item to read"))
RETRIEVE_RESPONSE = schemas.add("retrieve-response", {
    "title": "The item, inline or by URL", "type": "object",
    "properties": {"content": {"type": "string", "description": "base64"}, "url": _TEXT},
    "oneOf": [{"required": ["content"]}, {"required": ["url"]}]})
EMPTY = schemas.add("empty-request", {"title": "No fields", "type": "object"})
SERVER = schemas.add("server-details", _object({"server_version": _TEXT, "expiry_secs": _TEXT},
                                               ("server_version",), "Server details"))

CAS = APIService(
    SERVICE_NAME,
    "Content-addressed store (Isolate v1)",
    "Isolate's v1 API over the master's content-addressed store (docs/cas.md), in Taskcluster's URL "
    "layout: the same routes as `/_ah/api/isolateservice/v1/`.",
    schemas,
)
