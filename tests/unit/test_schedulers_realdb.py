"""Schedulers against the real database components (a migrated SQLite file): the calls the
in-memory double stands for in the other scheduler tests work the same way here."""

import pytest_twisted

from buildfarm.common.results import SUCCESS
from buildfarm.master.schedulers.basic import SingleBranchScheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.forcesched import ForceScheduler
from buildfarm.master.schedulers.manager import SchedulerManager
from buildfarm.master.schedulers.testing import FakeBuilder, FakeMaster
from buildfarm.master.schedulers.timed import Periodic
from buildfarm.master.schedulers.triggerable import Triggerable


async def manager_on(db, *schedulers) -> tuple[FakeMaster, SchedulerManager]:
    """A SchedulerManager on the real database ``db`` (the rest of its master in memory)."""
    master = FakeMaster(builder_names=())
    master.db = db
    for name in ("a", "b"):
        builder = FakeBuilder(name, await db.builders.find_or_create(name))
        master.botmaster.builders[name] = builder
        master.config.builders.append(builder)
    manager = SchedulerManager(master)
    master.scheduler = manager
    master.config.schedulers = list(schedulers)
    await manager.reconfigService(master.config)
    return master, manager


async def complete(db, manager, brid, results=SUCCESS):
    await db.buildrequests.complete(brid, results, 10.0)
    await manager._buildrequest_finished(await db.buildrequests.get(brid))


@pytest_twisted.ensureDeferred
async def test_change_to_buildset_with_the_change_source(db):
    master, manager = await manager_on(db, SingleBranchScheduler("sbs", ["a"], branch="main"))
    changeid = await manager.add_change(author="ann", files=["x.c"], branch="main", revision="r1",
                                        repository="git://r", project="p", properties={"k": "v"})
    [buildset] = await db.buildsets.get_all()
    assert buildset["scheduler"] == "sbs"
    assert buildset["properties"] == {"k": "v", "branch": "main", "revision": "r1",
                                      "repository": "git://r", "project": "p", "codebase": "",
                                      "changeids": [changeid], "scheduler": "sbs"}
    assert await db.state.get("sbs", "last_changeid") == changeid


@pytest_twisted.ensureDeferred
async def test_force_trigger_and_dependent_through_real_buildsets(db):
    upstream = Triggerable("trig", ["a", "b"])
    master, manager = await manager_on(db, ForceScheduler("force", ["a"]), upstream,
                                       Dependent("dep", upstream, ["b"]))
    brid = await manager.force("a", "why", {"colour": "red"}, owner="ann")
    request = await db.buildrequests.get(brid)
    assert request["properties"] == {"colour": "red", "owner": "ann", "scheduler": "force"}
    bsid, brids, finished = await manager.trigger("trig", {"x": "1"}, None)
    for each in brids.values():
        await complete(db, manager, each)
    assert await finished == SUCCESS
    assert (await db.buildsets.get(bsid))["complete"]
    dependent = [b for b in await db.buildsets.get_all() if b["scheduler"] == "dep"]
    assert len(dependent) == 1 and dependent[0]["reason"] == "downstream"


@pytest_twisted.ensureDeferred
async def test_periodic_keeps_its_last_build_in_the_state_table(db):
    master, manager = await manager_on(db, Periodic("p", ["a"], periodicBuildTimer=60))
    master.reactor.advance(0)
    await manager.stop()  # waits for the build the timer started
    assert await db.state.get("p", "last_build") == master.reactor.seconds()
    assert len(await db.buildsets.get_all()) == 1
