"""Builds: one row per attempt at a build request, numbered 1, 2, ... per builder."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db import outbox
from buildfarm.master.db.base import DBComponent, from_json, paged, to_json
from buildfarm.master.db.model import builders, builds, slaves

_columns = (
    sa.select(builds, builders.c.name.label("buildername"), slaves.c.name.label("slavename"))
    .join(builders, builders.c.id == builds.c.builderid)
    .join(slaves, slaves.c.id == builds.c.slaveid)
)


class BuildsComponent(DBComponent):
    """Rows of ``builds``: started by a builder for a claimed request, finished with results."""

    async def add(
        self,
        builderid: int,
        buildrequestid: int,
        slaveid: int,
        masterid: int,
        started_at: float,
        state_string: str = "starting",
        properties: dict | None = None,
    ) -> tuple[int, int]:
        """Insert a build with the builder's next number; ``(buildid, number)``."""
        values = {
            "builderid": builderid,
            "buildrequestid": buildrequestid,
            "slaveid": slaveid,
            "masterid": masterid,
            "started_at": started_at,
            "state_string": state_string,
            "properties": to_json(properties),
        }

        def thd(conn: sa.Connection) -> tuple[int, int]:
            number = _next_number(conn, builderid)
            insert = sa.insert(builds).values(number=number, **values)
            return conn.execute(insert).inserted_primary_key[0], number

        return await self._run(thd)

    async def finish(
        self, buildid: int, results: int, complete_at: float, state_string: str,
        masterid: int | None = None,
        messages: Sequence = (),
    ) -> bool:
        """Record the build's end; whether this call did.  With ``masterid`` (the master that
        runs it) the write is fenced: it changes nothing unless the build is still unfinished
        and still that master's, so a master declared dead, whose build another master already
        ended RETRY (``db.masters.reclaim``), cannot overwrite that RETRY.  ``messages`` (for the
        broker: ``exchange``, ``routing_key``, ``payload``) go to the outbox in the same
        transaction, and only if the end was recorded."""
        query = sa.update(builds).where(builds.c.id == buildid)
        if masterid is not None:
            query = query.where(builds.c.masterid == masterid, builds.c.complete_at.is_(None))
        update = query.values(results=results, complete_at=complete_at, state_string=state_string)

        def thd(conn: sa.Connection) -> bool:
            if conn.execute(update).rowcount != 1:
                return False
            outbox.add_all(conn, messages)
            return True

        return await self._run(thd)

    async def set_state(self, buildid: int, state_string: str) -> None:
        await self._set(buildid, state_string=state_string)

    async def set_properties(self, buildid: int, properties: dict) -> None:
        """Replace the build's properties (the master writes them when the build ends)."""
        await self._set(buildid, properties=to_json(properties))

    async def get(self, buildid: int) -> dict | None:
        return await self._fetch_one(_columns.where(builds.c.id == buildid), _dict)

    async def get_all(
        self,
        builderid: int | None = None,
        complete: bool | None = None,
        slaveid: int | None = None,
        limit: int | None = None,
        offset: int = 0,
        results: int | None = None,
    ) -> list[dict]:
        """Builds, newest first, optionally of one builder / slave / result, (in)complete ones only."""
        query = _filtered(_columns.order_by(builds.c.id.desc()), builderid, complete, slaveid, results)
        return await self._fetch_all(paged(query, limit, offset), _dict)

    async def count(
        self,
        builderid: int | None = None,
        complete: bool | None = None,
        slaveid: int | None = None,
        results: int | None = None,
    ) -> int:
        """How many builds ``get_all`` with the same filters lists over all its pages."""
        query = _filtered(sa.select(sa.func.count(builds.c.id)), builderid, complete, slaveid, results)
        return await self._run(lambda conn: conn.execute(query).scalar_one())

    async def get_last_finished_by_builder(self) -> dict[int, dict]:
        """``{builderid: its newest finished build}`` for every builder that finished one."""
        newest = (
            sa.select(sa.func.max(builds.c.id))
            .where(builds.c.complete_at.is_not(None))
            .group_by(builds.c.builderid)
        )
        rows = await self._fetch_all(_columns.where(builds.c.id.in_(newest)), _dict)
        return {row["builderid"]: row for row in rows}

    async def get_unfinished_of_master(self, masterid: int) -> list[dict]:
        """Builds ``masterid`` started and never finished (oldest first), for start-up."""
        query = _columns.where(
            builds.c.masterid == masterid, builds.c.complete_at.is_(None)
        ).order_by(builds.c.id)
        return await self._fetch_all(query, _dict)

    async def _set(self, buildid: int, **values) -> None:
        await self._execute(sa.update(builds).where(builds.c.id == buildid).values(**values))


def finish_unfinished_of_master_statement(masterid: int, results: int, now: float,
                                          state_string: str) -> sa.Update:
    """The UPDATE ending every build ``masterid`` started and never finished (a dead master's,
    master/db/masters.py)."""
    return (sa.update(builds)
            .where(builds.c.masterid == masterid, builds.c.complete_at.is_(None))
            .values(results=results, complete_at=now, state_string=state_string))


def _filtered(
    query: sa.Select, builderid: int | None, complete: bool | None, slaveid: int | None,
    results: int | None,
) -> sa.Select:
    if builderid is not None:
        query = query.where(builds.c.builderid == builderid)
    if slaveid is not None:
        query = query.where(builds.c.slaveid == slaveid)
    if results is not None:
        query = query.where(builds.c.results == results)
    if complete is not None:
        done = builds.c.complete_at.is_not(None)
        query = query.where(done if complete else sa.not_(done))
    return query


def _next_number(conn: sa.Connection, builderid: int) -> int:
    # Lock the builder's row first (FOR UPDATE; SQLite's BEGIN IMMEDIATE already holds the
    # write lock) so that two masters cannot compute the same number.
    conn.execute(sa.select(builders.c.id).where(builders.c.id == builderid).with_for_update())
    query = sa.select(sa.func.max(builds.c.number)).where(builds.c.builderid == builderid)
    return (conn.execute(query).scalar() or 0) + 1


def _dict(row: sa.Row) -> dict[str, Any]:
    return {
        "buildid": row.id,
        "number": row.number,
        "builderid": row.builderid,
        "buildername": row.buildername,
        "buildrequestid": row.buildrequestid,
        "slaveid": row.slaveid,
        "slavename": row.slavename,
        "masterid": row.masterid,
        "started_at": row.started_at,
        "complete": row.complete_at is not None,
        "complete_at": row.complete_at,
        "state_string": row.state_string,
        "results": row.results,
        "properties": from_json(row.properties),
    }
