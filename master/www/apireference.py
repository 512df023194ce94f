"""The ``buildfarm`` service of Taskcluster's layout: its title, description and schemas.

Its routes are the JSON API's (www/api.py) under ``/api/buildfarm/v1/``, each declared once
with an ``APIEntry``; the reference at ``/references/buildfarm/v1/api.json`` is made from
them (master/http/references.py).  The schemas below describe what those handlers take and
answer (``additionalProperties`` stays open: an answer may grow a field).
"""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "buildfarm"
PAGED_QUERY = ("continuationToken", "limit")

schemas = SchemaRegistry(SERVICE_NAME)

_TIME = {"type": ["number", "null"], "description": "seconds since the epoch"}
_RESULT = {"type": ["integer", "null"], "description": "0 success ... 6 cancelled; null while running"}


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


def _page(key: str, item: dict, title: str) -> dict:
    """A paged list: the items, ``meta`` (total, limit, offset) and ``continuationToken``
    while more items follow (pass it back as the query parameter of that name)."""
    return {"title": title, **_object({key: {"type": "array", "items": item},
                                       "meta": _object({"total": {"type": "integer"}}),
                                       "continuationToken": {"type": "string"}}, (key,))}


PING = schemas.add("ping-response", {"title": "Ping", **_object({"alive": {"const": True}}, ("alive",))})
BUILDER = _object({"builderid": {"type": "integer"}, "name": {"type": "string"},
                   "slavenames": {"type": "array", "items": {"type": "string"}},
                   "tags": {"type": "array", "items": {"type": "string"}},
                   "attached_slaves": {"type": "array", "items": {"type": "string"}}},
                  ("builderid", "name", "slavenames"))
BUILDER_RESPONSE = schemas.add("builder-response", {"title": "Builder", **BUILDER})
LIST_BUILDERS = schemas.add("list-builders-response", _page("builders", BUILDER, "Builders"))
FORCE_REQUEST = schemas.add("force-build-request", {
    "title": "Force a build",
    "type": "object",
    "properties": {"reason": {"type": "string"},
                   "properties": {"type": "object", "description": "build properties, name: value"},
                   "owner": {"type": "string", "description": "only the authenticated caller"}},
    "additionalProperties": False,
})
FORCE_RESPONSE = schemas.add("force-build-response", {
    "title": "Forced build request", **_object({"buildrequestid": {"type": "integer"}}, ("buildrequestid",))})
BUILD_REQUEST = _object({"buildrequestid": {"type": "integer"}, "buildername": {"type": "string"},
                         "complete": {"type": "boolean"}, "results": _RESULT, "submitted_at": _TIME},
                        ("buildrequestid", "complete"))
BUILD_REQUEST_RESPONSE = schemas.add("build-request-response", {"title": "Build request", **BUILD_REQUEST})
LIST_BUILD_REQUESTS = schemas.add("list-build-requests-response",
                                  _page("buildrequests", BUILD_REQUEST, "Build requests"))
BUILD = _object({"buildid": {"type": "integer"}, "buildername": {"type": "string"},
                 "buildrequestid": {"type": "integer"}, "number": {"type": "integer"},
                 "complete": {"type": "boolean"}, "results": _RESULT, "started_at": _TIME,
                 "complete_at": _TIME}, ("buildid", "complete"))
LOG = _object({"logid": {"type": "integer"}, "name": {"type": "string"}, "slug": {"type": "string"},
               "num_lines": {"type": "integer"}, "complete": {"type": "boolean"},
               "size": {"type": "integer"}},
              ("logid", "name", "num_lines"))
STEP = _object({"stepid": {"type": "integer"}, "number": {"type": "integer"}, "name": {"type": "string"},
                "results": _RESULT, "logs": {"type": "array", "items": LOG}}, ("number", "name", "logs"))
BUILD_RESPONSE = schemas.add("build-response", {"title": "Build, its steps and their logs", **_object(
    {**BUILD["properties"], "steps": {"type": "array", "items": STEP}}, ("buildid", "complete", "steps"))})
LIST_BUILDS = schemas.add("list-builds-response", _page("builds", BUILD, "Builds"))
STOP_REQUEST = schemas.add("stop-build-request", {
    "title": "Stop a build", "type": "object", "properties": {"reason": {"type": "string"}},
    "additionalProperties": False})
STOP_RESPONSE = schemas.add("stop-build-response", {"title": "Stopping", **_object(
    {"buildid": {"type": "integer"}, "stopping": {"const": True}, "reason": {"type": "string"}},
    ("buildid", "stopping"))})
LOG_LINES = schemas.add("log-lines-response", {"title": "Lines of a log", **_object(
    {"log": LOG, "first_line": {"type": "integer"}, "text": {"type": "string"},
     "meta": _object({"total": {"type": "integer"}})}, ("log", "first_line", "text"))})
SLAVE = _object({"name": {"type": "string"}, "configured": {"type": "boolean"},
                 "connected": {"type": "boolean"}, "state": {"type": "string"}}, ("name", "state"))
SLAVE_RESPONSE = schemas.add("slave-response", {"title": "Slave", **SLAVE})
LIST_SLAVES = schemas.add("list-slaves-response", _page("slaves", SLAVE, "Slaves"))
SHUTDOWN_RESPONSE = schemas.add("shutdown-slave-response", {"title": "Shutting down", **_object(
    {"name": {"type": "string"}, "shutting_down": {"const": True},
     "running_builds": {"type": "integer"}}, ("name", "shutting_down"))})
EMPTY_REQUEST = schemas.add("empty-request", {"title": "No fields", "type": "object",
                                              "additionalProperties": False})
_CELL = _object({"buildid": {"type": ["integer", "null"]}, "number": {"type": ["integer", "null"]},
                "state": {"type": "string", "description": "a result name, running or pending"},
                "results": _RESULT, "url": {"type": "string"}, "slavename": {"type": ["string", "null"]}},
               ("buildid", "state", "url"))
GRID_VIEW = schemas.add("grid-view-response", {"title": "Grid of changes and builds", **_object({
    "builders": {"type": "array", "items": _object({"name": {"type": "string"},
                                                    "tags": {"type": "array", "items": {"type": "string"}}})},
    "changes": {"type": "array", "items": _object({
        "changeid": {"type": "integer"}, "revision": {"type": ["string", "null"]},
        "author": {"type": "string"}, "comments": {"type": "string"}, "when_timestamp": _TIME,
        "builds": {"type": "object", "description": "builder name: its cells, oldest request first",
                   "additionalProperties": {"type": "array", "items": _CELL}}}, ("changeid", "builds"))},
    "meta": _object({"total": {"type": "integer"}}),
    "continuationToken": {"type": "string"}}, ("builders", "changes"))})
WATERFALL_VIEW = schemas.add("waterfall-view-response", {"title": "Builds on a time axis", **_object({
    "from": _TIME, "to": _TIME, "truncated": {"type": "boolean", "description": "builds were left out"},
    "builders": {"type": "array", "items": _object({
        "name": {"type": "string"},
        "builds": {"type": "array", "items": _object({
            "buildid": {"type": "integer"}, "number": {"type": "integer"}, "slavename": {"type": "string"},
            "state": {"type": "string"}, "results": _RESULT, "started_at": _TIME, "complete_at": _TIME},
            ("buildid", "slavename", "started_at"))}}, ("name", "builds"))},
    "meta": _object({"total": {"type": "integer"}}),
    "continuationToken": {"type": "string"}}, ("from", "to", "builders"))})
_SECONDS = {"type": ["number", "null"], "description": "seconds; null on a day without builds"}
BUILDER_TRENDS = schemas.add("builder-trends-response", {"title": "A builder's trends", **_object({
    "builder": {"type": "string"}, "from": _TIME, "to": _TIME, "computed_at": _TIME,
    "builds": {"type": "integer", "description": "finished builds over the days"},
    "days": {"type": "array", "items": _object({
        "day": _TIME, "builds": {"type": "integer"}, "succeeded": {"type": "integer"},
        "success_rate": {"type": ["number", "null"]}, "duration_p50": _SECONDS, "duration_p90": _SECONDS,
        "wait_p50": _SECONDS, "running_p50": _SECONDS}, ("day", "builds"))},
    "steps": {"type": "array", "items": _object({
        "name": {"type": "string"}, "count": {"type": "integer"}, "p50": _SECONDS, "p90": _SECONDS,
        "max": _SECONDS}, ("name", "count"))}}, ("builder", "days", "steps"))})
FLEET_VIEW = schemas.add("fleet-view-response", {"title": "The fleet and the queue over time", **_object({
    "from": _TIME, "to": _TIME,
    "series": {"type": "object", "description": "slaves.<state>, queue.pending, queue.oldest_wait_s: "
               "their samples, oldest first", "additionalProperties": {"type": "array", "items": _object(
                   {"at": _TIME, "value": {"type": "number"}}, ("at", "value"))}},
    "actions_per_day": {"type": "array", "items": _object({"day": _TIME}, ("day",))}},
    ("from", "to", "series", "actions_per_day"))})

BUILDFARM = APIService(
    SERVICE_NAME,
    "buildfarm builds",
    "The builders, builds, build requests, slaves and logs of a buildfarm master, in Taskcluster's "
    "URL layout so that `taskcluster.createApiClient` drives it (docs/client.md). The same data as "
    "the JSON API under `/api/v1/` (docs/api.md); lists page with `continuationToken`.",
    schemas,
)
