"""Scheduler state: small JSON values a scheduler keeps across master restarts."""

import json
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import scheduler_state

CLAIM_KEY = "claim"


class StateComponent(DBComponent):
    """Rows of ``scheduler_state``: one JSON value per (scheduler name, key).

    Also claims: which master does a job (polls a change source) when several share the
    database.  A claim is ``{"masterid": ..., "until": ...}`` under the key ``claim`` of the
    job's name; it is taken with a compare-and-set, so two masters never both hold it."""

    async def get(self, scheduler: str, key: str, default: Any = None) -> Any:
        """The value stored under ``key`` for ``scheduler``, or ``default`` if none is."""
        query = sa.select(scheduler_state.c.value).where(_row(scheduler, key))
        text = await self._run(lambda conn: conn.execute(query).scalar_one_or_none())
        return default if text is None else json.loads(text)

    async def set(self, scheduler: str, key: str, value: Any) -> None:
        """Store ``value`` (anything ``json.dumps`` takes) under ``key`` for ``scheduler``.

        Update, else insert; when two masters race to insert, the loser's insert fails on
        the primary key inside a SAVEPOINT and it updates the winner's row instead.
        """
        text = json.dumps(value, sort_keys=True)
        update = sa.update(scheduler_state).where(_row(scheduler, key)).values(value=text)
        insert = sa.insert(scheduler_state).values(scheduler=scheduler, key=key, value=text)
        await self._upsert(update, insert)


    async def claim(self, name: str, masterid: int, now: float, lease_s: float) -> bool:
        """Take or renew the claim on ``name`` for ``lease_s`` seconds from ``now``: whether
        this master holds it (False while another master's claim has not run out)."""
        wanted = json.dumps({"masterid": masterid, "until": now + lease_s}, sort_keys=True)
        row = _row(name, CLAIM_KEY)

        def thd(conn: sa.Connection) -> bool:
            text = conn.execute(sa.select(scheduler_state.c.value).where(row)).scalar_one_or_none()
            if text is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(scheduler_state).values(scheduler=name, key=CLAIM_KEY,
                                                                       value=wanted))
                    return True
                except sa.exc.IntegrityError:
                    return False  # another master inserted it first
            held = json.loads(text)
            if held.get("masterid") != masterid and held.get("until", 0) > now:
                return False
            swap = sa.update(scheduler_state).where(row, scheduler_state.c.value == text).values(value=wanted)
            return conn.execute(swap).rowcount == 1

        return await self._run(thd)

    async def release(self, name: str, masterid: int) -> None:
        """Give up the claim on ``name`` if this master holds it (another may take it at once)."""
        row = _row(name, CLAIM_KEY)

        def thd(conn: sa.Connection) -> None:
            text = conn.execute(sa.select(scheduler_state.c.value).where(row)).scalar_one_or_none()
            if text is not None and json.loads(text).get("masterid") == masterid:
                swap = sa.update(scheduler_state).where(row, scheduler_state.c.value == text)
                conn.execute(swap.values(value=json.dumps({"masterid": None, "until": 0}, sort_keys=True)))

        await self._run(thd)

def _row(scheduler: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(scheduler_state.c.scheduler == scheduler, scheduler_state.c.key == key)

