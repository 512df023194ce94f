"""The ``queue`` service of Taskcluster's layout: its title, description and schemas (the
shapes of Taskcluster's ``create-task-request``, ``task``, ``task-status-response`` and
``list-task-group-response``, trimmed to what buildfarm checks).  Its routes are the
``QueueAPI``'s (queue/api.py), each declared once with an ``APIEntry``."""

from buildfarm.master.http.references import APIService, SchemaRegistry

SERVICE_NAME = "queue"
PAGE_QUERY = ("continuationToken", "limit")

schemas = SchemaRegistry(SERVICE_NAME)

_TEXT = {"type": "string"}
_DATE = {"type": "string", "format": "date-time"}
_STRINGS = {"type": "array", "items": _TEXT}


def _object(properties: dict, required: tuple[str, ...] = (), title: str | None = None) -> dict:
    shown = {"title": title} if title else {}
    return {**shown, "type": "object", "properties": properties, "required": list(required),
            "additionalProperties": True}


_METADATA = _object({"name": _TEXT, "description": _TEXT, "owner": _TEXT, "source": _TEXT},
                    ("name", "description", "owner", "source"))
_TASK_FIELDS = {
    "taskQueueId": _TEXT, "provisionerId": _TEXT, "workerType": _TEXT, "schedulerId": _TEXT,
    "projectId": _TEXT, "taskGroupId": _TEXT, "dependencies": _STRINGS,
    "requires": {"type": "string", "enum": ["all-completed", "all-resolved"]}, "routes": _STRINGS,
    "priority": _TEXT, "retries": {"type": "integer"}, "created": _DATE, "deadline": _DATE,
    "expires": _DATE, "scopes": _STRINGS, "payload": {"type": "object"}, "metadata": _METADATA,
    "tags": {"type": "object"}, "extra": {"type": "object"},
}
_RUN = _object({"runId": {"type": "integer"}, "state": _TEXT, "reasonCreated": _TEXT,
                "reasonResolved": _TEXT, "scheduled": _DATE, "started": _DATE, "resolved": _DATE},
               ("runId", "state", "reasonCreated", "scheduled"))
_STATUS = _object({"taskId": _TEXT, "taskQueueId": _TEXT, "provisionerId": _TEXT, "workerType": _TEXT,
                   "schedulerId": _TEXT, "projectId": _TEXT, "taskGroupId": _TEXT, "deadline": _DATE,
                   "expires": _DATE, "retriesLeft": {"type": "integer"},
                   "state": {"type": "string", "enum": ["unscheduled", "pending", "running", "completed",
                                                        "failed", "exception"]},
                   "runs": {"type": "array", "items": _RUN}},
                  ("taskId", "taskQueueId", "schedulerId", "taskGroupId", "deadline", "expires", "state",
                   "runs"))
_TASK = _object(_TASK_FIELDS, ("created", "deadline", "metadata"))
_LISTED = _object({"status": _STATUS, "task": _TASK}, ("status", "task"))

CREATE_TASK = schemas.add("create-task-request", _object(
    _TASK_FIELDS, ("created", "deadline", "metadata"), "A task definition"))
TASK = schemas.add("task", {**_TASK, "title": "A task definition, with Taskcluster's defaults"})
STATUS = schemas.add("task-status-response", _object({"status": _STATUS}, ("status",), "A task's status"))
TASK_GROUP = schemas.add("list-task-group-response", _object(
    {"taskGroupId": _TEXT, "tasks": {"type": "array", "items": _LISTED}, "continuationToken": _TEXT},
    ("taskGroupId", "tasks"), "A page of a task group"))
DEPENDENTS = schemas.add("list-dependent-tasks-response", _object(
    {"taskId": _TEXT, "tasks": {"type": "array", "items": _LISTED}, "continuationToken": _TEXT},
    ("taskId", "tasks"), "A page of the tasks that depend on a task"))
TASK_GROUP_INFO = schemas.add("task-group-response", _object(
    {"taskGroupId": _TEXT, "schedulerId": _TEXT, "expires": _DATE, "sealed": _DATE},
    ("taskGroupId", "schedulerId", "expires"), "A task group"))
GROUP_CANCELED = schemas.add("cancel-task-group-response", _object(
    {"taskGroupId": _TEXT, "taskGroupSize": {"type": "integer"}, "cancelledCount": {"type": "integer"},
     "taskIds": _STRINGS}, ("taskGroupId", "taskGroupSize", "cancelledCount", "taskIds"),
    "The tasks of a group canceled"))
_IDENTIFIER = {"type": "string", "minLength": 1, "maxLength": 38, "pattern": "^([a-zA-Z0-9-_]*)$"}
_WORKER = {"workerGroup": _IDENTIFIER, "workerId": _IDENTIFIER}
_CREDENTIALS = _object({"clientId": _TEXT, "accessToken": _TEXT, "certificate": _TEXT},
                       ("clientId", "accessToken", "certificate"), "Temporary credentials of a claim")
_CLAIM_FIELDS = {"status": _STATUS, "runId": {"type": "integer", "minimum": 0}, **_WORKER,
                 "takenUntil": _DATE, "credentials": _CREDENTIALS}
_CLAIM = _object({**_CLAIM_FIELDS, "task": _TASK},
                 ("status", "runId", "workerGroup", "workerId", "takenUntil", "task", "credentials"),
                 "A claim")
CLAIM_WORK = schemas.add("claim-work-request", {
    "title": "Claim work request", "type": "object",
    "properties": {**_WORKER, "tasks": {"type": "integer", "minimum": 1, "maximum": 32, "default": 1}},
    "required": ["workerGroup", "workerId", "tasks"], "additionalProperties": False})
CLAIMED_WORK = schemas.add("claim-work-response", _object(
    {"tasks": {"type": "array", "items": _CLAIM}}, ("tasks",), "The tasks claimed (none after 20 s)"))
CLAIM_TASK = schemas.add("task-claim-request", {
    "title": "Claim task request", "type": "object", "properties": _WORKER,
    "required": ["workerGroup", "workerId"], "additionalProperties": False})
CLAIMED_TASK = schemas.add("task-claim-response", _CLAIM)
RECLAIMED = schemas.add("task-reclaim-response", _object(
    _CLAIM_FIELDS, ("status", "runId", "workerGroup", "workerId", "takenUntil", "credentials"),
    "A claim moved on, with new credentials"))
EXCEPTION = schemas.add("task-exception-request", {
    "title": "Task exception request", "type": "object",
    "properties": {"reason": {"type": "string", "enum": [
        "worker-shutdown", "malformed-payload", "resource-unavailable", "internal-error", "superseded",
        "intermittent-task"]}},
    "required": ["reason"], "additionalProperties": False})
PING = schemas.add("ping-response", _object({"alive": {"type": "boolean"}, "uptime": {"type": "number"}},
                                            ("alive",), "Alive"))

QUEUE = APIService(
    SERVICE_NAME,
    "Queue",
    "Taskcluster's Queue over buildfarm's task engine (docs/taskcluster.md, \"The Queue service\"): "
    "tasks, task groups and dependencies, in Taskcluster's shapes; HTTP workers claim the tasks of "
    "the task queues PB slaves do not serve (claimWork, reclaimTask, report*). `deadline` bounds "
    "only the wait for a worker; `payload.maxRunTime` bounds the run.",
    schemas,
)

# -- artifacts (master/queue/artifactapi.py) --------------------------------------------------

_ARTIFACT = _object({"storageType": {"type": "string", "enum": ["object", "reference", "link", "error"]},
                     "name": _TEXT, "expires": _DATE, "contentType": _TEXT,
                     "contentLength": {"type": "integer"}},
                    ("storageType", "name", "expires", "contentType"))
_CREDENTIALS = _object({"clientId": _TEXT, "accessToken": _TEXT, "certificate": _TEXT},
                       ("clientId", "accessToken"))
POST_ARTIFACT = schemas.add("post-artifact-request", _object(
    {"storageType": {"type": "string", "enum": ["object", "reference", "link", "error"]}, "expires": _DATE,
     "contentType": _TEXT, "contentLength": {"type": "integer"}, "url": _TEXT, "artifact": _TEXT,
     "reason": {"type": "string", "enum": ["file-missing-on-worker", "invalid-resource-on-worker",
                                           "too-large-file-on-worker", "file-not-readable-on-worker"]},
     "message": _TEXT}, ("storageType", "expires"), "Create an artifact"))
POST_ARTIFACT_RESPONSE = schemas.add("post-artifact-response", _object(
    {"storageType": _TEXT, "name": _TEXT, "projectId": _TEXT, "uploadId": _TEXT, "expires": _DATE,
     "credentials": _CREDENTIALS}, ("storageType",), "An artifact created (an object's upload credentials)"))
FINISH_ARTIFACT = schemas.add("finish-artifact-request", _object(
    {"uploadId": _TEXT}, ("uploadId",), "Finish an object artifact"))
GET_ARTIFACT = schemas.add("get-artifact-response", _object(
    {"storageType": _TEXT, "url": _TEXT}, ("storageType",), "Where an artifact's data is (a 303)"))
ARTIFACT_CONTENT = schemas.add("artifact-content-response", _object(
    {"storageType": _TEXT, "name": _TEXT, "credentials": _CREDENTIALS, "url": _TEXT, "reason": _TEXT,
     "message": _TEXT}, ("storageType",), "How to get an artifact's content"))
ARTIFACT_INFO = schemas.add("artifact-response", {**_ARTIFACT, "title": "An artifact"})
LIST_ARTIFACTS = schemas.add("list-artifacts-response", _object(
    {"artifacts": {"type": "array", "items": _ARTIFACT}, "continuationToken": _TEXT}, ("artifacts",),
    "A page of a run's artifacts"))

# -- task-queue metadata (queue/metaapi.py): Taskcluster's shapes ----------------------------------

_ACTIVE = {"stability": {"type": "string", "enum": ["experimental", "stable", "deprecated"]},
           "description": _TEXT, "expires": _DATE, "lastDateActive": _DATE}
_ACTIVE_REQUIRED = ("stability", "description", "expires", "lastDateActive")
_TASK_RUN = _object({"taskId": _TEXT, "runId": {"type": "integer"}}, ("taskId", "runId"))
_TASK_QUEUE = _object({"taskQueueId": _TEXT, **_ACTIVE}, ("taskQueueId", *_ACTIVE_REQUIRED))
_PROVISIONER = _object({"provisionerId": _TEXT, **_ACTIVE}, ("provisionerId", *_ACTIVE_REQUIRED))
_WORKER_TYPE = _object({"provisionerId": _TEXT, "workerType": _TEXT, **_ACTIVE},
                       ("provisionerId", "workerType", *_ACTIVE_REQUIRED))
_WORKER = {"workerGroup": _TEXT, "workerId": _TEXT, "quarantineUntil": _DATE, "firstClaim": _DATE,
           "lastDateActive": _DATE, "latestTask": _TASK_RUN}
_ACTIONS = {"type": "array", "items": {"type": "object"}}


def _list(field: str, item: dict, title: str) -> dict:
    return _object({field: {"type": "array", "items": item}, "continuationToken": _TEXT}, (field,), title)


PENDING_TASKS = schemas.add("pending-tasks-response", _object(
    {"taskQueueId": _TEXT, "provisionerId": _TEXT, "workerType": _TEXT, "pendingTasks": {"type": "integer"}},
    ("provisionerId", "workerType", "pendingTasks"), "Count Pending Tasks Response"))
TASK_QUEUE = schemas.add("taskqueue-response", {**_TASK_QUEUE, "title": "Task Queue Response"})
LIST_TASK_QUEUES = schemas.add("list-taskqueues-response", _list("taskQueues", _TASK_QUEUE,
                                                                  "List Task-Queues Response"))
PROVISIONER = schemas.add("provisioner-response", _object(
    {**_PROVISIONER["properties"], "actions": _ACTIONS}, ("provisionerId", *_ACTIVE_REQUIRED, "actions"),
    "Provisioner Response"))
LIST_PROVISIONERS = schemas.add("list-provisioners-response", _list("provisioners", _PROVISIONER,
                                                                     "List Provisioners Response"))
WORKER_TYPE = schemas.add("workertype-response", _object(
    {**_WORKER_TYPE["properties"], "actions": _ACTIONS},
    ("provisionerId", "workerType", *_ACTIVE_REQUIRED, "actions"), "Worker-type Response"))
LIST_WORKER_TYPES = schemas.add("list-workertypes-response", _list("workerTypes", _WORKER_TYPE,
                                                                    "List Worker-Types Response"))
LIST_WORKERS = schemas.add("list-workers-response", _list(
    "workers", _object(_WORKER, ("workerGroup", "workerId", "firstClaim")), "List Workers Response"))
WORKER = schemas.add("worker-response", _object(
    {"provisionerId": _TEXT, "workerType": _TEXT, "taskQueueId": _TEXT, **_WORKER,
     "recentTasks": {"type": "array", "items": _TASK_RUN}, "expires": _DATE, "actions": _ACTIONS},
    ("provisionerId", "workerType", "workerGroup", "workerId", "recentTasks", "expires", "firstClaim",
     "actions"), "Worker Response"))
