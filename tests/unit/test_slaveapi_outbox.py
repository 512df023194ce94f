"""A SlaveAPI action's end and its ``action-finished`` message are written in one transaction
(master/db/slaveapi.py ``finish_result``, master/slaveapi/runner.py): with c['mq'] amqp the
message is in the outbox exactly when the end is, so a crash after the commit loses no event
and a failed write records neither.  The database part on SQLite and PostgreSQL."""

from dataclasses import dataclass

import pytest
import pytest_twisted

from buildfarm.master.db import slaveapi as slaveapi_db
from buildfarm.master.fleet import ActionState
from buildfarm.master.mq.exchanges import ACTION_FINISHED
from tests.fixtures.memorymaster import eventually, start_memory_master
from tests.unit.test_events_master import AMQP_CFG, Quick, heard


@dataclass
class Message:
    exchange: str
    routing_key: str
    payload: dict


MESSAGE = Message("exchange/buildfarm/v1/action-finished", "primary.enable.bs1._", {"actionId": 1})


@pytest_twisted.ensureDeferred
async def test_an_actions_end_writes_its_message_in_the_same_transaction(db):
    requestid = await db.slaveapi.add_result("bs1", "enable", {}, "admin", "127.0.0.1", None, 100)
    await db.slaveapi.finish_result(requestid, ActionState.SUCCESS, "enabled", 101, messages=[MESSAGE])
    assert (await db.slaveapi.get_result(requestid))["state"] == ActionState.SUCCESS
    assert [r["routing_key"] for r in await db.outbox.pending(10)] == [MESSAGE.routing_key]


@pytest_twisted.ensureDeferred
async def test_a_failed_message_write_leaves_the_action_unfinished(db, monkeypatch):
    requestid = await db.slaveapi.add_result("bs1", "enable", {}, "admin", "127.0.0.1", None, 100)

    def broken(conn, messages):
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(slaveapi_db.outbox, "add_all", broken)
    with pytest.raises(RuntimeError):
        await db.slaveapi.finish_result(requestid, ActionState.SUCCESS, "enabled", 101, messages=[MESSAGE])
    assert (await db.slaveapi.get_result(requestid))["state"] == ActionState.PENDING


@pytest_twisted.ensureDeferred
async def test_an_amqp_master_writes_an_actions_end_and_its_message_together(tmp_path):
    master = await start_memory_master(tmp_path, AMQP_CFG)
    try:
        seen = heard(master, ACTION_FINISHED)
        quick = master.slaveapi.actions["quick"] = Quick()
        result = await master.slaveapi.submit("bs1", quick, {}, "oncall", "127.0.0.1")

        async def finished():
            return (await master.slaveapi.get(result.requestid)).finished

        await eventually(finished, "the action to finish")
        rows = [r for r in await master.db.outbox.pending(100) if r["exchange"].endswith("/action-finished")]
        assert [r["payload"]["actionId"] for r in rows] == [result.requestid]
        assert [m.payload for m in seen] == [rows[0]["payload"]]  # this master's subscribers: the same
    finally:
        await master.stopService()
