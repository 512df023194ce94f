"""Hawk nonces shared by the masters of one database (``hawk_nonces``): ``remember`` inserts a
request's key unless it is there (one conditional INSERT: ``ON CONFLICT DO NOTHING`` on both
PostgreSQL and SQLite), so of two masters receiving the same request at once exactly one finds
it new; ``purge`` deletes the rows past their expiry.
"""

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import hawk_nonces

PURGE_BATCH = 10_000  # rows deleted per transaction by ``purge``


class NoncesComponent(DBComponent):
    """Rows of ``hawk_nonces``: see the module."""

    async def remember(self, key: str, expires_at: float) -> bool:
        """Record ``key`` until ``expires_at``: True when it was new, False when any master
        had recorded it already (a replay)."""

        def thd(conn: sa.Connection) -> bool:
            insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(hawk_nonces)
            statement = (insert.values(key=key, expires_at=expires_at)
                         .on_conflict_do_nothing(index_elements=[hawk_nonces.c.key])
                         .returning(hawk_nonces.c.key))  # rowcount is not reliable here on psycopg
            return conn.execute(statement).first() is not None

        return await self._run(thd)

    async def purge(self, now: float) -> int:
        """Delete the keys that expired before ``now`` (``PURGE_BATCH`` a transaction); how many."""
        expired = (sa.select(hawk_nonces.c.key).where(hawk_nonces.c.expires_at < now)
                   .limit(PURGE_BATCH).scalar_subquery())
        total = 0
        while True:
            deleted = await self._execute(sa.delete(hawk_nonces).where(hawk_nonces.c.key.in_(expired)))
            total += deleted
            if deleted < PURGE_BATCH:
                return total

    async def count(self) -> int:
        """How many keys are kept."""
        return await self._run(lambda conn: conn.execute(sa.select(sa.func.count()).select_from(hawk_nonces))
                               .scalar_one())
