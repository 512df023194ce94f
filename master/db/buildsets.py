"""Buildsets: one scheduler decision to build, made of one build request per builder.

A buildset completes when every one of its requests has, with the worst of their results
(``buildfarm.common.results.worst_result``: SKIPPED < SUCCESS < WARNINGS < FAILURE <
EXCEPTION < RETRY < CANCELLED).
"""

from collections.abc import Callable, Sequence
from functools import reduce
from typing import Any

import sqlalchemy as sa

from buildfarm.common.results import SUCCESS, worst_result
from buildfarm.master.db import outbox
from buildfarm.master.db.base import DBComponent, from_json, paged, select_with_children, to_json
from buildfarm.master.db.buildrequests import insert_statement, wake_masters
from buildfarm.master.db.model import buildrequests, buildsets


class BuildsetsComponent(DBComponent):
    """Rows of ``buildsets``, each with its build requests."""

    async def add(
        self,
        scheduler: str,
        reason: str,
        properties: dict,
        builderids: list[int],
        submitted_at: float,
        priority: int = 0,
        parent_buildid: int | None = None,
        messages: Callable[[int, dict[int, int]], Sequence] | None = None,
    ) -> tuple[int, dict[int, int]]:
        """Insert a buildset and a request for each builder, in one transaction.

        Returns ``(bsid, {builderid: buildrequestid})``; a builder listed twice gets one
        request.  ``messages(bsid, brids)`` makes the messages for the broker that go to the
        outbox in the same transaction.
        """
        insert = sa.insert(buildsets).values(
            scheduler=scheduler,
            reason=reason,
            properties=to_json(properties),
            submitted_at=submitted_at,
            parent_buildid=parent_buildid,
        )

        def thd(conn: sa.Connection) -> tuple[int, dict[int, int]]:
            bsid = conn.execute(insert).inserted_primary_key[0]
            brids = {}
            for builderid in dict.fromkeys(builderids):
                request = insert_statement(
                    builderid, reason, properties, submitted_at, priority, buildsetid=bsid
                )
                brids[builderid] = conn.execute(request).inserted_primary_key[0]
            if messages is not None:
                outbox.add_all(conn, messages(bsid, brids))
            wake_masters(conn)
            return bsid, brids

        return await self._run(thd)

    async def get(self, bsid: int) -> dict | None:
        found = await self._select(sa.select(buildsets).where(buildsets.c.id == bsid))
        return found[0] if found else None

    async def get_all(
        self, complete: bool | None = None, limit: int | None = None, offset: int = 0
    ) -> list[dict]:
        """Buildsets, newest first, optionally (in)complete ones only."""
        query = sa.select(buildsets).order_by(buildsets.c.id.desc())
        if complete is not None:
            query = query.where(buildsets.c.complete == int(bool(complete)))
        return await self._select(paged(query, limit, offset))

    async def complete_if_done(
        self, bsid: int, now: float, messages: Callable[[int], Sequence] | None = None
    ) -> int | None:
        """Complete the buildset if all its requests are; the results it completed with.

        None when some request is still incomplete, when the buildset is unknown, or when
        it was already complete: of two callers racing to complete it, exactly one gets
        the results and the other gets None (the final UPDATE matches only a buildset
        still incomplete, so it changes the row once).  A buildset without requests
        completes with SUCCESS.  ``messages(results)`` makes the messages for the broker
        (``buildset-completed``) that go to the outbox in the same transaction, made only by
        the caller that completes it.
        """

        def thd(conn: sa.Connection) -> int | None:
            requests = conn.execute(
                sa.select(buildrequests.c.complete, buildrequests.c.results).where(
                    buildrequests.c.buildsetid == bsid
                )
            ).all()
            if not all(request.complete for request in requests):
                return None
            results = _worst([r.results for r in requests if r.results is not None])
            incomplete_request = sa.exists().where(
                buildrequests.c.buildsetid == bsid, buildrequests.c.complete == 0
            )
            update = (
                sa.update(buildsets)
                .where(buildsets.c.id == bsid, buildsets.c.complete == 0, ~incomplete_request)
                .values(complete=1, complete_at=now, results=results)
            )
            if conn.execute(update).rowcount != 1:
                return None
            if messages is not None:
                outbox.add_all(conn, messages(results))
            return results

        return await self._run(thd)

    async def _select(self, query: sa.Select) -> list[dict]:
        return await self._run(
            lambda conn: select_with_children(
                conn, query, buildrequests.c.id, buildrequests.c.buildsetid, _dict))


def _worst(results: list[int]) -> int:
    return reduce(worst_result, results) if results else SUCCESS


def _dict(row: sa.Row, buildrequestids: list[int]) -> dict[str, Any]:
    return {
        "bsid": row.id,
        "scheduler": row.scheduler,
        "reason": row.reason,
        "properties": from_json(row.properties),
        "submitted_at": row.submitted_at,
        "complete": bool(row.complete),
        "complete_at": row.complete_at,
        "results": row.results,
        "parent_buildid": row.parent_buildid,
        "buildrequestids": buildrequestids,
    }
