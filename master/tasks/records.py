"""Between the task model and the database: a request as the rows ``db.tasks`` stores, and
back.  The database stores JSON and hashes; this module decides what they are."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from buildfarm.master.db.tasks import NewSlice, NewTask
from buildfarm.master.tasks.dimensions import queue_key
from buildfarm.master.tasks.model import TaskRequest, request_from_storage, request_to_storage


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
