"""Steps: the numbered stages of a build, each with its own result."""

from typing import Any

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import steps


class StepsComponent(DBComponent):
    """Rows of ``steps``, numbered from 0 within their build."""

    async def add(self, buildid: int, number: int, name: str, started_at: float | None) -> int:
        insert = sa.insert(steps).values(
            buildid=buildid, number=number, name=name, started_at=started_at
        )
        return await self._insert(insert)

    async def finish(
        self, stepid: int, results: int, complete_at: float, state_string: str
    ) -> None:
        update = (
            sa.update(steps)
            .where(steps.c.id == stepid)
            .values(results=results, complete_at=complete_at, state_string=state_string)
        )
        await self._execute(update)

    async def get_all(self, buildid: int) -> list[dict]:
        query = sa.select(steps).where(steps.c.buildid == buildid).order_by(steps.c.number)
        return await self._fetch_all(query, _dict)

    async def get(self, buildid: int, number: int) -> dict | None:
        query = sa.select(steps).where(steps.c.buildid == buildid, steps.c.number == number)
        return await self._fetch_one(query, _dict)


def _dict(row: sa.Row) -> dict[str, Any]:
    return {
        "stepid": row.id,
        "buildid": row.buildid,
        "number": row.number,
        "name": row.name,
        "started_at": row.started_at,
        "complete": row.complete_at is not None,
        "complete_at": row.complete_at,
        "state_string": row.state_string,
        "results": row.results,
    }
