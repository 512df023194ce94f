"""Between the task model and the database: a request as the rows ``db.tasks`` stores, and
back.  The database stores JSON and hashes; this module decides what they are."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from buildfarm.common.faceids import SWARMING, face_id
from buildfarm.master.db.tasks import NewSlice, NewTask
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.dimensions import queue_key
from buildfarm.master.tasks.model import (
    State,
    TaskRequest,
    is_failure,
    request_from_storage,
    request_to_storage,
)

QUEUE_TASK_TAG = "queue_task_id:"  # the tag of a task that runs a Queue task (master/queue/payload.py)
# Summary/try timestamps and their names in Swarming's v1 TaskResult.
_TIMESTAMPS = (("created_at", "created_ts"), ("started_at", "started_ts"), ("completed_at", "completed_ts"),
               ("abandoned_at", "abandoned_ts"), ("modified_at", "modified_ts"))


def new_task(request: TaskRequest, request_id: int, created_at: float,
             result: Mapping[str, Any] | None = None) -> NewTask:
    """The rows of a new ``request`` with id ``request_id``: each slice's properties hash and
    queue key worked out, secrets apart, ``expiration_at`` = creation + the slices' expirations."""
    slices = [NewSlice(properties_hash=s.properties.properties_hash(), expiration_secs=s.expiration_secs,
                       queue_key=queue_key(s.properties.dimensions_dict()),
                       idempotent=s.properties.idempotent, secret_bytes=s.properties.secret_bytes)
              for s in request.task_slices]
    return NewTask(request_id=request_id, created_at=created_at, name=request.name, priority=request.priority,
                   request=request_to_storage(request), slices=slices,
                   expiration_at=created_at + request.expiration_secs, user=request.user, tags=request.tags,
                   request_uuid=request.request_uuid, parent_task_id=request.parent_task_id,
                   result=dict(result or {}))


def request_of(stored: Mapping[str, Any]) -> TaskRequest:
    """The request of ``db.tasks.get_request``'s answer, secrets included."""
    return request_from_storage(stored["request"], stored["secrets"])


def v1_timestamp(epoch_s: float) -> str:
    """Swarming v1's timestamp: naive UTC ``YYYY-MM-DDTHH:MM:SS[.ffffff]``, no ``Z`` (its
    client crashes on one)."""
    moment = datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).replace(tzinfo=None)
    return moment.isoformat()


def queue_task_id(request_id: int, tags) -> str:
    """The Queue's taskId of a task: the Queue task it runs (its ``queue_task_id:`` tag), else
    the task's own face (master/queue/faces.py; ``GET /api/queue/v1/task/<taskId>/status``)."""
    tagged = next((t.partition(":")[2] for t in tags if t.startswith(QUEUE_TASK_TAG)), None)
    return tagged or face_id(SWARMING, request_id)


def result_to_json(stored: Mapping[str, Any], result: Mapping[str, Any],
                   run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Swarming v1's TaskResult of a task (``stored``: ``db.tasks.get_request``; ``result``: its
    summary), or of one try of it when ``run`` is given.  int64 as strings, naive UTC
    timestamps, unset fields left out (as Cloud Endpoints did)."""
    request_id = stored["request_id"]
    source = run if run is not None else result
    try_number = run["try_number"] if run is not None else result.get("try_number")
    state = State(source["state"])
    answer: dict[str, Any] = {
        "task_id": ids.run_id(request_id, try_number) if run is not None else ids.summary_id(request_id),
        "name": stored["name"], "user": stored["user"], "tags": list(stored["tags"]),
        "state": state.value, "bot_id": source.get("slave"),
        "exit_code": None if source.get("exit_code") is None else str(source["exit_code"]),
        "duration": source.get("duration"),
        "try_number": None if try_number is None else str(try_number),
        "current_task_slice": str(source.get("slice_index", result.get("current_slice", 0))),
        "deduped_from": result.get("deduped_from") if run is None else None,
        "failure": is_failure(state, source.get("exit_code")),
        "internal_failure": state.is_internal_failure or bool(source.get("internal_failure")),
        "outputs_ref": source.get("outputs_ref"),
        # why a task ended without running (NO_RESOURCE: the nearest slaves and what they lack);
        # not "error": Swarming's clients take a 200 body with "error" for a failed call
        "error_message": result.get("error") if run is None else None,
        "costs_usd": [],
        "queue_task_id": queue_task_id(request_id, stored["tags"]),
    }
    if try_number:
        answer["run_id"] = ids.run_id(request_id, try_number)
    timestamps = {**result, **(run or {})}
    if run is not None:
        timestamps["created_at"] = result["created_at"]
    for ours, theirs in _TIMESTAMPS:
        if timestamps.get(ours) is not None:
            answer[theirs] = v1_timestamp(timestamps[ours])
    return {key: value for key, value in answer.items() if value is not None}
