"""A Queue task's definition as ``createTask`` takes it, checked and completed with
Taskcluster's defaults, and its status (``state`` and ``runs``) in Taskcluster's shapes.

Nothing here touches the database or the clock: ``check_definition`` is given ``now``, and the
run changes (``scheduled_run``, ``resolved_run``) are plain functions over dicts that
``master/queue/store.py`` applies inside its transactions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from buildfarm.master.auth.interfaces import iso, parse_iso

# Taskcluster's slugid (a v4 UUID, url-safe base64 without padding): taskId and taskGroupId
SLUGID = re.compile(r"^[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]$")
IDENTIFIER = re.compile(r"^[a-zA-Z0-9-_]{1,38}$")  # provisionerId, workerType, schedulerId
TASK_QUEUE_ID = re.compile(r"^[a-zA-Z0-9-_]{1,38}/[a-zA-Z0-9-_]{1,38}$")
PROJECT_ID = re.compile(r"^([a-zA-Z0-9._/-]*)$")
PRIORITIES = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest", "normal")
REQUIRES = ("all-completed", "all-resolved")
DEFAULT_SCHEDULER_ID = "-"
DEFAULT_PRIORITY = "lowest"
DEFAULT_RETRIES = 5
MAX_RETRIES = 49
DEFAULT_PROJECT_ID = "none"
MAX_DEPENDENCIES = 10000
MAX_ROUTES = 64
MAX_SCOPES = 1000
CREATED_SKEW_S = 15 * 60  # the clock drift allowed to ``created`` and ``deadline`` (Taskcluster's)
MAX_DEADLINE_S = 5 * 24 * 3600  # ``deadline`` at most 5 days ahead
DEFAULT_EXPIRES_S = 365 * 24 * 3600  # ``expires`` defaults to a year after ``deadline``
MAX_RUNS = 50  # runs a task may have (reruns included)
METADATA_FIELDS = ("name", "description", "owner", "source")

# states
UNSCHEDULED, PENDING, RUNNING = "unscheduled", "pending", "running"
COMPLETED, FAILED, EXCEPTION = "completed", "failed", "exception"
RESOLVED = frozenset({COMPLETED, FAILED, EXCEPTION})


class TaskDefinitionError(ValueError):
    """A definition ``createTask`` refuses (400), with every problem found."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TaskDefinition:
    """A checked definition: ``body`` is Taskcluster's task, with defaults, as ``task`` answers."""

    task_id: str
    body: dict
    created: float
    deadline: float
    expires: float

    @property
    def task_group_id(self) -> str:
        return self.body["taskGroupId"]

    @property
    def scheduler_id(self) -> str:
        return self.body["schedulerId"]

    @property
    def task_queue_id(self) -> str:
        return self.body["taskQueueId"]

    @property
    def dependencies(self) -> list[str]:
        return self.body["dependencies"]

    @property
    def requires(self) -> str:
        return self.body["requires"]

    @property
    def retries(self) -> int:
        return self.body["retries"]

    def canonical(self) -> str:
        """The text stored and compared by the idempotent ``createTask``."""
        return json.dumps(self.body, sort_keys=True, separators=(",", ":"))


def parse_date(value, field: str, problems: list[str]) -> float | None:
    """POSIX seconds of an ISO-8601 date with a zone (``2030-01-01T00:00:00.000Z``)."""
    seconds = parse_iso(value)
    if seconds is None:
        problems.append(f"{field} must be a date like '2030-01-01T00:00:00.000Z', not {value!r}")
    return seconds


def check_definition(task_id: str, given: dict, now: float) -> TaskDefinition:
    """``given`` (createTask's body) checked and completed with Taskcluster's defaults;
    ``TaskDefinitionError`` lists every problem."""
    problems: list[str] = []
    if not SLUGID.match(task_id):
        problems.append(f"taskId {task_id!r} is not a slugid (22 characters of url-safe base64, a v4 UUID)")
    body = dict(given)
    _task_queue(body, problems)
    body.setdefault("schedulerId", DEFAULT_SCHEDULER_ID)
    body.setdefault("taskGroupId", task_id)
    body.setdefault("dependencies", [])
    body.setdefault("requires", "all-completed")
    body.setdefault("routes", [])
    body.setdefault("priority", DEFAULT_PRIORITY)
    body.setdefault("retries", DEFAULT_RETRIES)
    body.setdefault("scopes", [])
    body.setdefault("payload", {})
    body.setdefault("tags", {})
    body.setdefault("extra", {})
    body.setdefault("projectId", DEFAULT_PROJECT_ID)
    if not isinstance(body["schedulerId"], str) or not IDENTIFIER.match(body["schedulerId"]):
        problems.append(f"schedulerId must be 1 to 38 of [a-zA-Z0-9-_], not {body['schedulerId']!r}")
    if not isinstance(body["taskGroupId"], str) or not SLUGID.match(body["taskGroupId"]):
        problems.append(f"taskGroupId {body['taskGroupId']!r} is not a slugid")
    if not isinstance(body["projectId"], str) or not PROJECT_ID.match(body["projectId"]):
        problems.append(f"projectId {body['projectId']!r} is not [a-zA-Z0-9._/-]*")
    _strings(body, "dependencies", MAX_DEPENDENCIES, problems, pattern=SLUGID)
    if isinstance(body["dependencies"], list):
        if task_id in body["dependencies"]:
            problems.append("a task cannot depend on itself")
        if len(set(body["dependencies"])) != len(body["dependencies"]):
            problems.append("dependencies lists a task twice")
    _strings(body, "routes", MAX_ROUTES, problems)
    _strings(body, "scopes", MAX_SCOPES, problems)
    if body["requires"] not in REQUIRES:
        problems.append(f"requires must be one of {list(REQUIRES)}, not {body['requires']!r}")
    if body["priority"] not in PRIORITIES:
        problems.append(f"priority must be one of {list(PRIORITIES)}, not {body['priority']!r}")
    retries = body["retries"]
    if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= MAX_RETRIES:
        problems.append(f"retries must be an integer from 0 to {MAX_RETRIES}, not {retries!r}")
    for field in ("payload", "tags", "extra"):
        if not isinstance(body[field], dict):
            problems.append(f"{field} must be an object")
    _metadata(body.get("metadata"), problems)
    created, deadline, expires = _dates(body, now, problems)
    if problems:
        raise TaskDefinitionError(problems)
    return TaskDefinition(task_id, body, created, deadline, expires)


def _task_queue(body: dict, problems: list[str]) -> None:
    """``taskQueueId``, or the legacy ``provisionerId`` and ``workerType``: both forms kept."""
    if "taskQueueId" in body:
        queue = body["taskQueueId"]
        if not isinstance(queue, str) or not TASK_QUEUE_ID.match(queue):
            problems.append(f"taskQueueId must be '<provisionerId>/<workerType>', not {queue!r}")
            return
        provisioner, worker_type = queue.split("/")
        if body.setdefault("provisionerId", provisioner) != provisioner or \
                body.setdefault("workerType", worker_type) != worker_type:
            problems.append("taskQueueId must equal provisionerId/workerType when both are given")
        return
    provisioner, worker_type = body.get("provisionerId"), body.get("workerType")
    if not all(isinstance(v, str) and IDENTIFIER.match(v) for v in (provisioner, worker_type)):
        problems.append("taskQueueId ('<provisionerId>/<workerType>') is required, or provisionerId and "
                        "workerType (1 to 38 of [a-zA-Z0-9-_] each)")
        return
    body["taskQueueId"] = f"{provisioner}/{worker_type}"


def _strings(body: dict, field: str, limit: int, problems: list[str], pattern=None) -> None:
    value = body[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(f"{field} must be a list of strings")
    elif len(value) > limit:
        problems.append(f"{field} has {len(value)} items; at most {limit}")
    elif pattern is not None and not all(pattern.match(v) for v in value):
        problems.append(f"{field} must hold slugids")


def _metadata(metadata, problems: list[str]) -> None:
    if not isinstance(metadata, dict):
        problems.append(f"metadata is required: an object with {', '.join(METADATA_FIELDS)}")
        return
    for field in METADATA_FIELDS:
        if not isinstance(metadata.get(field), str):
            problems.append(f"metadata.{field} is required: a string")


def _dates(body: dict, now: float, problems: list[str]) -> tuple[float, float, float]:
    created = parse_date(body.get("created"), "created", problems)
    deadline = parse_date(body.get("deadline"), "deadline", problems)
    if "expires" not in body and deadline is not None:
        body["expires"] = iso(deadline + DEFAULT_EXPIRES_S)
    expires = parse_date(body.get("expires"), "expires", problems) if "expires" in body else None
    if created is None or deadline is None or expires is None:
        return 0.0, 0.0, 0.0
    # as Taskcluster: ``created`` not ahead of the clock and ``deadline`` at most 5 days ahead
    # (15 minutes of drift each); an old ``created`` or a past ``deadline`` is taken, so that
    # the same definition sent again later still answers the task (a past deadline ends the
    # wait at the reconciler's next pass)
    if created > now + CREATED_SKEW_S:
        problems.append(f"created {body['created']} is more than 15 minutes ahead of the master's clock "
                        f"({iso(now)})")
    if deadline < created:
        problems.append("deadline must not be before created")
    if deadline > now + MAX_DEADLINE_S + CREATED_SKEW_S:
        problems.append("deadline must be at most 5 days ahead")
    if expires < deadline:
        problems.append("expires must not be before deadline")
    return created, deadline, expires


# -- status ---------------------------------------------------------------------------------


def status_json(task_id: str, body: dict, state: str, runs: list[dict], retries_left: int) -> dict:
    """Taskcluster's task status (``status`` answers ``{"status": ...}``)."""
    return {"taskId": task_id, "provisionerId": body["provisionerId"], "workerType": body["workerType"],
            "taskQueueId": body["taskQueueId"], "schedulerId": body["schedulerId"],
            "projectId": body["projectId"], "taskGroupId": body["taskGroupId"],
            "deadline": body["deadline"], "expires": body["expires"], "retriesLeft": retries_left,
            "state": state, "runs": runs}


def scheduled_run(runs: list[dict], reason: str, now: float) -> dict:
    """A new pending run (``reasonCreated``: scheduled, rerun, retry)."""
    return {"runId": len(runs), "state": PENDING, "reasonCreated": reason, "scheduled": iso(now)}


def resolve_run(run: dict, state: str, reason: str, now: float) -> dict:
    """``run`` resolved ``state`` for ``reason`` (completed, failed, canceled, deadline-exceeded...)."""
    resolved = dict(run)
    resolved.update({"state": state, "reasonResolved": reason, "resolved": iso(now)})
    return resolved


def state_of(runs: list[dict]) -> str:
    """A task's state: its last run's, or unscheduled when it has none."""
    return runs[-1]["state"] if runs else UNSCHEDULED
