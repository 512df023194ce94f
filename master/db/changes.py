"""Changes: commits reported by change sources, numbered in the order they arrived."""

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from buildfarm.master.db import outbox
from buildfarm.master.db.base import DBComponent, from_json, paged, to_json
from buildfarm.master.db.model import changes


class ChangesComponent(DBComponent):
    """Rows of ``changes``; a scheduler remembers the last id it saw (see ``get_after``)."""

    async def add(
        self,
        author: str,
        comments: str,
        files: list[str],
        when_timestamp: float,
        created_at: float,
        branch: str | None = None,
        revision: str | None = None,
        repository: str = "",
        project: str = "",
        codebase: str = "",
        category: str | None = None,
        committer: str | None = None,
        properties: dict | None = None,
        messages: Callable[[int], Sequence] | None = None,
    ) -> int:
        """Record a change; its id (``changeid``).  ``messages(changeid)`` (its
        ``change-added``, master/mq/events.py) go to the outbox in the same transaction."""
        insert = sa.insert(changes).values(
            author=author,
            committer=committer,
            comments=comments,
            branch=branch,
            revision=revision,
            repository=repository,
            project=project,
            codebase=codebase,
            category=category,
            when_timestamp=when_timestamp,
            files=json.dumps(list(files)),
            properties=to_json(properties),
            created_at=created_at,
        )

        def thd(conn: sa.Connection) -> int:
            changeid = conn.execute(insert).inserted_primary_key[0]
            if messages is not None:
                outbox.add_all(conn, messages(changeid))
            return changeid

        return await self._run(thd)

    async def get(self, changeid: int) -> dict | None:
        return await self._fetch_one(sa.select(changes).where(changes.c.id == changeid), _dict)

    async def get_all(self, limit: int | None = None, offset: int = 0) -> list[dict]:
        """Changes, newest first."""
        query = sa.select(changes).order_by(changes.c.id.desc())
        return await self._fetch_all(paged(query, limit, offset), _dict)

    async def count(self) -> int:
        """How many changes there are (``get_all`` pages through them)."""
        query = sa.select(sa.func.count(changes.c.id))
        return await self._run(lambda conn: conn.execute(query).scalar_one())

    async def get_after(self, changeid: int) -> list[dict]:
        """The changes added after ``changeid``, oldest first (for a scheduler catching up
        after a restart)."""
        query = sa.select(changes).where(changes.c.id > changeid).order_by(changes.c.id)
        return await self._fetch_all(query, _dict)


def _dict(row: sa.Row) -> dict[str, Any]:
    return {
        "changeid": row.id,
        "author": row.author,
        "committer": row.committer,
        "comments": row.comments,
        "branch": row.branch,
        "revision": row.revision,
        "repository": row.repository,
        "project": row.project,
        "codebase": row.codebase,
        "category": row.category,
        "when_timestamp": row.when_timestamp,
        "files": json.loads(row.files),
        "properties": from_json(row.properties),
        "created_at": row.created_at,
    }
