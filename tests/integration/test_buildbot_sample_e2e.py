"""Buildbot 4.3's own ``sample.cfg`` RUNS on buildfarm with its import line changed and nothing
else, but for the one substitution made here: its repository URL (the GitPoller's and the Git
step's, the same literal) becomes a local repository standing in for ``hello-world`` (a
``hello`` package with a trial test).  The sample's ports (9989, 8010), worker name and password
stay.  A new commit there is polled (GitPoller, ``pollInterval=300``: the test asks it to poll
now through ``POST /api/v1/changesources/<name>/poll`` rather than waiting five minutes),
SingleBranchScheduler "all" makes a build of it, and the build checks that commit out
(``got_revision``) and runs ``trial hello`` -- on our slave, and on a stock buildbot-worker 4.3.
The sample's other keys do what they say: the title, ``buildbotURL``, the SQLite file in the
basedir.  Buildbot's ``poller`` change hook, which a config may use instead, takes a form body
as ``curl -d poller=...`` sends it."""

import json
import os
import socket
import sqlite3
import urllib.error
import urllib.request
from urllib.parse import quote

import pytest

from fixtures.buildbotpackage import ported_sample_cfg
from fixtures.daemons import BIN_DIR, wait_for
from fixtures.repos import GitRepo

SAMPLE_REPOURL = "https://github.com/buildbot/hello-world.git"
SAMPLE_PB_PORT, SAMPLE_WWW_PORT = 9989, 8010
WORKER, PASSWORD = "example-worker", "pass"
BUILD_DEADLINE_S = 120.0

HELLO_INIT = '''\
def greeting():
    return "Hello, World!"
'''
HELLO_TEST = '''\
from twisted.trial import unittest

import hello


class GreetingTest(unittest.TestCase):
    def test_greets_the_world(self):
        self.assertEqual(hello.greeting(), "Hello, World!")
'''
HELLO_SECOND_TEST = HELLO_TEST + '''
    def test_greeting_is_excited(self):
        self.assertTrue(hello.greeting().endswith("!"))
'''


def hello_world(path: str) -> GitRepo:
    """A repository standing in for github.com/buildbot/hello-world: branch ``master``, a
    ``hello`` package with a trial test."""
    repo = GitRepo(path, branch="master")
    repo.commit("hello/__init__.py", HELLO_INIT, "hello")
    repo.commit("hello/test_hello.py", HELLO_TEST, "a test")
    return repo


def sample_cfg_for(repo: GitRepo) -> str:
    """The ported sample with the hello-world URL replaced by ``repo``'s (the one substitution)."""
    text = ported_sample_cfg()
    assert text.count(SAMPLE_REPOURL) == 2  # the GitPoller's and the Git step's
    return text.replace(SAMPLE_REPOURL, repo.url)


def require_free(port: int) -> None:
    """The sample's ports are fixed: fail with the reason if something holds one."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise AssertionError(f"the sample's port {port} is taken ({e}): stop what holds it") from None


def poll_now(master, name: str) -> dict:
    status, body = master.request("POST", f"/api/v1/changesources/{quote(name, safe='')}/poll")
    assert status == 200, (status, body)
    answer = json.loads(body)
    assert answer["finished"] is True and answer["changesource"]["last_error"] is None, answer
    return answer["changesource"]


def finished_builds(master) -> list[dict]:
    return master.get("/api/v1/builds?builder=runtests&complete=true")["builds"]


@pytest.fixture(params=["buildfarm buildslave", "stock buildbot-worker 4.3"])
def worker_kind(request):
    return request.param


@pytest.mark.usefixtures("fixed_ports")  # the sample's own 9989 and 8010
def test_the_sample_cfg_builds_a_new_commit_polled_by_its_git_poller(fleet, tmp_path, monkeypatch,
                                                                     worker_kind):
    for port in (SAMPLE_PB_PORT, SAMPLE_WWW_PORT):
        require_free(port)
    # The sample's step runs `trial hello`: the slave's PATH has this virtualenv's trial.
    monkeypatch.setenv("PATH", BIN_DIR + os.pathsep + os.environ.get("PATH", ""))
    repo = hello_world(str(tmp_path / "hello-world"))
    master = fleet.master(config=lambda _pb, _www: sample_cfg_for(repo))
    master.pb_port, master.www_port = SAMPLE_PB_PORT, SAMPLE_WWW_PORT
    if worker_kind == "buildfarm buildslave":
        fleet.slave(master, WORKER, PASSWORD)
    else:
        fleet.stock_worker(master, WORKER, PASSWORD)
    master.wait_attached(WORKER)

    [poller] = master.get("/api/v1/changesources")["changesources"]
    assert (poller["name"], poller["kind"], poller["poll_interval"]) == (repo.url, "GitPoller", 300)
    assert poller["last_poll"] is None  # pollAtLaunch=False, and five minutes have not passed
    poll_now(master, repo.url)  # the first poll records where master stands
    assert master.get("/api/v1/changes")["changes"] == []

    sha = repo.commit("hello/test_hello.py", HELLO_SECOND_TEST, "Test that the greeting is excited")
    polled = poll_now(master, repo.url)
    assert polled["last_poll"] is not None

    [build] = wait_for(lambda: finished_builds(master), "the build of the new commit", BUILD_DEADLINE_S)
    detail = master.get(f"/api/v1/builds/{build['buildid']}")
    assert build["result"] == "success", (detail, master.log_text()[-3000:])
    assert [(step["name"], step["result"]) for step in detail["steps"]] == [("git", "success"),
                                                                          ("shell", "success")]
    assert build["properties"]["got_revision"] == sha
    assert (build["properties"]["revision"], build["properties"]["branch"]) == (sha, "master")
    assert (build["properties"]["scheduler"], build["properties"]["workername"]) == ("all", WORKER)
    trial = detail["steps"][1]
    status, log = master.request("GET", trial["logs"][0]["url"])
    assert status == 200 and b"PASSED (successes=2)" in log, log[-2000:]  # the new commit's two tests
    [change] = master.get("/api/v1/changes")["changes"]
    assert (change["revision"], change["comments"]) == (sha, "Test that the greeting is excited")

    # The sample's other keys: its title, its buildbotURL, its SQLite database in the basedir.
    assert master.get("/api/v1/")["title"] == "Hello World CI"
    status, page = master.request("GET", "/")
    assert status == 200 and b"Hello World CI" in page
    slave_page = master.get(f"/slaveapi/slaves/{WORKER}")
    assert slave_page["master_url"] == "http://localhost:8010/"
    database = os.path.join(master.basedir, "state.sqlite")
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        assert db.execute("SELECT revision FROM changes").fetchall() == [(sha,)]
    assert "Traceback" not in master.log_text()


def post_form(url: str, form: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=form, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


POLLER_HOOK_CFG = """\
from buildfarm.master.plugins import changes, schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['change_source'] = [changes.GitPoller({url!r}, branch='master', pollInterval=300)]
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'],
                                    factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
c['schedulers'] = [schedulers.SingleBranchScheduler(name='all', builderNames=['runtests'],
                                                    change_filter=util.ChangeFilter(branch='master'))]
c['www'] = {{'port': {www_port}, 'change_hook_dialects': {{'poller': {{'allowed': [{url!r}]}}}}}}
"""


def test_buildbots_poller_hook_with_a_form_body_makes_the_poller_poll(fleet, tmp_path):
    repo = hello_world(str(tmp_path / "hello-world"))
    master = fleet.master(config=lambda pb_port, www_port: POLLER_HOOK_CFG.format(
        pb_port=pb_port, www_port=www_port, url=repo.url))
    form = f"poller={quote(repo.url, safe='')}".encode()  # what `curl -d poller=...` sends
    status, body = post_form(master.url + "/change_hook/poller", form)
    assert (status, json.loads(body)) == (202, {"polling": [repo.url]})
    wait_for(lambda: master.get("/api/v1/changesources")["changesources"][0]["last_poll"], "the poll")
    status, body = master.request("POST", "/change_hook/poller?poller=nosuch", user=None)
    assert (status, json.loads(body)) == (400, {"error": "Could not find pollers: nosuch"})
