"""Build slaves: their reported info, and which master (if any) each is attached to."""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db import outbox
from buildfarm.master.db.base import DBComponent, find_or_create_by_name, from_json, to_json
from buildfarm.master.db.model import slave_connections, slaves


class SlavesComponent(DBComponent):
    """Rows of ``slaves``, one per slave name, updated as slaves attach and detach."""

    async def find_or_create(self, name: str) -> int:
        return await self._run(lambda conn: find_or_create_by_name(conn, slaves, name))

    async def attached(
        self, name: str, masterid: int, info: dict, version: str | None, now: float,
        peer: str | None = None, messages: Sequence = (),
    ) -> int:
        """Record that the slave ``name`` attached to ``masterid`` (from ``peer``); its id.
        A connection of it to this master still open (its detach was never seen) closes now.
        ``messages`` (its ``slave-attached``) go to the outbox in the same transaction."""

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
            conn.execute(_close_connections(now, slave_connections.c.slaveid == slaveid,
                                            slave_connections.c.masterid == masterid))
            conn.execute(sa.insert(slave_connections).values(
                slaveid=slaveid, masterid=masterid, peer=peer, connected_at=now))
            outbox.add_all(conn, messages)
            return slaveid

        return await self._run(thd)

    async def detached(self, name: str, masterid: int, now: float, messages: Sequence = ()) -> None:
        """Record the slave's disconnection; it stays attached if another master now has it.
        ``messages`` (its ``slave-detached``) go to the outbox in the same transaction."""
        still_elsewhere = sa.case(
            (slaves.c.connected_masterid == masterid, sa.null()),
            else_=slaves.c.connected_masterid,
        )
        own = sa.select(slaves.c.id).where(slaves.c.name == name).scalar_subquery()

        def thd(conn: sa.Connection) -> None:
            conn.execute(
                sa.update(slaves)
                .where(slaves.c.name == name)
                .values(connected_masterid=still_elsewhere, last_disconnected_at=now)
            )
            conn.execute(_close_connections(now, slave_connections.c.slaveid == own,
                                            slave_connections.c.masterid == masterid))
            outbox.add_all(conn, messages)

        await self._run(thd)

    async def detach_all_of_master(self, masterid: int, now: float) -> None:
        """Mark every slave attached to ``masterid`` as detached (at master start-up)."""
        await self._run(lambda conn: detach_all_of_master_in(conn, masterid, now))

    async def get_connections(self, name: str, limit: int = 20) -> list[dict]:
        """The slave's last ``limit`` connections, newest first: ``connected_at``,
        ``disconnected_at`` (None while open), ``masterid``, ``peer``."""
        query = (
            sa.select(slave_connections)
            .join(slaves, slaves.c.id == slave_connections.c.slaveid)
            .where(slaves.c.name == name)
            .order_by(slave_connections.c.connected_at.desc(), slave_connections.c.id.desc())
            .limit(limit)
        )
        return await self._fetch_all(query, lambda row: {
            "masterid": row.masterid, "peer": row.peer, "connected_at": row.connected_at,
            "disconnected_at": row.disconnected_at})

    async def get(self, name: str) -> dict | None:
        query = sa.select(slaves).where(slaves.c.name == name)
        return await self._fetch_one(query, _dict)

    async def get_all(self, with_info: bool = True) -> list[dict]:
        """Every slave the database remembers, by name; without ``with_info`` each has
        ``info`` None (a fleet's reported info is large, and lists rarely need it)."""
        if with_info:
            return await self._fetch_all(sa.select(slaves).order_by(slaves.c.name), _dict)
        query = sa.select(*(c for c in slaves.c if c.name != "info")).order_by(slaves.c.name)
        return await self._fetch_all(query, lambda row: _dict(row, with_info=False))

    async def get_infos(self, names: list[str]) -> dict[str, dict]:
        """``{name: reported info}`` of those of ``names`` the database remembers."""
        if not names:
            return {}
        query = sa.select(slaves.c.name, slaves.c.info).where(slaves.c.name.in_(names))
        rows = await self._fetch_all(query, lambda row: (row.name, from_json(row.info)))
        return dict(rows)


def detach_all_of_master_in(conn: sa.Connection, masterid: int, now: float) -> int:
    """Detach every slave attached to ``masterid`` and close its connections, inside the
    caller's transaction (also a dead master's reclaim, master/db/masters.py); how many."""
    detached = conn.execute(
        sa.update(slaves)
        .where(slaves.c.connected_masterid == masterid)
        .values(connected_masterid=None, last_disconnected_at=now)
    ).rowcount
    conn.execute(_close_connections(now, slave_connections.c.masterid == masterid))
    return detached


def _dict(row, with_info: bool = True) -> dict[str, Any]:
    return {
        "slaveid": row.id,
        "name": row.name,
        "info": from_json(row.info) if with_info else None,
        "version": row.version,
        "connected_masterid": row.connected_masterid,
        "last_connected_at": row.last_connected_at,
        "last_disconnected_at": row.last_disconnected_at,
    }


def _close_connections(now: float, *which) -> sa.Update:
    """Close the open connections matching ``which`` at ``now``."""
    return (sa.update(slave_connections)
            .where(slave_connections.c.disconnected_at.is_(None), *which)
            .values(disconnected_at=now))
