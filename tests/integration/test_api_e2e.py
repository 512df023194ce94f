"""The JSON API and /metrics of a real master with a real slave: two builds, then paging,
filters, the pages' data, log ranges and the Prometheus counters, over HTTP."""

import json
import urllib.request

from fixtures.daemons import wait_for

CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [
    util.BuilderConfig(name='good', slavenames=['bs1'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])])),
    util.BuilderConfig(name='bad', slavenames=['bs1'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['sh', '-c', 'exit 3'])])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['good', 'bad'],
                                             properties=[util.StringParameter('branch', default='main')])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def metric_samples(master) -> dict[str, float]:
    status, body = master.request("GET", "/metrics")
    assert status == 200
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in body.decode().splitlines() if line and not line.startswith("#")}


def test_two_builds_page_filter_and_count_in_metrics(fleet):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(pb_port=pb_port, www_port=www_port))
    fleet.slave(master)
    master.wait_attached("bs1")
    good = master.wait_request_complete(master.force("good"))
    bad = master.wait_request_complete(master.force("bad"))
    assert (good["result"], bad["result"]) == ("success", "failure")
    good_build, bad_build = good["buildids"][0], bad["buildids"][0]

    first = master.get("/api/v1/builds?limit=1")
    assert [b["buildid"] for b in first["builds"]] == [bad_build]
    assert first["meta"] == {"total": 2, "limit": 1, "offset": 0, "next": "/api/v1/builds?limit=1&offset=1"}
    second = master.get(first["meta"]["next"])
    assert [b["buildid"] for b in second["builds"]] == [good_build] and second["meta"]["next"] is None

    ids = lambda path: [b["buildid"] for b in master.get(path)["builds"]]  # noqa: E731
    assert ids("/api/v1/builds?result=failure") == [bad_build]
    assert ids("/api/v1/builds?builder=good&slave=bs1") == [good_build]
    assert master.get("/api/v1/builds?complete=0")["meta"]["total"] == 0
    assert master.get("/api/v1/builders/bad/builds")["builds"][0]["result"] == "failure"
    assert master.get("/api/v1/buildrequests?result=success")["meta"]["total"] == 1
    status, body = master.request("GET", "/api/v1/builds?limit=0")
    assert status == 400 and json.loads(body)["field"] == "limit"
    status, body = master.request("GET", "/api/v1/builds/9999")
    assert status == 404 and "error" in json.loads(body)

    builder = master.get("/api/v1/builders/good")
    assert [p["name"] for p in builder["force"]["parameters"]] == ["branch"]
    assert builder["last_build"]["buildid"] == good_build

    overview = master.get("/api/v1/overview")
    assert {b["name"]: b["last_build"]["result"] for b in overview["builders"]} == {
        "good": "success", "bad": "failure"}
    wait_for(lambda: master.get("/api/v1/overview")["slave_counts"]["idle"] == 1, "bs1 to be idle")

    slave = master.get("/api/v1/slaves/bs1")
    assert slave["connected"] and "shell" in slave["commands"]
    assert [b["buildid"] for b in slave["recent_builds"]] == [bad_build, good_build]
    assert slave["slaveapi"]["enabled"] is True
    (connection,) = slave["connections"]
    assert connection["peer"].startswith("127.0.0.1:") and connection["disconnected_at"] is None

    (log,) = master.get(f"/api/v1/builds/{good_build}")["steps"][0]["logs"]
    assert log["size"] > 0
    tail = master.get(log["tail_url"] + "?lines=2")
    assert "program finished with exit code 0" in tail["text"]
    lines = master.get(log["lines_url"] + "?offset=0&limit=1000")
    assert "\nhello\n" in lines["text"] and lines["meta"]["next"] is None
    with urllib.request.urlopen(master.url + log["raw_url"], timeout=10) as response:
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.read().decode() == lines["text"]

    samples = metric_samples(master)
    assert samples['buildfarm_builds_started_total{builder="good"}'] == 1
    assert samples['buildfarm_builds_finished_total{builder="good",result="success"}'] == 1
    assert samples['buildfarm_builds_finished_total{builder="bad",result="failure"}'] == 1
    assert samples["buildfarm_slaves_attached"] == 1
    assert samples['buildfarm_buildrequests_pending{builder="good"}'] == 0
    assert samples["buildfarm_log_bytes_written_total"] >= log["size"]
