"""What every database component shares: the connector, JSON columns, find-or-create."""

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import sqlalchemy as sa

T = TypeVar("T")

# Bound parameters per IN (...) list: far below every backend's limit.
IN_CLAUSE_CHUNK = 500


class DBComponent:
    """A group of queries about one concept; each public method runs in the connector's pool."""

    def __init__(self, db) -> None:
        self.db = db

    async def _upsert(self, update: sa.Update, insert: sa.Insert) -> None:
        """Update the row, or insert it if there is none; portable across SQLite and
        PostgreSQL, and safe when another writer inserts the same row at the same time."""

        def thd(conn: sa.Connection) -> None:
            if conn.execute(update).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(insert)
            except sa.exc.IntegrityError:
                conn.execute(update)

        await self._run(thd)

    async def _run(self, fn: Callable[[sa.Connection], T]) -> T:
        return await self.db.run(fn)

    async def _fetch_one(self, query: sa.Select, to_dict: Callable[[sa.Row], T]) -> T | None:
        """``to_dict`` of the first row of ``query``, or None when there is none."""
        row = await self._run(lambda conn: conn.execute(query).first())
        return None if row is None else to_dict(row)

    async def _fetch_all(self, query: sa.Select, to_dict: Callable[[sa.Row], T]) -> list[T]:
        """``to_dict`` of every row of ``query``, in its order."""
        rows = await self._run(lambda conn: conn.execute(query).all())
        return [to_dict(row) for row in rows]

    async def _insert(self, statement: sa.Insert) -> int:
        """Run one single-row INSERT; the new row's primary key."""
        return await self._run(lambda conn: conn.execute(statement).inserted_primary_key[0])

    async def _execute(self, statement: sa.Executable) -> int:
        """Run one data-changing statement; the number of rows it matched."""
        return await self._run(lambda conn: conn.execute(statement).rowcount)


def to_json(value: Any) -> str:
    """The text stored in a JSON column (``None`` stores an empty object)."""
    return json.dumps({} if value is None else value, sort_keys=True)


def from_json(text: str | None) -> Any:
    """The value read back from a JSON column."""
    return json.loads(text) if text else {}


def find_or_create_by_name(conn: sa.Connection, table: sa.Table, name: str) -> int:
    """The id of the row of ``table`` named ``name``, inserting it if there is none.

    Two masters may race to insert the same name; the loser's insert fails on the unique
    name inside a SAVEPOINT (so its transaction survives) and it reads the winner's row.
    """
    found = _id_by_name(conn, table, name)
    if found is not None:
        return found
    try:
        with conn.begin_nested():
            return conn.execute(sa.insert(table).values(name=name)).inserted_primary_key[0]
    except sa.exc.IntegrityError:
        return _id_by_name(conn, table, name)


def _id_by_name(conn: sa.Connection, table: sa.Table, name: str) -> int | None:
    return conn.execute(sa.select(table.c.id).where(table.c.name == name)).scalar_one_or_none()


def paged(query: sa.Select, limit: int | None, offset: int) -> sa.Select:
    """``query`` limited to one page (all rows from ``offset`` when ``limit`` is None)."""
    if limit is not None:
        query = query.limit(limit)
    return query.offset(offset) if offset else query


def ids_by_parent(
    conn: sa.Connection, id_column: sa.Column, parent_column: sa.Column, parent_ids: Sequence[int]
) -> dict[int, list[int]]:
    """For each of ``parent_ids``, the ids of the rows whose ``parent_column`` names it,
    ascending (e.g. the builds of each build request); missing parents map to ``[]``."""
    found: dict[int, list[int]] = defaultdict(list)
    for start in range(0, len(parent_ids), IN_CLAUSE_CHUNK):
        query = (
            sa.select(parent_column, id_column)
            .where(parent_column.in_(parent_ids[start : start + IN_CLAUSE_CHUNK]))
            .order_by(id_column)
        )
        for parent, child in conn.execute(query):
            found[parent].append(child)
    return found


def select_with_children(
    conn: sa.Connection,
    query: sa.Select,
    id_column: sa.Column,
    parent_column: sa.Column,
    to_dict: Callable[[sa.Row, list[int]], dict],
) -> list[dict]:
    """The rows of ``query``, each made a dict by ``to_dict(row, child_ids)`` with the ids of
    its children (``ids_by_parent``): a build request with its builds, a buildset with its
    requests."""
    rows = conn.execute(query).all()
    children = ids_by_parent(conn, id_column, parent_column, [row.id for row in rows])
    return [to_dict(row, children[row.id]) for row in rows]
