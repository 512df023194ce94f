"""Several publishers on one outbox (master/db/outbox.py ``claim``): a drain claims the oldest
rows, deletes those the broker confirmed and lets the others go; on PostgreSQL the claimed
rows are locked (``FOR UPDATE SKIP LOCKED``) until the claim ends, so two masters' publishers
draining one ``mq_outbox`` at the same time never send the same row (and a row let go, or
held by a master that died, is sent by the next drain: at least once)."""

import pytest_twisted
from twisted.internet import defer, reactor, task

from buildfarm.master.db.testing import open_test_db
from buildfarm.master.mq.exchanges import Message
from buildfarm.master.mq.publisher import BATCH_SIZE, OutboxPublisher

EXCHANGE = "exchange/buildfarm/v1/build-finished"
CONFIRM_DELAY_S = 0.005  # the broker's answer to each message, so that the drains overlap
DRAIN_DEADLINE_S = 60.0


def message(n: int) -> Message:
    return Message(EXCHANGE, f"primary.{n}._", {"eventId": f"e{n}", "n": n})


def numbers(rows) -> list[int]:
    return [row["payload"]["n"] for row in rows]


@pytest_twisted.ensureDeferred
async def test_a_claim_deletes_what_was_confirmed_and_lets_the_rest_go(db):
    await db.outbox.add_messages([message(n) for n in (1, 2, 3)])
    claim = await db.outbox.claim(10)
    assert numbers(claim.rows) == [1, 2, 3]
    assert await claim.finish([claim.rows[0]["id"], claim.rows[2]["id"]]) == 2
    await claim.release()  # after finish: nothing more to do
    again = await db.outbox.claim(10)
    assert numbers(again.rows) == [2]
    await again.release()
    assert numbers((await db.outbox.claim(10)).rows) == [2]  # released: claimed again


@pytest_twisted.ensureDeferred
async def test_an_empty_outbox_gives_an_empty_claim(db):
    claim = await db.outbox.claim(10)
    assert claim.rows == []
    await claim.release()
    assert await claim.finish([]) == 0


@pytest_twisted.ensureDeferred
async def test_on_postgresql_a_claimed_row_is_skipped_by_another_claim_until_let_go(
        db_url_postgresql, tmp_path):
    db = await open_test_db(str(tmp_path), db_url_postgresql)
    try:
        await db.outbox.add_messages([message(n) for n in (1, 2, 3)])
        first = await db.outbox.claim(2)
        second = await db.outbox.claim(10)
        assert (numbers(first.rows), numbers(second.rows)) == ([1, 2], [3])
        await second.finish([second.rows[0]["id"]])
        await first.release()  # as when its master died: PostgreSQL rolls the claim back
        third = await db.outbox.claim(10)
        assert numbers(third.rows) == [1, 2]
        await third.finish([row["id"] for row in third.rows])
        assert await db.outbox.count() == 0
    finally:
        await db.stopService()


class CountingBroker:
    """Channels that confirm each message after ``CONFIRM_DELAY_S`` of the real reactor and
    count what every publisher sent."""

    def __init__(self):
        self.sent: list[str] = []

    async def open(self):
        return self

    def declare(self, exchange):
        return defer.succeed(None)

    def publish(self, exchange, routing_key, body, message_id, headers=None):
        self.sent.append(message_id)
        return task.deferLater(reactor, CONFIRM_DELAY_S, lambda: None)

    def close(self):
        pass


@pytest_twisted.ensureDeferred
async def test_on_postgresql_two_publishers_draining_one_outbox_send_each_row_once(
        db_url_postgresql, tmp_path):
    rows = BATCH_SIZE * 4
    dbs = [await open_test_db(str(tmp_path / name), db_url_postgresql) for name in ("a", "b")]
    broker = CountingBroker()
    publishers = [OutboxPublisher(reactor, db.outbox, broker.open) for db in dbs]
    try:
        await dbs[0].outbox.add_messages([message(n) for n in range(rows)])
        for publisher in publishers:
            publisher.startService()
        deadline = reactor.seconds() + DRAIN_DEADLINE_S
        while await dbs[0].outbox.count():
            assert reactor.seconds() < deadline, f"the outbox was not drained: {len(broker.sent)} sent"
            await task.deferLater(reactor, 0.05, lambda: None)
        assert sorted(broker.sent) == sorted(f"e{n}" for n in range(rows))  # each once
        assert all(p.published > 0 for p in publishers)  # both drained, at the same time
        assert sum(p.published for p in publishers) == rows
    finally:
        for publisher in publishers:
            await defer.maybeDeferred(publisher.stopService)
        for db in dbs:
            await db.stopService()
