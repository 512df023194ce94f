"""The SlaveAPI's tables: action results, the audit trail, and per-slave settings.

Times are integer epoch seconds (0 until reached), as the SlaveAPI shows them.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db import outbox
from buildfarm.master.db.base import DBComponent, from_json, paged, to_json
from buildfarm.master.db.model import masters, slave_settings, slaveapi_audit, slaveapi_results
from buildfarm.master.fleet import UNFINISHED, ActionState

# PostgreSQL's LISTEN/NOTIFY channel on which a master that records an action for a slave
# attached to another master tells that master (its id is the payload; master/cluster/wakeups.py).
SLAVEAPI_CHANNEL = "buildfarm_slaveapi"

DEFAULT_SETTINGS = {"enabled": True, "environment": None, "disabled_reason": None,
                    "disabled_by": None, "disabled_at": None, "notes": ""}


class SlaveAPIComponent(DBComponent):
    """Rows of ``slaveapi_results``, ``slaveapi_audit`` and ``slave_settings``."""

    # -- action results --------------------------------------------------------------------

    async def add_result(self, slave: str, action: str, args: dict, requested_by: str,
                         requested_from: str, masterid: int | None, now: int, wake: bool = False) -> int:
        """A new PENDING result, to be run by ``masterid``; its ``requestid``.  With ``wake``
        (an action addressed to another master, the one holding the slave's connection) that
        master is told on PostgreSQL (``SLAVEAPI_CHANNEL``, the payload its id) when this
        transaction commits; it also finds the row at its next poll."""
        insert = sa.insert(slaveapi_results).values(
            slave=slave, action=action, args=to_json(args), state=int(ActionState.PENDING), text="",
            requested_by=requested_by, requested_from=requested_from, masterid=masterid,
            request_timestamp=now)

        def thd(conn: sa.Connection) -> int:
            requestid = conn.execute(insert).inserted_primary_key[0]
            if wake and conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_notify(SLAVEAPI_CHANNEL, str(masterid))))
            return requestid

        return await self._run(thd)

    async def find_unfinished(self, slave: str, action: str) -> dict | None:
        """The oldest PENDING or RUNNING result of ``action`` on ``slave``, whichever master
        runs it (asking again joins it), or None."""
        query = (sa.select(slaveapi_results)
                 .where(slaveapi_results.c.slave == slave, slaveapi_results.c.action == action,
                        slaveapi_results.c.state.in_([int(s) for s in UNFINISHED]))
                 .order_by(slaveapi_results.c.id).limit(1))
        return await self._fetch_one(query, _result)

    async def readdress(self, requestid: int, from_masterid: int, to_masterid: int, text: str) -> bool:
        """Give the PENDING action ``requestid`` of ``from_masterid`` to ``to_masterid`` (which now
        holds the slave's connection), ``text`` added to its story, and tell that master (on
        PostgreSQL: ``SLAVEAPI_CHANNEL``); False when it was no longer so."""
        update = (sa.update(slaveapi_results)
                  .where(slaveapi_results.c.id == requestid, slaveapi_results.c.masterid == from_masterid,
                         slaveapi_results.c.state == int(ActionState.PENDING))
                  .values(masterid=to_masterid, text=_story_plus(text)))

        def thd(conn: sa.Connection) -> bool:
            moved = conn.execute(update).rowcount == 1
            if moved and conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_notify(SLAVEAPI_CHANNEL, str(to_masterid))))
            return moved

        return await self._run(thd)

    async def start_result(self, requestid: int, now: int) -> None:
        await self._set_result(requestid, state=int(ActionState.RUNNING), start_timestamp=now)

    async def finish_result(self, requestid: int, state: int, text: str, now: int,
                            data: Any = None, messages: Sequence = ()) -> None:
        """End a result as SUCCESS or FAILURE with the story of what was done (and its data);
        ``messages`` (its ``action-finished``, master/mq/events.py) go to the outbox in the
        same transaction (master/db/outbox.py)."""
        update = (sa.update(slaveapi_results).where(slaveapi_results.c.id == requestid)
                  .values(state=int(state), text=text, finish_timestamp=now,
                          data=None if data is None else json.dumps(data, sort_keys=True)))

        def thd(conn: sa.Connection) -> None:
            conn.execute(update)
            outbox.add_all(conn, messages)

        await self._run(thd)

    async def restart_result(self, requestid: int, text: str) -> None:
        """A PENDING result taken over from a dead master, to run again from its start: its
        story ``text``, its ``start_timestamp`` back to 0."""
        await self._set_result(requestid, text=text, start_timestamp=0)

    async def set_result_text(self, requestid: int, text: str) -> None:
        await self._set_result(requestid, text=text)

    async def _set_result(self, requestid: int, **values) -> None:
        await self._execute(sa.update(slaveapi_results)
                            .where(slaveapi_results.c.id == requestid).values(**values))

    async def get_result(self, requestid: int) -> dict | None:
        query = sa.select(slaveapi_results).where(slaveapi_results.c.id == requestid)
        return await self._fetch_one(query, _result)

    async def get_results(self, slave: str | None = None, action: str | None = None) -> list[dict]:
        """Results, oldest first, optionally of one slave and one action."""
        query = sa.select(slaveapi_results).order_by(slaveapi_results.c.id)
        if slave is not None:
            query = query.where(slaveapi_results.c.slave == slave)
        if action is not None:
            query = query.where(slaveapi_results.c.action == action)
        return await self._fetch_all(query, _result)

    async def count_results(self) -> list[tuple[str, int, int]]:
        """``(action, state, how many)`` over every result ever recorded (for /metrics)."""
        query = (sa.select(slaveapi_results.c.action, slaveapi_results.c.state, sa.func.count())
                 .group_by(slaveapi_results.c.action, slaveapi_results.c.state))
        rows = await self._run(lambda conn: conn.execute(query).all())
        return [(action, state, count) for action, state, count in rows]

    async def get_unfinished(self, masterid: int | None) -> list[dict]:
        """PENDING and RUNNING results ``masterid`` accepted, oldest first (for start-up)."""
        query = (sa.select(slaveapi_results)
                 .where(slaveapi_results.c.masterid == masterid,
                        slaveapi_results.c.state.in_([int(s) for s in UNFINISHED]))
                 .order_by(slaveapi_results.c.id))
        return await self._fetch_all(query, _result)

    # -- audit -----------------------------------------------------------------------------

    async def add_audit(self, now: int, username: str, peer: str, slave: str, action: str,
                        outcome: str, requestid: int | None = None, detail: str = "") -> int:
        return await self._insert(sa.insert(slaveapi_audit).values(
            timestamp=now, username=username, peer=peer, slave=slave, action=action,
            requestid=requestid, outcome=outcome, detail=detail))

    async def set_audit_outcome(self, requestid: int, outcome: str) -> None:
        """The outcome of every audit row of that request (once its action ended)."""
        await self._execute(sa.update(slaveapi_audit)
                            .where(slaveapi_audit.c.requestid == requestid).values(outcome=outcome))

    async def get_audit(self, slave: str | None = None, limit: int | None = None,
                        offset: int = 0) -> list[dict]:
        """Audit rows, newest first."""
        query = sa.select(slaveapi_audit).order_by(slaveapi_audit.c.id.desc())
        if slave is not None:
            query = query.where(slaveapi_audit.c.slave == slave)
        return await self._fetch_all(paged(query, limit, offset), _audit)

    # -- per-slave settings ----------------------------------------------------------------

    async def get_settings(self, name: str) -> dict:
        """The slave's settings (the defaults when none were ever stored)."""
        query = sa.select(slave_settings).where(slave_settings.c.name == name)
        found = await self._fetch_one(query, _settings)
        return found or {"name": name, **DEFAULT_SETTINGS}

    async def get_all_settings(self) -> dict[str, dict]:
        rows = await self._fetch_all(sa.select(slave_settings), _settings)
        return {row["name"]: row for row in rows}

    async def set_settings(self, name: str, **values: Any) -> None:
        """Change some of ``enabled``, ``environment``, ``disabled_*``, ``notes``.

        Update, else insert; a racing insert of another master loses on the primary key
        inside a SAVEPOINT and updates instead.
        """
        if "enabled" in values:
            values["enabled"] = int(bool(values["enabled"]))
        update = sa.update(slave_settings).where(slave_settings.c.name == name).values(**values)
        insert = sa.insert(slave_settings).values(name=name, **values)
        await self._upsert(update, insert)

    async def master_names(self) -> dict[int, str]:
        """``{masterid: name}`` of every master that shares this database."""
        rows = await self._run(lambda conn: conn.execute(sa.select(masters.c.id, masters.c.name)).all())
        return {row.id: row.name for row in rows}


def requeue_unfinished_of_master_in(conn: sa.Connection, masterid: int, to_masterid: int, text: str
                                    ) -> list[int]:
    """Give ``to_masterid`` (the master reclaiming the dead ``masterid``, master/db/masters.py),
    inside the caller's transaction, every action ``masterid`` accepted and did not finish:
    PENDING again, ``text`` added to its story; their request ids.  A row that had started
    keeps its ``start_timestamp``: the runner that picks it up (master/slaveapi/runner.py)
    repeats it only when its action is safe to repeat, and ends it FAILURE otherwise."""
    unfinished = (slaveapi_results.c.masterid == masterid,
                  slaveapi_results.c.state.in_([int(s) for s in UNFINISHED]))
    ids = list(conn.execute(sa.select(slaveapi_results.c.id).where(*unfinished)
                            .order_by(slaveapi_results.c.id)).scalars())
    if not ids:
        return []
    conn.execute(sa.update(slaveapi_results).where(slaveapi_results.c.id.in_(ids))
                 .values(state=int(ActionState.PENDING), text=_story_plus(text), masterid=to_masterid))
    conn.execute(sa.update(slaveapi_audit).where(slaveapi_audit.c.requestid.in_(ids))
                 .values(outcome=ActionState.PENDING.label))
    return ids


def _story_plus(text: str):
    """The story column with one more line."""
    return sa.case((slaveapi_results.c.text == "", text), else_=slaveapi_results.c.text + "\n" + text)


def _result(row: sa.Row) -> dict[str, Any]:
    return {
        "requestid": row.id,
        "slave": row.slave,
        "action": row.action,
        "args": from_json(row.args),
        "state": row.state,
        "text": row.text,
        "data": None if row.data is None else json.loads(row.data),
        "requested_by": row.requested_by,
        "requested_from": row.requested_from,
        "masterid": row.masterid,
        "request_timestamp": row.request_timestamp,
        "start_timestamp": row.start_timestamp,
        "finish_timestamp": row.finish_timestamp,
    }


def _audit(row: sa.Row) -> dict[str, Any]:
    return {
        "id": row.id,
        "timestamp": row.timestamp,
        "user": row.username,
        "peer": row.peer,
        "slave": row.slave,
        "action": row.action,
        "requestid": row.requestid,
        "outcome": row.outcome,
        "detail": row.detail,
    }


def _settings(row: sa.Row) -> dict[str, Any]:
    return {
        "name": row.name,
        "enabled": bool(row.enabled),
        "environment": row.environment,
        "disabled_reason": row.disabled_reason,
        "disabled_by": row.disabled_by,
        "disabled_at": row.disabled_at,
        "notes": row.notes,
    }
