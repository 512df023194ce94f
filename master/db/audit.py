"""The ``audit`` table: every write asked of an HTTP surface, newest first when read."""

from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, paged
from buildfarm.master.db.model import audit

DETAIL_MAX_CHARS = 1000
PATH_MAX_CHARS = 2000


class AuditComponent(DBComponent):
    """Rows of ``audit``."""

    async def add(self, now: int, surface: str, username: str, peer: str, method: str, path: str,
                  scope: str, outcome: str, status: int, detail: str = "") -> int:
        """Record one write and how it ended; its id."""
        return await self._insert(sa.insert(audit).values(
            timestamp=now, surface=surface, username=username[:255], peer=peer[:255],
            method=method[:16], path=path[:PATH_MAX_CHARS], scope=scope[:255], outcome=outcome,
            status=status, detail=detail[:DETAIL_MAX_CHARS]))

    async def get_all(self, user: str | None = None, surface: str | None = None,
                      limit: int | None = None, offset: int = 0) -> list[dict]:
        """Rows, newest first, optionally of one user or one surface."""
        return await self._fetch_all(paged(self._filtered(sa.select(audit), user, surface)
                                           .order_by(audit.c.id.desc()), limit, offset), _row)

    async def count(self, user: str | None = None, surface: str | None = None) -> int:
        query = self._filtered(sa.select(sa.func.count()).select_from(audit), user, surface)
        return await self._run(lambda conn: conn.execute(query).scalar_one())

    @staticmethod
    def _filtered(query, user: str | None, surface: str | None):
        if user is not None:
            query = query.where(audit.c.username == user)
        if surface is not None:
            query = query.where(audit.c.surface == surface)
        return query


def _row(row: sa.Row) -> dict[str, Any]:
    return {"id": row.id, "timestamp": row.timestamp, "surface": row.surface, "user": row.username,
            "peer": row.peer, "method": row.method, "path": row.path, "scope": row.scope,
            "outcome": row.outcome, "status": row.status, "detail": row.detail}
