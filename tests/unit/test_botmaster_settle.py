"""The end of a build settles each of its requests on its own: a database write that fails
for one request skips neither the others, nor the slave's shutdown, nor the next assignment
pass, and it does not hide the build's own error.

On a real master in memory (SQLite, BotMaster, schedulers); the build is scripted (it ends
with a given outcome) and the database fails its write for one request."""

import pytest
import pytest_twisted

from buildfarm.common.results import SUCCESS
from buildfarm.master.pb.buildslave import BuildSlave
from buildfarm.master.process import botmaster as botmaster_module
from buildfarm.master.process.builder import SlaveBuilder, SlaveBuilderState
from fixtures.memorymaster import eventually, memory_master_fixture

master = memory_master_fixture()

FAILING = 2  # the request whose database write fails


class ScriptedBuild:
    """A build of request 1 collapsed with 2 and 3 (or of ``brids``) on bs1 of builder linux,
    ending with ``outcome`` (a result, or an exception it raises)."""

    def __init__(self, master, outcome, brids=(1, 2, 3)):
        self.outcome = outcome
        self.request = {"buildrequestid": brids[0]}
        self.collapsed_requests = list(brids[1:])
        self.lock_accesses = []
        self.claim_lost = False
        builder = master.botmaster.builders["linux"]
        slave = BuildSlave("bs1", master.botmaster, master.reactor, 60.0, 30.0)
        self.slavebuilder = SlaveBuilder(builder, slave, remote=None)
        self.slavebuilder.state = SlaveBuilderState.BUILDING

    async def run(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


def failing_for(brid, write):
    async def maybe_failing(request_id, *args):
        if request_id == brid:
            raise RuntimeError("disk I/O error")
        return await write(request_id, *args)
    return maybe_failing


@pytest.fixture
def botmaster(master, monkeypatch):
    """The master's BotMaster, recording the failures it logs and (calling through) the
    shutdown checks and assignment passes that follow a build."""
    bm = master.botmaster
    bm.failures, bm.events = [], []
    monkeypatch.setattr(botmaster_module.log, "failure",
                        lambda fmt, failure=None, **kw: bm.failures.append(kw["id"]))
    for name, event in [("maybe_shut_down_slave", lambda slave: ("shutdown?", slave.name)),
                        ("maybe_start_builds", lambda: "assign")]:
        original = getattr(bm, name)
        monkeypatch.setattr(bm, name, lambda *a, _o=original, _e=event: bm.events.append(_e(*a)) or _o(*a))
    requests = master.db.buildrequests
    monkeypatch.setattr(requests, "complete", failing_for(FAILING, requests.complete))
    monkeypatch.setattr(requests, "unclaim", failing_for(FAILING, requests.unclaim))
    return bm


async def claimed_requests(master) -> list[int]:
    """Requests 1, 2 and 3 of builder linux, claimed by this master (as their build runs)."""
    builderid = master.botmaster.builders["linux"].builderid
    brids = [await master.db.buildrequests.add(builderid, "test", {}, 0.0) for _ in range(3)]
    for brid in brids:
        assert await master.db.buildrequests.claim(brid, master.masterid, 0.0)
    return brids


async def states(master, brids) -> list[tuple]:
    rows = [await master.db.buildrequests.get(brid) for brid in brids]
    return [(r["complete"], r["results"], r["claimed_by_masterid"] is not None) for r in rows]


@pytest_twisted.ensureDeferred
async def test_a_failed_completion_of_one_request_still_completes_the_others(master, botmaster):
    brids = await claimed_requests(master)
    build = ScriptedBuild(master, SUCCESS)

    await botmaster._run_build(build)

    assert await states(master, brids) == [(True, SUCCESS, True), (False, None, True), (True, SUCCESS, True)]
    assert botmaster.failures == [FAILING]
    assert botmaster.events == [("shutdown?", "bs1"), "assign"]
    assert build.slavebuilder.state == SlaveBuilderState.IDLE


@pytest_twisted.ensureDeferred
async def test_the_builds_own_error_is_not_masked_by_a_failed_unclaim(master, botmaster):
    brids = await claimed_requests(master)
    build = ScriptedBuild(master, ValueError("the build broke"))

    with pytest.raises(ValueError, match="the build broke"):
        await botmaster._run_build(build)

    # RETRY: back to the queue, but for the one whose write failed
    assert await states(master, brids) == [(False, None, False), (False, None, True), (False, None, False)]
    assert botmaster.failures == [FAILING]
    assert botmaster.events == [("shutdown?", "bs1"), "assign"]


@pytest_twisted.ensureDeferred
async def test_the_schedulers_hear_of_each_completed_request(master):
    brid = await master.scheduler.force("linux", "because", {})
    assert await master.db.buildrequests.claim(brid, master.masterid, 0.0)
    bsid = (await master.db.buildrequests.get(brid))["buildsetid"]

    await master.botmaster._run_build(ScriptedBuild(master, SUCCESS, brids=(brid,)))

    async def completed():
        return (await master.db.buildsets.get(bsid))["complete"]
    await eventually(completed, "the schedulers to complete the buildset")
    assert (await master.db.buildsets.get(bsid))["results"] == SUCCESS
