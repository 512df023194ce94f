"""The JSON twins of the views (``/api/v1/views/...`` and ``/api/buildfarm/v1/views/...``) on
a real in-memory master: the grid page's rows, paged, filtered, bad values as JSON 400s."""

import json

import pytest
import pytest_twisted
from test_views_pages import CFG, NOW, two_changes

from fixtures.memoryhttp import MemoryRequest, render_request
from fixtures.memorymaster import memory_master_fixture

master = memory_master_fixture(CFG, now=NOW)


@pytest.fixture
def site(master):
    return master.www.make_site().resource


async def get_json(site, path: str, args: list[tuple[str, str]] = ()) -> tuple[int, dict]:
    request = MemoryRequest("GET", path)
    request.args = {}
    for name, value in args:
        request.args.setdefault(name.encode(), []).append(value.encode())
    answer = await render_request(site, request)
    assert answer.header("content-type") == "application/json"
    return answer.code, json.loads(answer.body)


@pytest_twisted.ensureDeferred
async def test_the_grid_twin_has_the_pages_rows_with_cells_by_builder(master, site):
    made = await two_changes(master)
    code, body = await get_json(site, "/api/v1/views/grid")
    assert code == 200 and [b["name"] for b in body["builders"]] == ["android", "linux", "win"]
    new, old = body["changes"]
    assert (new["changeid"], old["changeid"]) == (made["new"], made["old"])
    assert old["revision"] == "a" * 40 and old["comments"].startswith("fix at")
    assert [(c["buildid"], c["state"], c["url"]) for c in old["builds"]["win"]] == [
        (made["bad"], "failure", f"/builds/{made['bad']}")]
    assert new["builds"]["linux"][0]["state"] == "running" and "win" not in new["builds"]
    assert body["meta"] == {"total": 2, "limit": 25, "offset": 0, "next": None}


@pytest_twisted.ensureDeferred
async def test_the_grid_twin_pages_and_filters_by_repeated_tags_and_builders(master, site):
    made = await two_changes(master)
    _, first = await get_json(site, "/api/v1/views/grid",
                              [("limit", "1"), ("tag", "mobile"), ("tag", "desktop")])
    assert [b["name"] for b in first["builders"]] == ["android", "win"]
    assert first["meta"]["next"] == "/api/v1/views/grid?tag=mobile&tag=desktop&limit=1&offset=1"
    _, second = await get_json(site, "/api/v1/views/grid", [("limit", "1"), ("offset", "1"),
                                                             ("builder", "win"), ("builder", "linux")])
    assert [c["changeid"] for c in second["changes"]] == [made["old"]] and second["meta"]["next"] is None
    assert set(second["changes"][0]["builds"]) == {"linux", "win"}
    _, layout = await get_json(site, "/api/buildfarm/v1/views/grid", [("limit", "1")])
    assert layout["continuationToken"] == "1"
    _, following = await get_json(site, "/api/buildfarm/v1/views/grid", [("limit", "1"),
                                                                          ("continuationToken", "1")])
    assert [c["changeid"] for c in following["changes"]] == [made["old"]]
    assert "continuationToken" not in following


@pytest_twisted.ensureDeferred
async def test_bad_values_are_json_400s_naming_the_field(master, site):
    for args, field in (([("limit", "0")], "limit"), ([("limit", "500")], "limit"),
                        ([("offset", "x")], "offset"), ([("tag", "t" * 300)], "tag")):
        code, body = await get_json(site, "/api/v1/views/grid", args)
        assert code == 400 and body["field"] == field, (args, body)
