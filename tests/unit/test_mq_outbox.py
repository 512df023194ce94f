"""The outbox (master/db/outbox.py), on SQLite and PostgreSQL: ``outbox.add`` writes in the
caller's transaction (committed with its state change, or rolled back with it), the publisher
reads the rows oldest first and deletes the confirmed ones; a build's result and a buildset's
requests are recorded in the same transaction as their messages."""

import pytest
import pytest_twisted
import sqlalchemy as sa

from buildfarm.common.results import SUCCESS
from buildfarm.master.db import outbox
from buildfarm.master.db.model import builds
from buildfarm.master.db.testing import add_running_build
from buildfarm.master.mq.exchanges import Message

EXCHANGE = "exchange/buildfarm/v1/build-finished"


def message(n: int) -> Message:
    return Message(EXCHANGE, f"primary.linux.{n}._", {"eventId": f"e{n}", "n": n})


@pytest_twisted.ensureDeferred
async def test_messages_come_back_oldest_first_with_their_payload_and_go_once_deleted(db):
    await db.outbox.add_messages([message(1), message(2)])
    await db.outbox.add_messages([message(3)])
    pending = await db.outbox.pending(2)
    assert [(r["exchange"], r["routing_key"], r["payload"]) for r in pending] == [
        (EXCHANGE, "primary.linux.1._", {"eventId": "e1", "n": 1}),
        (EXCHANGE, "primary.linux.2._", {"eventId": "e2", "n": 2}),
    ]
    assert await db.outbox.delete([pending[0]["id"]]) == 1
    assert await db.outbox.delete([]) == 0
    assert [r["payload"]["n"] for r in await db.outbox.pending(10)] == [2, 3]
    assert await db.outbox.count() == 2


@pytest_twisted.ensureDeferred
async def test_add_commits_with_the_callers_state_change(db):
    build = await add_running_build(db)

    def finish(conn):
        conn.execute(sa.update(builds).where(builds.c.id == build.buildid).values(results=SUCCESS))
        return outbox.add(conn, EXCHANGE, "primary._", {"eventId": "e1"})

    rowid = await db.run(finish)
    assert [r["id"] for r in await db.outbox.pending(10)] == [rowid]


@pytest_twisted.ensureDeferred
async def test_add_rolls_back_with_the_callers_failed_transaction(db):
    build = await add_running_build(db)

    def fail_after_writing(conn):
        conn.execute(sa.update(builds).where(builds.c.id == build.buildid).values(results=SUCCESS))
        outbox.add(conn, EXCHANGE, "primary._", {"eventId": "e1"})
        raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await db.run(fail_after_writing)
    assert await db.outbox.pending(10) == []
    assert (await db.builds.get(build.buildid))["results"] is None


@pytest_twisted.ensureDeferred
async def test_a_builds_result_and_its_message_are_written_together(db):
    build = await add_running_build(db)
    await db.builds.finish(build.buildid, SUCCESS, 20.0, "done", messages=[message(1)])
    assert (await db.builds.get(build.buildid))["results"] == SUCCESS
    assert [r["payload"] for r in await db.outbox.pending(10)] == [{"eventId": "e1", "n": 1}]


@pytest_twisted.ensureDeferred
async def test_a_message_that_cannot_be_written_rolls_the_builds_result_back(db):
    build = await add_running_build(db)
    unwritable = Message(EXCHANGE, "primary._", {"not json": object()})
    with pytest.raises(TypeError):
        await db.builds.finish(build.buildid, SUCCESS, 20.0, "done", messages=[message(1), unwritable])
    assert (await db.builds.get(build.buildid))["results"] is None
    assert await db.outbox.pending(10) == []


@pytest_twisted.ensureDeferred
async def test_a_buildsets_requests_and_their_messages_are_written_together(db):
    linux = await db.builders.find_or_create("linux")
    windows = await db.builders.find_or_create("windows")
    seen = []

    def messages(bsid, brids):
        seen.append((bsid, dict(brids)))
        return [Message(EXCHANGE, f"primary.{brid}._", {"bsid": bsid, "brid": brid})
                for brid in brids.values()]

    bsid, brids = await db.buildsets.add("force", "r", {}, [linux, windows], 1.0, messages=messages)
    assert seen == [(bsid, brids)]
    payloads = [r["payload"] for r in await db.outbox.pending(10)]
    assert payloads == [{"bsid": bsid, "brid": brids[linux]}, {"bsid": bsid, "brid": brids[windows]}]


@pytest_twisted.ensureDeferred
async def test_a_buildset_that_fails_leaves_no_message(db):
    linux = await db.builders.find_or_create("linux")
    with pytest.raises(Exception, match="(?i)foreign key"):
        await db.buildsets.add("force", "r", {}, [linux, 404], 1.0,
                               messages=lambda bsid, brids: [message(1)])
    assert await db.outbox.pending(10) == []
