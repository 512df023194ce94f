"""Idempotent task dedup across masters (master/db/tasks.py ``attach_twin``, master/tasks/engine.py):
twins decided at the same time by two masters end with one run, the other attached to it.  The
decisions of one properties hash are serialized in the database (an advisory lock on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), and a task attached to a twin is never started,
advanced or expired by a master that decided it earlier.  On SQLite and PostgreSQL."""

import pytest
import pytest_twisted
from twisted.internet import defer

from buildfarm.master.tasks import ids
from tests.fixtures.memorymaster import eventually, start_memory_master
from tests.unit.test_db_tasks import _task
from tests.unit.test_task_engine import attach, finish, request

PAIRS = 20
NOW = 1_800_000_000.0


def _hash(n: int) -> str:
    return f"{n:064x}"


@pytest_twisted.ensureDeferred
async def test_twins_decided_at_the_same_time_attach_one_to_the_other_never_each_to_the_other(db):
    # Without a lock in the database, each decision read the other twin as free: on PostgreSQL
    # both locked the other's row and deadlocked (or, unlucky, each attached to the other)
    for n in range(PAIRS):
        await db.tasks.create(_task(0x1000 + 2 * n, created_at=100.0, properties_hash=_hash(n)))
        await db.tasks.create(_task(0x1001 + 2 * n, created_at=100.0, properties_hash=_hash(n)))
    decisions = [defer.ensureDeferred(db.tasks.attach_twin(0x1000 + 2 * n + k, _hash(n), 101.0))
                 for n in range(PAIRS) for k in (0, 1)]
    answers = await defer.gatherResults(decisions, consumeErrors=True)
    for n in range(PAIRS):
        first, second = 0x1000 + 2 * n, 0x1001 + 2 * n
        twin_of = {t: (await db.tasks.get_result(t))["twin_of"] for t in (first, second)}
        assert sorted(answers[2 * n:2 * n + 2], key=str) in ([first, None], [second, None]), n
        free = [t for t, of in twin_of.items() if of is None]
        assert len(free) == 1, (n, twin_of)
        other = second if free == [first] else first
        assert twin_of[other] == free[0]


@pytest_twisted.ensureDeferred
async def test_deciding_an_attached_task_again_answers_its_twin(db):
    # another master's poll decides the task again: it stays with its twin
    await db.tasks.create(_task(0x1001, created_at=100.0))
    await db.tasks.create(_task(0x2001, created_at=101.0))
    await db.tasks.create(_task(0x3001, created_at=102.0))
    assert await db.tasks.attach_twin(0x2001, "a" * 64, 103.0) == 0x1001
    assert await db.tasks.attach_twin(0x2001, "a" * 64, 104.0) == 0x1001
    assert await db.tasks.attach_twin(0x3001, "a" * 64, 104.0) == 0x1001


@pytest_twisted.ensureDeferred
async def test_a_task_attached_to_a_twin_is_never_started_advanced_or_expired(db):
    # a master that decided the task free before another attached it still holds it in memory
    await db.tasks.create(_task(0x1001, created_at=100.0))
    await db.tasks.create(_task(0x2001, created_at=101.0))
    assert await db.tasks.attach_twin(0x2001, "a" * 64, 102.0) == 0x1001
    assert await db.tasks.start_run(0x2001, "bs1", 103.0) is None
    assert await db.tasks.advance_slice(0x2001, 0, "q2", 103.0) is False
    assert await db.tasks.end_pending(0x2001, "EXPIRED", 103.0, unattached=True) is False
    assert (await db.tasks.get_result(0x2001))["state"] == "PENDING"
    assert await db.tasks.end_pending(0x2001, "CANCELED", 103.0) is True  # its owner may cancel it


# two masters with a slave of pool ci each, on one database
TASKS_CFG = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', dimensions={'pool': 'ci'}),
               slaves.BuildSlave('bs2', 'pass', dimensions={'pool': 'ci'})]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = []
c['schedulers'] = []
c['db'] = {'db_url': %r}
"""


@pytest.fixture
def shared_url(db_url, tmp_path):
    return f"sqlite:///{tmp_path}/shared.sqlite" if db_url.startswith("sqlite") else db_url


@pytest_twisted.async_yield_fixture
async def two_masters(shared_url, tmp_path):
    started = []
    for name in ("a", "b"):
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, TASKS_CFG % shared_url, now=NOW))
    yield started
    for master in started:
        if master.running:
            await master.stopService()


_ids = [0]


async def _create(master, req) -> int:
    _ids[0] += 1
    request_id = ids.new_request_id(master.reactor, lambda bits: _ids[0] % (1 << bits))
    from buildfarm.master.tasks.records import new_task

    request_id, _ = await master.db.tasks.create(new_task(req, request_id, master.reactor.seconds()))
    return request_id


@pytest_twisted.ensureDeferred
async def test_twin_pairs_submitted_to_two_masters_at_once_run_once_each(two_masters):
    a, b = two_masters
    pairs = []
    for n in range(PAIRS):
        req = request(command=("echo", f"pair{n}"), idempotent=True, wait_for_capacity=True)
        pairs.append((await _create(a, req), await _create(b, req)))
    # each master decides its own task as the API does, and its poll decides the other's too
    await defer.gatherResults([d for x, y in pairs for d in (a.tasks.submitted(x), b.tasks.submitted(y))]
                              + [defer.ensureDeferred(a.tasks.poll()), defer.ensureDeferred(b.tasks.poll())])
    for x, y in pairs:
        twin_of = {t: (await a.db.tasks.get_result(t))["twin_of"] for t in (x, y)}
        assert sorted(twin_of.values(), key=str) in ([x, None], [y, None]), twin_of

    # one slave on each master runs what it reaps; every task ends with its pair's one run
    slaves = [await attach(a, "bs1"), await attach(b, "bs2")]
    all_tasks = [t for pair in pairs for t in pair]

    async def all_completed():
        for _connection, commands in slaves:
            for remote, _name, _args in commands.started:
                if not getattr(remote, "_finished_by_test", False):
                    remote._finished_by_test = True
                    finish(remote, rc=0)
        for master in (a, b):
            await master.tasks.poll()
        states = [(await a.db.tasks.get_result(t))["state"] for t in all_tasks]
        return all(state == "COMPLETED" for state in states)

    await eventually(all_completed, "every task COMPLETED", deadline_s=30.0)
    commands = [args["command"] for _c, scripted in slaves for _r, _n, args in scripted.started]
    assert sorted(commands) == sorted(["echo", f"pair{n}"] for n in range(PAIRS))
    for x, y in pairs:
        results = [await a.db.tasks.get_result(t) for t in (x, y)]
        assert sorted(r["deduped_from"] is None for r in results) == [False, True]
