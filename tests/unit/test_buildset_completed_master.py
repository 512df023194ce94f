"""A real master in memory (its SQLite database, its outboxed bus with c['mq'] amqp, its
SchedulerManager): the buildset a Trigger step waits for completes, ``buildset-completed`` is in
the outbox with the completion and the wait ends; another master's ``buildset-completed``, as
the consumer hands it to the bus, ends a wait here without the poll."""

import pytest_twisted

from buildfarm.common.results import FAILURE, WARNINGS
from buildfarm.master.mq import events
from buildfarm.master.mq.bus import EventBus
from buildfarm.master.mq.exchanges import BUILDSET_COMPLETED
from fixtures.memorymaster import eventually, start_memory_master
from tests.unit.test_events_master import AMQP_CFG, heard, valid

TRIGGER_CFG = AMQP_CFG + (
    "c['schedulers'].append(schedulers.Triggerable(name='tests', builderNames=['linux']))\n")


async def _completed_rows(master) -> list:
    return [r for r in await master.db.outbox.pending(100) if r["exchange"].endswith("/buildset-completed")]


@pytest_twisted.ensureDeferred
async def test_completing_a_triggered_buildset_writes_its_event_and_ends_the_wait(tmp_path):
    master = await start_memory_master(tmp_path, TRIGGER_CFG)
    try:
        seen = heard(master, BUILDSET_COMPLETED)
        bsid, brids, finished = await master.scheduler.trigger("tests", {}, None)
        (brid,) = brids.values()
        await master.db.buildrequests.complete(brid, WARNINGS, master.reactor.seconds())
        master.scheduler.buildrequest_finished(await master.db.buildrequests.get(brid))  # as the BotMaster
        await eventually(lambda: _called(finished), "the trigger's wait to end")
        assert await finished == WARNINGS
        (row,) = await _completed_rows(master)
        assert row["payload"] == valid(seen[0])  # the local subscribers got the outbox's message
        assert row["routing_key"] == f"primary.{bsid}.tests.warnings.{master.masterid}._"
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_another_masters_event_ends_a_wait_here_without_the_poll(tmp_path):
    master = await start_memory_master(tmp_path, TRIGGER_CFG)
    try:
        bsid, _, finished = await master.scheduler.trigger("tests", {}, None)
        at = master.reactor.seconds()
        other_id = master.masterid + 1
        other = EventBus(origin=lambda: other_id)
        master.mq.deliver_remote(events.buildset_completed(other, bsid, "tests", FAILURE, at, other_id))
        assert finished.called and await finished == FAILURE
        assert master.reactor.seconds() == at  # no clock advanced: no poll could have run
        assert await _completed_rows(master) == []  # this master completed nothing
    finally:
        await master.stopService()


async def _called(d) -> bool:
    return d.called
