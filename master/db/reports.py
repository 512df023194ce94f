"""The ``reports`` table: what each reporter owes, recorded before it is sent."""

import json
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import builds, reports

PENDING, SENT, FAILED = "pending", "sent", "failed"
ERROR_MAX_CHARS = 2000


class ReportsComponent(DBComponent):
    """Rows of ``reports``: recorded once per (reporter, event), sent by the master that
    recorded them, retried until sent or given up."""

    async def record(self, reporter: str, event: str, masterid: int, payload: list, now: float) -> bool:
        """Record that ``reporter`` owes ``payload`` (JSON-able) about ``event``; False (and
        nothing changes) when it already recorded that event."""
        insert = sa.insert(reports).values(
            reporter=reporter, event=event, masterid=masterid, reports=json.dumps(payload),
            created_at=now, state=PENDING, attempts=0, next_attempt_at=now, last_error="")

        def thd(conn: sa.Connection) -> bool:
            try:
                with conn.begin_nested():
                    conn.execute(insert)
            except sa.exc.IntegrityError:
                return False
            return True

        return await self._run(thd)

    async def recorded_events(self, reporter: str, events: list[str]) -> set[str]:
        """Which of ``events`` ``reporter`` recorded already (in any state)."""
        if not events:
            return set()
        query = sa.select(reports.c.event).where(reports.c.reporter == reporter,
                                                 reports.c.event.in_(events))
        return set(await self._run(lambda conn: conn.execute(query).scalars().all()))

    async def get_pending(self, reporter: str, masterid: int, limit: int = 100) -> list[dict]:
        """The pending reports of ``reporter`` that ``masterid`` sends, oldest first."""
        query = (sa.select(reports)
                 .where(reports.c.reporter == reporter, reports.c.masterid == masterid,
                        reports.c.state == PENDING)
                 .order_by(reports.c.id).limit(limit))
        return await self._fetch_all(query, _dict)

    async def get_all(self, reporter: str | None = None) -> list[dict]:
        """Every report (of one reporter), oldest first."""
        query = sa.select(reports).order_by(reports.c.id)
        if reporter is not None:
            query = query.where(reports.c.reporter == reporter)
        return await self._fetch_all(query, _dict)

    async def mark_sent(self, reportid: int, now: float) -> None:
        await self._execute(sa.update(reports).where(reports.c.id == reportid).values(
            state=SENT, done_at=now, attempts=reports.c.attempts + 1))

    async def mark_failed(self, reportid: int, now: float, error: str) -> None:
        """Give the report up (it is kept, with why)."""
        await self._execute(sa.update(reports).where(reports.c.id == reportid).values(
            state=FAILED, done_at=now, attempts=reports.c.attempts + 1,
            last_error=error[:ERROR_MAX_CHARS]))

    async def retry_later(self, reportid: int, next_attempt_at: float, error: str) -> None:
        """One more failed attempt; try again at ``next_attempt_at``."""
        await self._execute(sa.update(reports).where(reports.c.id == reportid).values(
            attempts=reports.c.attempts + 1, next_attempt_at=next_attempt_at,
            last_error=error[:ERROR_MAX_CHARS]))

    async def delete_done_before(self, reporter: str, before: float) -> int:
        """Delete the reports of ``reporter`` sent or given up before ``before``; how many."""
        return await self._execute(sa.delete(reports).where(
            reports.c.reporter == reporter, reports.c.state != PENDING, reports.c.done_at < before))

    async def builds_since(self, masterid: int, since: float) -> list[tuple[int, float, float | None]]:
        """``(buildid, started_at, complete_at)`` of the builds ``masterid`` started or
        finished at or after ``since``, by id: what a reporter looks at again when it starts
        (its mark, master/reporters/base.py)."""
        query = (sa.select(builds.c.id, builds.c.started_at, builds.c.complete_at)
                 .where(builds.c.masterid == masterid,
                        sa.or_(builds.c.started_at >= since, builds.c.complete_at >= since))
                 .order_by(builds.c.id))
        return [tuple(row) for row in await self._run(lambda conn: conn.execute(query).all())]


def _dict(row: sa.Row) -> dict[str, Any]:
    return {
        "reportid": row.id,
        "reporter": row.reporter,
        "event": row.event,
        "masterid": row.masterid,
        "reports": json.loads(row.reports),
        "created_at": row.created_at,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt_at": row.next_attempt_at,
        "done_at": row.done_at,
        "last_error": row.last_error,
    }
