"""The JSON API and /metrics in memory: klein resources rendering in-memory requests against a
real master built in memory (real database of each backend, real BotMaster, schedulers and
auth, a MemoryReactorClock)."""

import ast
import base64
import json
import pathlib

import pytest
import pytest_twisted
from twisted.internet import defer
from zope.interface.verify import verifyObject

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master import metrics as metrics_hooks
from buildfarm.master.http.flow import FlowControl
from buildfarm.master.http.interfaces import IHTTPMaster
from buildfarm.master.metrics import MasterMetrics
from buildfarm.master.www.api import JSONAPI
from buildfarm.master.www.interfaces import IWebMaster
from buildfarm.master.www.paging import BadParameter, Page, parse_page, parse_result
from fixtures.memoryhttp import render
from fixtures.memorymaster import attach_slave, start_memory_master

NOW = 10_000.0
ATTACHED_AT = 100.0  # s1 attaches, and s3 attached before this run, at this time
ADMIN = {"authorization": "Basic " + base64.b64encode(b"admin:adm1n").decode()}

# Builders linux (s1, s2; forceable with typed parameters) and windows (s3; not forceable).
API_CFG = """\
from buildfarm.master.plugins import slaves, schedulers, steps, util
c = BuildmasterConfig = {}
c['title'] = 'Test farm'
c['slaves'] = [slaves.BuildSlave(name, 'pass') for name in ('s1', 's2', 's3')]
c['protocols'] = {'pb': {'port': 9989}}
factory = util.BuildFactory([steps.ShellCommand(command=['make'])])
c['builders'] = [
    util.BuilderConfig(name='linux', slavenames=['s1', 's2'], tags=['linux'], factory=factory),
    util.BuilderConfig(name='windows', slavenames=['s3'], tags=['windows'], factory=factory),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['linux'], properties=[
    util.StringParameter('branch', default='main', regex='^[a-z]+$'),
    util.ChoiceStringParameter('flavour', choices=['debug', 'release']),
    util.IntParameter('jobs', default=4),
])]
c['www'] = {'port': 8010}
c['db'] = {'db_url': %r}
c['users'] = [util.User('admin', password='adm1n', scopes=['*'])]
"""


class Harness:
    """A real master in memory, its JSON API, and the slaves' history: s1 attached (building
    linux), s2 never attached and disabled through the SlaveAPI, s3 attached once and lost."""

    def __init__(self, master):
        self.master = master
        self.db = master.db
        self.resource = JSONAPI(master).resource()
        self.ids = {}

    async def setup(self):
        db, masterid, clock = self.db, self.master.masterid, self.master.reactor
        reported = {"os": "linux", "environ": {"API_TOKEN": "hunter2", "PATH": "/bin"},
                    "version": "1.0", "worker_commands": {"shell": "3.0"}}
        s1 = (await attach_slave(self.master, "s1", info=reported, peer=("127.0.0.1", 5000))).perspective
        self.ids["s1"] = (await db.slaves.get("s1"))["slaveid"]
        self.ids["s3"] = await db.slaves.attached("s3", masterid, {}, "1.0", ATTACHED_AT)
        await db.slaves.detached("s3", masterid, 900.0)
        await db.slaveapi.set_settings("s2", enabled=False, disabled_reason="broken disk",
                                       disabled_by="oncall", disabled_at=500)
        clock.advance(NOW - 5 - clock.seconds())
        s1.perspective_keepalive()  # heard from 5 s ago
        clock.advance(5)
        return masterid

    async def add_build(self, builder: str, slave: str, results: int | None, started_at: float) -> int:
        db, masterid = self.db, self.master.masterid
        builderid = self.master.botmaster.builders[builder].builderid
        brid = await db.buildrequests.add(builderid, "test", {}, started_at - 10)
        await db.buildrequests.claim(brid, masterid, started_at)
        buildid, _ = await db.builds.add(builderid, brid, self.ids[slave], masterid, started_at)
        if results is not None:
            await db.builds.finish(buildid, results, started_at + 30, "done")
            await db.buildrequests.complete(brid, results, started_at + 30)
        return buildid

    async def request(self, method: str, path: str, headers: dict | None = None, **args):
        response = await render(self.resource, method, path, args=args, headers=headers)
        is_json = (response.header("content-type") or "").startswith("application/json")
        return response.code, json.loads(response.body) if is_json else response.body, response

    async def get(self, path: str, headers: dict | None = None, **args):
        status, body, _ = await self.request("GET", path, headers, **args)
        assert status == 200, (status, body)
        return body


@pytest_twisted.async_yield_fixture
async def api(tmp_path, db_url):
    master = await start_memory_master(tmp_path, API_CFG % db_url, now=ATTACHED_AT)
    harness = Harness(master)
    await harness.setup()
    yield harness
    await master.stopService()


@pytest_twisted.async_fixture
async def farm(api):
    """Builds: linux #1 success, #2 failure (s1), #3 running (s1); windows #1 success (s3)."""
    api.builds = [
        await api.add_build("linux", "s1", SUCCESS, 1000.0),
        await api.add_build("linux", "s1", FAILURE, 2000.0),
        await api.add_build("linux", "s1", None, NOW - 60),
        await api.add_build("windows", "s3", SUCCESS, 3000.0),
    ]
    return api


@pytest_twisted.ensureDeferred
async def test_the_api_runs_on_a_master_that_provides_its_interface(api):
    assert verifyObject(IWebMaster, api.master) and verifyObject(IHTTPMaster, api.master)


def test_no_web_module_probes_the_master():
    """The seam is typed: no ``getattr``/``hasattr`` in master/www or master/http on the master,
    its config, or the BotMaster's slave perspectives (``live``)."""
    import buildfarm.master.http as http_package
    import buildfarm.master.www as www_package

    probes = []
    for package in (www_package, http_package):
        for path in sorted(pathlib.Path(package.__file__).parent.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                        and node.func.id in ("getattr", "hasattr") and node.args):
                    probed = ast.unparse(node.args[0])
                    if any(word in probed for word in ("master", "config", "live")):
                        probes.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    assert probes == []


# -- paging math -----------------------------------------------------------------------------

def test_a_page_links_to_the_next_one_with_the_same_filters():
    meta = Page(limit=2, offset=0).meta(5, "/api/v1/builds", {"builder": "linux", "limit": "2"})
    assert meta == {"total": 5, "limit": 2, "offset": 0,
                    "next": "/api/v1/builds?builder=linux&limit=2&offset=2"}


def test_the_last_page_and_pages_past_the_end_have_no_next():
    assert Page(limit=2, offset=4).meta(5, "/x", {})["next"] is None
    assert Page(limit=2, offset=3).meta(5, "/x", {})["next"] is None
    assert Page(limit=2, offset=9).meta(5, "/x", {})["next"] is None
    assert Page(limit=2, offset=2).meta(5, "/x", {})["next"] == "/x?limit=2&offset=4"


def test_paging_defaults_and_bounds():
    assert parse_page({}) == Page(50, 0)
    assert parse_page({"limit": "1000", "offset": "7"}) == Page(1000, 7)
    for bad in ({"limit": "0"}, {"limit": "1001"}, {"limit": "ten"}, {"offset": "-1"}, {"limit": "٣"}):
        with pytest.raises(BadParameter) as raised:
            parse_page(bad)
        assert raised.value.field == next(iter(bad))


def test_results_by_name_or_number():
    assert parse_result({"result": "failure"}) == parse_result({"result": "2"}) == FAILURE
    assert parse_result({"result": "Success"}) == SUCCESS
    assert parse_result({}) is None
    with pytest.raises(BadParameter):
        parse_result({"result": "7"})


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("path, args, field", [
    ("/api/v1/builds", {"limit": "0"}, "limit"),
    ("/api/v1/builds", {"limit": "5000"}, "limit"),
    ("/api/v1/builds", {"offset": "x"}, "offset"),
    ("/api/v1/builds", {"result": "great"}, "result"),
    ("/api/v1/builds", {"complete": "maybe"}, "complete"),
    ("/api/v1/buildrequests", {"limit": "-3"}, "limit"),
    ("/api/v1/slaves", {"state": "sleepy"}, "state"),
    ("/api/v1/changes", {"offset": "1.5"}, "offset"),
    ("/api/v1/logs/1", {"limit": "0"}, "limit"),
    ("/api/v1/logs/1/tail", {"lines": "lots"}, "lines"),
])
@pytest_twisted.ensureDeferred
async def test_bad_query_values_are_400_naming_the_field(api, path, args, field):
    status, body, _ = await api.request("GET", path, **args)
    assert status == 400 and body["field"] == field and field in body["error"]


@pytest.mark.parametrize("path", [
    "/api/v1/builds/999", "/api/v1/buildrequests/999", "/api/v1/builders/nosuch",
    "/api/v1/builders/nosuch/builds", "/api/v1/slaves/nosuch", "/api/v1/changes/999",
    "/api/v1/logs/999", "/api/v1/logs/999/tail", "/api/v1/logs/999/raw", "/api/v1/nothing",
])
@pytest_twisted.ensureDeferred
async def test_unknown_ids_are_404_json(api, path):
    status, body, response = await api.request("GET", path)
    assert status == 404 and "error" in body
    assert response.header("content-type") == "application/json"


@pytest_twisted.ensureDeferred
async def test_an_unknown_filter_value_is_404_naming_the_field(api):
    status, body, _ = await api.request("GET", "/api/v1/builds", builder="nosuch")
    assert (status, body["field"]) == (404, "builder")
    status, body, _ = await api.request("GET", "/api/v1/builds", slave="nosuch")
    assert (status, body["field"]) == (404, "slave")
    status, body, _ = await api.request("GET", "/api/v1/slaves", builder="nosuch")
    assert (status, body["field"]) == (404, "builder")


# -- lists -----------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_builds_page_through_with_meta(farm):
    first = await farm.get("/api/v1/builds", limit=3)
    assert [b["buildid"] for b in first["builds"]] == farm.builds[::-1][:3]
    assert first["meta"] == {"total": 4, "limit": 3, "offset": 0, "next": "/api/v1/builds?limit=3&offset=3"}
    second = await farm.get("/api/v1/builds", limit=3, offset=3)
    assert [b["buildid"] for b in second["builds"]] == [farm.builds[0]]
    assert second["meta"]["next"] is None


@pytest_twisted.ensureDeferred
async def test_builds_filter_by_builder_result_slave_and_completeness(farm):
    ids = lambda body: [b["buildid"] for b in body["builds"]]  # noqa: E731
    linux_ok, linux_bad, linux_running, windows_ok = farm.builds
    assert ids(await farm.get("/api/v1/builds", result="success")) == [windows_ok, linux_ok]
    assert ids(await farm.get("/api/v1/builds", result="2")) == [linux_bad]
    assert ids(await farm.get("/api/v1/builds", slave="s3")) == [windows_ok]
    assert ids(await farm.get("/api/v1/builds", slave="s2")) == []  # configured, never attached
    assert ids(await farm.get("/api/v1/builds", complete="0")) == [linux_running]
    assert ids(await farm.get("/api/v1/builds", builder="linux", complete="1")) == [linux_bad, linux_ok]
    listed = await farm.get("/api/v1/builders/linux/builds", result="failure")
    assert ids(listed) == [linux_bad] and listed["meta"]["total"] == 1
    assert listed["builds"][0]["result"] == "failure" and listed["builds"][0]["duration"] == 30.0


@pytest_twisted.ensureDeferred
async def test_buildrequests_page_with_age_and_result_filter(farm):
    builderid = farm.master.botmaster.builders["windows"].builderid
    waiting = await farm.db.buildrequests.add(builderid, "later", {}, NOW - 100)
    pending = await farm.get("/api/v1/buildrequests", complete="false", builder="windows")
    assert [(r["buildrequestid"], r["age"]) for r in pending["buildrequests"]] == [(waiting, 100.0)]
    failed = await farm.get("/api/v1/buildrequests", result="failure")
    assert failed["meta"]["total"] == 1 and failed["buildrequests"][0]["result"] == "failure"
    page = await farm.get("/api/v1/buildrequests", limit=2)
    assert page["meta"]["total"] == 5 and page["meta"]["next"].endswith("offset=2")


@pytest_twisted.ensureDeferred
async def test_changes_are_listed_newest_first_in_pages(api):
    ids = [await api.db.changes.add("me", f"fix {n}", ["a.c"], 1.0, 2.0) for n in range(3)]
    page = await api.get("/api/v1/changes", limit=2)
    assert [c["changeid"] for c in page["changes"]] == ids[::-1][:2] and page["meta"]["total"] == 3
    assert (await api.get(f"/api/v1/changes/{ids[0]}"))["comments"] == "fix 0"


@pytest_twisted.ensureDeferred
async def test_slaves_have_states_and_filter_by_state_and_builder(farm):
    slaves = {s["name"]: s for s in (await farm.get("/api/v1/slaves"))["slaves"]}
    assert {n: s["state"] for n, s in slaves.items()} == {"s1": "busy", "s2": "disabled", "s3": "lost"}
    assert slaves["s1"]["running_builds"] == 1 and slaves["s1"]["last_seen"] == NOW - 5
    assert slaves["s3"]["last_seen"] == 900.0 and slaves["s2"]["disabled_reason"] == "broken disk"
    assert "environ" not in slaves["s1"]["info"]  # anonymous callers lack slaves:read-environment:s1
    shown = {s["name"]: s for s in (await farm.get("/api/v1/slaves", ADMIN))["slaves"]}
    assert shown["s1"]["info"]["environ"] == {"API_TOKEN": "<redacted>", "PATH": "/bin"}
    lost = await farm.get("/api/v1/slaves", state="lost")
    assert [s["name"] for s in lost["slaves"]] == ["s3"] and lost["meta"]["total"] == 1
    linux = await farm.get("/api/v1/slaves", builder="linux", limit=1)
    assert [s["name"] for s in linux["slaves"]] == ["s1"]
    assert linux["meta"]["total"] == 2
    assert linux["meta"]["next"] == "/api/v1/slaves?builder=linux&limit=1&offset=1"


# -- details ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_builder_detail_carries_its_force_parameters(farm):
    linux = await farm.get("/api/v1/builders/linux")
    force = linux["force"]
    assert force["scheduler"] == "force" and force["reason"]["default"] == "force build"
    assert force["parameters"] == [
        {"name": "branch", "type": "string", "label": "branch", "default": "main", "required": False,
         "regex": "^[a-z]+$"},
        {"name": "flavour", "type": "choice", "label": "flavour", "default": "debug", "required": False,
         "choices": ["debug", "release"], "multiple": False, "strict": True},
        {"name": "jobs", "type": "integer", "label": "jobs", "default": 4, "required": False},
    ]
    assert [b["buildid"] for b in linux["running_builds"]] == [farm.builds[2]]
    assert linux["last_build"]["result"] == "failure"
    assert (await farm.get("/api/v1/builders/windows"))["force"] is None


@pytest_twisted.ensureDeferred
async def test_build_detail_has_steps_with_durations_and_logs_with_sizes(farm):
    buildid = farm.builds[2]  # running
    done = await farm.db.steps.add(buildid, 0, "compile", NOW - 50)
    await farm.db.steps.finish(done, SUCCESS, NOW - 40, "compiled")
    await farm.db.steps.add(buildid, 1, "test", NOW - 40)
    logid = await farm.db.logs.add(done, "stdio")
    await farm.db.logs.append(logid, "héllo\n")
    build = await farm.get(f"/api/v1/builds/{buildid}")
    assert build["duration"] == 60.0 and build["complete"] is False
    compile_step, test_step = build["steps"]
    assert (compile_step["result"], compile_step["duration"]) == ("success", 10.0)
    assert test_step["duration"] == 40.0
    (log,) = compile_step["logs"]
    assert (log["size"], log["num_lines"]) == (7, 1)
    assert log["url"] == f"/api/v1/builds/{buildid}/steps/0/logs/stdio"
    assert log["tail_url"] == f"/api/v1/logs/{logid}/tail"


@pytest_twisted.ensureDeferred
async def test_slave_detail_shows_commands_settings_and_recent_builds(farm):
    s1 = await farm.get("/api/v1/slaves/s1")
    assert s1["commands"] == {"shell": "3.0"} and s1["state"] == "busy"
    assert s1["peer"] == "127.0.0.1:5000"  # the BotMaster's perspective of the attached slave
    assert [b["buildid"] for b in s1["recent_builds"]] == farm.builds[2::-1]
    assert [(c["connected_at"], c["disconnected_at"]) for c in s1["connections"]] == [(100.0, None)]
    s2 = await farm.get("/api/v1/slaves/s2")
    assert s2["slaveapi"]["enabled"] is False
    assert (s2["slaveapi"]["disabled_reason"], s2["slaveapi"]["disabled_by"]) == ("broken disk", "oncall")
    assert s2["recent_builds"] == [] and s2["connected"] is False and s2["peer"] is None
    requestid = await farm.db.slaveapi.add_result("s3", "reboot", {"password": "x"}, "oncall", "1.2.3.4",
                                                  None, 5)
    assert (await farm.get("/api/v1/slaves/s3"))["slaveapi"]["results"] is None  # needs slaveapi:read
    s3 = await farm.get("/api/v1/slaves/s3", ADMIN)
    assert [(r["requestid"], r["state_name"]) for r in s3["slaveapi"]["results"]] == [(requestid, "pending")]
    assert "args" not in s3["slaveapi"]["results"][0]
    assert [(c["connected_at"], c["disconnected_at"]) for c in s3["connections"]] == [(100.0, 900.0)]


@pytest_twisted.ensureDeferred
async def test_overview_shows_builders_queue_and_slaves(farm):
    builderid = farm.master.botmaster.builders["windows"].builderid
    waiting = await farm.db.buildrequests.add(builderid, "later", {}, NOW - 100)
    view = await farm.get("/api/v1/overview")
    builders = {b["name"]: b for b in view["builders"]}
    assert builders["linux"]["last_build"]["result"] == "failure"
    assert [b["buildid"] for b in builders["linux"]["running_builds"]] == [farm.builds[2]]
    assert (builders["windows"]["pending"], builders["windows"]["oldest_pending_age"]) == (1, 100.0)
    assert [(r["buildrequestid"], r["age"]) for r in view["pending_buildrequests"]] == [(waiting, 100.0)]
    assert view["slave_counts"] == {"idle": 0, "busy": 1, "disabled": 1, "lost": 1, "never seen": 0,
                                   "attached": 1}
    assert all("info" not in slave for slave in view["slaves"])  # GET /api/v1/slaves has it


# -- logs ------------------------------------------------------------------------------------

@pytest_twisted.async_fixture
async def logid(farm):
    """A log of ten lines ``line 0`` .. ``line 9`` and an unfinished ``partial`` one."""
    stepid = await farm.db.steps.add(farm.builds[0], 0, "compile", 1000.0)
    logid = await farm.db.logs.add(stepid, "stdio")
    text = "".join(f"line {n}\n" for n in range(10))
    await farm.db.logs.append_many([(logid, text[:13]), (logid, text[13:]), (logid, "partial")])
    return logid


@pytest_twisted.ensureDeferred
async def test_a_log_reads_in_ranges_of_lines(farm, logid):
    page = await farm.get(f"/api/v1/logs/{logid}", offset=2, limit=3)
    assert (page["first_line"], page["text"]) == (2, "line 2\nline 3\nline 4\n")
    assert page["meta"] == {"total": 10, "limit": 3, "offset": 2,
                            "next": f"/api/v1/logs/{logid}?offset=5&limit=3"}
    assert page["log"]["size"] == 70 + len("partial") and page["log"]["num_lines"] == 10
    last = await farm.get(f"/api/v1/logs/{logid}", offset=7, limit=3)
    assert last["text"] == "line 7\nline 8\nline 9\npartial" and last["meta"]["next"] is None
    assert (await farm.get(f"/api/v1/logs/{logid}", offset=50))["text"] == ""


@pytest_twisted.ensureDeferred
async def test_a_log_tail_counts_the_unfinished_line(farm, logid):
    tail = await farm.get(f"/api/v1/logs/{logid}/tail", lines=3)
    assert (tail["first_line"], tail["text"]) == (8, "line 8\nline 9\npartial")
    whole = await farm.get(f"/api/v1/logs/{logid}/tail", lines=1000)
    assert whole["first_line"] == 0 and whole["text"].startswith("line 0\n")


@pytest_twisted.ensureDeferred
async def test_a_whole_log_downloads_as_text_in_batches(farm, logid, monkeypatch):
    monkeypatch.setattr("buildfarm.master.www.api.DOWNLOAD_BATCH_LINES", 4)
    status, body, response = await farm.request("GET", f"/api/v1/logs/{logid}/raw")
    expected = "".join(f"line {n}\n" for n in range(10)) + "partial"
    assert (status, body.decode()) == (200, expected)
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-disposition") == f'attachment; filename="log-{logid}-stdio.txt"'
    status, body, _ = await farm.request("GET", f"/api/v1/builds/{farm.builds[0]}/steps/0/logs/stdio")
    assert (status, body.decode()) == (200, expected)


def test_a_download_waits_while_the_client_is_not_reading():
    flow = FlowControl()
    assert defer.ensureDeferred(flow.wait_until_wanted()).called
    flow.pauseProducing()
    waiting = defer.ensureDeferred(flow.wait_until_wanted())
    assert not waiting.called
    flow.resumeProducing()
    assert waiting.called
    flow.pauseProducing()
    gone = defer.ensureDeferred(flow.wait_until_wanted())
    flow.stopProducing()
    assert gone.called


# -- metrics ---------------------------------------------------------------------------------

def _samples(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


@pytest_twisted.ensureDeferred
async def test_metrics_count_events_and_read_gauges_at_scrape_time(farm):
    master = farm.master
    metrics_hooks.build_started(master, "linux")
    metrics_hooks.build_started(master, "linux")
    metrics_hooks.build_finished(master, "linux", FAILURE)
    metrics_hooks.log_bytes_hook(master)("héllo\n")
    builderid = master.botmaster.builders["windows"].builderid
    await farm.db.buildrequests.add(builderid, "later", {}, NOW - 100)
    await farm.db.slaveapi.add_result("s3", "reboot", {}, "oncall", "1.2.3.4", None, 5)
    status, body, response = await farm.request("GET", "/metrics")
    assert status == 200 and response.header("content-type").startswith("text/plain; version=0.0.4")
    samples = _samples(body.decode())
    assert samples['buildfarm_builds_started_total{builder="linux"}'] == 2
    assert samples['buildfarm_builds_finished_total{builder="linux",result="failure"}'] == 1
    assert samples["buildfarm_log_bytes_written_total"] == 7
    assert samples['buildfarm_buildrequests_pending{builder="windows"}'] == 1
    assert samples['buildfarm_buildrequests_pending{builder="linux"}'] == 0
    assert samples['buildfarm_buildrequests_oldest_age_seconds{builder="windows"}'] == 100
    assert samples["buildfarm_slaves_attached"] == 1
    assert samples['buildfarm_slaveapi_actions{action="reboot",state="pending"}'] == 1


def test_each_master_has_its_own_registry():
    first, second = MasterMetrics(), MasterMetrics()
    first.builds_started.labels("linux").inc()
    assert second.registry.get_sample_value("buildfarm_builds_started_total", {"builder": "linux"}) is None
