"""The views in a real headless Chromium against a real master with two real slaves: the grid
showing a new change (posted while the page is open) and its build turning from running to
a result without a reload, the console of the same, and the waterfall showing builds on both
slaves.

Each test saves its page's screenshot under docs/screenshots/ (or $BUILDFARM_SCREENSHOT_DIR).
"""

import json
import os

import pytest
from browserkit import SCREENSHOT_DIR, screenshot
from playwright.sync_api import expect

from fixtures.daemons import Fleet, stop_daemons, wait_for

LIVE_DEADLINE_MS = 40_000
SAMPLE_DEADLINE_S = 90  # the master samples each minute of its clock

# 'unit' waits for a gate file named after the change's revision (so that the test decides
# when it ends; a minute at most), 'lint' runs at once; both run for each change on main.
VIEWS_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['title'] = 'release farm'
c['slaves'] = [slaves.BuildSlave(name, 'pass') for name in ('bs1', 'bs2')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
GATE = ('i=0; while [ ! -e "{gates}/open-$0" ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done; '
        'echo built $0')
c['builders'] = [
    util.BuilderConfig(name='unit', slavenames=['bs1'], tags=['test'], factory=util.BuildFactory(
        [steps.ShellCommand(command=['sh', '-c', GATE, util.Property('revision')])])),
    util.BuilderConfig(name='lint', slavenames=['bs2'], tags=['test', 'fast'], factory=util.BuildFactory(
        [steps.ShellCommand(command=['echo', 'lint', util.Property('revision')])])),
    util.BuilderConfig(name='docs', slavenames=['bs1', 'bs2'], factory=util.BuildFactory(
        [steps.ShellCommand(command=['echo', 'docs'])])),
]
c['schedulers'] = [
    schedulers.SingleBranchScheduler(name='main', builderNames=['unit', 'lint'], treeStableTimer=None,
                                     change_filter=util.ChangeFilter(branch='main')),
    schedulers.ForceScheduler(name='force', builderNames=['unit', 'lint', 'docs']),
]
"""


@pytest.fixture(scope="module")
def views_farm(tmp_path_factory):
    """A master with builders unit (bs1), lint (bs2) and docs, and its gate folder."""
    root = str(tmp_path_factory.mktemp("views"))
    gates = os.path.join(root, "gates")
    os.makedirs(gates)
    fleet = Fleet(root)
    try:
        master = fleet.master(config=lambda pb_port, www_port: VIEWS_CFG.format(
            pb_port=pb_port, www_port=www_port, gates=gates))
        for name in ("bs1", "bs2"):
            fleet.slave(master, name)
        for name in ("bs1", "bs2"):
            master.wait_attached(name)
        master.gates = gates
        yield master
    finally:
        fleet.stop_all()


def post_change(farm, revision: str, comments: str, author: str = "Ann Dev <ann@example.org>") -> int:
    status, body = farm.request("POST", "/api/v1/changes", {
        "author": author, "branch": "main", "revision": revision, "comments": comments,
        "files": ["src/app.c"]})
    assert status == 200, body
    return int(body.decode().split(":")[1].strip(" }"))


def open_gate(farm, revision: str) -> None:
    with open(os.path.join(farm.gates, f"open-{revision}"), "w"):
        pass


def builds_of_change(farm, changeid: int) -> dict:
    """``{builder: [cells]}`` of a change in the grid's JSON twin."""
    rows = farm.get("/api/v1/views/grid?limit=100")["changes"]
    return next((row["builds"] for row in rows if row["changeid"] == changeid), {})


def finished(farm, changeid: int, builder: str) -> bool:
    cells = builds_of_change(farm, changeid).get(builder, [])
    return bool(cells) and cells[-1]["state"] not in ("running", "pending")


def test_the_grid_shows_a_new_change_and_its_build_turning_from_running_to_a_result_live(views_farm, page):
    farm = views_farm
    earlier = post_change(farm, "1" * 40, "Earlier work\n\nwith a body")
    open_gate(farm, "1" * 40)
    wait_for(lambda: finished(farm, earlier, "unit") and finished(farm, earlier, "lint"),
             "the first change's builds")

    page.goto(farm.url + "/grid")
    expect(page.locator("#grid")).to_have_attribute("data-listening", "true")
    page.evaluate("window.notReloaded = true")
    assert page.locator(f'tr[data-change="{earlier}"] td[data-builder="unit"] a.result-success').count() == 1

    changeid = post_change(farm, "2" * 40, "Fix the frobnicator\n\nIt frobbed twice.")
    row = page.locator("#grid-rows tr").first
    expect(row).to_have_attribute("data-change", str(changeid), timeout=LIVE_DEADLINE_MS)
    running = page.locator(f'tr[data-change="{changeid}"] td[data-builder="unit"] a.cell')
    expect(running).to_have_attribute("data-state", "running", timeout=LIVE_DEADLINE_MS)
    assert "222222222222" in row.inner_text() and "Fix the frobnicator" in row.inner_text()
    lint = page.locator(f'tr[data-change="{changeid}"] td[data-builder="lint"] a.result-success')
    expect(lint).to_have_count(1, timeout=LIVE_DEADLINE_MS)
    expect(page.locator("#changes-total")).to_have_text("2 changes")  # refreshed with the rows
    screenshot(page, "grid.png")

    open_gate(farm, "2" * 40)
    expect(running).to_have_attribute("data-state", "success", timeout=LIVE_DEADLINE_MS)
    expect(running).to_have_class("cell result-success")
    assert running.get_attribute("href").startswith("/builds/")
    assert page.evaluate("window.notReloaded") is True  # updated in place, not by a reload


def test_the_console_shows_the_comments_whole_and_the_builders_by_tag(views_farm, page):
    farm = views_farm
    changeid = post_change(farm, "3" * 40, "Console change\n\nSecond paragraph of the comment.")
    open_gate(farm, "3" * 40)
    wait_for(lambda: finished(farm, changeid, "unit"), "the console change's build")
    page.goto(farm.url + "/console")
    row = page.locator(f'tr[data-change="{changeid}"]')
    assert "Second paragraph of the comment." in row.locator("pre.comment").inner_text()
    assert page.locator("th.tag").all_inner_texts() == ["test", "(untagged)"]
    expect(row.locator('td[data-builder="unit"] a.result-success')).to_have_count(1)
    screenshot(page, "console.png")


@pytest.mark.parametrize(("path", "shown"), [("/grid", "#grid"), ("/console", "#grid"),
                                             ("/waterfall", "#waterfall"), ("/builders/unit", "#trends"),
                                             ("/", "#fleet-over-time")])
def test_each_view_works_on_a_phone(views_farm, browser, path, shown):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        phone = context.new_page()
        phone.goto(views_farm.url + path)
        expect(phone.locator(shown)).to_be_visible()
        # the page does not scroll sideways: a wide table or drawing scrolls inside its box
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    finally:
        context.close()


def test_the_waterfall_shows_builds_on_two_slaves(views_farm, page):
    farm = views_farm
    changeid = post_change(farm, "4" * 40, "Waterfall change")
    open_gate(farm, "4" * 40)
    wait_for(lambda: finished(farm, changeid, "unit") and finished(farm, changeid, "lint"), "both builds")
    brid = farm.force("docs")
    farm.wait_request_complete(brid)

    page.goto(farm.url + "/waterfall?range=1h")
    unit = page.locator('#waterfall g.lane[data-builder="unit"] rect.bar')
    lint = page.locator('#waterfall g.lane[data-builder="lint"] rect.bar')
    assert unit.count() >= 1 and lint.count() >= 1
    slaves = set(page.locator("#waterfall rect.bar").evaluate_all("bars => bars.map(b => b.dataset.slave)"))
    assert slaves == {"bs1", "bs2"}
    assert {unit.first.get_attribute("data-slave"), lint.first.get_attribute("data-slave")} == {"bs1", "bs2"}
    assert unit.last.get_attribute("fill") == "url(#wf-success)"
    # the labels name the slaves; each bar links to its build
    labels = " ".join(page.locator("#waterfall text").all_text_contents())
    assert "bs1 #" in labels and "bs2 #" in labels
    lint.last.click()
    page.wait_for_url("**/builds/*")

    # zoomed on the builds the module ran (?from=&to=, epoch seconds): wide, labelled bars
    lanes = farm.get("/api/v1/views/waterfall?range=1h")["builders"]
    times = [t for lane in lanes for b in lane["builds"] for t in (b["started_at"], b["complete_at"])]
    page.goto(f"{farm.url}/waterfall?from={min(times) - 2:.0f}&to={max(times) + 2:.0f}")
    assert page.locator("#waterfall rect.bar").count() == sum(len(lane["builds"]) for lane in lanes)
    assert page.locator("#presets a.current").count() == 0
    assert page.locator("#waterfall text", has_text="bs2 #").count() >= 1
    screenshot(page, "waterfall.png")


def test_the_builder_page_charts_the_trends_of_the_builds_the_test_ran(views_farm, page):
    farm = views_farm
    changeid = post_change(farm, "5" * 40, "Trends change")
    open_gate(farm, "5" * 40)
    wait_for(lambda: finished(farm, changeid, "unit"), "the trends change's build")
    ran = farm.get("/api/v1/builders/unit/trends")["days"][-1]["builds"]  # this one and the module's
    assert ran >= 1

    page.goto(farm.url + "/builders/unit")
    duration = page.locator("#chart-duration")
    assert duration.locator('[data-series="duration_p50"]').count() == 1  # today's point
    assert duration.locator('[data-series="duration_p90"]').count() == 1
    assert f"({ran} build" in duration.locator("circle title").first.text_content()
    assert page.locator("#chart-success rect.bar-rate").count() == 1
    assert page.locator("#chart-queue g.queue-day").count() == 1
    [step] = page.locator("#slowest-steps tbody tr").all()
    assert step.locator("td").first.inner_text() == "shell"
    assert int(step.locator("td").nth(1).inner_text()) >= 1
    # each chart is drawn (has a size on the page) without any script
    for chart in ("#chart-duration", "#chart-success", "#chart-queue"):
        box = page.locator(chart).bounding_box()
        assert box["width"] > 200 and box["height"] > 50, chart
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    page.locator("#trends").screenshot(path=os.path.join(SCREENSHOT_DIR, "trends.png"))


def newest(series: dict, name: str) -> float:
    """The newest value of series ``name`` (0 before any sample)."""
    points = series.get(name) or [{"value": 0.0}]
    return points[-1]["value"]


def now_value(line) -> float:
    """The newest value a chart's line says it has (its tooltip: ``busy: now 1.0``)."""
    return float(line.locator("title").text_content().rsplit(" ", 1)[1])


def test_the_overview_charts_the_fleet_over_time_from_the_masters_samples(views_farm, page):
    farm = views_farm
    holding, queued = "6" * 40, "7" * 40
    post_change(farm, holding, "Holds bs1")  # its unit build waits at its gate: bs1 busy
    post_change(farm, queued, "Waits for bs1")  # its unit request waits for bs1

    def sampled_busy():
        series = farm.get("/api/v1/views/fleet")["series"]
        return newest(series, "slaves.busy") >= 1 and newest(series, "queue.pending") >= 1 and series
    try:
        samples = wait_for(sampled_busy, "a sample with bs1 busy and a request waiting", SAMPLE_DEADLINE_S)
        page.goto(farm.url + "/")
    finally:
        open_gate(farm, holding)
        open_gate(farm, queued)
    for chart in ("#chart-slaves", "#chart-pending", "#chart-oldest-wait", "#chart-actions"):
        box = page.locator(chart).bounding_box()
        assert box["width"] > 200 and box["height"] > 50, chart
    busy = page.locator('#chart-slaves path[data-series="slaves.busy"]')
    assert 1 <= int(busy.get_attribute("data-points")) <= len(samples["slaves.busy"])  # a point per 5 min
    assert busy.get_attribute("d").startswith("M")
    assert now_value(busy) >= 1
    assert now_value(page.locator('#chart-pending path[data-series="queue.pending"]')) >= 1
    assert newest(samples, "queue.oldest_wait_s") > 0
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    page.locator("#fleet-over-time").screenshot(path=os.path.join(SCREENSHOT_DIR, "fleet.png"))


# -- the tasks and bots charts ---------------------------------------------------------------------

TASKS_CFG = """\
from buildfarm.master.plugins import slaves, util

c = BuildmasterConfig = {{}}
c['title'] = 'task farm'
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={{'pool': 'ci', 'os': 'Linux'}}),
               slaves.BuildSlave('bs2', 'pass', dimensions={{'pool': 'ci', 'os': 'Linux'}}),
               slaves.BuildSlave('gpu1', 'pass', dimensions={{'pool': 'gpu', 'os': 'Linux'}})]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port},
             'anonymous_scopes': ['builds:read', 'slaves:read', 'tasks:read', 'bots:read']}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['builders'] = []
"""


@pytest.fixture(scope="module")
def charts_farm(tmp_path_factory):
    """A master with bots bs1 and bs2 (pool ci) attached, and gpu1 (pool gpu) that attached once
    and stopped (a dead bot)."""
    fleet = Fleet(str(tmp_path_factory.mktemp("charts")))
    try:
        master = fleet.master(config=lambda pb_port, www_port: TASKS_CFG.format(pb_port=pb_port,
                                                                                  www_port=www_port))
        gpu = fleet.slave(master, "gpu1")
        for name in ("bs1", "bs2"):
            fleet.slave(master, name)
        for name in ("gpu1", "bs1", "bs2"):
            master.wait_attached(name)
        stop_daemons([gpu.basedir])
        wait_for(lambda: not master.slave("gpu1")["connected"], "gpu1 to be gone")
        yield master
    finally:
        fleet.stop_all()


def run_task(farm, command: list[str], pool: str = "ci") -> str:
    body = {"name": "chart task", "priority": 100, "tags": ["purpose:charts"],
            "task_slices": [{"expiration_secs": 600, "properties": {
                "command": command, "dimensions": [{"key": "pool", "value": pool}],
                "execution_timeout_secs": 120, "io_timeout_secs": 60, "grace_period_secs": 5}}]}
    status, answer = farm.request("POST", "/_ah/api/swarming/v1/tasks/new", body)
    assert status == 200, answer
    return json.loads(answer)["task_id"]


def sampled(farm, name: str) -> float:
    """The newest sample of series ``name`` (0 before any)."""
    points = farm.get("/api/v1/views/tasks")["series"].get(name, [])
    return points[-1]["value"] if points else 0.0


def test_the_tasks_chart_draws_the_tasks_the_test_ran_and_the_bots_chart_the_fleet(charts_farm, page):
    farm = charts_farm
    ids = [run_task(farm, ["echo", "ok"]), run_task(farm, ["sh", "-c", "exit 3"])]
    waiting = run_task(farm, ["echo", "never"], pool="gpu")  # its only bot is dead: it waits
    wait_for(lambda: all(farm.get(f"/_ah/api/swarming/v1/task/{t}/result")["state"] == "COMPLETED"
                         for t in ids), "the two tasks to end")
    counted = {"completed": 0.0, "failed": 0.0}

    def sampled_all() -> bool:
        series = farm.get("/api/v1/views/tasks")["series"]
        for end in counted:
            counted[end] = sum(p["value"] for p in series.get(f"tasks.{end}", []))
        return counted == {"completed": 1.0, "failed": 1.0} and sampled(farm, "tasks.pending") >= 1
    wait_for(sampled_all, "a sample with the tasks", SAMPLE_DEADLINE_S)

    page.goto(farm.url + "/tasks")
    chart = page.locator("#chart-tasks")
    expect(chart).to_be_visible()
    for name in ("pending", "running", "completed", "failed"):
        assert chart.locator(f'path[data-series="tasks.{name}"]').count() == 1
    assert int(chart.locator('path[data-series="tasks.pending"]').get_attribute("data-points")) >= 1
    assert "pending: now 1" in chart.locator('path[data-series="tasks.pending"] title').text_content()
    page.locator("#tasks-over-time").screenshot(path=os.path.join(SCREENSHOT_DIR, "tasks-chart.png"))
    assert waiting

    page.goto(farm.url + "/bots")
    bots = page.locator("#chart-bots")
    expect(bots).to_be_visible()
    assert bots.locator('rect[data-group="ci"][data-state="idle"] title').text_content() == "ci: 2 idle"
    assert bots.locator('rect[data-group="gpu"][data-state="dead"] title').text_content() == "gpu: 1 dead"
    page.locator("#bots-chart").screenshot(path=os.path.join(SCREENSHOT_DIR, "bots-chart.png"))

    def sampled_bots():
        series = farm.get("/api/v1/views/bots/states")["series"]
        return newest(series, "bots.idle") == 2 and newest(series, "bots.dead") == 1 and series
    wait_for(sampled_bots, "a sample of the bots", SAMPLE_DEADLINE_S)
    page.goto(farm.url + "/bots")
    states = page.locator("#chart-bot-states")
    expect(states).to_be_visible()
    assert "idle: now 2" in states.locator('path[data-series="bots.idle"] title').text_content()
    assert "dead: now 1" in states.locator('path[data-series="bots.dead"] title').text_content()
    assert states.locator('path[data-series="bots.quarantined"]').count() == 1
    page.locator("#bots-over-time").screenshot(path=os.path.join(SCREENSHOT_DIR, "bot-states.png"))
