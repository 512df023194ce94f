"""The outbox: messages for the broker, written in the same transaction as the state change
they announce, so that a crash between the commit and the publish loses nothing (at least once).

Code that changes state calls ``add(conn, exchange, routing_key, payload)`` inside its own
transaction (``conn`` is the SQLAlchemy connection its ``DBComponent._run`` function gets);
after the commit it hands the same messages to the event bus (``mq.published``) for this
master's subscribers and to wake the publisher.  The publisher (master/mq/publisher.py) reads
``pending`` rows in id order and ``delete``s each once the broker confirmed it; it does so
through ``claim``, which on PostgreSQL locks the rows it returns (``FOR UPDATE SKIP LOCKED``, in
a transaction held until ``Claim.finish``), so that masters draining one outbox at the same
time never send the same row twice: a row claimed by one is skipped by the others.  A master
that dies holding a claim loses its connection, PostgreSQL rolls its transaction back, and
the rows are claimed again by another master (at least once).  SQLite has one master, and
its claim is the plain ``pending``.

A message's origin (the id of the master whose event it is, which the publisher sends in the
message's headers so that the consumers of that master skip it) is kept in the row's JSON
under ``ORIGIN_KEY``, never in the payload the broker gets.
"""

import json
from collections.abc import Iterable
from typing import Protocol

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import mq_outbox

ORIGIN_KEY = "__origin__"


class OutboxMessage(Protocol):
    exchange: str
    routing_key: str
    payload: dict


def add(conn: sa.Connection, exchange: str, routing_key: str, payload: dict,
        origin: int | None = None) -> int:
    """Write one message to the outbox in the caller's transaction; its row id."""
    stored = payload if origin is None else {**payload, ORIGIN_KEY: origin}
    insert = sa.insert(mq_outbox).values(exchange=exchange, routing_key=routing_key,
                                         payload=json.dumps(stored, sort_keys=True))
    return conn.execute(insert).inserted_primary_key[0]


def add_all(conn: sa.Connection, messages: Iterable[OutboxMessage]) -> None:
    """``add`` each of ``messages`` (objects with ``exchange``, ``routing_key``, ``payload``
    and, optionally, ``origin``)."""
    for message in messages:
        add(conn, message.exchange, message.routing_key, message.payload, getattr(message, "origin", None))


def _row(row) -> dict:
    payload = json.loads(row.payload)
    origin = payload.pop(ORIGIN_KEY, None)
    return {"id": row.id, "exchange": row.exchange, "routing_key": row.routing_key,
            "payload": payload, "origin": origin}


class Claim:
    """Rows of the outbox claimed by one drain: ``rows`` as ``pending`` returns them;
    ``finish(confirmed)`` deletes the confirmed ones and lets the others go (to be claimed
    again), ``release()`` lets all of them go.  One of the two must be called."""

    def __init__(self, rows: list[dict], finish, release) -> None:
        self.rows = rows
        self._finish = finish
        self._release = release
        self.open = True

    async def finish(self, confirmed: Iterable[int]) -> int:
        """Delete the rows ``confirmed``; how many there were."""
        self.open = False
        return await self._finish(list(confirmed))

    async def release(self) -> None:
        if self.open:
            self.open = False
            await self._release()


class OutboxComponent(DBComponent):
    """The rows of ``mq_outbox``."""

    async def add_messages(self, messages: Iterable[OutboxMessage]) -> None:
        """Write ``messages`` in a transaction of their own (for events whose state change
        is not a transaction of ours, e.g. a slave attaching)."""
        messages = list(messages)
        await self._run(lambda conn: add_all(conn, messages))

    async def pending(self, limit: int) -> list[dict]:
        """The oldest ``limit`` messages: ``{"id", "exchange", "routing_key", "payload",
        "origin"}``."""
        query = sa.select(mq_outbox).order_by(mq_outbox.c.id).limit(limit)
        rows = await self._run(lambda conn: conn.execute(query).all())
        return [_row(row) for row in rows]

    async def claim(self, limit: int) -> Claim:
        """The oldest ``limit`` messages no other drain holds, held until the claim ends."""
        engine = self.db.engine
        if engine is None or engine.dialect.name != "postgresql":
            rows = await self.pending(limit)
            return Claim(rows, self.delete, _nothing)
        conn, rows = await self.db.in_pool(_claim_rows, engine, limit)
        if not rows:  # its transaction ended already
            return Claim([], self.delete, _nothing)

        async def finish(ids: list[int]) -> int:
            return await self.db.in_pool(_delete_and_commit, conn, ids)

        return Claim([_row(row) for row in rows], finish, lambda: self.db.in_pool(_roll_back, conn))

    async def delete(self, ids: Iterable[int]) -> int:
        """Delete the confirmed messages ``ids``; how many there were."""
        ids = list(ids)
        if not ids:
            return 0
        return await self._execute(sa.delete(mq_outbox).where(mq_outbox.c.id.in_(ids)))

    async def count(self) -> int:
        """How many messages wait for the broker."""
        return await self._run(lambda conn: conn.execute(
            sa.select(sa.func.count()).select_from(mq_outbox)).scalar_one())


async def _nothing() -> None:
    return None


def _claim_rows(engine: sa.Engine, limit: int) -> tuple[sa.Connection, list]:
    """A connection in a transaction that locked the oldest ``limit`` unlocked rows."""
    query = sa.select(mq_outbox).order_by(mq_outbox.c.id).limit(limit).with_for_update(skip_locked=True)
    conn = engine.connect()
    try:
        conn.begin()
        rows = conn.execute(query).all()
    except BaseException:
        conn.close()
        raise
    if not rows:  # nothing held: end the transaction now
        _roll_back(conn)
    return conn, rows


def _delete_and_commit(conn: sa.Connection, ids: list[int]) -> int:
    try:
        deleted = conn.execute(sa.delete(mq_outbox).where(mq_outbox.c.id.in_(ids))).rowcount if ids else 0
        conn.commit()
        return deleted
    finally:
        conn.close()


def _roll_back(conn: sa.Connection) -> None:
    try:
        conn.rollback()
    finally:
        conn.close()
