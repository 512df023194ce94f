"""``GitHubStatusPush`` and ``GitHubCommentPush`` of a STOCK Buildbot 4.3 master and of
buildfarm, side by side, each pointed (``baseURL``) at a recording server on loopback, for a
failing build of a pull request (branch ``refs/pull/7/merge``): the same requests (paths,
``Authorization`` form, JSON bodies but the build's URL) in the same order.  ``GitLabStatusPush``
likewise, but for the project: stock Buildbot looks its numeric id up, buildfarm posts to the
URL-encoded path (GitLab takes both)."""

import os
import re

from fixtures.daemons import free_port, wait_for
from fixtures.recordinghttp import RecordingHTTPServer
from fixtures.stock_buildbot import CONFIG_PREAMBLE

SHA = "0123456789abcdef0123456789abcdef01234567"
BRANCH = "refs/pull/7/merge"
REPOSITORY = "git@github.com:acme/widgets.git"

STOCK_CFG = CONFIG_PREAMBLE + """
from buildbot.plugins import reporters
c['workers'] = [worker.Worker('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='runtests', workernames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['false'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['services'] = [reporters.GitHubStatusPush('t0ken', baseURL='URL'),
                 reporters.GitHubCommentPush('t0ken', baseURL='URL')]
"""

OURS_CFG = """\
from buildfarm.master.plugins import reporters, schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.Worker('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [util.BuilderConfig(name='runtests', workernames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['false'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['services'] = [reporters.GitHubStatusPush('t0ken', baseURL={url!r}),
                 reporters.GitHubCommentPush('t0ken', baseURL={url!r})]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def requests(server: RecordingHTTPServer) -> list[tuple[str, str, dict]]:
    """(path, Authorization, body without the build's URL) of each request, in order."""
    prefix = server.path
    return [(path[len(prefix):], headers.get("Authorization"),
             {k: v for k, v in body.items() if k != "target_url"})
            for path, headers, body in zip(server.paths, server.headers, server.calls, strict=True)]


def not_pending(bodies: list[dict]) -> list[dict]:
    return [b for b in bodies if b.get("description") != "Build pending."]


STOCK_DEADLINE_S = 120.0


def test_buildfarm_sends_github_the_requests_stock_buildbot_sends(stock_masters, fleet):
    stock_server = RecordingHTTPServer(free_port(), "/stock")
    ours_server = RecordingHTTPServer(free_port(), "/ours")
    for server in (stock_server, ours_server):
        server.status = 201
        server.start()
    try:
        stock = stock_masters.start(STOCK_CFG.replace("'URL'", repr(stock_server.url)))
        os.makedirs(fleet.root, exist_ok=True)
        fleet.slave(stock, "bs1", "pass")
        stock.wait_worker_connected("bs1")
        stock.wait_build_finished(stock.force("force", "runtests", branch=BRANCH, revision=SHA,
                                              repository=REPOSITORY, project=""))
        # Buildbot 4.3: "Build pending." at the request, then the start, the end and the comment.
        # stock Buildbot's reporters post after the build's end on their own schedule: a CI run
        # on a loaded machine once took over 30 s, so this wait (for the reference, not for
        # buildfarm) is longer
        wait_for(lambda: len(not_pending(stock_server.calls)) == 3,
                 "stock Buildbot's requests of the build's start and end", STOCK_DEADLINE_S)

        ours = fleet.master(config=lambda pb_port, www_port: OURS_CFG.format(
            pb_port=pb_port, www_port=www_port, url=ours_server.url))
        fleet.slave(ours, "bs1", "pass")
        ours.wait_attached("bs1")
        ours.wait_request_complete(ours.force("runtests", properties={
            "branch": BRANCH, "revision": SHA, "repository": REPOSITORY}))
        wait_for(lambda: len(ours_server.calls) == 3, "buildfarm's three requests")
    finally:
        stock_server.stop()
        ours_server.stop()

    # buildfarm has no BuildRequestGenerator: no "Build pending." (a POST stock Buildbot may drop).
    theirs = [r for r in requests(stock_server) if r[2].get("description") != "Build pending."]
    mine = requests(ours_server)
    assert sorted(mine, key=repr) == sorted(theirs, key=repr)  # the two reporters interleave
    assert [r for r in mine if "statuses" in r[0]] == [r for r in theirs if "statuses" in r[0]]
    assert [r[2]["state"] for r in mine if "statuses" in r[0]] == ["pending", "failure"]
    for calls in (not_pending(stock_server.calls), ours_server.calls):  # the build's page
        urls = [b["target_url"] for b in calls if "target_url" in b]
        assert len(urls) == 2 and all(re.search(r"/builds/\d+$", u) for u in urls), urls


GITLAB_STOCK_CFG = STOCK_CFG.replace(
    "c['services'] = [reporters.GitHubStatusPush('t0ken', baseURL='URL'),\n"
    "                 reporters.GitHubCommentPush('t0ken', baseURL='URL')]",
    "c['services'] = [reporters.GitLabStatusPush('t0ken', baseURL='URL')]")
GITLAB_OURS_CFG = OURS_CFG.replace(
    "c['services'] = [reporters.GitHubStatusPush('t0ken', baseURL={url!r}),\n"
    "                 reporters.GitHubCommentPush('t0ken', baseURL={url!r})]",
    "c['services'] = [reporters.GitLabStatusPush('t0ken', baseURL={url!r})]")
GITLAB_PROJECT_ID = 4242


def test_buildfarm_sends_gitlab_the_statuses_stock_buildbot_sends(stock_masters, fleet):
    assert GITLAB_STOCK_CFG != STOCK_CFG and GITLAB_OURS_CFG != OURS_CFG
    stock_server = RecordingHTTPServer(free_port(), "/stock")
    ours_server = RecordingHTTPServer(free_port(), "/ours")
    # Stock Buildbot looks the project's numeric id up first; GitLab takes the encoded path too.
    stock_server.documents = {"/stock/api/v4/projects/acme%2Fwidgets": {"id": GITLAB_PROJECT_ID}}
    for server in (stock_server, ours_server):
        server.status = 201
        server.start()
    try:
        stock = stock_masters.start(GITLAB_STOCK_CFG.replace("'URL'", repr(stock_server.url)))
        os.makedirs(fleet.root, exist_ok=True)
        fleet.slave(stock, "bs1", "pass")
        stock.wait_worker_connected("bs1")
        stock.wait_build_finished(stock.force("force", "runtests", branch="main", revision=SHA,
                                              repository=REPOSITORY, project=""))
        # Its "Build pending." at the request may be lost (it drops a failed POST): not compared.
        wait_for(lambda: [c["state"] for c in stock_server.calls][-2:] == ["running", "failed"],
                 "stock Buildbot's statuses of the build's start and end")

        ours = fleet.master(config=lambda pb_port, www_port: GITLAB_OURS_CFG.format(
            pb_port=pb_port, www_port=www_port, url=ours_server.url))
        fleet.slave(ours, "bs1", "pass")
        ours.wait_attached("bs1")
        ours.wait_request_complete(ours.force("runtests", properties={
            "branch": "main", "revision": SHA, "repository": REPOSITORY}))
        wait_for(lambda: len(ours_server.calls) == 2, "buildfarm's two statuses")
    finally:
        stock_server.stop()
        ours_server.stop()

    assert ours_server.gets == []
    headers = stock_server.headers + ours_server.headers
    tokens = [h.get("Private-Token", h.get("PRIVATE-TOKEN")) for h in headers]
    assert tokens == ["t0ken"] * len(headers)
    theirs = [(path.replace(f"/{GITLAB_PROJECT_ID}/", "/acme%2Fwidgets/"), auth, body)
              for path, auth, body in requests(stock_server)]
    assert requests(ours_server) == theirs[-2:]
    assert [b["state"] for _, _, b in theirs[-2:]] == ["running", "failed"]
