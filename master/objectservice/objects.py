"""``ObjectStore``: the Object service's objects in the master's database (``objects``,
master/db/model.py).

An object is a name -> the CAS entry that holds its bytes (its SHA-256 ``digest`` in the
``sha256-flat`` namespace), with its projectId, its expiry and the hashes its uploader declared.
Its life, as Taskcluster's:

1. ``create_upload`` makes it, unfinished, with a secret ``uploadId``; the same call again (same
   uploadId, projectId and expiry) is allowed, anything else is a conflict;
2. its bytes arrive (``record_data``: inline with ``createUpload``, or by the PUT of its
   ``putUrl``), and the master records what it measured of them (``received``);
3. ``finish`` checks the declared hashes against the measured ones and makes it immutable
   (``upload_id`` null); a finished object can be downloaded.

Each public method is one transaction in the database's pool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import sqlalchemy as sa

from buildfarm.master.db.model import objects

UPLOAD_TTL_S = 24 * 3600  # an unfinished upload expires after a day (Taskcluster's)
HASH_ALGORITHMS = ("sha256", "sha512")  # the acceptable ones; others declared are kept, unchecked


class ObjectConflict(Exception):
    """A call the object's state refuses (409): another uploadId, a changed hash..."""


class ObjectInputError(ValueError):
    """A call whose input does not fit the object (400): hashes that do not match the bytes..."""


class UnknownObject(KeyError):
    """No object (or no finished object) has this name (404)."""


@dataclass(frozen=True)
class StoredObject:
    """An object as stored."""

    name: str
    project_id: str
    upload_id: str | None  # None once finished
    expires: float
    content_type: str
    digest: str | None  # SHA-256 of the bytes received (None until they arrive)
    hashes: dict  # as declared by the uploader
    received: dict  # as measured: {sha256, sha512, size}

    @property
    def finished(self) -> bool:
        return self.upload_id is None


class ObjectStore:
    """The objects over ``db`` (the master's ``DBConnector``)."""

    def __init__(self, db):
        self.db = db

    async def get(self, name: str) -> StoredObject | None:
        """The object (finished or not), or None."""
        return await self.db.run(lambda conn: _get(conn, name))

    async def finished(self, name: str, now: float) -> StoredObject:
        """The finished, unexpired object; ``UnknownObject`` otherwise."""
        found = await self.get(name)
        if found is None or not found.finished or found.expires <= now:
            raise UnknownObject(name)
        return found

    async def create_upload(self, name: str, project_id: str, upload_id: str, expires: float,
                            hashes: dict, now: float) -> StoredObject:
        """Begin (or repeat the beginning of) the upload of ``name``; ``ObjectConflict`` when
        the object exists with another uploadId, projectId or expiry, is finished, or has
        another value for a hash declared here."""

        def thd(conn: sa.Connection) -> StoredObject:
            found = _get(conn, name, lock=True)
            if found is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(objects).values(
                            name=name, project_id=project_id, upload_id=upload_id,
                            upload_expires=now + UPLOAD_TTL_S, expires=expires, hashes="{}", received="{}",
                            created=now))
                except sa.exc.IntegrityError:  # made at the same time by another call
                    pass
                found = _get(conn, name, lock=True)
            if (found.upload_id != upload_id or found.project_id != project_id
                    or abs(found.expires - expires) >= 0.001):
                raise ObjectConflict(f"object {name!r} already exists")
            return _add_hashes(conn, found, hashes)

        return await self.db.run(thd)

    async def record_data(self, name: str, upload_id: str, content_type: str, received: dict) -> None:
        """The bytes of the unfinished upload ``upload_id`` of ``name`` are in the store:
        ``received`` (``{sha256, sha512, size}``) is what the master measured of them."""

        def thd(conn: sa.Connection) -> None:
            done = conn.execute(sa.update(objects).where(objects.c.name == name,
                                                         objects.c.upload_id == upload_id)
                                .values(digest=received["sha256"], received=json.dumps(received),
                                        content_type=content_type)).rowcount
            if not done:
                raise ObjectConflict(f"object {name!r} has no unfinished upload {upload_id}")

        await self.db.run(thd)

    async def finish(self, name: str, project_id: str, upload_id: str, hashes: dict) -> StoredObject:
        """Finish the upload: the declared hashes (these and the earlier ones) must be those of
        the bytes received.  Again on a finished object: allowed when it adds no hash and
        changes none (``ObjectConflict`` otherwise)."""

        def thd(conn: sa.Connection) -> StoredObject:
            found = _get(conn, name, lock=True)
            if found is None:
                raise UnknownObject(name)
            if found.project_id != project_id:
                raise ObjectInputError(f"object {name!r} does not have projectId {project_id!r}")
            if found.finished:
                for algorithm, value in hashes.items():
                    if found.hashes.get(algorithm) != value:
                        raise ObjectConflict(f"object {name!r} is already finished, without or with "
                                             f"another {algorithm} hash")
                return found
            if found.upload_id != upload_id:
                raise ObjectConflict(f"object {name!r} does not have uploadId {upload_id}")
            found = _add_hashes(conn, found, hashes)
            if found.digest is None:
                raise ObjectInputError(f"no data was uploaded for object {name!r}: PUT it to the putUrl "
                                       "createUpload gave first")
            for algorithm in HASH_ALGORITHMS:
                declared = found.hashes.get(algorithm)
                if declared is not None and declared != found.received.get(algorithm):
                    raise ObjectInputError(f"the {algorithm} hash declared for object {name!r} is not the "
                                           f"data's: {found.received.get(algorithm)}")
            conn.execute(sa.update(objects).where(objects.c.name == name)
                         .values(upload_id=None, upload_expires=None))
            return _get(conn, name)

        return await self.db.run(thd)


    async def put_finished(self, name: str, project_id: str, expires: float, content_type: str,
                           received: dict, now: float) -> None:
        """A finished object whose bytes are already in the store (a PB run's output): made, or
        replaced when the name is taken (a run's artifact registered again)."""

        def thd(conn: sa.Connection) -> None:
            conn.execute(sa.delete(objects).where(objects.c.name == name))
            conn.execute(sa.insert(objects).values(
                name=name, project_id=project_id, upload_id=None, upload_expires=None, expires=expires,
                content_type=content_type, digest=received["sha256"], hashes=json.dumps({}),
                received=json.dumps(received), created=now))

        await self.db.run(thd)


def _get(conn: sa.Connection, name: str, lock: bool = False) -> StoredObject | None:
    query = sa.select(objects).where(objects.c.name == name)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return None
    return StoredObject(row.name, row.project_id, row.upload_id, row.expires, row.content_type, row.digest,
                        json.loads(row.hashes), json.loads(row.received))


def _add_hashes(conn: sa.Connection, found: StoredObject, hashes: dict) -> StoredObject:
    """``found`` with ``hashes`` added; ``ObjectConflict`` when one changes a declared value."""
    merged = dict(found.hashes)
    for algorithm, value in hashes.items():
        if merged.setdefault(algorithm, value) != value:
            raise ObjectConflict(f"object {found.name!r} already has another {algorithm} hash")
    if merged != found.hashes:
        conn.execute(sa.update(objects).where(objects.c.name == found.name)
                     .values(hashes=json.dumps(merged, sort_keys=True)))
    return StoredObject(found.name, found.project_id, found.upload_id, found.expires, found.content_type,
                        found.digest, merged, found.received)
