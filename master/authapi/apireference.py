"""The ``auth`` service of Taskcluster's layout: the Auth API's title, description and schemas.

Its routes are master/authapi/api.py's under ``/api/auth/v1/``, each declared once with an
``APIEntry`` whose name, method, route and arguments are those of Taskcluster's own Auth API
(the official client's ``taskcluster.Auth``; tests/unit/test_authapi_reference.py compares
them).  The schemas take Taskcluster's names (``v1/get-client-response.json#``, ...) and
describe what the handlers take and answer (``additionalProperties`` stays open).
"""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "auth"
PAGED_QUERY = ("continuationToken", "limit")

schemas = SchemaRegistry(SERVICE_NAME)

_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date-time"}
_SCOPES = {"type": "array", "items": {"type": "string", "pattern": "^[\\x20-\\x7e]*$"}}


def _object(properties: dict, required: tuple[str, ...] = (), title: str | None = None) -> dict:
    shown = {"title": title} if title else {}
    return {**shown, "type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


CLIENT = _object(
    {"clientId": _TEXT, "description": _TEXT, "expires": _DATE, "disabled": {"type": "boolean"},
     "scopes": _SCOPES, "expandedScopes": _SCOPES, "created": _DATE, "lastModified": _DATE,
     "lastDateUsed": _DATE, "lastRotated": _DATE, "deleteOnExpiration": {"type": "boolean"}},
    ("clientId", "description", "expires", "disabled", "scopes", "expandedScopes", "created",
     "lastModified", "lastDateUsed", "lastRotated", "deleteOnExpiration"))
ROLE = _object(
    {"roleId": _TEXT, "description": _TEXT, "scopes": _SCOPES, "expandedScopes": _SCOPES,
     "created": _DATE, "lastModified": _DATE},
    ("roleId", "description", "scopes", "expandedScopes", "created", "lastModified"))

PING = schemas.add("ping-response", _object({"alive": {"const": True}, "uptime": {"type": "number"}},
                                            ("alive",), "Ping"))
SCOPESET = schemas.add("scopeset", _object({"scopes": _SCOPES}, ("scopes",), "A set of scopes"))
TEST_REQUEST = schemas.add("test-authenticate-request", _object(
    {"clientScopes": _SCOPES, "requiredScopes": _SCOPES}, (), "Test authentication input"))
TEST_RESPONSE = schemas.add("test-authenticate-response", _object(
    {"clientId": _TEXT, "scopes": _SCOPES}, ("clientId", "scopes"), "Test authentication output"))
LIST_CLIENTS = schemas.add("list-clients-response", _object(
    {"clients": {"type": "array", "items": CLIENT}, "continuationToken": _TEXT}, ("clients",),
    "A page of clients"))
GET_CLIENT = schemas.add("get-client-response", {**CLIENT, "title": "A client"})
CREATE_CLIENT_REQUEST = schemas.add("create-client-request", _object(
    {"expires": _DATE, "description": _TEXT, "scopes": _SCOPES, "deleteOnExpiration": {"type": "boolean"}},
    ("expires",), "A client's settings"))
CREATE_CLIENT = schemas.add("create-client-response", {
    **CLIENT, "title": "A client and its access token (shown this once)",
    "properties": {**CLIENT["properties"],
                   "accessToken": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{22,66}$"}},
    "required": [*CLIENT["required"], "accessToken"]})
LIST_ROLES = schemas.add("list-roles-response", {"title": "Every role", "type": "array", "items": ROLE})
LIST_ROLES2 = schemas.add("list-roles2-response", _object(
    {"roles": {"type": "array", "items": ROLE}, "continuationToken": _TEXT}, ("roles",), "A page of roles"))
LIST_ROLE_IDS = schemas.add("list-role-ids-response", _object(
    {"roleIds": {"type": "array", "items": _TEXT}, "continuationToken": _TEXT}, ("roleIds",),
    "A page of role ids"))
GET_ROLE = schemas.add("get-role-response", {**ROLE, "title": "A role"})
CREATE_ROLE_REQUEST = schemas.add("create-role-request", _object(
    {"description": _TEXT, "scopes": _SCOPES}, ("scopes",), "A role's settings"))
EMPTY = schemas.add("empty-response", {"title": "Nothing", "type": "object"})

AUTH = APIService(
    SERVICE_NAME,
    "Auth",
    "Taskcluster's Auth service over buildfarm's clients and roles (docs/taskcluster.md, \"The "
    "Auth service\"): the same function names, routes and shapes, so that `taskcluster.Auth` "
    "drives it. Creating a client or a role needs the scopes it gives (no escalation).",
    schemas,
)
