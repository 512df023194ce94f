"""``HttpStatusPush`` of a STOCK Buildbot 4.3 master and of buildfarm, side by side: each pushes
its builds' start and end to a recording server on loopback, and buildfarm's JSON bodies have
the keys stock Buildbot's have (the build, its builder, request and buildset), with values of
the same types, so an endpoint written for Buildbot reads ours."""

import os

from fixtures.daemons import free_port, wait_for
from fixtures.recordinghttp import RecordingHTTPServer
from fixtures.stock_buildbot import CONFIG_PREAMBLE

STOCK_CFG = CONFIG_PREAMBLE + """
from buildbot.plugins import reporters
c['workers'] = [worker.Worker('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='runtests', workernames=['bs1'], tags=['fast'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['false'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['services'] = [reporters.HttpStatusPush('URL')]
"""

OURS_CFG = """\
from buildfarm.master.plugins import reporters, schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.Worker('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [util.BuilderConfig(name='runtests', workernames=['bs1'], tags=['fast'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['false'])]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['services'] = [reporters.HttpStatusPush({url!r})]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def shape(value):
    """The JSON type of ``value`` (None is compatible with anything: a time not set yet)."""
    return {dict: "object", list: "array", str: "string", bool: "bool", int: "number",
            float: "number"}.get(type(value), "null")


def test_buildfarm_pushes_the_keys_stock_buildbot_pushes(stock_masters, fleet):
    stock_server = RecordingHTTPServer(free_port(), "/stock")
    ours_server = RecordingHTTPServer(free_port(), "/ours")
    stock_server.start()
    ours_server.start()
    try:
        stock = stock_masters.start(STOCK_CFG.replace("'URL'", repr(stock_server.url)))
        os.makedirs(fleet.root, exist_ok=True)
        fleet.slave(stock, "bs1", "pass")
        stock.wait_worker_connected("bs1")
        stock.wait_build_finished(stock.force("force", "runtests"))
        wait_for(lambda: len(stock_server.calls) == 2, "stock Buildbot's two pushes")

        ours = fleet.master(config=lambda pb_port, www_port: OURS_CFG.format(
            pb_port=pb_port, www_port=www_port, url=ours_server.url))
        fleet.slave(ours, "bs1", "pass")
        ours.wait_attached("bs1")
        ours.wait_request_complete(ours.force("runtests"))
        wait_for(lambda: len(ours_server.calls) == 2, "buildfarm's two pushes")
    finally:
        stock_server.stop()
        ours_server.stop()

    assert [(b["complete"], b["results"]) for b in stock_server.calls] == [(False, None), (True, 2)]
    assert [(b["complete"], b["results"]) for b in ours_server.calls] == [(False, None), (True, 2)]
    for theirs, mine in zip(stock_server.calls, ours_server.calls, strict=True):
        assert set(theirs) <= set(mine), f"keys missing: {set(theirs) - set(mine)}"
        for part in ("builder", "buildrequest", "buildset"):
            missing = set(theirs[part]) - set(mine[part])
            assert not missing, f"{part}: keys missing: {missing}"
        stamp_keys = set(theirs["buildset"]["sourcestamps"][0])
        assert stamp_keys <= set(mine["buildset"]["sourcestamps"][0])
        for key, value in theirs.items():
            if value is not None and mine[key] is not None:
                assert shape(mine[key]) == shape(value), (key, value, mine[key])
    end = ours_server.calls[1]
    assert end["builder"]["name"] == "runtests" and end["builder"]["tags"] == ["fast"]
    assert end["properties"]["buildername"][0] == "runtests"
