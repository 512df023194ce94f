"""A builder's trends (master/www/ui/views.py): the charts on /builders/<name> drawn from the
builds of the last 30 days, the JSON twin, and the cache that reads them once a minute
whoever looks."""

import json

import pytest
import pytest_twisted
from test_views_db import finished_build
from test_views_pages import CFG
from twisted.internet import defer

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.mq import events
from buildfarm.master.www.ui import views
from fixtures.memoryhttp import render
from fixtures.memorymaster import memory_master_fixture

DAY = 86400.0
NOW = 20_000 * DAY + 12 * 3600  # noon UTC
master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    return master.www.make_site().resource


async def some_builds(db) -> None:
    """linux: two days ago one success of 100 s; today a success of 200 s (waited 30 s) and a
    failure of 400 s, with steps compile and test."""
    today = NOW - 6 * 3600
    await finished_build(db, "linux", today - 2 * DAY, today - 2 * DAY, 100.0, SUCCESS, {"compile": 90.0})
    await finished_build(db, "linux", today - 30, today, 200.0, SUCCESS, {"compile": 150.0, "test": 50.0})
    await finished_build(db, "linux", today - 30, today, 400.0, FAILURE, {"compile": 100.0, "test": 300.0})


class CountingViews:
    """``db.views`` counting its ``builder_trends`` reads (the real one answers)."""

    def __init__(self, real):
        self.real = real
        self.reads = 0

    async def builder_trends(self, *args):
        self.reads += 1
        return await self.real.builder_trends(*args)


@pytest_twisted.ensureDeferred
async def test_the_builder_page_draws_each_chart_from_its_builds(master, site):
    await some_builds(master.db)
    answer = await render(site, "GET", "/builders/linux")
    html = answer.body.decode()
    assert answer.code == 200 and 'id="trends"' in html and "3 finished builds" in html
    duration = html.split('id="chart-duration"', 1)[1].split("</svg>", 1)[0]
    assert duration.count('data-series="duration_p50"') == 2
    assert duration.count('data-series="duration_p90"') == 2
    assert "p90 6m 20s (2 builds)" in duration and "p50 5m 0s (2 builds)" in duration
    success = html.split('id="chart-success"', 1)[1].split("</svg>", 1)[0]
    assert success.count('class="bar-rate"') == 2 and "1 of 2 succeeded" in success
    queue = html.split('id="chart-queue"', 1)[1].split("</svg>", 1)[0]
    assert "waited 30s, ran 5m 0s (medians)" in queue and "waited 0.00s, ran 1m 40s" in queue
    steps = html.split('id="slowest-steps"', 1)[1].split("</table>", 1)[0]
    assert steps.index("<td>test</td>") < steps.index("<td>compile</td>")  # by p90


@pytest_twisted.ensureDeferred
async def test_a_builder_without_builds_says_so(master, site):
    html = (await render(site, "GET", "/builders/win")).body.decode()
    assert "0 finished builds" in html and "No finished builds." in html and "No finished steps." in html


@pytest_twisted.ensureDeferred
async def test_the_json_twin_has_the_series_behind_the_charts(master, site):
    await some_builds(master.db)
    answer = await render(site, "GET", "/api/v1/builders/linux/trends")
    body = json.loads(answer.body)
    assert answer.code == 200 and body["builder"] == "linux" and len(body["days"]) == views.TREND_DAYS
    today = body["days"][-1]
    assert (today["builds"], today["succeeded"], today["success_rate"]) == (2, 1, 0.5)
    assert (today["duration_p50"], today["wait_p50"]) == (300.0, 30.0)
    assert [s["name"] for s in body["steps"]] == ["test", "compile"]
    layout = await render(site, "GET", "/api/buildfarm/v1/builders/linux/trends")
    assert json.loads(layout.body)["days"] == body["days"]
    missing = await render(site, "GET", "/api/v1/builders/nope/trends")
    assert missing.code == 404 and "nope" in json.loads(missing.body)["error"]


@pytest_twisted.ensureDeferred
async def test_trends_are_read_once_a_minute_whoever_looks(master):
    await some_builds(master.db)
    counting = CountingViews(master.db.views)
    db = type("DB", (), {"views": counting})()
    cache = views.TrendsCache(db, master.reactor)
    builderid = master.botmaster.builders["linux"].builderid
    together = await defer.gatherResults([defer.ensureDeferred(cache.get(builderid)) for _ in range(5)])
    assert counting.reads == 1 and all(t is together[0] for t in together)
    master.reactor.advance(views.TRENDS_CACHE_S - 1)
    await cache.get(builderid)
    assert counting.reads == 1
    await finished_build(master.db, "linux", NOW, NOW, 10.0, SUCCESS)
    master.reactor.advance(1)
    fresh = await cache.get(builderid)
    assert counting.reads == 2 and fresh["days"][-1]["builds"] == 3


def test_chart_geometry_puts_higher_values_higher_and_breaks_lines_on_empty_days():
    days = [{"day": i * DAY, "builds": n, "succeeded": n, "success_rate": 1.0 if n else None,
             "duration_p50": p50, "duration_p90": p50 and p50 * 2, "wait_p50": 1.0 if n else None,
             "running_p50": p50} for i, (n, p50) in enumerate([(1, 10.0), (0, None), (2, 40.0), (1, 20.0)])]
    charts = views.trend_charts({"days": days})
    p50 = charts["duration"]["series"][0]
    assert [p["y"] for p in p50["points"]][1] < [p["y"] for p in p50["points"]][0]  # 40 s above 10 s
    assert p50["path"].count("M") == 2 and p50["path"].count("L") == 1  # the empty day breaks it
    assert charts["duration"]["y_ticks"][-1]["label"] == "1m 40s"  # 2 x 40 s, rounded up to 100 s
    assert len(charts["success"]["bars"]) == 3 and len(charts["queue"]["bars"]) == 3


@pytest_twisted.ensureDeferred
async def test_a_builders_trends_are_read_again_once_one_of_its_builds_finishes_on_the_bus(master):
    await some_builds(master.db)
    counting = CountingViews(master.db.views)
    db = type("DB", (), {"views": counting})()
    cache = views.TrendsCache(db, master.reactor, mq=master.mq)
    builderid = master.botmaster.builders["linux"].builderid
    await cache.get(builderid)
    buildid = await finished_build(master.db, "linux", NOW, NOW, 10.0, SUCCESS)
    await events.publish(master.mq, events.build_finished(
        master.mq, await master.db.builds.get(buildid), SUCCESS, NOW, "done"))
    fresh = await cache.get(builderid)  # the clock has not moved: without the event, the cached read
    assert counting.reads == 2 and fresh["days"][-1]["builds"] == 3
    await cache.get(builderid)
    assert counting.reads == 2


@pytest_twisted.ensureDeferred
async def test_a_read_under_way_when_a_build_finishes_is_not_kept(master):
    await some_builds(master.db)
    gate: defer.Deferred = defer.Deferred()

    class SlowViews(CountingViews):
        async def builder_trends(self, *args):
            found = await super().builder_trends(*args)
            if self.reads == 1:
                await gate
            return found

    counting = SlowViews(master.db.views)
    cache = views.TrendsCache(type("DB", (), {"views": counting})(), master.reactor)
    builderid = master.botmaster.builders["linux"].builderid
    first = defer.ensureDeferred(cache.get(builderid))
    cache.forget(builderid)
    gate.callback(None)
    await first
    await cache.get(builderid)
    assert counting.reads == 2
