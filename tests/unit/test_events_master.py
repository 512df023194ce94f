"""A real master in memory publishes its events on its bus (master/mq/): requests submitted,
slaves attached and detached, SlaveAPI actions finished, changes added, builds a restart cut
short; with c['mq'] amqp the same events wait in the outbox, those of a request written in the
transaction that adds it."""

import jsonschema
import pytest_twisted
from zope.interface.verify import verifyObject

from buildfarm.common.results import RETRY
from buildfarm.master.apicatalog import CATALOG
from buildfarm.master.mq.exchanges import (
    ACTION_FINISHED,
    BUILD_FINISHED,
    BUILDFARM_EXCHANGES,
    CHANGE_ADDED,
    REQUEST_SUBMITTED,
    SLAVE_ATTACHED,
    SLAVE_DETACHED,
)
from buildfarm.master.mq.interfaces import IEventBus, IMQMaster
from buildfarm.master.mq.publisher import OutboxPublisher
from buildfarm.master.slaveapi.actions.base import Action
from fixtures.memorymaster import (
    MASTER_CFG,
    attach_slave,
    eventually,
    memory_master_fixture,
    start_memory_master,
)

master = memory_master_fixture()
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:9/"  # the memory reactor never connects anyway
AMQP_CFG = MASTER_CFG + f"c['mq'] = {{'type': 'amqp', 'url': {UNREACHABLE_BROKER!r}}}\n"


def heard(master, exchange, pattern="#") -> list:
    seen = []
    master.mq.subscribe(master.mq.exchange_name(BUILDFARM_EXCHANGES, exchange), pattern, seen.append)
    return seen


def valid(message) -> dict:
    name = message.exchange.rsplit("/", 1)[1] + "-message"
    jsonschema.Draft6Validator(CATALOG.schema_document("buildfarm", name)).validate(message.payload)
    return message.payload


@pytest_twisted.ensureDeferred
async def test_the_master_has_one_in_process_bus_by_default(master):
    assert verifyObject(IEventBus, master.mq) and verifyObject(IMQMaster, master)
    assert not master.mq.outboxed and master.mq_publisher is None


@pytest_twisted.ensureDeferred
async def test_a_forced_build_request_is_published_as_submitted(master):
    seen = heard(master, REQUEST_SUBMITTED, "primary.linux.#")
    brid = await master.scheduler.force("linux", "because", {})
    (message,) = seen
    payload = valid(message)
    assert message.routing_key == f"primary.linux.{brid}.{payload['buildsetId']}.force._"
    assert (payload["buildRequestId"], payload["reason"], payload["scheduler"]) == (brid, "because", "force")
    assert await master.db.outbox.count() == 0  # in-process only


@pytest_twisted.ensureDeferred
async def test_slaves_attaching_and_detaching_are_published(master):
    attached, detached = heard(master, SLAVE_ATTACHED), heard(master, SLAVE_DETACHED)
    connection = await attach_slave(master, "bs1")
    connection.drop()
    assert [m.routing_key for m in attached] == [f"primary.bs1.{master.masterid}._"]
    assert [valid(m)["slaveName"] for m in detached] == ["bs1"]


@pytest_twisted.ensureDeferred
async def test_a_change_is_published_once_stored(master):
    seen = heard(master, CHANGE_ADDED, "primary.*._._.main.#")
    changeid = await master.scheduler.add_change(author="me", branch="main", revision="abc",
                                                 repository="https://git.example/r.git")
    assert [valid(m)["changeId"] for m in seen] == [changeid]


class Quick(Action):
    """A SlaveAPI action that succeeds at once."""

    name = "quick"

    async def run(self, ctx):
        ctx.say("done quickly")


@pytest_twisted.ensureDeferred
async def test_a_finished_slaveapi_action_is_published(master):
    seen = heard(master, ACTION_FINISHED, "primary.quick.bs1.#")
    master.slaveapi.actions["quick"] = Quick()
    result = await master.slaveapi.submit("bs1", master.slaveapi.actions["quick"], {}, "oncall", "127.0.0.1")

    async def published():
        return bool(seen)

    await eventually(published, "action-finished")
    payload = valid(seen[0])
    assert (payload["actionId"], payload["state"]) == (result.requestid, "success")
    assert "done quickly" in payload["text"]


@pytest_twisted.ensureDeferred
async def test_an_amqp_master_writes_a_request_and_its_message_in_one_transaction(tmp_path):
    master = await start_memory_master(tmp_path, AMQP_CFG)
    try:
        assert master.mq.outboxed and isinstance(master.mq_publisher, OutboxPublisher)
        assert list(master).index(master.mq_publisher) == list(master).index(master.db) + 1
        seen = heard(master, REQUEST_SUBMITTED)
        brid = await master.scheduler.force("linux", "because", {})
        rows = await master.db.outbox.pending(10)
        assert [r["payload"]["buildRequestId"] for r in rows] == [brid]
        assert rows[0]["payload"] == seen[0].payload  # the local subscribers got the same message
        assert rows[0]["exchange"] == "exchange/buildfarm/v1/request-submitted"
    finally:
        await master.stopService()


@pytest_twisted.ensureDeferred
async def test_builds_a_restart_cut_short_are_published_finished_retry(tmp_path):
    first = await start_memory_master(tmp_path, AMQP_CFG)
    db = first.db
    builderid = first.botmaster.builders["linux"].builderid
    slaveid = await db.slaves.find_or_create("bs1")
    brid = await db.buildrequests.add(builderid, "test", {}, 1.0)
    await db.buildrequests.claim(brid, first.masterid, 1.0)
    buildid, _ = await db.builds.add(builderid, brid, slaveid, first.masterid, 1.0)
    await first.stopService()
    second = await start_memory_master(tmp_path, AMQP_CFG)
    try:
        rows = [r for r in await second.db.outbox.pending(100)
                if r["exchange"].endswith("/" + BUILD_FINISHED.name)]
        assert [(r["payload"]["buildId"], r["payload"]["results"]) for r in rows] == [(buildid, RETRY)]
        assert rows[0]["routing_key"] == f"primary.linux.{buildid}.{brid}.bs1.retry.{second.masterid}._"
    finally:
        await second.stopService()
