"""Leases: which master runs each singleton job when several masters share the database.

A lease is a row of ``leases``: its ``name`` (``scheduler:nightly``, ``poller:GitPoller:repo``,
``cas-janitor``), the ``masterid`` holding it and when it ``expires``.  ``acquire`` takes or
renews it with one conditional UPDATE (held by nobody, by this master, or expired), so two
masters never both hold it, whatever the interleaving; a clean stop ``release``s it and the
reclaim of a dead master releases all of its leases in the reclaim's transaction
(master/db/masters.py), so a survivor takes them over at its next renewal rather than when
they expire.
"""

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import leases


class LeasesComponent(DBComponent):
    """Rows of ``leases``: see the module."""

    async def acquire(self, name: str, masterid: int, now: float, duration_s: float) -> bool:
        """Take or renew lease ``name`` for ``masterid`` until ``now + duration_s``: whether
        ``masterid`` holds it now (False while another master's lease has not expired)."""

        def thd(conn: sa.Connection) -> bool:
            free = sa.or_(leases.c.masterid.is_(None), leases.c.masterid == masterid, leases.c.expires < now)
            taken = conn.execute(sa.update(leases).where(leases.c.name == name, free)
                                 .values(masterid=masterid, expires=now + duration_s)).rowcount
            if taken:
                return True
            if conn.execute(sa.select(leases.c.name).where(leases.c.name == name)).first() is not None:
                return False  # another master holds it
            try:
                with conn.begin_nested():  # a new name: the first insert wins
                    conn.execute(sa.insert(leases).values(name=name, masterid=masterid,
                                                          expires=now + duration_s))
                return True
            except sa.exc.IntegrityError:
                return False  # another master inserted it first

        return await self._run(thd)

    async def release(self, name: str, masterid: int) -> bool:
        """Give up lease ``name`` if ``masterid`` holds it (another may take it at once);
        whether it did."""
        return await self._execute(release_statement(sa.and_(leases.c.name == name,
                                                            leases.c.masterid == masterid))) == 1

    async def get_all(self) -> list[dict]:
        """Every lease ever taken, by name: ``{name, masterid, expires}`` (``masterid`` None
        when released)."""
        return await self._fetch_all(sa.select(leases).order_by(leases.c.name),
                                     lambda row: dict(row._mapping))


def release_statement(which: sa.ColumnElement[bool]) -> sa.Update:
    """The UPDATE releasing the leases matching ``which``."""
    return sa.update(leases).where(which).values(masterid=None, expires=0)


def release_all_of_master_statement(masterid: int) -> sa.Update:
    """The UPDATE releasing every lease ``masterid`` holds (a dead master's, at its reclaim)."""
    return release_statement(leases.c.masterid == masterid)
