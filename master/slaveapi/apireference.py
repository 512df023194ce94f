"""The ``slaveapi`` service of Taskcluster's layout: its title, description and schemas.

Its routes are the SlaveAPI's (slaveapi/resources.py), each declared once with an
``APIEntry``; the web site serves them at ``/api/slaveapi/v1/`` as well as under
``/slaveapi/`` and on the SlaveAPI's own port (docs/slaveapi.md, docs/taskcluster.md).
"""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "slaveapi"

schemas = SchemaRegistry(SERVICE_NAME)


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


_TIME = {"type": ["number", "null"]}
RESULT = _object({"requestid": {"type": "integer"}, "state": {"type": "integer"},
                  "text": {"type": ["string", "null"]}, "story": {"type": ["string", "null"]},
                  "data": {}, "request_timestamp": _TIME, "start_timestamp": _TIME,
                  "finish_timestamp": _TIME, "requested_by": {"type": ["string", "null"]}},
                 ("requestid", "state"))
RESULTS = schemas.add("results-response", {
    "title": "Every result", "description": "{slave: {action: {requestid: result}}}",
    "type": "object", "additionalProperties": {"type": "object", "additionalProperties": {
        "type": "object", "additionalProperties": RESULT}}})
AUDIT = schemas.add("audit-response", {"title": "Who asked for what", **_object(
    {"audit": {"type": "array", "items": {"type": "object"}}}, ("audit",))})
SLAVE = _object({"name": {"type": "string"}, "enabled": {"type": "boolean"},
                 "environment": {"type": ["string", "null"]}, "purpose": {"type": ["string", "null"]},
                 "pool": {"type": ["string", "null"]}, "connected": {"type": "boolean"},
                 "master": {"type": ["string", "null"]}, "disabled_reason": {"type": ["string", "null"]}},
                ("name", "enabled", "connected"))
SLAVES = schemas.add("slaves-response", {"title": "Slaves", **_object(
    {"slaves": {"type": "array", "items": SLAVE}}, ("slaves",))})
SLAVE_RESPONSE = schemas.add("slave-response", {"title": "One slave", **_object(
    {**SLAVE["properties"], "recent_jobs": {"type": "array"}, "channels": {"type": "object"}},
    ("name", "enabled", "connected", "recent_jobs"))})
ACTION_RESULTS = schemas.add("action-results-response", {
    "title": "Results of an action",
    "description": "One result (with `requestid`), or `{<action>: {requestid: result}}`.",
    "anyOf": [RESULT, {"type": "object", "minProperties": 1, "maxProperties": 1,
                       "additionalProperties": {"type": "object", "additionalProperties": RESULT}}]})
ACTION_REQUEST = schemas.add("action-request", {
    "title": "An action's arguments",
    "description": "The action's arguments by name (docs/slaveapi.md), and `waittime`: seconds to "
                   "wait for the result before answering 202.",
    "type": "object", "properties": {"waittime": {"type": ["number", "string"]}},
    "additionalProperties": True})
ACTION_RESPONSE = schemas.add("action-response", {"title": "The action's result", **RESULT})

SLAVEAPI = APIService(
    SERVICE_NAME,
    "SlaveAPI",
    "Fleet actions on slaves (reboot, shutdown, disable, ...), their results and audit, in "
    "Taskcluster's URL layout; the same routes as `/slaveapi/` (docs/slaveapi.md).",
    schemas,
)
