"""Steps of a build: numbered from 0, finished with results."""

import pytest_twisted

from buildfarm.master.db.testing import add_running_build

SUCCESS = 0


@pytest_twisted.ensureDeferred
async def test_steps_are_listed_in_number_order(db):
    build = await add_running_build(db)
    await db.steps.add(build.buildid, 1, "compile", 20.0)
    await db.steps.add(build.buildid, 0, "checkout", 10.0)
    steps = await db.steps.get_all(build.buildid)
    assert [(s["number"], s["name"]) for s in steps] == [(0, "checkout"), (1, "compile")]


@pytest_twisted.ensureDeferred
async def test_a_finished_step_reads_back_complete(db):
    build = await add_running_build(db)
    stepid = await db.steps.add(build.buildid, 0, "compile", 10.0)
    await db.steps.finish(stepid, SUCCESS, 12.5, "compiled")
    assert await db.steps.get(build.buildid, 0) == {
        "stepid": stepid, "buildid": build.buildid, "number": 0, "name": "compile",
        "started_at": 10.0, "complete": True, "complete_at": 12.5,
        "state_string": "compiled", "results": SUCCESS,
    }


@pytest_twisted.ensureDeferred
async def test_get_of_a_missing_step_is_none(db):
    build = await add_running_build(db)
    assert await db.steps.get(build.buildid, 7) is None
