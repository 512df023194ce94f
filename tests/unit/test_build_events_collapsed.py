"""Requests collapsed into one build (``c['collapseRequests']``, on by default) are named by
that build's events: build-started and build-finished carry ``buildRequestIds``, every
request the build serves (its own first), beside ``buildRequestId`` (its own, as before).

On a real master in memory: three requests wait, a slave attaches, the BotMaster collapses
them into one build (of no steps) that the slave's real ``SlaveBuilder`` runs in process."""

import os

import pytest_twisted
from twisted.internet import reactor

from buildfarm.common.results import SUCCESS
from buildfarm.master.mq import events
from buildfarm.master.mq.exchanges import BUILD_FINISHED, BUILD_STARTED
from buildfarm.slave.builder import SlaveBuilder
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.chaos import BUILD_FINISHED as CHAOS_BUILD_FINISHED
from fixtures.chaos import EventRecorder
from fixtures.memorymaster import attach_slave, eventually, memory_master_fixture
from fixtures.stepslave import InProcessReference
from tests.unit.test_events_master import heard, valid

NO_STEPS_CFG = """\
from buildfarm.master.plugins import slaves, schedulers, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'], factory=util.BuildFactory([]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['linux'])]
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
"""

master = memory_master_fixture(NO_STEPS_CFG)


def slave_builder(tmp_path, master) -> InProcessReference:
    basedir = os.path.join(str(tmp_path), "slave")
    os.makedirs(basedir, exist_ok=True)
    runtime = SlaveRuntime(basedir, defaultRegistry(), reactor, reactor, lambda: None)
    config = master.botmaster.builders["linux"].config
    return InProcessReference(SlaveBuilder("linux", config.builddir, runtime))


@pytest_twisted.ensureDeferred
async def test_a_build_of_three_collapsed_requests_names_all_three(master, tmp_path):
    started, finished = heard(master, BUILD_STARTED), heard(master, BUILD_FINISHED)
    brids = [await master.scheduler.force("linux", "same", {}) for _ in range(3)]
    await attach_slave(master, "bs1", builders={"linux": slave_builder(tmp_path, master)})

    async def built():
        return bool(finished)

    await eventually(built, "the build to finish")
    (start,), (end,) = started, finished
    assert valid(start)["buildRequestIds"] == brids and start.payload["buildRequestId"] == brids[0]
    assert valid(end)["buildRequestIds"] == brids and end.payload["results"] == SUCCESS
    assert {(await master.db.buildrequests.get(brid))["results"] for brid in brids} == {SUCCESS}
    assert len(await master.db.builds.get_all()) == 1
    recorder = EventRecorder("amqp://127.0.0.1:9/")  # the fault-injection run's consumer, not started
    recorder._record(CHAOS_BUILD_FINISHED, end.payload)
    assert recorder.snapshot()[0] == {brid: ["success"] for brid in brids}


def test_a_build_known_by_its_row_only_names_its_own_request():
    """``db.builds``' dict (a build a restart cut short) has no list: its own request."""
    class Bus:
        def message(self, exchanges, exchange, payload):
            return payload

    row = {"buildername": "linux", "builderid": 1, "buildid": 7, "number": 1, "buildrequestid": 5,
           "slavename": "bs1", "masterid": 1, "started_at": 1.0}
    assert events.build_started(Bus(), row)["buildRequestIds"] == [5]
