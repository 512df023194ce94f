"""The waterfall (master/www/ui/views.py): its time range and filters, builds as bars on
lanes (overlapping builds on tracks of their own), the axis, the page on a real in-memory
master and its JSON twin."""

import json

import pytest
import pytest_twisted
from test_views_db import build, buildset, change
from test_views_pages import CFG, NOW

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.www.ui import views
from fixtures.memoryhttp import render
from fixtures.memorymaster import memory_master_fixture

master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    return master.www.make_site().resource


def values(**given):
    return lambda name: [given[name]] if name in given else []


def span(flt: views.WaterfallFilter) -> tuple:
    return flt.start, flt.end, flt.preset


def test_the_range_is_a_preset_or_from_and_to_and_defaults_to_the_last_six_hours():
    assert span(views.parse_waterfall_filter(values(range="1h"), NOW)) == (NOW - 3600, NOW, "1h")
    assert span(views.parse_waterfall_filter(values(), NOW)) == (NOW - 6 * 3600, NOW, "6h")
    flt = views.parse_waterfall_filter(values(**{"from": "2026-12-04 21:30", "to": "2026-12-04T22:00"}), NOW)
    assert (flt.start, flt.end, flt.preset) == (1796419800.0, 1796421600.0, None)
    assert span(views.parse_waterfall_filter(values(to="100000"), NOW)) == (100000 - 6 * 3600, 100000.0, None)


@pytest.mark.parametrize(("given", "field"), [
    ({"range": "2h"}, "range"), ({"from": "yesterday"}, "from"), ({"to": "nan"}, "to"),
    ({"from": "2000", "to": "1000"}, "from"), ({"from": "0", "to": str(40 * 86400)}, "from"),
    ({"to": "1e30"}, "to")])
def test_a_bad_range_names_its_field(given, field):
    with pytest.raises(views.BadViewFilter) as raised:
        views.parse_waterfall_filter(values(**given), NOW)
    assert raised.value.field == field


def row(buildid, builder, slave, started, finished=None, results=None):
    return {"buildid": buildid, "number": buildid, "buildername": builder, "slavename": slave,
            "started_at": started, "complete": finished is not None, "complete_at": finished,
            "results": results, "state_string": ""}


def test_bars_sit_on_their_builders_lane_from_start_to_end_and_overlaps_get_another_track():
    columns = [{"name": "linux", "tags": []}, {"name": "win", "tags": []}]
    found = [row(1, "linux", "bs1", 1000.0, 1500.0, SUCCESS), row(2, "linux", "bs2", 1200.0, 1800.0, FAILURE),
             row(3, "linux", "bs1", 1600.0), row(4, "win", "bs2", 500.0, 1100.0, SUCCESS)]
    linux, win = views.waterfall_lanes(columns, found, 1000.0, 2000.0, now=1900.0)
    scale = (views.SVG_WIDTH - views.GUTTER) / 1000.0
    first, second, running = linux["bars"]
    assert (first["x"], first["width"]) == (views.GUTTER, round(500 * scale, 1))
    assert (first["track"], second["track"], running["track"]) == (0, 1, 0)
    assert running["state"] == "running" and running["width"] == round(300 * scale, 1)  # up to now
    assert second["state"] == "failure" and second["symbol"] == views.RESULT_SYMBOLS["failure"]
    assert linux["height"] == 2 * views.TRACK_HEIGHT
    assert win["y"] == linux["y"] + linux["height"] + views.LANE_GAP
    [clipped] = win["bars"]  # began before the range: drawn from its start
    assert (clipped["x"], clipped["width"]) == (views.GUTTER, round(100 * scale, 1))
    assert clipped["slavename"] == "bs2"


def test_the_axis_has_round_ticks_in_range():
    ticks = views.axis_ticks(NOW - 3600, NOW)
    assert 4 <= len(ticks) <= views.MAX_TICKS
    assert all(views.GUTTER <= t["x"] <= views.SVG_WIDTH for t in ticks)
    assert all(t["label"].endswith(("0", "5")) for t in ticks)


async def two_builds(master) -> dict:
    db = master.db
    changeid = await change(db, NOW - 3000)
    brids = await buildset(db, [changeid], ["linux", "win"], NOW - 3000)
    return {"linux": await build(db, brids["linux"], "linux", "bs1", NOW - 2000, SUCCESS),
            "win": await build(db, brids["win"], "win", "bs2", NOW - 1500, FAILURE)}


@pytest_twisted.ensureDeferred
async def test_the_page_draws_each_build_as_a_linked_bar_with_its_slave(master, site):
    made = await two_builds(master)
    answer = await render(site, "GET", "/waterfall", args={"range": "1h"})
    html = answer.body.decode()
    assert answer.code == 200 and '<svg id="waterfall"' in html
    for builder, slave, state in (("linux", "bs1", "success"), ("win", "bs2", "failure")):
        bar = html.split(f'data-build="{made[builder]}"', 1)[1].split("</a>", 1)[0]
        assert f'data-slave="{slave}"' in bar and f'fill="url(#wf-{state})"' in bar and f"{slave} #" in bar
    assert f'href="/builds/{made["win"]}"' in html and 'id="wf-failure"' in html
    assert "2 builds" in html and "on bs1, bs2" in html
    assert 'class="current">last 1h' in html
    narrow = (await render(site, "GET", "/waterfall", args={"builder": "win"})).body.decode()
    assert f'data-build="{made["win"]}"' in narrow and f'data-build="{made["linux"]}"' not in narrow


@pytest_twisted.ensureDeferred
async def test_a_bad_range_is_a_400_page(master, site):
    answer = await render(site, "GET", "/waterfall", args={"range": "5y"})
    assert answer.code == 400 and "range must be one of 1h, 6h, 24h" in answer.body.decode()


@pytest_twisted.ensureDeferred
async def test_the_json_twin_has_each_builders_builds_paged(master, site):
    made = await two_builds(master)
    answer = await render(site, "GET", "/api/v1/views/waterfall", args={"range": "1h", "limit": "1"})
    body = json.loads(answer.body)
    assert answer.code == 200 and (body["from"], body["to"]) == (NOW - 3600, NOW)
    lanes = {lane["name"]: lane["builds"] for lane in body["builders"]}
    assert [b["buildid"] for b in lanes["linux"]] == [made["linux"]] and lanes["win"] == []
    assert lanes["linux"][0]["slavename"] == "bs1" and lanes["linux"][0]["state"] == "success"
    assert body["meta"]["total"] == 2 and "offset=1" in body["meta"]["next"]
    second = json.loads((await render(site, "GET", "/api/buildfarm/v1/views/waterfall",
                                      args={"range": "1h", "limit": "1", "continuationToken": "1"})).body)
    assert [b["buildid"] for lane in second["builders"] for b in lane["builds"]] == [made["win"]]
    bad = await render(site, "GET", "/api/v1/views/waterfall", args={"from": "soon"})
    assert bad.code == 400 and json.loads(bad.body)["field"] == "from"
