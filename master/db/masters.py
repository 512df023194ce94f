"""The masters sharing this database, and when each was last seen alive.

Each running master writes a heartbeat (``active`` 1, ``last_active`` now) every few seconds
(master/cluster/liveness.py); a clean stop marks it inactive.  A master whose heartbeat is
older than the dead-after time is dead: ``reclaim`` lets exactly one other master take back
what it held, in one transaction.
"""

from dataclasses import dataclass, field

import sqlalchemy as sa

from buildfarm.common.results import RETRY
from buildfarm.master.db.base import DBComponent, find_or_create_by_name
from buildfarm.master.db.buildrequests import release_statement, wake_masters
from buildfarm.master.db.builds import finish_unfinished_of_master_statement
from buildfarm.master.db.leases import release_all_of_master_statement as release_leases_statement
from buildfarm.master.db.model import buildrequests, masters
from buildfarm.master.db.slaveapi import requeue_unfinished_of_master_in
from buildfarm.master.db.slaves import detach_all_of_master_in
from buildfarm.master.db.tasks import running_on_slaves_of_master_query

DEAD_BUILD_STATE = "master died"
DEAD_ACTION_TEXT = ("the master {name} died (no heartbeat for {secs:g} s) before this action finished; "
                    "the master {by} took it over")


@dataclass(frozen=True)
class Reclaimed:
    """What one reclaim of a dead master took back."""

    masterid: int
    name: str
    last_active: float
    builds: int = 0  # its unfinished builds, now RETRY
    requests: int = 0  # its claimed, incomplete requests, claimable again
    actions: list[int] = field(default_factory=list)  # its unfinished SlaveAPI requests, now the reclaimer's
    slaves: int = 0  # slaves it held, now detached
    tries: list[dict] = field(default_factory=list)  # tries RUNNING on those slaves (for the engine)
    leases: int = 0  # leases it held (master/db/leases.py), now released


class MastersComponent(DBComponent):
    """Rows of ``masters``: one per master process name."""

    async def find_or_create(self, name: str) -> int:
        return await self._run(lambda conn: find_or_create_by_name(conn, masters, name))

    async def mark_active(self, masterid: int, now: float) -> None:
        await self._set(masterid, active=1, last_active=now)

    async def mark_inactive(self, masterid: int) -> None:
        await self._set(masterid, active=0)

    async def heartbeat(self, masterid: int, now: float) -> bool:
        """Record that ``masterid`` is alive at ``now``; whether its row was active before (False
        after a clean stop, or when another master declared it dead and reclaimed it)."""

        def thd(conn: sa.Connection) -> bool:
            was = conn.execute(sa.select(masters.c.active).where(masters.c.id == masterid)
                               .with_for_update()).scalar_one_or_none()
            conn.execute(sa.update(masters).where(masters.c.id == masterid)
                         .values(active=1, last_active=now))
            return bool(was)

        return await self._run(thd)

    async def get(self, masterid: int) -> dict | None:
        return await self._fetch_one(sa.select(masters).where(masters.c.id == masterid), _dict)

    async def get_all(self) -> list[dict]:
        """Every master that ever shared this database, by id."""
        return await self._fetch_all(sa.select(masters).order_by(masters.c.id), _dict)

    async def find_dead(self, dead_before: float, besides: int | None = None) -> list[dict]:
        """Masters still marked active whose last heartbeat is older than ``dead_before``
        (``besides``: this master, never its own judge)."""
        query = sa.select(masters).where(masters.c.active == 1, masters.c.last_active < dead_before)
        if besides is not None:
            query = query.where(masters.c.id != besides)
        return await self._fetch_all(query.order_by(masters.c.id), _dict)

    async def reclaim(self, masterid: int, dead_before: float, now: float, dead_after_s: float,
                      by: int) -> Reclaimed | None:
        """Take back what the dead ``masterid`` held, in one transaction: mark it inactive (a
        conditional UPDATE: only while it is still active with a heartbeat older than
        ``dead_before``, so exactly one master reclaims it, and never one that beat again), end
        its unfinished builds RETRY, put its claimed requests back in the queue, give its
        unfinished SlaveAPI actions to ``by`` (the reclaiming master: its runner decides whether
        to run each again), detach its slaves, release its leases; the tries
        RUNNING on those slaves are listed for the task engine.  None when another master reclaimed it first
        or it came back."""

        def thd(conn: sa.Connection) -> Reclaimed | None:
            row = conn.execute(sa.select(masters).where(masters.c.id == masterid)).first()
            won = conn.execute(
                sa.update(masters)
                .where(masters.c.id == masterid, masters.c.active == 1, masters.c.last_active < dead_before)
                .values(active=0)
            ).rowcount
            if row is None or won != 1:
                return None
            builds = conn.execute(
                finish_unfinished_of_master_statement(masterid, RETRY, now, DEAD_BUILD_STATE)).rowcount
            claimed = buildrequests.c.claimed_by_masterid == masterid
            requests = conn.execute(release_statement(claimed)).rowcount
            if requests:
                wake_masters(conn)
            by_name = conn.execute(sa.select(masters.c.name).where(masters.c.id == by)).scalar_one_or_none()
            text = DEAD_ACTION_TEXT.format(name=row.name, secs=dead_after_s, by=by_name or f"id {by}")
            actions = requeue_unfinished_of_master_in(conn, masterid, by, text)
            tries = [dict(r._mapping) for r in conn.execute(running_on_slaves_of_master_query(masterid))]
            slaves = detach_all_of_master_in(conn, masterid, now)
            leases = conn.execute(release_leases_statement(masterid)).rowcount
            return Reclaimed(masterid, row.name, row.last_active, builds, requests, actions, slaves, tries,
                             leases)

        return await self._run(thd)

    async def _set(self, masterid: int, **values) -> None:
        query = sa.update(masters).where(masters.c.id == masterid).values(**values)
        await self._execute(query)


def _dict(row: sa.Row) -> dict:
    return {"masterid": row.id, "name": row.name, "active": bool(row.active), "last_active": row.last_active}
