"""The ``tasks`` service of Taskcluster's layout: the Swarming v1 API's title, description and
schemas.

Its routes are the Swarming API's (tasks/api.py) under ``/_ah/api/swarming/v1``, each declared
once with an ``APIEntry``; the web site serves them at ``/api/tasks/v1/`` too (www/site.py).
Answers keep Cloud Endpoints' conventions (int64 as strings, naive UTC timestamps); lists page
with Swarming's ``cursor``, not ``continuationToken`` (docs/taskcluster.md).
"""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "tasks"
LIST_QUERY = ("state", "tags", "start", "end", "sort", "limit", "cursor")
BOT_FILTERS = ("dimensions", "is_dead", "is_busy", "quarantined", "in_maintenance")

schemas = SchemaRegistry(SERVICE_NAME)


def _object(properties: dict, required: tuple[str, ...] = (), title: str | None = None) -> dict:
    shown = {"title": title} if title else {}
    return {**shown, "type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


_TEXT = {"type": "string"}
_INT64 = {"type": "string", "pattern": "^-?[0-9]+$", "description": "an int64, as Cloud Endpoints writes it"}
TASK_RESULT = _object({"task_id": _TEXT, "state": _TEXT, "name": _TEXT, "created_ts": _TEXT,
                       "bot_id": _TEXT, "exit_code": _INT64, "tags": {"type": "array", "items": _TEXT}},
                      ("task_id", "state"))
TASK_REQUEST = _object({"task_id": _TEXT, "name": _TEXT, "priority": _INT64, "created_ts": _TEXT,
                        "task_slices": {"type": "array", "items": {"type": "object"}},
                        "tags": {"type": "array", "items": _TEXT}}, ("name",))
BOT = _object({"bot_id": _TEXT, "dimensions": {"type": "array", "items": {"type": "object"}},
               "is_dead": {"type": "boolean"}, "quarantined": {"type": "boolean"}}, ("bot_id",))


def _page(item: dict, title: str) -> dict:
    """A Swarming list: ``items``, ``now``, and ``cursor`` while more follow."""
    return _object({"items": {"type": "array", "items": item}, "cursor": _TEXT, "now": _TEXT}, (), title)


NEW_TASK = schemas.add("new-task-request", _object(
    {"name": _TEXT, "priority": {"type": ["integer", "string"]},
     "task_slices": {"type": "array", "items": {"type": "object"}},
     "properties": {"type": "object", "description": "one slice's properties (older clients)"},
     "tags": {"type": "array", "items": _TEXT}, "user": _TEXT, "request_uuid": _TEXT},
    ("name",), "A Swarming NewTaskRequest"))
TASK_METADATA = schemas.add("task-request-metadata", _object(
    {"task_id": _TEXT, "request": TASK_REQUEST, "task_result": TASK_RESULT},
    ("task_id", "request", "task_result"), "The new task"))
TASK_RESULT_RESPONSE = schemas.add("task-result", {**TASK_RESULT, "title": "A TaskResult"})
TASK_REQUEST_RESPONSE = schemas.add("task-request", {**TASK_REQUEST, "title": "A TaskRequest"})
STDOUT = schemas.add("task-output", _object({"output": _TEXT, "state": _TEXT}, ("output",), "Output"))
CANCEL = schemas.add("cancel-task-request", _object({"kill_running": {"type": "boolean"}}, (),
                                                    "Cancel a task"))
CANCELED = schemas.add("cancel-task-response", _object(
    {"ok": {"type": "boolean"}, "was_running": {"type": "boolean"}}, ("ok",), "Cancelled"))
TASKS_CANCEL = schemas.add("cancel-tasks-request", _object(
    {"tags": {"type": "array", "items": _TEXT}, "kill_running": {"type": "boolean"},
     "limit": {"type": ["integer", "string"]}, "start": {"type": ["number", "string"]},
     "end": {"type": ["number", "string"]}}, ("tags",), "Cancel the tasks with these tags"))
TASKS_CANCELED = schemas.add("cancel-tasks-response", _object({"matched": _INT64, "now": _TEXT},
                                                              ("matched",), "Matched"))
LIST_TASKS = schemas.add("task-list", _page(TASK_RESULT, "TaskResults"))
LIST_REQUESTS = schemas.add("task-request-list", _page(TASK_REQUEST, "TaskRequests"))
COUNT = schemas.add("tasks-count", _object({"count": _INT64, "now": _TEXT}, ("count",), "A count"))
LIST_BOTS = schemas.add("bot-list", {**_page(BOT, "BotInfos"),
                                     "properties": {**_page(BOT, "")["properties"], "death_timeout": _TEXT}})
BOTS_COUNT = schemas.add("bots-count", _object(
    {"count": _INT64, "busy": _INT64, "dead": _INT64, "quarantined": _INT64, "maintenance": _INT64,
     "now": _TEXT}, ("count",), "Bot counts"))
DIMENSIONS = schemas.add("bots-dimensions", _object(
    {"bots_dimensions": {"type": "array", "items": _object({"key": _TEXT, "value": {"type": "array"}})},
     "ts": _TEXT}, ("bots_dimensions",), "Every dimension of the bots"))
BOT_RESPONSE = schemas.add("bot-info", {**BOT, "title": "A BotInfo"})
BOT_TASKS = schemas.add("bot-tasks", _page(TASK_RESULT, "What a bot ran"))
EMPTY = schemas.add("empty-request", {"title": "No fields", "type": "object"})
TERMINATED = schemas.add("terminate-response", _object({"task_id": _TEXT}, (), "The termination task"))
DELETED = schemas.add("delete-bot-response", _object({"deleted": {"type": "boolean"}}, (), "Deleted"))
SERVER = schemas.add("server-details", _object({"server_version": _TEXT}, (), "Server details"))

TASKS = APIService(
    SERVICE_NAME,
    "Tasks (Swarming v1)",
    "Swarming's v1 API over buildfarm's task engine (docs/tasks.md), in Taskcluster's URL layout: "
    "the same routes as `/_ah/api/swarming/v1/`. Lists page with `cursor`.",
    schemas,
)
