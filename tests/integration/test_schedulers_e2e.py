"""Schedulers in real master and slave daemons: timers, changes over HTTP, triggers, Dependent."""

import json
import urllib.error
import urllib.request

from fixtures.daemons import wait_for

SECRET = "s3cret"

MASTER_CFG = """\
from buildfarm.master.changes.filter import ChangeFilter
from buildfarm.master.plugins import schedulers, slaves, steps, util
from buildfarm.master.process.steps.trigger import Trigger
from buildfarm.master.schedulers.basic import AnyBranchScheduler, SingleBranchScheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.timed import Nightly, Periodic
from buildfarm.master.schedulers.triggerable import Triggerable

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', max_builds=2)]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['changes'] = {{'secret': '{secret}'}}

def builder(name, *extra_steps):
    return util.BuilderConfig(name=name, slavenames=['bs1'], factory=util.BuildFactory(
        [steps.ShellCommand(command=['echo', name]), *extra_steps]))

c['builders'] = [builder(name) for name in {plain!r}]
{schedulers}
"""

PERIODIC = "c['schedulers'] = [Periodic('every2s', builderNames=['ticker'], periodicBuildTimer=2)]"
ON_CHANGE = """\
c['schedulers'] = [SingleBranchScheduler('on-main', builderNames=['compile'], treeStableTimer=1,
                   change_filter=ChangeFilter(branch='main', repository='git://example/repo'))]"""
TRIGGER = """\
c['builders'].append(builder('parent', Trigger(schedulerNames=['child'], waitForFinish=True,
                                               set_properties={'from_parent': 'yes'})))
c['schedulers'] = [schedulers.ForceScheduler('force', builderNames=['parent']),
                   Triggerable('child', builderNames=['child'])]"""
ANY_BRANCH = """\
c['schedulers'] = [AnyBranchScheduler('any', builderNames=['compile'], treeStableTimer=1)]"""
NIGHTLY = "c['schedulers'] = [Nightly('every-minute', builderNames=['ticker'], minute='*')]"
DEPENDENT = """\
upstream = schedulers.ForceScheduler('force', builderNames=['compile'])
c['schedulers'] = [upstream, Dependent('after-compile', upstream=upstream, builderNames=['test'])]"""


def start(fleet, schedulers: str, plain=("ticker", "compile", "child", "test")):
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, secret=SECRET, schedulers=schedulers, plain=list(plain)))
    fleet.slave(master)
    master.wait_attached("bs1")
    return master


def post_change(master, body: dict, secret: str = SECRET) -> tuple[int, dict]:
    request = urllib.request.Request(
        master.url + "/api/v1/changes", data=json.dumps(body).encode(), method="POST",
        headers={"X-Buildfarm-Secret": secret, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def finished_builds(master, builder: str) -> list[dict]:
    builds = master.get(f"/api/v1/builds?builder={builder}&complete=true")["builds"]
    return sorted(builds, key=lambda b: b["buildid"])


def test_periodic_scheduler_builds_every_period(fleet):
    master = start(fleet, PERIODIC)
    builds = wait_for(lambda: len(b := finished_builds(master, "ticker")) >= 3 and b,
                      "three periodic builds", deadline_s=20)
    assert all(b["result"] == "success" for b in builds)
    assert all(b["properties"]["scheduler"] == "every2s" for b in builds)
    requests = master.get("/api/v1/buildrequests?builder=ticker")["buildrequests"]
    submitted = sorted(r["submitted_at"] for r in requests)
    gaps = [later - earlier for earlier, later in zip(submitted, submitted[1:])]
    assert gaps and all(1.5 < gap < 3 for gap in gaps), gaps


def test_change_posted_to_the_api_builds_through_a_single_branch_scheduler(fleet):
    master = start(fleet, ON_CHANGE)
    change = {"author": "ann <ann@example.org>", "comments": "fix it", "files": ["src/x.c"],
              "branch": "main", "repository": "git://example/repo", "project": "demo"}
    assert post_change(master, {**change, "revision": "abc1"}) == (200, {"changeid": 1})
    status, body = post_change(master, {**change, "revision": "abc2"})
    assert (status, body) == (200, {"changeid": 2})
    assert post_change(master, {**change, "branch": "dev", "revision": "dev1"})[0] == 200
    assert post_change(master, {**change, "revision": "nope"}, secret="wrong")[0] == 401
    [build] = wait_for(lambda: finished_builds(master, "compile"), "the build of the change")
    assert build["result"] == "success"
    properties = build["properties"]
    assert (properties["branch"], properties["revision"], properties["repository"],
            properties["project"]) == ("main", "abc2", "git://example/repo", "demo")
    assert properties["changeids"] == [1, 2]  # the tree-stable timer made one build of the burst
    assert properties["scheduler"] == "on-main"
    assert len(master.get("/api/v1/buildrequests?builder=compile")["buildrequests"]) == 1


def test_trigger_step_waits_for_the_triggered_build(fleet):
    master = start(fleet, TRIGGER)
    request = master.wait_request_complete(master.force("parent"), deadline_s=40)
    assert request["result"] == "success"
    parent = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    [child] = finished_builds(master, "child")
    assert child["result"] == "success"
    assert child["properties"]["from_parent"] == "yes"
    assert child["complete_at"] <= parent["complete_at"]
    trigger_step = parent["steps"][1]
    assert trigger_step["result"] == "success"
    status, text = master.request(
        "GET", f"/api/v1/builds/{parent['buildid']}/steps/1/logs/triggered")
    assert status == 200 and b"triggered child: buildset" in text


def test_dependent_runs_after_its_upstream_succeeds(fleet):
    master = start(fleet, DEPENDENT)
    upstream = master.wait_request_complete(master.force("compile", properties={"flavour": "x"}))
    assert upstream["result"] == "success"
    [test_build] = wait_for(lambda: finished_builds(master, "test"), "the downstream build")
    [compile_build] = finished_builds(master, "compile")
    assert test_build["result"] == "success"
    assert test_build["properties"]["scheduler"] == "after-compile"
    assert test_build["started_at"] >= compile_build["complete_at"]


def test_any_branch_scheduler_builds_each_branch_once(fleet):
    master = start(fleet, ANY_BRANCH)
    change = {"author": "ann", "files": ["a.c"], "repository": "git://example/repo"}
    for branch, revision in (("main", "m1"), ("dev", "d1"), ("main", "m2")):
        assert post_change(master, {**change, "branch": branch, "revision": revision})[0] == 200
    builds = wait_for(lambda: len(b := finished_builds(master, "compile")) >= 2 and b,
                      "one build per branch")
    assert sorted((b["properties"]["branch"], b["properties"]["revision"]) for b in builds) == [
        ("dev", "d1"), ("main", "m2")]


def test_nightly_scheduler_fires_at_its_cron_time(fleet):
    # minute='*': the next whole minute of the master's clock, so at most a minute away.
    master = start(fleet, NIGHTLY)
    [build, *_] = wait_for(lambda: finished_builds(master, "ticker"), "the cron-time build",
                           deadline_s=75)
    assert build["result"] == "success" and build["properties"]["scheduler"] == "every-minute"
    request = master.get(f"/api/v1/buildrequests/{build['buildrequestid']}")
    assert int(request["submitted_at"]) % 60 <= 2  # submitted at the top of a minute
