"""Logs of steps, stored as chunks of text with the line numbers each chunk covers.

Lines are counted by ``"\\n"`` and numbered from 0.  A chunk is stored as given, even when
it ends in the middle of a line: the next chunk then starts on that same line.
"""

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import GenericFunction

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import logchunks, logs, steps

STREAM_LOG = "s"
DELETED_LOG = "d"  # a log whose text the janitor deleted (its row and line count stay), as in Buildbot
_not_slug_character = re.compile(r"[^a-z0-9]")


def slugify(name: str) -> str:
    """The URL-safe name of a log: lower case, anything but letters and digits as ``_``."""
    return _not_slug_character.sub("_", name.lower())


class LogsComponent(DBComponent):
    """Rows of ``logs`` and their ``logchunks``; text arrives in batches from the master."""

    async def add(self, stepid: int, name: str, type: str = STREAM_LOG) -> int:
        """A new log of the step; a slug already taken in the step gets a ``_2`` ... suffix."""

        def thd(conn: sa.Connection) -> int:
            slug = _free_slug(conn, stepid, slugify(name))
            insert = sa.insert(logs).values(stepid=stepid, name=name, slug=slug, type=type)
            return conn.execute(insert).inserted_primary_key[0]

        return await self._run(thd)

    async def append(self, logid: int, text: str) -> None:
        await self._run(lambda conn: _append(conn, logid, text))

    async def append_many(self, items: list[tuple[int, str]]) -> None:
        """Append several ``(logid, text)`` chunks, in order, in one transaction."""

        def thd(conn: sa.Connection) -> None:
            for logid, text in items:
                _append(conn, logid, text)

        await self._run(thd)

    async def finish(self, logid: int) -> None:
        await self._execute(sa.update(logs).where(logs.c.id == logid).values(complete=1))

    async def get_all(self, stepid: int) -> list[dict]:
        query = sa.select(logs).where(logs.c.stepid == stepid).order_by(logs.c.id)
        return await self._fetch_all(query, _dict)

    async def get_by_slug(self, stepid: int, slug: str) -> dict | None:
        query = sa.select(logs).where(logs.c.stepid == stepid, logs.c.slug == slug)
        return await self._fetch_one(query, _dict)

    async def get(self, logid: int) -> dict | None:
        return await self._fetch_one(sa.select(logs).where(logs.c.id == logid), _dict)

    async def get_sizes(self, logids: list[int]) -> dict[int, int]:
        """``{logid: bytes of UTF-8 text stored so far}`` (0 for a log without text)."""
        if not logids:
            return {}
        query = (
            sa.select(logchunks.c.logid, sa.func.sum(byte_length(logchunks.c.content)))
            .where(logchunks.c.logid.in_(logids))
            .group_by(logchunks.c.logid)
        )
        rows = await self._run(lambda conn: conn.execute(query).all())
        sizes = dict.fromkeys(logids, 0)
        sizes.update({logid: int(size or 0) for logid, size in rows})
        return sizes

    async def get_text(self, logid: int) -> str:
        """The whole log so far."""
        return "".join(await self._chunks(logchunks.c.logid == logid))

    async def get_text_range(self, logid: int, first_line: int, last_line: int) -> str:
        """Lines ``first_line`` to ``last_line`` (inclusive, from 0) with their newlines."""
        touching = sa.and_(
            logchunks.c.logid == logid,
            logchunks.c.last_line >= first_line,
            logchunks.c.first_line <= last_line,
        )
        query = sa.select(sa.func.min(logchunks.c.first_line)).where(touching)
        start = await self._run(lambda conn: conn.execute(query).scalar())
        if start is None:
            return ""
        # Lines are counted by "\n" only (str.splitlines would also break at "\r", which
        # progress bars print, and shift every later line).
        lines = "".join(await self._chunks(touching)).split("\n")
        lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
        return "".join(lines[first_line - start : last_line - start + 1])

    async def delete_old_contents(self, older_than: float) -> int:
        """Delete the text of every log of a step started before ``older_than`` (epoch
        seconds): the logs are marked ``DELETED_LOG``, their rows, steps and builds stay.
        Returns how many chunks were deleted (the janitor's ``logHorizon``)."""

        def thd(conn: sa.Connection) -> int:
            old_steps = sa.select(steps.c.id).where(steps.c.started_at < older_than)
            conn.execute(sa.update(logs).where(logs.c.stepid.in_(old_steps), logs.c.type != DELETED_LOG)
                         .values(type=DELETED_LOG))
            deleted = sa.select(logs.c.id).where(logs.c.type == DELETED_LOG)
            return conn.execute(sa.delete(logchunks).where(logchunks.c.logid.in_(deleted))).rowcount

        return await self._run(thd)

    async def _chunks(self, which: sa.ColumnElement[bool]) -> list[str]:
        query = (
            sa.select(logchunks.c.content)
            .where(which)
            .order_by(logchunks.c.first_line, logchunks.c.id)
        )
        return await self._run(lambda conn: conn.execute(query).scalars().all())


class byte_length(GenericFunction):  # noqa: N801 - SQL function names are lower case
    """The length of a text column in bytes of UTF-8 (SQL's ``octet_length``)."""

    type = sa.Integer()
    inherit_cache = True


@compiles(byte_length)
def _octet_length(element, compiler, **kw) -> str:
    return f"octet_length({compiler.process(element.clauses, **kw)})"


@compiles(byte_length, "sqlite")
def _sqlite_byte_length(element, compiler, **kw) -> str:
    # SQLite's length() counts characters of text but bytes of a blob.
    return f"length(CAST({compiler.process(element.clauses, **kw)} AS BLOB))"


def _append(conn: sa.Connection, logid: int, text: str) -> None:
    if not text:
        return
    newlines = text.count("\n")
    counted = conn.execute(
        sa.update(logs)
        .where(logs.c.id == logid)
        .values(num_lines=logs.c.num_lines + newlines)
        .returning(logs.c.num_lines)
    ).scalar_one()
    first_line = counted - newlines
    # A chunk ending mid-line also covers that unfinished line.
    last_line = first_line + newlines - (1 if text.endswith("\n") else 0)
    conn.execute(
        sa.insert(logchunks).values(
            logid=logid, first_line=first_line, last_line=last_line, content=text
        )
    )


def _free_slug(conn: sa.Connection, stepid: int, slug: str) -> str:
    query = sa.select(logs.c.slug).where(logs.c.stepid == stepid)
    taken = set(conn.execute(query).scalars())
    candidate, suffix = slug, 1
    while candidate in taken:
        suffix += 1
        candidate = f"{slug}_{suffix}"
    return candidate


def _dict(row: sa.Row) -> dict[str, Any]:
    return {
        "logid": row.id,
        "stepid": row.stepid,
        "name": row.name,
        "slug": row.slug,
        "type": row.type,
        "num_lines": row.num_lines,
        "complete": bool(row.complete),
    }
