"""Buildbot's global keys of master.cfg: ``title``/``titleURL`` in every page's header,
``buildbotURL`` in the links the API hands out, ``c['services']`` run as children of the
master (a reporter named as not supported), ``buildbotNetUsageData`` that sends nothing, and
``caches`` accepted with a warning.  Pages and the API are rendered on a real master built in
memory (real database, ports recorded by its reactor, never bound)."""

import json

import pytest
import pytest_twisted

from buildfarm.master.config import load_config
from buildfarm.master.configexec import ConfigErrors
from buildfarm.master.db.testing import add_running_build
from buildfarm.master.www.site import WWWService
from fixtures.mastercfg import write_master_cfg as write
from fixtures.memoryhttp import render
from fixtures.memorymaster import MASTER_CFG, start_memory_master

TITLED_CFG = MASTER_CFG + """
c['title'] = 'Nightly <farm> & co'
c['titleURL'] = 'https://example.org/home?a=1&b=2'
c['buildbotURL'] = 'https://ci.example.org/farm'
"""

RECORDING_SERVICE = """
from twisted.application import service

class Recorder(service.Service):
    def __init__(self, name):
        self.setName(name)
        self.events = []

    def startService(self):
        super().startService()
        self.events.append('started')

    def stopService(self):
        self.events.append('stopped')
        return super().stopService()

"""


async def get(master, path: str):
    return await render(WWWService(master).make_site().resource, "GET", path)


# -- title and titleURL ----------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_every_page_header_shows_the_title_linked_to_title_url_escaped(tmp_path):
    master = await start_memory_master(tmp_path, TITLED_CFG)
    try:
        header = ('<a class="brand" id="site-title" href="https://example.org/home?a=1&amp;b=2">'
                  'Nightly &lt;farm&gt; &amp; co</a>')
        for path, status in (("/", 200), ("/builders/linux", 200), ("/login", 200), ("/no/such/page", 404)):
            response = await get(master, path)
            page = response.body.decode()
            assert response.code == status, path
            assert header in page, path
            assert "· Nightly &lt;farm&gt; &amp; co</title>" in page, path
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_without_title_url_the_title_links_the_overview(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG + "c['title'] = 'Farm'\n")
    try:
        page = (await get(master, "/")).body.decode()
        assert '<a class="brand" id="site-title" href="/">Farm</a>' in page
    finally:
        await master.stopService()


@pytest.mark.parametrize("url", ["javascript:alert(1)", "example.org", 42, "//evil.example/"])
def test_a_title_url_that_is_not_http_or_a_path_is_an_error(tmp_path, url):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, MASTER_CFG + f"c['titleURL'] = {url!r}\n"))
    assert str(caught.value.errors[0]).startswith(
        "master.cfg:11: c['titleURL'] must be an http:// or https:// URL or a path starting with '/'")


def test_a_title_url_has_no_no_effect_warning_and_a_title_must_be_text(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG + "c['titleURL'] = '/about'\n"))
    assert config.title_url == "/about" and config.warnings == []
    with pytest.raises(ConfigErrors, match=r"c\['title'\] must be a string, not 7"):
        load_config(write(tmp_path, MASTER_CFG + "c['title'] = 7\n"))


# -- buildbotURL in the API's links ----------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_api_build_links_use_buildbot_url(tmp_path):
    master = await start_memory_master(tmp_path, TITLED_CFG)
    try:
        build = await add_running_build(master.db, builder="linux")
        index = json.loads((await get(master, "/api/v1")).body)
        assert (index["title"], index["titleURL"], index["buildbotURL"]) == \
            ("Nightly <farm> & co", "https://example.org/home?a=1&b=2", "https://ci.example.org/farm/")
        listed = json.loads((await get(master, "/api/v1/builds")).body)["builds"][0]
        one = json.loads((await get(master, f"/api/v1/builds/{build.buildid}")).body)
        page = f"https://ci.example.org/farm/builds/{build.buildid}"
        assert listed["page_url"] == one["page_url"] == page
        assert listed["url"] == f"/api/v1/builds/{build.buildid}"  # the API's own links stay paths
        overview = json.loads((await get(master, "/api/v1/overview")).body)
        running = next(b for b in overview["builders"] if b["name"] == "linux")["running_builds"]
        assert [b["page_url"] for b in running] == [page]
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_without_buildbot_url_build_links_are_paths_of_this_site(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG)
    try:
        build = await add_running_build(master.db, builder="linux")
        listed = json.loads((await get(master, "/api/v1/builds")).body)["builds"][0]
        assert listed["page_url"] == f"/builds/{build.buildid}"
        assert json.loads((await get(master, "/api/v1")).body)["buildbotURL"] is None
    finally:
        await master.stopService()


# -- c['services'] ---------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_a_twisted_service_in_services_runs_as_a_child_of_the_master(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG + RECORDING_SERVICE +
                                       "c['services'] = [Recorder('recorder')]\n")
    recorder = master.config.services[0]
    assert recorder.running and recorder.events == ["started"]
    assert recorder.parent is master.getServiceNamed("services") and recorder.parent.parent is master
    await master.stopService()
    assert not recorder.running and recorder.events == ["started", "stopped"]


@pytest_twisted.ensureDeferred
async def test_a_reconfig_stops_the_old_services_and_starts_the_new_ones(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG + RECORDING_SERVICE +
                                       "c['services'] = [Recorder('one')]\n")
    try:
        old = master.config.services[0]
        two = MASTER_CFG + RECORDING_SERVICE + "c['services'] = [Recorder('two')]\n"
        (tmp_path / "master.cfg").write_text(two)
        await master.reconfig()
        new = master.config.services[0]
        assert old.events == ["started", "stopped"] and old.parent is None
        assert new.name == "two" and new.running and new.events == ["started"]
        assert [s.name for s in master.getServiceNamed("services")] == ["two"]
    finally:
        await master.stopService()


@pytest.mark.parametrize("reporter, module", [("PushoverNotifier", "buildbot.reporters.pushover"),
                                              ("ZulipStatusPush", "buildbot.reporters.zulip"),
                                              ("IRC", "buildbot.reporters.irc")])
def test_a_buildbot_reporter_in_services_is_named_not_supported_at_its_line(tmp_path, reporter, module):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, MASTER_CFG.replace("import slaves,", "import reporters, slaves,") + f"""
c['services'] = [
    reporters.{reporter}('an argument'),
]
"""))
    assert [str(e) for e in caught.value.errors] == [
        f"master.cfg:13: not supported by buildfarm: {reporter} (Buildbot's {module}.{reporter})"]


def test_services_must_be_twisted_services_with_distinct_names(tmp_path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(write(tmp_path, MASTER_CFG + RECORDING_SERVICE +
                          "c['services'] = [Recorder('a'), Recorder('a'), 'mailer']\n"))
    assert [str(e) for e in caught.value.errors] == [
        "master.cfg:27: two services in c['services'] are named 'a'",
        "master.cfg:27: c['services'] holds 'mailer', not a Twisted service (IService)",
    ]


# -- buildbotNetUsageData and caches ---------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_usage_data_full_sends_nothing_and_checkconfig_says_so(tmp_path):
    master = await start_memory_master(tmp_path, MASTER_CFG + "c['buildbotNetUsageData'] = 'full'\n")
    try:
        assert master.config.warnings == [
            "master.cfg:11: c['buildbotNetUsageData'] has no effect: nothing is sent: buildfarm never sends "
            "usage data anywhere"]
        reactor = master.reactor  # every connection the master makes goes through its reactor
        assert (reactor.tcpClients, reactor.sslClients, reactor.unixClients) == ([], [], [])
        assert [port for port, *_ in reactor.tcpServers] == [9989, 8010]  # it only listens
    finally:
        await master.stopService()


def test_caches_are_accepted_with_a_warning_that_says_why(tmp_path):
    config = load_config(write(tmp_path, MASTER_CFG + "c['caches'] = {'Builds': 30, 'Changes': 100}\n"))
    assert config.warnings == [
        "master.cfg:11: c['caches'] has no effect: buildfarm has no object caches to size: the pages and "
        "the API read the database on each request"]
