"""Build requests: the queue each builder takes work from, and the claims on it.

A claim is one conditional UPDATE, so when masters share the database exactly one of them
wins a request, whatever the interleaving.
"""

from typing import Any

import sqlalchemy as sa

from buildfarm.common.results import CANCELLED
from buildfarm.master.db.base import DBComponent, from_json, paged, select_with_children, to_json
from buildfarm.master.db.model import builders, buildrequests, builds

_columns = sa.select(buildrequests, builders.c.name.label("buildername")).join(
    builders, builders.c.id == buildrequests.c.builderid
)
# PostgreSQL's LISTEN/NOTIFY channel on which a transaction that makes requests claimable (added,
# or put back in the queue) tells every master at its commit (master/cluster/wakeups.py).
WAKEUP_CHANNEL = "buildfarm_buildrequests"

_unclaimed = sa.and_(buildrequests.c.complete == 0, buildrequests.c.claimed_by_masterid.is_(None))
# The queue's order: highest priority first, then oldest first.
_queue_order = (buildrequests.c.priority.desc(), buildrequests.c.submitted_at, buildrequests.c.id)
# ``claim_next`` tries this many heads of the queue in one transaction before saying "none" (a
# head is lost only where the database cannot skip rows other masters hold: not on PostgreSQL).
CLAIM_NEXT_TRIES = 8


class BuildRequestsComponent(DBComponent):
    """Rows of ``buildrequests``: added by schedulers, claimed and completed by builders."""

    async def add(
        self,
        builderid: int,
        reason: str,
        properties: dict,
        submitted_at: float,
        priority: int = 0,
        buildsetid: int | None = None,
    ) -> int:
        statement = insert_statement(builderid, reason, properties, submitted_at, priority, buildsetid)

        def thd(conn: sa.Connection) -> int:
            brid = conn.execute(statement).inserted_primary_key[0]
            wake_masters(conn)
            return brid

        return await self._run(thd)

    async def get(self, brid: int) -> dict | None:
        found = await self._select(_columns.where(buildrequests.c.id == brid))
        return found[0] if found else None

    async def get_unclaimed(self, builderid: int) -> list[dict]:
        """Requests waiting for ``builderid``: highest priority first, then oldest first."""
        return await self._select(
            _columns.where(buildrequests.c.builderid == builderid, _unclaimed).order_by(*_queue_order))

    async def get_all(
        self,
        builderid: int | None = None,
        complete: bool | None = None,
        limit: int | None = None,
        offset: int = 0,
        buildsetid: int | None = None,
        results: int | None = None,
    ) -> list[dict]:
        """Requests, newest first, optionally of one builder / buildset / result, (in)complete
        ones only."""
        query = _filtered(_columns.order_by(buildrequests.c.id.desc()), builderid, complete,
                          buildsetid, results)
        return await self._select(paged(query, limit, offset))

    async def count(
        self,
        builderid: int | None = None,
        complete: bool | None = None,
        buildsetid: int | None = None,
        results: int | None = None,
    ) -> int:
        """How many requests ``get_all`` with the same filters lists over all its pages."""
        query = _filtered(sa.select(sa.func.count(buildrequests.c.id)), builderid, complete,
                          buildsetid, results)
        return await self._run(lambda conn: conn.execute(query).scalar_one())

    async def get_queue_by_builder(self) -> dict[str, dict]:
        """The unclaimed, incomplete requests of each builder that has some:
        ``{buildername: {"pending": N, "oldest_submitted_at": t}}``."""
        query = (
            sa.select(builders.c.name, sa.func.count(buildrequests.c.id),
                      sa.func.min(buildrequests.c.submitted_at))
            .join(builders, builders.c.id == buildrequests.c.builderid)
            .where(_unclaimed)
            .group_by(builders.c.name)
        )
        rows = await self._run(lambda conn: conn.execute(query).all())
        return {name: {"pending": count, "oldest_submitted_at": oldest} for name, count, oldest in rows}

    async def claim(self, brid: int, masterid: int, now: float) -> bool:
        """Take the request for ``masterid``; True iff this call (and no other) claimed it."""
        return await self._execute(_claim_statement(brid, masterid, now)) == 1

    async def claim_next(self, builderid: int, masterid: int, now: float) -> dict | None:
        """Claim the head of ``builderid``'s queue (``get_unclaimed``'s order) for ``masterid``
        and return it; None when nothing is waiting.  One transaction, without reading the
        queue first: the head is locked with ``FOR UPDATE SKIP LOCKED`` (PostgreSQL; ignored
        by SQLite, whose writers take turns), so masters claiming at the same time take
        different requests instead of waiting on the same row and losing it, and the claim
        itself is ``claim``'s conditional UPDATE."""
        head = (sa.select(buildrequests.c.id)
                .where(buildrequests.c.builderid == builderid, _unclaimed)
                .order_by(*_queue_order).limit(1).with_for_update(skip_locked=True))

        def thd(conn: sa.Connection) -> dict | None:
            for _ in range(CLAIM_NEXT_TRIES):
                brid = conn.execute(head).scalar()
                if brid is None:
                    return None
                if conn.execute(_claim_statement(brid, masterid, now)).rowcount == 1:
                    return select_with_children(conn, _columns.where(buildrequests.c.id == brid),
                                                builds.c.id, builds.c.buildrequestid, _dict)[0]
            return None

        return await self._run(thd)

    async def unclaim(self, brid: int, masterid: int | None = None) -> bool:
        """Put an incomplete request back in the queue; whether this call did.  With
        ``masterid`` only while that master still holds the claim (fenced: see ``complete``)."""
        which = buildrequests.c.id == brid
        if masterid is not None:
            which = sa.and_(which, buildrequests.c.claimed_by_masterid == masterid)
        return await self._release(which) > 0

    async def unclaim_all_of_master(self, masterid: int) -> None:
        """Put back every incomplete request ``masterid`` claimed (at master start-up)."""
        await self._release(buildrequests.c.claimed_by_masterid == masterid)

    async def complete(self, brid: int, results: int, now: float, masterid: int | None = None) -> bool:
        """Complete the request with ``results``; whether this call did.  With ``masterid``
        the write is fenced: it changes nothing unless the request is still incomplete and
        claimed by that master.  A master declared dead lost its claims when another master
        reclaimed it (``db.masters.reclaim``); the request may be running elsewhere, so
        completing it now would let it run to success twice."""
        query = sa.update(buildrequests).where(buildrequests.c.id == brid)
        if masterid is not None:
            query = query.where(buildrequests.c.claimed_by_masterid == masterid,
                                buildrequests.c.complete == 0)
        return await self._execute(query.values(complete=1, results=results, complete_at=now)) == 1

    async def cancel(self, brid: int, now: float) -> bool:
        """Complete a request nobody has claimed as CANCELLED; whether this call did.

        A claimed request is not touched: its build must be stopped instead.
        """
        update = (
            sa.update(buildrequests)
            .where(buildrequests.c.id == brid, _unclaimed)
            .values(complete=1, results=CANCELLED, complete_at=now)
        )
        return await self._execute(update) == 1

    async def _release(self, which: sa.ColumnElement[bool]) -> int:
        def thd(conn: sa.Connection) -> int:
            released = conn.execute(release_statement(which)).rowcount
            if released:
                wake_masters(conn)
            return released

        return await self._run(thd)

    async def _select(self, query: sa.Select) -> list[dict]:
        return await self._run(
            lambda conn: select_with_children(conn, query, builds.c.id, builds.c.buildrequestid, _dict))


def wake_masters(conn: sa.Connection) -> None:
    """On PostgreSQL, tell every master listening (``WAKEUP_CHANNEL``) that requests became
    claimable; delivered when the caller's transaction commits, never if it rolls back."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"NOTIFY {WAKEUP_CHANNEL}"))


def _claim_statement(brid: int, masterid: int, now: float) -> sa.Update:
    """The conditional UPDATE that claims request ``brid`` if nobody has (one row, or none)."""
    return (
        sa.update(buildrequests)
        .where(buildrequests.c.id == brid, _unclaimed)
        .values(claimed_by_masterid=masterid, claimed_at=now)
    )


def release_statement(which: sa.ColumnElement[bool]) -> sa.Update:
    """The UPDATE putting the incomplete requests matching ``which`` back in the queue (also
    run when a dead master is reclaimed, master/db/masters.py)."""
    return (
        sa.update(buildrequests)
        .where(which, buildrequests.c.complete == 0)
        .values(claimed_by_masterid=None, claimed_at=None)
    )


def _filtered(
    query: sa.Select, builderid: int | None, complete: bool | None, buildsetid: int | None,
    results: int | None,
) -> sa.Select:
    if builderid is not None:
        query = query.where(buildrequests.c.builderid == builderid)
    if buildsetid is not None:
        query = query.where(buildrequests.c.buildsetid == buildsetid)
    if results is not None:
        query = query.where(buildrequests.c.results == results)
    if complete is not None:
        query = query.where(buildrequests.c.complete == int(bool(complete)))
    return query


def insert_statement(
    builderid: int,
    reason: str,
    properties: dict,
    submitted_at: float,
    priority: int = 0,
    buildsetid: int | None = None,
) -> sa.Insert:
    """The INSERT of one new, unclaimed request (also run by ``buildsets.add``)."""
    return sa.insert(buildrequests).values(
        builderid=builderid,
        reason=reason,
        properties=to_json(properties),
        submitted_at=submitted_at,
        priority=priority,
        buildsetid=buildsetid,
    )


def _dict(row: sa.Row, buildids: list[int]) -> dict[str, Any]:
    return {
        "buildrequestid": row.id,
        "buildsetid": row.buildsetid,
        "builderid": row.builderid,
        "buildername": row.buildername,
        "priority": row.priority,
        "reason": row.reason,
        "properties": from_json(row.properties),
        "submitted_at": row.submitted_at,
        "claimed": row.claimed_by_masterid is not None,
        "claimed_by_masterid": row.claimed_by_masterid,
        "claimed_at": row.claimed_at,
        "complete": bool(row.complete),
        "results": row.results,
        "complete_at": row.complete_at,
        "buildids": buildids,
    }
