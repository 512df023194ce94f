"""``exchange/buildfarm/v1/buildset-completed``: the master that completes a buildset publishes
it once, written to the outbox in the transaction that completes the buildset (an outboxed bus),
and delivers it to its own subscribers after the commit."""

import pytest
import pytest_twisted

from buildfarm.common.results import FAILURE, SUCCESS, WARNINGS
from buildfarm.master.db import buildsets as buildsets_db
from buildfarm.master.mq import events
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.exchanges import BUILDFARM_EXCHANGES, BUILDSET_COMPLETED
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from buildfarm.master.schedulers.triggerable import Triggerable

BUILDSET_COMPLETED_NAME = "exchange/buildfarm/v1/buildset-completed"


def heard(bus: EventBus) -> list:
    received: list = []
    bus.subscribe(BUILDSET_COMPLETED_NAME, "#", received.append)
    return received


def finish(master, manager, brid, results):
    manager.buildrequest_finished(master.db.buildrequests.finish(brid, results))


def test_the_exchange_is_declared_with_its_routing_key():
    message = events.buildset_completed(EventBus(), 12, "tests", WARNINGS, 5.0, 3)
    assert BUILDSET_COMPLETED in BUILDFARM_EXCHANGES.exchanges
    assert message.exchange == BUILDSET_COMPLETED_NAME
    assert message.routing_key == "primary.12.tests.warnings.3._"
    assert {k: v for k, v in message.payload.items() if k != "eventId"} == {
        "version": 1, "buildsetId": 12, "scheduler": "tests", "results": WARNINGS,
        "result": "warnings", "completeAt": 5.0, "masterId": 3}


def test_completing_a_buildset_publishes_buildset_completed_once():
    master = FakeMaster()
    received = heard(master.mq)
    manager = started_manager(master, Triggerable("tests", ["a", "b"]))
    bsid, brids, _ = result_of(manager.trigger("tests", {}, parent_buildid=7))
    finish(master, manager, brids[1], SUCCESS)
    assert received == []  # one request still runs
    finish(master, manager, brids[2], FAILURE)
    finish(master, manager, brids[2], FAILURE)  # a repeated finish completes nothing more
    assert [(m.payload["buildsetId"], m.payload["results"], m.payload["masterId"]) for m in received] == [
        (bsid, FAILURE, master.masterid)]
    assert not [m for m in master.db.buildsets.outbox if m.exchange == BUILDSET_COMPLETED_NAME]  # no broker


def test_on_an_outboxed_bus_the_message_goes_with_the_completing_transaction():
    master = FakeMaster()
    master.mq = EventBus(outbox=object(), origin=lambda: master.masterid)  # outboxed
    received = heard(master.mq)
    manager = started_manager(master, Triggerable("tests", ["a"]))
    bsid, brids, _ = result_of(manager.trigger("tests", {}, parent_buildid=7))
    finish(master, manager, brids[1], WARNINGS)
    written = [m for m in master.db.buildsets.outbox if m.exchange == BUILDSET_COMPLETED_NAME]
    assert written == received and len(written) == 1
    assert written[0].payload["buildsetId"] == bsid and written[0].origin == master.masterid


async def _one_request_buildset(db):
    builderid = await db.builders.find_or_create("linux")
    bsid, brids = await db.buildsets.add("force", "r", {}, [builderid], 1.0)
    await db.buildrequests.complete(brids[builderid], SUCCESS, 2.0)
    return bsid


def _messages(bsid, made):
    def messages(results):
        message = events.buildset_completed(EventBus(), bsid, "force", results, 3.0, 1)
        made.append(message)
        return [message]
    return messages


@pytest_twisted.ensureDeferred
async def test_the_database_writes_the_message_only_for_the_caller_that_completes(db):
    bsid = await _one_request_buildset(db)
    first, second = [], []
    assert await db.buildsets.complete_if_done(bsid, 3.0, messages=_messages(bsid, first)) == SUCCESS
    assert await db.buildsets.complete_if_done(bsid, 4.0, messages=_messages(bsid, second)) is None
    assert second == []
    rows = await db.outbox.pending(10)
    assert [(r["exchange"], r["routing_key"]) for r in rows] == [
        (BUILDSET_COMPLETED_NAME, first[0].routing_key)]


@pytest_twisted.ensureDeferred
async def test_a_failed_outbox_write_leaves_the_buildset_incomplete(db, monkeypatch):
    bsid = await _one_request_buildset(db)

    def broken(conn, messages):
        raise RuntimeError("outbox write failed")

    monkeypatch.setattr(buildsets_db.outbox, "add_all", broken)
    with pytest.raises(RuntimeError):
        await db.buildsets.complete_if_done(bsid, 3.0, messages=_messages(bsid, []))
    assert (await db.buildsets.get(bsid))["complete"] is False
