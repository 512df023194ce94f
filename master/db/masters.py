"""The masters sharing this database, and when each was last seen alive."""

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, find_or_create_by_name
from buildfarm.master.db.model import masters


class MastersComponent(DBComponent):
    """Rows of ``masters``: one per master process name."""

    async def find_or_create(self, name: str) -> int:
        return await self._run(lambda conn: find_or_create_by_name(conn, masters, name))

    async def mark_active(self, masterid: int, now: float) -> None:
        await self._set(masterid, active=1, last_active=now)

    async def mark_inactive(self, masterid: int) -> None:
        await self._set(masterid, active=0)

    async def _set(self, masterid: int, **values) -> None:
        query = sa.update(masters).where(masters.c.id == masterid).values(**values)
        await self._execute(query)
