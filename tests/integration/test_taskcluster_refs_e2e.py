"""The official Taskcluster client drives a real master with a real slave from the reference the
master serves: ``createApiClient`` from ``/references/buildfarm/v1/api.json`` (fetched over
HTTP) forces a build and reads its log, sync and aio; ``buildfarm.common.client`` lists the
builders with its paging iterator.

The callers are anonymous, given ``c['www']['anonymous_scopes']``: the client signs with Hawk,
which the master learns in issue 20's Hawk part (master/auth/); until then it sends no
credentials.
"""

import asyncio
import json
import urllib.request
from importlib import resources

import aiohttp
import taskcluster
from taskcluster.client import createApiClient

from buildfarm.common import client
from fixtures.asyncrun import run_coroutine
from fixtures.daemons import wait_for

# the services whose client is the official package's, not buildfarm.common.client's
TASKCLUSTER_CLASSES = {"auth": taskcluster.Auth, "queue": taskcluster.Queue}

BUILDERS = 5
CONFIG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
factory = util.BuildFactory([steps.ShellCommand(command=['echo', 'hello from the slave'])])
names = [f'b{{i}}' for i in range({builders})]
c['builders'] = [util.BuilderConfig(name=name, slavenames=['bs1'], factory=factory) for name in names]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=names)]
c['www'] = {{'port': {www_port}, 'anonymous_scopes': ['builds:read', 'builds:force:*', 'slaves:read',
                                                     'slaveapi:read', 'tasks:read', 'bots:read']}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def start(fleet):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(
        pb_port=pb_port, www_port=www_port, builders=BUILDERS))
    fleet.slave(master)
    master.wait_attached("bs1")
    return master


def served_reference(master) -> dict:
    with urllib.request.urlopen(master.url + "/references/buildfarm/v1/api.json", timeout=10) as response:
        return json.loads(response.read())


def wait_complete(get_request, brid: int) -> dict:
    return wait_for(lambda: (r := get_request(brid))["complete"] and r, f"build request {brid} to complete")


def the_log(buildfarm_build: dict) -> dict:
    (step,) = buildfarm_build["steps"]
    return next(log for log in step["logs"] if log["name"] == "stdio")


def test_a_client_made_from_the_served_reference_forces_a_build_and_reads_its_log(fleet):
    master = start(fleet)
    reference = served_reference(master)
    assert reference == client.load_reference("buildfarm")  # what the package ships
    Buildfarm = createApiClient("Buildfarm", {"reference": reference})  # noqa: N806
    farm = Buildfarm({"rootUrl": master.url})

    assert farm.ping() == {"alive": True}
    brid = farm.forceBuild("b0", {"reason": "from the Taskcluster client"})["buildrequestid"]
    request = wait_complete(farm.buildRequest, brid)
    assert request["result"] == "success"
    (buildid,) = [b["buildid"] for b in farm.listBuilds(query={"builder": "b0"})["builds"]]
    log = the_log(farm.build(buildid))
    lines = farm.logLines(log["logid"], query={"offset": 0, "limit": 1000})
    assert "hello from the slave\n" in lines["text"]
    whole = farm.buildLog(buildid, 0, "stdio")["response"]  # text/plain: the requests.Response
    assert whole.text == lines["text"]


def test_the_aio_client_forces_a_build_and_reads_its_log(fleet):
    master = start(fleet)
    reference = served_reference(master)
    # taskcluster.aio's createApiClient, its class set on AsyncBaseClient (a defect of 113.2.0)
    AsyncBuildfarm = client.make_client_class("Buildfarm", reference, aio=True)  # noqa: N806

    async def drive():
        async with aiohttp.ClientSession() as session:
            farm = AsyncBuildfarm({"rootUrl": master.url}, session=session)
            brid = (await farm.forceBuild("b1", {"reason": "aio"}))["buildrequestid"]
            for _ in range(600):  # at most 60 s, by the loop's own clock
                request = await farm.buildRequest(brid)
                if request["complete"]:
                    break
                await asyncio.sleep(0.1)
            assert request["complete"] and request["result"] == "success"
            (build,) = (await farm.listBuilds(query={"builder": "b1"}))["builds"]
            log = the_log(await farm.build(build["buildid"]))
            return await farm.logLines(log["logid"])

    lines = run_coroutine(drive)
    assert "hello from the slave\n" in lines["text"]


def test_the_common_client_lists_every_builder_with_the_paging_iterator(fleet, monkeypatch):
    master = start(fleet)
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", master.url)
    farm = client.Buildfarm(client.optionsFromEnvironment())
    first = farm.listBuilders(query={"limit": 2})
    assert len(first["builders"]) == 2 and first["continuationToken"]
    names = [b["name"] for b in farm.iterListBuilders(query={"limit": 2})]  # 3 pages
    assert names == [f"b{i}" for i in range(BUILDERS)]
    handled = []  # Taskcluster's own paging follows the same tokens
    farm.listBuilders(query={"limit": 2}, paginationHandler=lambda page: handled.extend(page["builders"]))
    assert [b["name"] for b in handled] == names
    assert [s["name"] for s in farm.iterListSlaves()] == ["bs1"]

    async def async_names():
        async with aiohttp.ClientSession() as session:
            farm = client.AsyncBuildfarm({"rootUrl": master.url}, session=session)
            return [b["name"] async for b in farm.iterListBuilders(query={"limit": 3})]

    assert run_coroutine(async_names) == names


def test_the_slaveapi_tasks_and_cas_clients_call_their_services_in_taskclusters_layout(fleet):
    master = start(fleet)
    options = {"rootUrl": master.url}
    slaves = client.SlaveAPI(options).listSlaves()["slaves"]
    assert [(s["name"], s["connected"]) for s in slaves] == [("bs1", True)]
    tasks = client.Tasks(options)
    assert tasks.serverDetails()["server_version"].startswith("buildfarm-")
    assert tasks.countTasks()["count"] == "0" and list(tasks.iterListTasks()) == []
    assert client.CAS(options).serverDetails({})["server_version"].startswith("buildfarm-")
    manifest = json.loads(urllib.request.urlopen(master.url + "/references/manifest.json", timeout=10).read())
    for url in manifest["references"]:  # every listed reference is served, as the package ships it
        name = url.split("/references/")[1].split("/")[0]
        with urllib.request.urlopen(url, timeout=10) as response:
            served = json.loads(response.read())
        if url.endswith("/exchanges.json"):  # a service's exchange reference (docs/operations.md)
            shipped = json.loads(resources.files("buildfarm.common").joinpath(
                "references", f"{name}-exchanges.json").read_text("utf-8"))
            assert served == shipped
            continue
        # auth's and queue's clients are the official package's: their references ship all the same
        shipped = (client.load_reference(name) if name in client.SERVICES else json.loads(
            resources.files("buildfarm.common").joinpath("references", f"{name}.json").read_text("utf-8")))
        assert served == shipped
        if name in TASKCLUSTER_CLASSES:  # Taskcluster's own: each entry is the official client's call
            official = TASKCLUSTER_CLASSES[name].funcinfo
            for entry in served["entries"]:
                assert (entry["method"], entry["route"], entry["args"]) == \
                    tuple(official[entry["name"]][k] for k in ("method", "route", "args")), entry["name"]
