"""Buildbot's global keys on a real master process with a real slave, over HTTP: the janitor
forced through the API deletes the contents of older logs and shows in the builds list, the
title links titleURL in the page header, the API links builds under buildbotURL, and with
``buildbotNetUsageData = 'full'`` the master holds no connection it opened itself."""

import os
import urllib.request

CONFIG = """\
import datetime
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [
    util.BuilderConfig(name='echo', slavenames=['bs1'],
                       factory=util.BuildFactory([steps.ShellCommand(command=['echo', 'hello'])])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['echo'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['title'] = 'Farm <e2e>'
c['titleURL'] = 'https://example.org/farm'
c['buildbotURL'] = 'https://ci.example.org/'
c['buildbotNetUsageData'] = 'full'
# Every finished step is older than the horizon by the time the janitor runs.
c['configurators'] = [util.JanitorConfigurator(logHorizon=datetime.timedelta(microseconds=1), hour=3)]
"""

TCP_LISTEN = "0A"


def log_texts(master, buildid: int) -> list[str]:
    """The raw text of every log of the build."""
    build = master.get(f"/api/v1/builds/{buildid}")
    texts = []
    for step in build["steps"]:
        for log in step["logs"]:
            status, body = master.request("GET", log["raw_url"])
            assert status == 200
            texts.append(body.decode())
    return texts


def tcp_sockets_of(pid: int) -> list[tuple[int, str]]:
    """``(local port, state)`` of every TCP socket the process holds (from /proc)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    sockets = []
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for row in f.read().splitlines()[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    sockets.append((int(fields[1].rsplit(":", 1)[1], 16), fields[3]))
    return sockets


def test_janitor_title_links_and_no_usage_data_on_a_real_master(fleet):
    master = fleet.master(config=lambda pb_port, www_port: CONFIG.format(pb_port=pb_port, www_port=www_port))
    fleet.slave(master)
    master.wait_attached("bs1")
    echo = master.wait_request_complete(master.force("echo"))
    echo_build = echo["buildids"][0]
    assert any("hello" in text for text in log_texts(master, echo_build))

    janitor = master.wait_request_complete(master.force("__Janitor"))

    assert janitor["result"] == "success"
    janitor_builds = master.get("/api/v1/builds?builder=__Janitor")["builds"]
    assert [b["buildid"] for b in janitor_builds] == janitor["buildids"]
    assert janitor_builds[0]["page_url"] == f"https://ci.example.org/builds/{janitor['buildids'][0]}"
    steps = master.get(f"/api/v1/builds/{janitor['buildids'][0]}")["steps"]
    assert steps[0]["name"] == "LogChunksJanitor" and steps[0]["state_string"].startswith("deleted ")
    assert steps[0]["state_string"] != "deleted 0 logchunks"
    assert all(text == "" for text in log_texts(master, echo_build))  # contents gone
    kept = master.get(f"/api/v1/builds/{echo_build}")
    assert kept["result"] == "success" and kept["steps"]  # the build and its steps stay

    with urllib.request.urlopen(master.url + "/", timeout=10) as response:
        page = response.read().decode()
    assert '<a class="brand" id="site-title" href="https://example.org/farm">Farm &lt;e2e&gt;</a>' in page

    pid = int(open(os.path.join(master.basedir, "twistd.pid")).read())
    own_ports = {master.pb_port, master.www_port}
    sockets = tcp_sockets_of(pid)
    assert {port for port, state in sockets if state == TCP_LISTEN} == own_ports
    assert [(port, state) for port, state in sockets if port not in own_ports] == []  # nothing dialled out
    assert "buildbotNetUsageData'] has no effect: nothing is sent" in master.log_text()
