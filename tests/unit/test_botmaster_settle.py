"""The end of a build settles each of its requests on its own: a database write that fails
for one request skips neither the others, nor the slave's shutdown, nor the next assignment
pass, and it does not hide the build's own error."""

from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet import task

from buildfarm.common.results import SUCCESS
from buildfarm.master.process import botmaster as botmaster_module
from buildfarm.master.process.botmaster import BotMaster
from buildfarm.master.process.builder import SlaveBuilderState


class BuildRequests:
    """db.buildrequests whose write for one request id fails."""

    def __init__(self, failing: int):
        self.failing = failing
        self.completed, self.unclaimed = [], []

    async def complete(self, brid, results, now):
        if brid == self.failing:
            raise RuntimeError("disk I/O error")
        self.completed.append((brid, results))

    async def unclaim(self, brid):
        if brid == self.failing:
            raise RuntimeError("disk I/O error")
        self.unclaimed.append(brid)

    async def get(self, brid):
        return {"buildrequestid": brid}


class Build:
    """A build of request 1 collapsed with 2 and 3, ending with ``outcome``."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.request = {"buildrequestid": 1}
        self.collapsed_requests = [2, 3]
        self.lock_accesses = []
        self.slavebuilder = SimpleNamespace(state=SlaveBuilderState.BUILDING,
                                            slave=SimpleNamespace(name="bs1"))

    async def run(self):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


@pytest.fixture
def botmaster(monkeypatch):
    failures = []
    monkeypatch.setattr(botmaster_module.log, "failure",
                        lambda fmt, failure=None, **kw: failures.append(kw["id"]))
    master = SimpleNamespace(reactor=task.Clock(), db=SimpleNamespace(buildrequests=BuildRequests(2)),
                             scheduler=SimpleNamespace())
    bm = BotMaster(master)
    bm.running = True
    bm.events = []
    bm.failures = failures
    bm.maybe_shut_down_slave = lambda slave: bm.events.append(("shutdown?", slave.name))
    bm.maybe_start_builds = lambda: bm.events.append("assign")
    return bm


@pytest_twisted.ensureDeferred
async def test_a_failed_completion_of_one_request_still_completes_the_others(botmaster):
    build = Build(SUCCESS)

    await botmaster._run_build(build)

    assert botmaster.master.db.buildrequests.completed == [(1, SUCCESS), (3, SUCCESS)]
    assert botmaster.failures == [2]
    assert botmaster.events == [("shutdown?", "bs1"), "assign"]
    assert build.slavebuilder.state == SlaveBuilderState.IDLE


@pytest_twisted.ensureDeferred
async def test_the_builds_own_error_is_not_masked_by_a_failed_unclaim(botmaster):
    build = Build(ValueError("the build broke"))

    with pytest.raises(ValueError, match="the build broke"):
        await botmaster._run_build(build)

    assert botmaster.master.db.buildrequests.unclaimed == [1, 3]  # RETRY: back to the queue
    assert botmaster.failures == [2]
    assert botmaster.events == [("shutdown?", "bs1"), "assign"]
