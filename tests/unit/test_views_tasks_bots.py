"""The tasks and bots charts (master/www/ui/views.py, taskpages.py): tasks by state over 24 h
on /tasks from the samples the master records each minute, bots grouped by a dimension and
split by state on /bots, and their JSON twins under /api/v1/views/."""

import json

import pytest
import pytest_twisted
from test_task_pages import CFG, NOW, add_task, get, rid, run
from twisted.internet import defer

from buildfarm.master import samples as sampler
from buildfarm.master.tasks import botstates, ids
from buildfarm.master.www.ui import views
from fixtures.memorymaster import attach_slave, eventually, memory_master_fixture, with_fast_password_checks

master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    with_fast_password_checks(master)
    return master.www.make_site().resource


def svg(html: str, chart_id: str) -> str:
    return html.split(f'id="{chart_id}"', 1)[1].split("</svg>", 1)[0]


@pytest_twisted.ensureDeferred
async def test_tasks_by_state_are_charted_on_the_tasks_page_from_the_minutes_samples(master, site):
    await eventually(lambda: _sampled(master, 1), "the sample at start-up")
    await add_task(master)  # pending
    done = await add_task(master)
    await run(master, done, exit_code=0)
    master.reactor.advance(sampler.SAMPLE_INTERVAL_S)
    await eventually(lambda: _sampled(master, 2), "the minute's sample")
    html = (await get(site, "/tasks")).body.decode()
    chart = svg(html, "chart-tasks")
    assert 'data-series="tasks.pending"' in chart and 'class="line line-longdash"' in chart
    assert "pending: now 1.0" in chart and "completed: now" in chart
    body = json.loads((await get(site, "/api/v1/views/tasks")).body)
    assert body["series"]["tasks.pending"][-1] == {"at": NOW + sampler.SAMPLE_INTERVAL_S, "value": 1.0}
    assert sum(p["value"] for p in body["series"]["tasks.completed"]) == 1.0
    assert body["to"] - body["from"] == 24 * 3600


def _sampled(master, count: int):
    async def check():
        found = await master.db.samples.series("tasks.pending", 0)
        return len(found.get("tasks.pending", [])) >= count
    return check()


@pytest_twisted.ensureDeferred
async def test_bots_are_charted_by_the_chosen_dimension_a_bar_per_value_split_by_state(master, site):
    for name in ("bs1", "bs2"):
        await attach_slave(master, name)
        await eventually(lambda n=name: master.db.tasks.get_bot(n), f"the bot row of {name}")
    await master.db.tasks.set_bot("bs1", {"pool": ["ci"], "os": ["Linux"]}, NOW)
    await master.db.tasks.set_bot("bs2", {"pool": ["ci"], "os": ["Mac"]}, NOW)
    await master.db.tasks.set_bot("gone", {"pool": ["gpu"], "os": ["Linux"]}, NOW)
    task_id = await add_task(master)
    await master.db.tasks.set_bot_state("bs1", {"attached": True}, task_id=ids.run_id(rid(task_id), 1))

    chart = svg((await get(site, "/bots")).body.decode(), "chart-bots")
    assert '<rect class="bar bar-running" data-state="busy" data-group="ci"' in chart
    assert '<rect class="bar bar-success" data-state="idle" data-group="ci"' in chart
    assert 'data-state="dead" data-group="gpu"' in chart and 'fill="url(#wf-failure)"' in chart
    widths = {state: float(part.split('width="', 1)[1].split('"', 1)[0])
              for state, part in (p.split('"', 1)[0:2] for p in chart.split('data-state="')[1:])}
    assert widths["busy"] == widths["idle"] == widths["dead"] > 0  # one bot each, on one scale

    by_os = json.loads((await get(site, "/api/v1/views/bots", {"key": "os"})).body)
    assert by_os["key"] == "os" and by_os["bots"] == 3
    assert [(g["value"], g["total"], g["states"]["dead"]) for g in by_os["groups"]] == [
        ("Linux", 2, 1), ("Mac", 1, 0)]
    kept = json.loads((await get(site, "/api/v1/views/bots", {"dimension": "os:Mac"})).body)
    assert [(g["value"], g["states"]["idle"]) for g in kept["groups"]] == [("ci", 1)]
    bad = await get(site, "/api/v1/views/bots", {"dimension": "nocolon"})
    assert bad.code == 400 and "key:value" in json.loads(bad.body)["error"]


def test_a_bots_state_is_dead_unless_connected_then_quarantined_maintenance_busy_or_idle():
    flagged = {"quarantined": "disk full", "maintenance": "upgrading", "task_id": "t1"}
    assert botstates.bot_state(flagged, connected=False) == "dead"
    assert botstates.bot_state(flagged, connected=True) == "quarantined"
    assert botstates.bot_state({**flagged, "quarantined": None}, connected=True) == "maintenance"
    assert botstates.bot_state({"task_id": "t1"}, connected=True) == "busy"
    assert botstates.bot_state({"task_id": None}, connected=True) == "idle"


async def _three_bots(master) -> None:
    """bs1 busy, bs2 quarantined (both attached), ``gone`` dead (attached to no master)."""
    for name in ("bs1", "bs2"):
        await attach_slave(master, name)
        await eventually(lambda n=name: master.db.tasks.get_bot(n), f"the bot row of {name}")
    await master.db.tasks.set_bot("gone", {"pool": ["gpu"]}, NOW)
    task_id = await add_task(master)
    await master.db.tasks.set_bot_state("bs1", {"attached": True}, task_id=ids.run_id(rid(task_id), 1))
    await master.db.tasks.set_bot_flags("bs2", quarantined="disk full")


@pytest_twisted.ensureDeferred
async def test_the_master_samples_bots_by_state_each_minute_and_bots_charts_them_over_time(master, site):
    await eventually(lambda: _sampled(master, 1), "the sample at start-up")
    await _three_bots(master)
    master.reactor.advance(sampler.SAMPLE_INTERVAL_S)
    await eventually(lambda: _sampled(master, 2), "the minute's sample")
    now = NOW + sampler.SAMPLE_INTERVAL_S

    found = await master.db.samples.series("bots.", 0)
    assert {name: points[-1] for name, points in found.items()} == {
        "bots.busy": (now, 1.0), "bots.quarantined": (now, 1.0), "bots.dead": (now, 1.0),
        "bots.idle": (now, 0.0), "bots.maintenance": (now, 0.0)}
    chart = svg((await get(site, "/bots")).body.decode(), "chart-bot-states")
    assert 'data-series="bots.quarantined" data-points="2"' in chart and "quarantined: now 1.0" in chart
    assert 'class="line line-longdash" data-series="bots.dead"' in chart  # a dash pattern per state
    overview = svg((await get(site, "/")).body.decode(), "chart-slaves")
    assert 'class="line line-rounddot" data-series="bots.quarantined"' in overview

    body = json.loads((await get(site, "/api/v1/views/bots/states")).body)
    assert body["series"]["bots.busy"] == [{"at": NOW, "value": 0.0}, {"at": now, "value": 1.0}]
    assert body["meta"] == {"total": 2, "limit": 1440, "offset": 0, "next": None}
    first = json.loads((await get(site, "/api/v1/views/bots/states", {"limit": "1"})).body)
    assert first["series"]["bots.busy"] == [{"at": NOW, "value": 0.0}]
    assert first["meta"]["next"] == "/api/v1/views/bots/states?limit=1&offset=1"
    last = json.loads((await get(site, "/api/v1/views/bots/states", {"limit": "1", "offset": "1"})).body)
    assert last["series"]["bots.dead"] == [{"at": now, "value": 1.0}] and last["meta"]["next"] is None
    bad = await get(site, "/api/v1/views/bots/states", {"limit": "lots"})
    assert bad.code == 400 and "limit" in json.loads(bad.body)["error"]


@pytest_twisted.ensureDeferred
async def test_the_charts_over_time_are_read_once_a_minute_however_many_look(master, site, monkeypatch):
    await eventually(lambda: _sampled(master, 1), "the sample at start-up")
    reads: list[str] = []
    series = master.db.samples.series

    async def counted(prefix, *args):
        reads.append(prefix)
        return await series(prefix, *args)

    monkeypatch.setattr(master.db.samples, "series", counted)
    pages = [get(site, path) for path in ("/tasks", "/bots", "/") for _ in range(4)]
    answers = await defer.gatherResults([defer.ensureDeferred(page) for page in pages])
    answers += [await get(site, "/tasks"), await get(site, "/bots")]
    assert all(answer.code == 200 for answer in answers)
    assert reads.count("tasks.") == 1 and reads.count("bots.") == 1 and reads.count("queue.") == 1

    master.reactor.advance(views.CHARTS_CACHE_S)  # the next minute: its sample may be there
    await get(site, "/tasks")
    assert reads.count("tasks.") == 2


@pytest_twisted.ensureDeferred
async def test_a_sample_the_master_records_shows_on_the_charts_at_once(master, site):
    await eventually(lambda: _sampled(master, 1), "the sample at start-up")
    chart = svg((await get(site, "/tasks")).body.decode(), "chart-tasks")
    assert "pending: now 0.0" in chart
    await add_task(master)
    await master.sampler.sample()  # within the cached minute: the clock has not moved
    chart = svg((await get(site, "/tasks")).body.decode(), "chart-tasks")
    assert "pending: now 1.0" in chart
    body = json.loads((await get(site, "/api/v1/views/tasks")).body)
    assert body["series"]["tasks.pending"][-1]["value"] == 1.0
