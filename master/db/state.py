"""Scheduler state: small JSON values a scheduler keeps across master restarts."""

import json
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import scheduler_state


class StateComponent(DBComponent):
    """Rows of ``scheduler_state``: one JSON value per (scheduler name, key).  (Which master
    runs a job when several share the database is ``db.leases``.)"""

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


def _row(scheduler: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(scheduler_state.c.scheduler == scheduler, scheduler_state.c.key == key)

