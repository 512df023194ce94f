"""``master/fleet.py``: the SlaveAPI's states, scopes and argument error, shared below it."""

import json

import pytest_twisted

from buildfarm.common import results as build_results
from buildfarm.master.db.testing import open_test_db
from buildfarm.master.fleet import STATE_NAMES, UNFINISHED, ActionState, BadArgument, action_scope
from buildfarm.master.slaveapi.actions.base import BadArgument as ActionsBadArgument
from buildfarm.master.slaveapi.results import ActionResult


def test_action_states_keep_the_original_slaveapis_numbers():
    assert [(s.name, int(s)) for s in ActionState] == [
        ("PENDING", 0), ("RUNNING", 1), ("SUCCESS", 2), ("FAILURE", 3)]
    assert UNFINISHED == (ActionState.PENDING, ActionState.RUNNING)


def test_an_action_state_is_not_the_build_result_of_the_same_name():
    assert ActionState.SUCCESS != build_results.SUCCESS
    assert ActionState.FAILURE != build_results.FAILURE


def test_an_action_state_goes_on_the_wire_as_its_number_and_is_shown_by_its_label():
    result = ActionResult(7, "bs1", "reboot", ActionState.FAILURE)
    assert json.loads(json.dumps(result.to_dict()))["state"] == 3
    assert ActionState.FAILURE.label == "failure"
    assert STATE_NAMES[3] == "failure"  # rows read back from the database hold plain ints


def test_the_actions_and_the_pages_catch_one_bad_argument_error():
    assert ActionsBadArgument is BadArgument
    error = BadArgument("waittime", "must be a number")
    assert (str(error), error.field) == ("waittime: must be a number", "waittime")


def test_an_action_on_a_slave_needs_the_scope_naming_both():
    assert action_scope("reboot", "bs1") == "slaveapi:reboot:bs1"


@pytest_twisted.ensureDeferred
async def test_the_database_stores_and_finds_action_states_as_numbers(tmp_path):
    db = await open_test_db(str(tmp_path))
    try:
        requestid = await db.slaveapi.add_result("bs1", "reboot", {}, "oncall", "10.0.0.5", None, 100)
        await db.slaveapi.start_result(requestid, 101)
        assert [r["state"] for r in await db.slaveapi.get_unfinished(None)] == [1]
        await db.slaveapi.finish_result(requestid, ActionState.SUCCESS, "done", 102)
        row = await db.slaveapi.get_result(requestid)
        assert row["state"] == ActionState.SUCCESS and type(row["state"]) is int
        assert await db.slaveapi.get_unfinished(None) == []
    finally:
        await db.stopService()
