"""``db.views`` on both databases: the changes of a grid page with the requests and builds of
each (through their buildsets' ``changeids``), and the builds of a waterfall's time range."""

import pytest
import pytest_twisted

from buildfarm.common.results import FAILURE, SUCCESS


async def change(db, at: float, branch: str = "main", revision: str | None = None) -> int:
    return await db.changes.add(author="ann <ann@example.org>", comments=f"fix at {at}\nmore", files=[],
                                when_timestamp=at, created_at=at, branch=branch,
                                revision=revision or f"{int(at):040x}")


async def buildset(db, changeids: list[int], builders: list[str], at: float) -> dict[str, int]:
    """A buildset for ``changeids`` on ``builders``: ``{builder: buildrequestid}``."""
    ids = {name: await db.builders.find_or_create(name) for name in builders}
    _, brids = await db.buildsets.add("tests", "change", {"changeids": changeids}, list(ids.values()), at)
    return {name: brids[ids[name]] for name in builders}


async def build(db, brid: int, builder: str, slave: str, at: float, results: int | None = None) -> int:
    masterid = await db.masters.find_or_create("m1")
    slaveid = await db.slaves.attached(slave, masterid, {}, None, at)
    await db.buildrequests.claim(brid, masterid, at)
    buildid, _ = await db.builds.add(await db.builders.find_or_create(builder), brid, slaveid, masterid, at)
    if results is not None:
        await db.builds.finish(buildid, results, at + 60, "done")
    return buildid


@pytest_twisted.ensureDeferred
async def test_each_change_gets_the_builds_of_its_buildsets_newest_change_first(db):
    first, second, third = [await change(db, at) for at in (100.0, 200.0, 300.0)]
    one = await buildset(db, [first], ["linux", "win"], 101.0)
    batch = await buildset(db, [second, third], ["linux"], 301.0)  # belongs to the newest, third
    await db.buildsets.add("force", "forced", {}, [await db.builders.find_or_create("linux")], 302.0)
    ok = await build(db, one["linux"], "linux", "bs1", 110.0, SUCCESS)
    bad = await build(db, one["win"], "win", "bs2", 120.0, FAILURE)
    running = await build(db, batch["linux"], "linux", "bs1", 310.0)

    found = await db.views.grid(limit=10)

    assert found.total == 3
    assert [c["changeid"] for c in found.changes] == [third, second, first]
    assert found.changes[0]["author"] == "ann <ann@example.org>" and found.changes[0]["branch"] == "main"
    cells = {(c["changeid"], c["buildername"]): c for c in found.cells}
    assert set(cells) == {(first, "linux"), (first, "win"), (third, "linux")}
    assert (cells[first, "linux"]["buildid"], cells[first, "linux"]["results"]) == (ok, SUCCESS)
    assert (cells[first, "win"]["buildid"], cells[first, "win"]["slavename"]) == (bad, "bs2")
    assert cells[third, "linux"]["buildid"] == running and cells[third, "linux"]["complete"] is False


@pytest_twisted.ensureDeferred
async def test_a_request_not_started_is_a_cell_without_a_build(db):
    only = await change(db, 100.0)
    brids = await buildset(db, [only], ["linux"], 101.0)
    [cell] = (await db.views.grid(limit=5)).cells
    assert cell["buildid"] is None and cell["buildrequestid"] == brids["linux"]
    assert (cell["claimed"], cell["request_complete"], cell["buildername"]) == (False, False, "linux")


@pytest_twisted.ensureDeferred
async def test_the_page_filters_by_branch_and_builder_and_pages_by_offset(db):
    ids = [await change(db, 100.0 + i, branch="main" if i % 2 else "dev") for i in range(6)]
    for changeid in ids:
        await buildset(db, [changeid], ["linux", "win"], 200.0)
    main = await db.views.grid(limit=2, branch="main")
    assert main.total == 3 and [c["changeid"] for c in main.changes] == [ids[5], ids[3]]
    older = await db.views.grid(limit=2, offset=2, branch="main", builder_names=["win"])
    assert [c["changeid"] for c in older.changes] == [ids[1]]
    assert {c["buildername"] for c in older.cells} == {"win"}
    assert (await db.views.grid(limit=2, builder_names=[])).cells == []


@pytest_twisted.ensureDeferred
async def test_the_waterfall_reads_the_builds_that_overlap_the_range(db):
    only = await change(db, 100.0)
    brids = await buildset(db, [only], ["a", "b", "c"], 100.0)
    before = await build(db, brids["a"], "a", "bs1", 100.0, SUCCESS)  # 100..160
    inside = await build(db, brids["b"], "b", "bs2", 500.0, FAILURE)  # 500..560
    running = await build(db, brids["c"], "c", "bs1", 400.0)
    found, cut = await db.views.builds_between(300.0, 1000.0)
    assert [b["buildid"] for b in found] == [running, inside] and cut is False
    assert before not in [b["buildid"] for b in (await db.views.builds_between(161.0, 200.0))[0]]
    only_b, _ = await db.views.builds_between(0.0, 1000.0, ["b"])
    assert [(b["buildername"], b["slavename"]) for b in only_b] == [("b", "bs2")]


DAY = 86400.0
TODAY = 20_000 * DAY  # 00:00 UTC of a day


async def finished_build(db, builder: str, submitted: float, started: float, seconds: float, results: int,
                         steps: dict[str, float] | None = None) -> int:
    """A build of ``builder`` whose request waited from ``submitted`` to ``started`` and which
    ran ``seconds``, with ``steps`` (name: seconds) one after the other."""
    builderid = await db.builders.find_or_create(builder)
    brid = await db.buildrequests.add(builderid, "test", {}, submitted)
    buildid = await build(db, brid, builder, "bs1", started)
    at = started
    for number, (name, length) in enumerate((steps or {}).items()):
        stepid = await db.steps.add(buildid, number, name, at)
        await db.steps.finish(stepid, SUCCESS, at + length, "done")
        at += length
    await db.builds.finish(buildid, results, started + seconds, "done")
    return buildid


@pytest_twisted.ensureDeferred
async def test_trends_sum_up_each_day_and_find_the_slowest_steps(db):
    for seconds, results in ((100.0, SUCCESS), (200.0, SUCCESS), (300.0, FAILURE), (1000.0, SUCCESS)):
        await finished_build(db, "linux", TODAY + 10, TODAY + 70, seconds, results,
                             {"compile": seconds * 0.8, "test": seconds * 0.2})
    await finished_build(db, "linux", TODAY - DAY + 5, TODAY - DAY + 5, 50.0, FAILURE, {"compile": 40.0})
    await finished_build(db, "linux", TODAY - 40 * DAY, TODAY - 40 * DAY, 50.0, SUCCESS)  # too old
    await finished_build(db, "win", TODAY + 10, TODAY + 10, 999.0, SUCCESS)  # another builder
    await add_running(db, "linux", TODAY + 100)
    builderid = await db.builders.find_or_create("linux")

    trends = await db.views.builder_trends(builderid, until=TODAY + DAY - 1, days=30)

    assert len(trends["days"]) == 30 and trends["days"][0]["day"] == TODAY - 29 * DAY
    today, yesterday = trends["days"][-1], trends["days"][-2]
    assert (today["builds"], today["succeeded"], today["success_rate"]) == (4, 3, 0.75)
    assert today["duration_p50"] == 250.0 and today["duration_p90"] == pytest.approx(790.0)
    assert (today["wait_p50"], today["running_p50"]) == (60.0, 250.0)
    assert (yesterday["builds"], yesterday["success_rate"], yesterday["wait_p50"]) == (1, 0.0, 0.0)
    assert trends["days"][0]["builds"] == 0 and trends["days"][0]["duration_p50"] is None
    compile_, test = trends["steps"]
    assert (compile_["name"], compile_["count"], compile_["max"]) == ("compile", 5, 800.0)
    assert compile_["p90"] == pytest.approx(576.0) and (test["name"], test["count"]) == ("test", 4)


async def add_running(db, builder: str, at: float) -> int:
    builderid = await db.builders.find_or_create(builder)
    return await build(db, await db.buildrequests.add(builderid, "test", {}, at), builder, "bs1", at)
