"""How the BotMaster takes requests from the queue it shares with other masters: for a builder
whose requests suit any free slave, it claims the queue's head in the database for each free
slave (``claim_next``) instead of reading the queue and claiming from its copy, so a request
another master took meanwhile costs it nothing (W8, docs/benchmarks.md).

On a real master in memory (SQLite, BotMaster); two slaves marked attached; builds are
recorded, not run; "another master" is a second master row claiming through the database."""

import pytest
import pytest_twisted

from buildfarm.master.pb.buildslave import BuildSlave
from buildfarm.master.process.builder import SlaveBuilderState
from fixtures.memorymaster import memory_master_fixture

master = memory_master_fixture()


@pytest.fixture
def linux(master, monkeypatch):
    """Builder linux with bs1 and bs2 attached and idle; ``started`` records its builds'
    requests and collapsed requests; ``lost`` counts claims that found a request taken."""
    bm = master.botmaster
    builder = bm.builders["linux"]
    for name in ("bs1", "bs2"):
        slave = BuildSlave(name, bm, master.reactor, 60.0, 30.0)
        slave.attached = True
        builder.add_slave(slave, remote=None)
    builder.started, builder.lost = [], 0

    def start_build(builder_, slavebuilder, request, collapsed):
        slavebuilder.state = SlaveBuilderState.BUILDING
        builder.started.append((request["buildrequestid"], collapsed))
    monkeypatch.setattr(bm, "_start_build", start_build)
    claim = master.db.buildrequests.claim

    async def counting_claim(*args):
        won = await claim(*args)
        builder.lost += not won
        return won
    monkeypatch.setattr(master.db.buildrequests, "claim", counting_claim)
    return builder


async def queue(master, builder, count: int, **properties) -> list[int]:
    return [await master.db.buildrequests.add(builder.builderid, "r", dict(properties), float(t))
            for t in range(count)]


@pytest_twisted.ensureDeferred
async def test_each_free_slave_takes_the_queue_head_without_reading_the_queue(master, linux, monkeypatch):
    master.config.collapse_requests = False
    brids = await queue(master, linux, 3)
    reads = []
    get_unclaimed = master.db.buildrequests.get_unclaimed
    monkeypatch.setattr(master.db.buildrequests, "get_unclaimed",
                        lambda builderid: reads.append(builderid) or get_unclaimed(builderid))

    await master.botmaster._assign_builder(linux)

    assert linux.started == [(brids[0], []), (brids[1], [])]  # two slaves: the two oldest
    assert reads == []
    assert [(await master.db.buildrequests.get(b))["claimed_by_masterid"] for b in brids] == [
        master.masterid, master.masterid, None]


@pytest_twisted.ensureDeferred
async def test_requests_another_master_claimed_meanwhile_cost_no_lost_claim(master, linux, monkeypatch):
    """The race of W8: another master claims the queue's head between this master's look at
    the queue and its claim.  Claiming the head in the database skips it at no cost."""
    master.config.collapse_requests = False
    brids = await queue(master, linux, 4)
    other = await master.db.masters.find_or_create("other")
    get_unclaimed, claim_next = master.db.buildrequests.get_unclaimed, master.db.buildrequests.claim_next

    async def other_master_first(taken_by_other):
        for brid in taken_by_other:
            await master.db.buildrequests.claim(brid, other, 1.0)
        linux.lost = 0  # the other master's claims are not this one's

    async def read_then_raced(builderid):  # the old way: read the queue, then lose the race
        pending = await get_unclaimed(builderid)
        await other_master_first(brids[:2])
        return pending

    async def raced_then_claim(builderid, masterid, now):
        if not linux.started and (await master.db.buildrequests.get(brids[0]))["claimed"] is False:
            await other_master_first(brids[:2])
        return await claim_next(builderid, masterid, now)
    monkeypatch.setattr(master.db.buildrequests, "get_unclaimed", read_then_raced)
    monkeypatch.setattr(master.db.buildrequests, "claim_next", raced_then_claim)

    await master.botmaster._assign_builder(linux)

    assert linux.started == [(brids[2], []), (brids[3], [])]
    assert linux.lost == 0


@pytest_twisted.ensureDeferred
async def test_collapsing_still_claims_the_compatible_requests_with_the_head(master, linux):
    master.config.collapse_requests = True
    same = await queue(master, linux, 3, branch="main")
    other = await queue(master, linux, 1, branch="dev")

    await master.botmaster._assign_builder(linux)

    assert linux.started == [(same[0], same[1:]), (other[0], [])]
    assert [(await master.db.buildrequests.get(b))["claimed"] for b in same + other] == [True] * 4


@pytest_twisted.ensureDeferred
async def test_a_builder_that_chooses_slaves_per_request_still_reads_the_queue(master, linux):
    master.config.collapse_requests = False
    linux.config.nextSlave = lambda builder, free, request: free[-1]
    brids = await queue(master, linux, 1)

    await master.botmaster._assign_builder(linux)

    assert linux.started == [(brids[0], [])]
    assert [sb.slave.name for sb in linux.slavebuilders.values()
            if sb.state is SlaveBuilderState.BUILDING] == ["bs2"]
