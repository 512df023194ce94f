"""``ArtifactStore``: the Queue's artifacts in the master's database (``queue_artifacts``,
master/db/model.py), one row per (taskId, runId, name).

An artifact is ``object`` (its bytes an object of the Object service, named
``object_name(taskId, runId, name)``; present once ``finishArtifact`` found the object
finished), ``reference`` (a URL), ``link`` (another artifact of the same run) or ``error``
(a reason and a message); the last three are present at once.  Creating one again is allowed
as Taskcluster allows it (``compatible``): the same content type (a link has none), an expiry
extended but not shortened, the same details (a reference's URL may change), and a reference
may become a link; anything else is an ``ArtifactConflict``.

Each public method is one transaction in the database's pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import sqlalchemy as sa

from buildfarm.master.auth.interfaces import iso, parse_iso
from buildfarm.master.db.model import queue_artifacts as artifacts
from buildfarm.master.queue.events import announce_artifact, run_announcing
from buildfarm.master.queue.store import _get as _get_task

OBJECT, REFERENCE, LINK, ERROR = "object", "reference", "link", "error"
STORAGE_TYPES = (OBJECT, REFERENCE, LINK, ERROR)


class ArtifactConflict(Exception):
    """An artifact created again with what Taskcluster does not allow to change (409);
    ``original`` is the stored one."""

    def __init__(self, message: str, original: StoredArtifact):
        super().__init__(message)
        self.original = original


@dataclass(frozen=True)
class StoredArtifact:
    """An artifact as stored."""

    task_id: str
    run_id: int
    name: str
    storage_type: str
    content_type: str
    expires: float
    details: dict
    present: bool
    content_length: int | None = None

    def info(self) -> dict:
        """Taskcluster's artifact: ``{storageType, name, expires, contentType, contentLength?}``."""
        shown = {"storageType": self.storage_type, "name": self.name, "expires": iso(self.expires),
                 "contentType": self.content_type}
        if self.content_length is not None:
            shown["contentLength"] = self.content_length
        return shown


def object_name(task_id: str, run_id: int, name: str) -> str:
    """The Object service's name of an object artifact's bytes (Taskcluster's)."""
    return f"t/{task_id}/{run_id}/{name}"


def compatible(original: StoredArtifact, new: StoredArtifact) -> bool:
    """Whether ``new`` may replace ``original`` (Taskcluster's ``createArtifactCallsCompatible``)."""
    if new.storage_type != LINK and original.content_type != new.content_type:
        return False
    if original.expires > new.expires:
        return False
    if original.storage_type == new.storage_type:
        return original.details == new.details or new.storage_type == REFERENCE
    return original.storage_type == REFERENCE and new.storage_type == LINK


class ArtifactStore:
    """The Queue's artifacts over ``db`` (the master's ``DBConnector``); with ``mq`` (the
    master's ``IEventBus``) an artifact announces itself on artifact-created once it is there
    (master/queue/events.py): created present, or its upload finished."""

    def __init__(self, db, mq=None):
        self.db = db
        self.mq = mq

    async def _run(self, fn):
        return await run_announcing(self.db, self.mq, fn)

    async def create(self, artifact: StoredArtifact, now: float) -> StoredArtifact:
        """Store ``artifact``, or update the stored one when ``compatible`` allows;
        ``ArtifactConflict`` otherwise."""

        def thd(conn: sa.Connection) -> StoredArtifact:
            try:
                with conn.begin_nested():
                    conn.execute(sa.insert(artifacts).values(
                        task_id=artifact.task_id, run_id=artifact.run_id, name=artifact.name,
                        storage_type=artifact.storage_type, content_type=artifact.content_type,
                        content_length=artifact.content_length, details=json.dumps(artifact.details),
                        present=artifact.present, expires=artifact.expires, created=now))
                if artifact.present:
                    announce_artifact(conn, _get_task(conn, artifact.task_id), artifact)
                return artifact
            except sa.exc.IntegrityError:
                pass
            original = _get(conn, artifact.task_id, artifact.run_id, artifact.name, lock=True)
            if not compatible(original, artifact):
                raise ArtifactConflict(f"artifact {artifact.name!r} already exists with another storageType, "
                                       "contentType, details or a later expiry", original)
            conn.execute(_where(sa.update(artifacts), artifact.task_id, artifact.run_id, artifact.name)
                         .values(storage_type=artifact.storage_type, details=json.dumps(artifact.details),
                                 expires=artifact.expires))
            return replace(original, storage_type=artifact.storage_type, details=artifact.details,
                           expires=artifact.expires)

        return await self._run(thd)

    async def get(self, task_id: str, run_id: int, name: str) -> StoredArtifact | None:
        return await self.db.run(lambda conn: _get(conn, task_id, run_id, name))

    async def mark_present(self, task_id: str, run_id: int, name: str) -> None:
        """An object artifact's bytes are uploaded: it is present (its uploadId forgotten)."""

        def thd(conn: sa.Connection) -> None:
            found = _get(conn, task_id, run_id, name, lock=True)
            conn.execute(_where(sa.update(artifacts), task_id, run_id, name)
                         .values(present=True, details="{}"))
            if found is not None and not found.present:
                announce_artifact(conn, _get_task(conn, task_id), replace(found, present=True, details={}))

        await self._run(thd)

    async def list(self, task_id: str, run_id: int, after: str | None, limit: int) -> list[StoredArtifact]:
        """Up to ``limit`` present artifacts of the run, by name, after ``after``."""
        query = sa.select(artifacts).where(artifacts.c.task_id == task_id, artifacts.c.run_id == run_id,
                                           artifacts.c.present.is_(True))
        if after is not None:
            query = query.where(artifacts.c.name > after)
        query = query.order_by(artifacts.c.name).limit(limit)
        return await self.db.run(lambda conn: [_stored(row) for row in conn.execute(query).all()])


def _where(statement, task_id: str, run_id: int, name: str):
    return statement.where(artifacts.c.task_id == task_id, artifacts.c.run_id == run_id,
                           artifacts.c.name == name)


def _get(conn: sa.Connection, task_id: str, run_id: int, name: str,
         lock: bool = False) -> StoredArtifact | None:
    query = _where(sa.select(artifacts), task_id, run_id, name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    return None if row is None else _stored(row)


def _stored(row) -> StoredArtifact:
    return StoredArtifact(row.task_id, row.run_id, row.name, row.storage_type, row.content_type, row.expires,
                          json.loads(row.details), bool(row.present), row.content_length)


async def register_collected(artifacts: ArtifactStore, objects, task, run_id: int, collected,
                             now: float) -> None:
    """Record what a PB run's outputs gave (``payload.collect_artifacts``) as the run's
    artifacts: each found file an ``object`` artifact whose object (``objects``, an
    ``ObjectStore``) is its stored bytes, each missing one an ``error`` artifact
    (``file-missing-on-worker``); expiring as the payload says, never after the task."""
    task_expires = _task_expires(task)
    for found in collected:
        expires = min(found.expires or task_expires, task_expires)
        if found.missing is not None:
            artifact = StoredArtifact(task.task_id, run_id, found.name, ERROR, "application/binary", expires,
                                      {"reason": "file-missing-on-worker", "message": found.missing}, True)
        else:
            await objects.put_finished(object_name(task.task_id, run_id, found.name), task.body["projectId"],
                                       expires, found.content_type, found.received, now)
            artifact = StoredArtifact(task.task_id, run_id, found.name, OBJECT, found.content_type, expires,
                                      {}, True, found.received["size"])
        try:
            await artifacts.create(artifact, now)
        except ArtifactConflict:  # registered already (a reconcile pass repeated)
            pass


def _task_expires(task) -> float:
    return parse_iso(task.body["expires"]) or 0.0
