"""Samples: the fleet and the queue over time, as master/samples.py records them each minute.

A series (``slaves.idle``, ``queue.pending``, ``slaveapi.success``, ...) has a value every
``MINUTE`` for ``MINUTES_KEPT_S`` and one per ``HOUR`` (the hour's mean, or its sum for a
count) for ``HOURS_KEPT_S``; ``add`` rolls each finished hour up and deletes what is older, so
the table holds at most 1,440 + 192 rows per series.
"""

from collections import defaultdict

import sqlalchemy as sa

from buildfarm.master.db.base import DBComponent
from buildfarm.master.db.model import samples, slaveapi_results, task_results

MINUTE = 60
HOUR = 3600
MINUTES_KEPT_S = 24 * 3600
HOURS_KEPT_S = 8 * 24 * 3600
TASK_LEVELS = ("PENDING", "RUNNING")  # the states a task is in; it ends in any other
TASK_SERIES = ("pending", "running", "completed", "failed")


class SamplesComponent(DBComponent):
    """Rows of ``samples``."""

    async def add(self, at: float, values: dict[str, float], counts: frozenset[str] = frozenset()) -> None:
        """Record ``values`` (series: value) at ``at``; roll the hours finished since the last
        roll-up up (``counts``: the series summed, the others averaged); delete the expired."""

        def thd(conn: sa.Connection) -> None:
            if values:
                conn.execute(
                    sa.insert(samples),
                    [
                        {"series": name, "resolution": MINUTE, "at": at, "value": value}
                        for name, value in sorted(values.items())
                    ],
                )
            _roll_up(conn, at, counts)
            conn.execute(
                sa.delete(samples).where(samples.c.resolution == MINUTE, samples.c.at < at - MINUTES_KEPT_S)
            )
            conn.execute(
                sa.delete(samples).where(samples.c.resolution == HOUR, samples.c.at < at - HOURS_KEPT_S)
            )

        await self._run(thd)

    async def series(
        self, prefix: str, since: float, resolution: int = MINUTE
    ) -> dict[str, list[tuple[float, float]]]:
        """``{series: [(at, value), ...]}`` of the series named ``prefix...`` from ``since``,
        oldest first."""
        query = (
            sa.select(samples.c.series, samples.c.at, samples.c.value)
            .where(
                samples.c.resolution == resolution,
                samples.c.series.startswith(prefix, autoescape=True),
                samples.c.at >= since,
            )
            .order_by(samples.c.series, samples.c.at)
        )
        rows = await self._run(lambda conn: conn.execute(query).all())
        found: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for name, at, value in rows:
            found[name].append((at, value))
        return dict(found)

    async def actions_finished(self, after: float, until: float) -> dict[int, int]:
        """``{state: how many}`` of the SlaveAPI actions that finished in ``(after, until]``."""
        query = (
            sa.select(slaveapi_results.c.state, sa.func.count())
            .where(slaveapi_results.c.finish_timestamp > after, slaveapi_results.c.finish_timestamp <= until)
            .group_by(slaveapi_results.c.state)
        )
        rows = await self._run(lambda conn: conn.execute(query).all())
        return {state: count for state, count in rows}

    async def tasks_by_state(self, after: float, until: float) -> dict[str, int]:
        """``{"pending": n, "running": n}``: the tasks in those states now; ``{"completed": n,
        "failed": n}``: the tasks that ended in ``(after, until]``, completed with exit code 0
        or not (any other end: a non-zero exit, timed out, expired, canceled, killed, bot
        died, no resource)."""
        levels = (sa.select(task_results.c.state, sa.func.count())
                  .where(task_results.c.state.in_(TASK_LEVELS)).group_by(task_results.c.state))
        ended_at = sa.func.coalesce(task_results.c.completed_at, task_results.c.abandoned_at,
                                    task_results.c.modified_at)
        succeeded = sa.and_(task_results.c.state == "COMPLETED", task_results.c.exit_code == 0)
        outcome = sa.case((succeeded, "completed"), else_="failed")
        ended = (sa.select(outcome, sa.func.count())
                 .where(task_results.c.state.not_in(TASK_LEVELS), ended_at > after, ended_at <= until)
                 .group_by(outcome))

        def thd(conn: sa.Connection) -> dict[str, int]:
            found = dict.fromkeys(TASK_SERIES, 0)
            for state, count in conn.execute(levels).all():
                found[state.lower()] = count
            for end, count in conn.execute(ended).all():
                found[end] = count
            return found

        return await self._run(thd)


def _roll_up(conn: sa.Connection, at: float, counts: frozenset[str]) -> None:
    """One row per series for each hour finished after the newest hourly row (at most the
    hours the minutes still cover)."""
    newest = conn.execute(sa.select(sa.func.max(samples.c.at)).where(samples.c.resolution == HOUR)).scalar()
    first_hour = int(at - MINUTES_KEPT_S) // HOUR * HOUR if newest is None else int(newest) + HOUR
    current_hour = int(at) // HOUR * HOUR
    if first_hour >= current_hour:
        return
    query = sa.select(samples.c.series, samples.c.at, samples.c.value).where(
        samples.c.resolution == MINUTE, samples.c.at >= first_hour, samples.c.at < current_hour
    )
    by_hour: dict[tuple[str, int], list[float]] = defaultdict(list)
    for name, when, value in conn.execute(query):
        by_hour[(name, int(when) // HOUR * HOUR)].append(value)
    rows = [
        {
            "series": name,
            "resolution": HOUR,
            "at": float(hour),
            "value": sum(values) if name in counts else sum(values) / len(values),
        }
        for (name, hour), values in sorted(by_hour.items())
    ]
    if rows:
        conn.execute(sa.insert(samples), rows)
