"""The builders known to the database, by name."""

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, find_or_create_by_name
from buildfarm.master.db.model import builders


class BuildersComponent(DBComponent):
    """Rows of ``builders``; a builder keeps its id (and build numbers) across reconfigs."""

    async def find_or_create(self, name: str) -> int:
        return await self._run(lambda conn: find_or_create_by_name(conn, builders, name))

    async def get_all(self) -> list[dict]:
        query = sa.select(builders).order_by(builders.c.name)
        return await self._fetch_all(query, _dict)

    async def get_by_name(self, name: str) -> dict | None:
        query = sa.select(builders).where(builders.c.name == name)
        return await self._fetch_one(query, _dict)


def _dict(row) -> dict:
    return {"builderid": row.id, "name": row.name}
