"""``change-added``, ``slave-attached`` and ``slave-detached`` are written to the outbox in
the transaction that records their state change (master/db/changes.py ``add``,
master/db/slaves.py ``attached``/``detached``, ``messages=``): the message is in the outbox
exactly when the state row committed, and a failure after the insert rolls back both.  The
database part on SQLite and PostgreSQL; then a master with c['mq'] amqp end to end in memory:
the rows in the outbox are the messages its own subscribers heard."""

from dataclasses import dataclass

import pytest
import pytest_twisted

from buildfarm.master.db import changes as changes_db
from buildfarm.master.db import slaves as slaves_db
from buildfarm.master.mq.exchanges import CHANGE_ADDED, SLAVE_ATTACHED, SLAVE_DETACHED
from fixtures.memorymaster import attach_slave, eventually, start_memory_master
from tests.unit.test_events_master import AMQP_CFG, heard


@dataclass
class Message:
    exchange: str
    routing_key: str
    payload: dict


def message(key: str) -> Message:
    return Message("exchange/buildfarm/v1/test", key, {"key": key})


def failing_outbox(monkeypatch, module) -> None:
    def broken(conn, messages):
        list(messages)
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(module.outbox, "add_all", broken)


async def outbox_keys(db) -> list[str]:
    return [row["routing_key"] for row in await db.outbox.pending(100)]


CHANGE = {"author": "me", "comments": "", "files": [], "when_timestamp": 1.0, "created_at": 1.0}


@pytest_twisted.ensureDeferred
async def test_a_change_and_its_message_are_written_together(db):
    asked = []

    def messages(changeid):
        asked.append(changeid)
        return [message(f"change.{changeid}")]

    changeid = await db.changes.add(**CHANGE, messages=messages)
    assert asked == [changeid] and (await db.changes.get(changeid))["author"] == "me"
    assert await outbox_keys(db) == [f"change.{changeid}"]


@pytest_twisted.ensureDeferred
async def test_a_failed_message_write_records_no_change(db, monkeypatch):
    failing_outbox(monkeypatch, changes_db)
    with pytest.raises(RuntimeError):
        await db.changes.add(**CHANGE, messages=lambda changeid: [message("change")])
    assert await db.changes.count() == 0 and await outbox_keys(db) == []


@pytest_twisted.ensureDeferred
async def test_an_attach_and_a_detach_are_written_with_their_messages(db):
    masterid = await db.masters.find_or_create("m1")
    await db.slaves.attached("bs1", masterid, {}, "1.0", 10.0, messages=[message("attached")])
    assert (await db.slaves.get("bs1"))["connected_masterid"] == masterid
    await db.slaves.detached("bs1", masterid, 11.0, messages=[message("detached")])
    assert (await db.slaves.get("bs1"))["connected_masterid"] is None
    assert await outbox_keys(db) == ["attached", "detached"]


@pytest_twisted.ensureDeferred
async def test_a_failed_message_write_records_neither_attach_nor_detach(db, monkeypatch):
    masterid = await db.masters.find_or_create("m1")
    await db.slaves.attached("bs1", masterid, {}, "1.0", 10.0)
    failing_outbox(monkeypatch, slaves_db)
    with pytest.raises(RuntimeError):
        await db.slaves.detached("bs1", masterid, 11.0, messages=[message("detached")])
    assert (await db.slaves.get("bs1"))["connected_masterid"] == masterid  # still attached
    assert [c["disconnected_at"] for c in await db.slaves.get_connections("bs1")] == [None]
    with pytest.raises(RuntimeError):
        await db.slaves.attached("bs2", masterid, {}, "1.0", 12.0, messages=[message("attached")])
    assert await db.slaves.get("bs2") is None and await outbox_keys(db) == []


@pytest_twisted.ensureDeferred
async def test_an_amqp_master_writes_changes_and_slaves_with_their_messages(tmp_path):
    master = await start_memory_master(tmp_path, AMQP_CFG)
    try:
        seen = {exchange.name: heard(master, exchange)
                for exchange in (CHANGE_ADDED, SLAVE_ATTACHED, SLAVE_DETACHED)}
        before = len(await master.db.outbox.pending(1000))
        changeid = await master.scheduler.add_change(author="me", branch="main", revision="abc")
        connection = await attach_slave(master, "bs1")
        connection.drop()

        async def detach_recorded():
            rows = await master.db.outbox.pending(1000)
            return any(r["exchange"].endswith("/slave-detached") for r in rows)

        await eventually(detach_recorded, "the detach and its message")
        rows = (await master.db.outbox.pending(1000))[before:]
        by_exchange = {name: [r["payload"] for r in rows if r["exchange"].endswith("/" + name)]
                       for name in seen}
        assert [p["changeId"] for p in by_exchange["change-added"]] == [changeid]
        assert by_exchange["change-added"][0]["repository"] == ""  # as the row reads
        assert [p["slaveName"] for p in by_exchange["slave-attached"]] == ["bs1"]
        for name, heard_here in seen.items():  # this master's subscribers: the same messages, once
            assert [m.payload for m in heard_here] == by_exchange[name], name
    finally:
        await master.stopService()
