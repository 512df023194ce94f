"""Build slaves: their reported info, and which master (if any) each is attached to."""

from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent, find_or_create_by_name, from_json, to_json
from buildfarm.master.db.model import slaves


class SlavesComponent(DBComponent):
    """Rows of ``slaves``, one per slave name, updated as slaves attach and detach."""

    async def find_or_create(self, name: str) -> int:
        return await self._run(lambda conn: find_or_create_by_name(conn, slaves, name))

    async def attached(
        self, name: str, masterid: int, info: dict, version: str | None, now: float
    ) -> int:
        """Record that the slave ``name`` attached to ``masterid``; its id."""

        def thd(conn: sa.Connection) -> int:
            slaveid = find_or_create_by_name(conn, slaves, name)
            conn.execute(
                sa.update(slaves)
                .where(slaves.c.id == slaveid)
                .values(
                    info=to_json(info),
                    version=version,
                    connected_masterid=masterid,
                    last_connected_at=now,
                )
            )
            return slaveid

        return await self._run(thd)

    async def detached(self, name: str, masterid: int, now: float) -> None:
        """Record the slave's disconnection; it stays attached if another master now has it."""
        still_elsewhere = sa.case(
            (slaves.c.connected_masterid == masterid, sa.null()),
            else_=slaves.c.connected_masterid,
        )
        await self._execute(
            sa.update(slaves)
            .where(slaves.c.name == name)
            .values(connected_masterid=still_elsewhere, last_disconnected_at=now)
        )

    async def detach_all_of_master(self, masterid: int, now: float) -> None:
        """Mark every slave attached to ``masterid`` as detached (at master start-up)."""
        await self._execute(
            sa.update(slaves)
            .where(slaves.c.connected_masterid == masterid)
            .values(connected_masterid=None, last_disconnected_at=now)
        )

    async def get(self, name: str) -> dict | None:
        query = sa.select(slaves).where(slaves.c.name == name)
        return await self._fetch_one(query, _dict)

    async def get_all(self) -> list[dict]:
        query = sa.select(slaves).order_by(slaves.c.name)
        return await self._fetch_all(query, _dict)


def _dict(row) -> dict[str, Any]:
    return {
        "slaveid": row.id,
        "name": row.name,
        "info": from_json(row.info),
        "version": row.version,
        "connected_masterid": row.connected_masterid,
        "last_connected_at": row.last_connected_at,
        "last_disconnected_at": row.last_disconnected_at,
    }
