"""The reads behind the grid, console and waterfall views (master/www/ui/views.py).

A change reaches its builds through the buildset a change scheduler made for it (the
buildset's properties hold ``changeids``), the buildset's requests (one per builder) and
their builds.  No table links changes to buildsets, so ``grid`` reads the buildsets
submitted since the oldest change of the page (newest first, at most
``MAX_BUILDSETS_SCANNED``) and picks out their ``changeids``.  A buildset of several changes
(a tree-stable timer batching them) belongs to the newest of them, as in Buildbot's grid.
"""

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from buildfarm.common.results import SUCCESS, WARNINGS
from buildfarm.master.db.base import IN_CLAUSE_CHUNK, DBComponent
from buildfarm.master.db.model import builders, buildrequests, builds, buildsets, changes, slaves, steps

MAX_BUILDSETS_SCANNED = 20_000
MAX_WATERFALL_BUILDS = 5_000
MAX_TREND_BUILDS = 20_000  # of one builder over the trends' days (newest kept)
SLOWEST_STEPS = 10
DAY_S = 86400
GOOD_RESULTS = (SUCCESS, WARNINGS)


@dataclass(frozen=True)
class GridRows:
    """One page of changes, newest first, with the requests and builds of each."""

    total: int  # changes matching the filter, over all pages
    changes: list[dict]  # ``db.changes`` rows (without ``files`` and ``properties``)
    cells: list[dict]  # one per request (and build of it): see ``_cell``


class ViewsComponent(DBComponent):
    """Reads across changes, buildsets, requests and builds for the views."""

    async def grid(self, limit: int, offset: int = 0, branch: str | None = None,
                   builder_names: list[str] | None = None) -> GridRows:
        """The changes of one page (of ``branch`` only, when given) and, for each of them,
        the requests of ``builder_names`` (every builder when None) with their builds."""

        def thd(conn: sa.Connection) -> GridRows:
            matching = sa.select(changes.c.id)
            if branch is not None:
                matching = matching.where(changes.c.branch == branch)
            total = conn.execute(sa.select(sa.func.count()).select_from(matching.subquery())).scalar_one()
            query = (sa.select(*_CHANGE_COLUMNS).where(changes.c.id.in_(matching.scalar_subquery()))
                     .order_by(changes.c.id.desc()).limit(limit).offset(offset))
            rows = [_change(row) for row in conn.execute(query)]
            if not rows or builder_names == []:
                return GridRows(total, rows, [])
            owners = _buildsets_of(conn, {row["changeid"] for row in rows},
                                   min(row["created_at"] for row in rows))
            return GridRows(total, rows, _cells(conn, owners, builder_names))

        return await self._run(thd)

    async def builds_between(self, start: float, end: float,
                             builder_names: list[str] | None = None) -> tuple[list[dict], bool]:
        """The builds that ran at some time in ``[start, end]`` (started before ``end`` and
        finished after ``start``, or still running), oldest first, at most
        ``MAX_WATERFALL_BUILDS``: ``(builds, whether more were left out)``."""
        query = (sa.select(*_BUILD_COLUMNS).select_from(_BUILD_JOIN)
                 .where(builds.c.started_at <= end,
                        sa.or_(builds.c.complete_at.is_(None), builds.c.complete_at >= start))
                 .order_by(builds.c.started_at, builds.c.id).limit(MAX_WATERFALL_BUILDS + 1))
        if builder_names is not None:
            query = query.where(builders.c.name.in_(builder_names))
        rows = await self._fetch_all(query, _build)
        return rows[:MAX_WATERFALL_BUILDS], len(rows) > MAX_WATERFALL_BUILDS

    async def builder_trends(self, builderid: int, until: float, days: int) -> dict:
        """A builder's finished builds of the ``days`` UTC days up to ``until``, summed up per
        day, and its slowest steps over them (computed here, in the database's thread):

        - ``days``: ``[{day (epoch of 00:00 UTC), builds, succeeded (success or warnings),
          success_rate (0-1, None without builds), duration_p50, duration_p90, wait_p50,
          running_p50}]``, oldest first, every day present (durations in seconds, None
          without builds; wait: from the request's submission to the build's start);
        - ``steps``: the ``SLOWEST_STEPS`` step names with the highest p90 duration:
          ``[{name, count, p50, p90, max}]``.
        """
        first_day = (int(until) // DAY_S - days + 1) * DAY_S

        def thd(conn: sa.Connection) -> dict:
            query = (sa.select(builds.c.id, builds.c.started_at, builds.c.complete_at, builds.c.results,
                               buildrequests.c.submitted_at)
                     .join(buildrequests, buildrequests.c.id == builds.c.buildrequestid)
                     .where(builds.c.builderid == builderid, builds.c.complete_at.is_not(None),
                            builds.c.started_at >= first_day, builds.c.started_at <= until)
                     .order_by(builds.c.id.desc()).limit(MAX_TREND_BUILDS))
            rows = conn.execute(query).all()
            return {"first_day": first_day, "days": _per_day(rows, first_day, days),
                    "steps": _slowest_steps(conn, [row.id for row in rows]), "builds": len(rows)}

        return await self._run(thd)


def percentile(values: list[float], percent: float) -> float | None:
    """The ``percent`` percentile of ``values`` (linear between ranks), None of none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * percent / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _per_day(rows: list[sa.Row], first_day: int, days: int) -> list[dict]:
    by_day: dict[int, list[sa.Row]] = {first_day + i * DAY_S: [] for i in range(days)}
    for row in rows:
        day = int(row.started_at) // DAY_S * DAY_S
        if day in by_day:
            by_day[day].append(row)
    summary = []
    for day, found in by_day.items():
        durations = [row.complete_at - row.started_at for row in found]
        waits = [max(0.0, row.started_at - row.submitted_at) for row in found]
        good = sum(row.results in GOOD_RESULTS for row in found)
        summary.append({"day": day, "builds": len(found), "succeeded": good,
                        "success_rate": good / len(found) if found else None,
                        "duration_p50": percentile(durations, 50), "duration_p90": percentile(durations, 90),
                        "wait_p50": percentile(waits, 50), "running_p50": percentile(durations, 50)})
    return summary


def _slowest_steps(conn: sa.Connection, buildids: list[int]) -> list[dict]:
    durations: dict[str, list[float]] = {}
    for start in range(0, len(buildids), IN_CLAUSE_CHUNK):
        query = (sa.select(steps.c.name, steps.c.started_at, steps.c.complete_at)
                 .where(steps.c.buildid.in_(buildids[start:start + IN_CLAUSE_CHUNK]),
                        steps.c.started_at.is_not(None), steps.c.complete_at.is_not(None)))
        for name, started, finished in conn.execute(query):
            durations.setdefault(name, []).append(max(0.0, finished - started))
    found = [{"name": name, "count": len(values), "p50": percentile(values, 50),
              "p90": percentile(values, 90), "max": max(values)} for name, values in durations.items()]
    found.sort(key=lambda step: (-step["p90"], step["name"]))
    return found[:SLOWEST_STEPS]


_CHANGE_COLUMNS = (changes.c.id, changes.c.author, changes.c.committer, changes.c.comments,
                   changes.c.branch, changes.c.revision, changes.c.repository, changes.c.project,
                   changes.c.codebase, changes.c.category, changes.c.when_timestamp,
                   changes.c.created_at)
_BUILD_JOIN = builds.join(builders, builders.c.id == builds.c.builderid).join(
    slaves, slaves.c.id == builds.c.slaveid)
_BUILD_COLUMNS = (builds.c.id, builds.c.number, builders.c.name.label("buildername"),
                  slaves.c.name.label("slavename"), builds.c.started_at, builds.c.complete_at,
                  builds.c.results, builds.c.state_string)


def _buildsets_of(conn: sa.Connection, changeids: set[int], since: float) -> dict[int, int]:
    """``{buildsetid: changeid}`` for the buildsets whose newest change is one of
    ``changeids`` (those buildsets were submitted at ``since`` or later)."""
    query = (sa.select(buildsets.c.id, buildsets.c.properties)
             .where(buildsets.c.submitted_at >= since)
             .order_by(buildsets.c.id.desc()).limit(MAX_BUILDSETS_SCANNED))
    owners = {}
    for bsid, properties in conn.execute(query):
        if '"changeids"' not in properties:
            continue  # most forced and periodic buildsets: no JSON to parse
        found = json.loads(properties).get("changeids")
        if isinstance(found, list) and found:
            newest = max((c for c in found if isinstance(c, int)), default=None)
            if newest in changeids:
                owners[bsid] = newest
    return owners


def _cells(conn: sa.Connection, owners: dict[int, int], builder_names: list[str] | None) -> list[dict]:
    """The requests of the buildsets of ``owners`` (their builders in ``builder_names``),
    each with its change and its build (a request retried has one cell per build)."""
    join = (buildrequests.join(builders, builders.c.id == buildrequests.c.builderid)
            .outerjoin(builds, builds.c.buildrequestid == buildrequests.c.id)
            .outerjoin(slaves, slaves.c.id == builds.c.slaveid))
    columns = (buildrequests.c.id.label("brid"), buildrequests.c.buildsetid,
               buildrequests.c.complete.label("request_complete"),
               buildrequests.c.results.label("request_results"),
               buildrequests.c.claimed_at, *_BUILD_COLUMNS)
    found = []
    bsids = sorted(owners)
    for start in range(0, len(bsids), IN_CLAUSE_CHUNK):
        query = (sa.select(*columns).select_from(join)
                 .where(buildrequests.c.buildsetid.in_(bsids[start:start + IN_CLAUSE_CHUNK])))
        if builder_names is not None:
            query = query.where(builders.c.name.in_(builder_names))
        for row in conn.execute(query):
            found.append({"changeid": owners[row.buildsetid], "buildrequestid": row.brid,
                          "request_complete": bool(row.request_complete),
                          "request_results": row.request_results, "claimed": row.claimed_at is not None,
                          **(_build(row) if row.id is not None else
                             {"buildid": None, "buildername": row.buildername})})
    found.sort(key=lambda cell: (cell["buildrequestid"], cell["buildid"] or 0))
    return found


def _change(row: sa.Row) -> dict[str, Any]:
    return {"changeid": row.id, "author": row.author, "committer": row.committer,
            "comments": row.comments, "branch": row.branch, "revision": row.revision,
            "repository": row.repository, "project": row.project, "codebase": row.codebase,
            "category": row.category, "when_timestamp": row.when_timestamp,
            "created_at": row.created_at}


def _build(row: sa.Row) -> dict[str, Any]:
    return {"buildid": row.id, "number": row.number, "buildername": row.buildername,
            "slavename": row.slavename, "started_at": row.started_at,
            "complete": row.complete_at is not None, "complete_at": row.complete_at,
            "results": row.results, "state_string": row.state_string}
