"""The ``object`` service of Taskcluster's layout: its title, description and schemas (the
shapes of Taskcluster's ``create-upload-request``, ``create-upload-response``,
``finish-upload-request``, ``download-object-request``/``-response`` and
``get-object-response``, trimmed to what buildfarm checks).  Its routes are the
``ObjectAPI``'s (objectservice/api.py), each declared once with an ``APIEntry``."""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "object"

schemas = SchemaRegistry(SERVICE_NAME)

_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date-time"}
_HASHES = {"type": "object", "properties": {"sha256": {"type": "string", "pattern": "^[a-z0-9]{64}$"},
                                            "sha512": {"type": "string", "pattern": "^[a-z0-9]{128}$"}},
           "additionalProperties": True}


def _object(properties: dict, required: tuple[str, ...] = (), title: str | None = None) -> dict:
    shown = {"title": title} if title else {}
    return {**shown, "type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


CREATE_UPLOAD = schemas.add("create-upload-request", _object(
    {"projectId": _TEXT, "uploadId": _TEXT, "expires": _DATE, "hashes": _HASHES,
     "proposedUploadMethods": _object({
         "dataInline": _object({"contentType": _TEXT, "objectData": _TEXT}, ("contentType", "objectData")),
         "putUrl": _object({"contentType": _TEXT, "contentLength": {"type": "integer"}},
                           ("contentType", "contentLength"))})},
    ("projectId", "uploadId", "expires", "proposedUploadMethods"), "Begin an upload"))
CREATE_UPLOAD_RESPONSE = schemas.add("create-upload-response", _object(
    {"projectId": _TEXT, "uploadId": _TEXT, "expires": _DATE,
     "uploadMethod": _object({"dataInline": {"type": "boolean", "const": True},
                              "putUrl": _object({"url": _TEXT, "expires": _DATE,
                                                 "headers": {"type": "object"}},
                                                ("url", "expires", "headers"))})},
    ("projectId", "uploadId", "expires", "uploadMethod"), "The upload method agreed"))
FINISH_UPLOAD = schemas.add("finish-upload-request", _object(
    {"projectId": _TEXT, "uploadId": _TEXT, "hashes": _HASHES}, ("projectId", "uploadId"),
    "Finish an upload"))
DOWNLOAD_REQUEST = schemas.add("download-object-request", _object(
    {"acceptDownloadMethods": _object({"simple": {"type": "boolean"}, "getUrl": {"type": "boolean"}})},
    ("acceptDownloadMethods",), "The download methods the caller accepts"))
DOWNLOAD_RESPONSE = schemas.add("download-object-response", _object(
    {"method": {"type": "string", "enum": ["simple", "getUrl"]}, "url": _TEXT, "expires": _DATE,
     "hashes": _HASHES}, ("method", "url"), "How to download an object"))
OBJECT = schemas.add("get-object-response", _object(
    {"projectId": _TEXT, "expires": _DATE, "hashes": _HASHES}, ("projectId", "expires", "hashes"),
    "An object's metadata"))
PING = schemas.add("ping-response", _object({"alive": {"type": "boolean"}, "uptime": {"type": "number"}},
                                            ("alive",), "Alive"))

OBJECT_SERVICE = APIService(
    SERVICE_NAME,
    "Object Service",
    "Taskcluster's Object service over buildfarm's content-addressed store (docs/taskcluster.md, "
    "\"Artifacts and the Object service\"): objects uploaded inline or by a PUT to a signed URL of the "
    "master, their hashes checked, downloaded from a signed URL of the master.",
    schemas,
)
