"""``GitHubStatusPush`` and ``GitHubCommentPush`` of a STOCK Buildbot 4.3 master and of
buildfarm, side by side, each pointed (``baseURL``) at a recording server on loopback, for a
failing build of a pull request (branch ``refs/pull/7/merge``): the same requests (paths,
``Authorization`` form, JSON bodies but the build's URL) in the same order."""

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
        wait_for(lambda: len(stock_server.calls) == 4, "stock Buildbot's four requests")

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

    theirs, mine = requests(stock_server), requests(ours_server)
    assert theirs[0][2]["description"] == "Build pending."  # buildfarm has no BuildRequestGenerator
    assert sorted(mine, key=repr) == sorted(theirs[1:], key=repr)  # the two reporters interleave
    assert [r for r in mine if "statuses" in r[0]] == [r for r in theirs[1:] if "statuses" in r[0]]
    for calls in (stock_server.calls[1:], ours_server.calls):  # the build's page
        urls = [b["target_url"] for b in calls if "target_url" in b]
        assert len(urls) == 2 and all(re.search(r"/builds/\d+$", u) for u in urls), urls
