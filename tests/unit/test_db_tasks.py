"""The task tables (master/db/tasks.py) on SQLite and PostgreSQL: a request and its summary
created in one transaction, request_uuid unique per user (under concurrency too), the reusable
result lookup, the pending order, output chunks by byte offset, bots' dimensions."""

import base64
import json

import pytest
import pytest_twisted
import sqlalchemy as sa
from twisted.internet import defer

from buildfarm.common.faceids import SWARMING, face_id
from buildfarm.master.db.model import task_results
from buildfarm.master.db.tasks import NewSlice, NewTask, OutputOutOfOrder
from buildfarm.master.tasks import model, records
from buildfarm.master.tasks.dimensions import queue_key
from tests.fixtures.memorymaster import eventually

HASH_A, HASH_B = "a" * 64, "b" * 64


def _task(request_id: int, created_at: float = 100.0, priority: int = 200, user: str | None = "u@x",
          request_uuid: str | None = None, properties_hash: str = HASH_A, idempotent: bool = True,
          queue_key: str = "q1", **extra) -> NewTask:
    return NewTask(request_id=request_id, created_at=created_at, name=f"task{request_id}", priority=priority,
                   request={"name": f"task{request_id}"}, expiration_at=created_at + 600, user=user,
                   request_uuid=request_uuid, tags=["a:1", "b:2", "a:1"],
                   slices=[NewSlice(properties_hash, 600, queue_key, idempotent=idempotent,
                                    secret_bytes=b"\x00k")], **extra)


@pytest_twisted.ensureDeferred
async def test_a_request_is_stored_with_its_slices_tags_secrets_and_a_pending_summary(db):
    assert await db.tasks.create(_task(0x1001, parent_task_id="ab10")) == (0x1001, True)
    request = await db.tasks.get_request(0x1001)
    assert (request["name"], request["user"], request["priority"], request["tags"]) == (
        "task4097", "u@x", 200, ["a:1", "b:2"])
    assert request["request"] == {"name": "task4097"} and request["parent_task_id"] == "ab10"
    assert request["slices"] == [{"slice_index": 0, "properties_hash": HASH_A, "idempotent": True,
                                  "expiration_secs": 600, "queue_key": "q1"}]
    assert request["secrets"] == {0: b"\x00k"}
    result = await db.tasks.get_result(0x1001)
    assert (result["state"], result["current_slice"], result["try_number"], result["created_at"]) == (
        "PENDING", 0, None, 100.0)
    assert await db.tasks.get_request(0x2001) is None and await db.tasks.get_result(0x2001) is None


@pytest_twisted.ensureDeferred
async def test_the_same_request_uuid_from_the_same_user_returns_the_first_task(db):
    assert await db.tasks.create(_task(0x1001, request_uuid="u1")) == (0x1001, True)
    assert await db.tasks.create(_task(0x2001, request_uuid="u1")) == (0x1001, False)
    assert await db.tasks.get_request(0x2001) is None
    assert await db.tasks.create(_task(0x3001, request_uuid="u1", user="other")) == (0x3001, True)
    assert await db.tasks.create(_task(0x4001, request_uuid="u1", user=None)) == (0x4001, True)
    assert await db.tasks.create(_task(0x5001, request_uuid="u1", user=None)) == (0x4001, False)
    assert await db.tasks.create(_task(0x6001)) == (0x6001, True)
    assert await db.tasks.create(_task(0x7001)) == (0x7001, True)  # no uuid: never a duplicate


@pytest_twisted.ensureDeferred
async def test_fifty_concurrent_creates_with_one_request_uuid_store_one_task(db):
    creates = [defer.ensureDeferred(db.tasks.create(_task(0x1001 + (n << 4), request_uuid="same")))
               for n in range(50)]
    answers = await defer.gatherResults(creates, consumeErrors=True)
    winners = {request_id for request_id, created in answers if created}
    assert len(winners) == 1
    assert {request_id for request_id, _ in answers} == winners
    found = [await db.tasks.get_request(0x1001 + (n << 4)) for n in range(50)]
    assert sum(r is not None for r in found) == 1


@pytest_twisted.ensureDeferred
async def test_a_task_may_end_at_creation_with_its_result(db):
    await db.tasks.create(_task(0x1001, result={"state": "NO_RESOURCE", "abandoned_at": 100.0,
                                                "error": "no slave"}))
    result = await db.tasks.get_result(0x1001)
    assert (result["state"], result["abandoned_at"], result["error"]) == ("NO_RESOURCE", 100.0, "no slave")
    with pytest.raises(ValueError, match="not summary fields"):
        await db.tasks.create(_task(0x2001, result={"bogus": 1}))


@pytest_twisted.ensureDeferred
async def test_pending_tasks_by_priority_then_age_and_by_queue(db):
    await db.tasks.create(_task(0x1001, created_at=10.0, priority=100, queue_key="linux"))
    await db.tasks.create(_task(0x2001, created_at=5.0, priority=200, queue_key="mac"))
    await db.tasks.create(_task(0x3001, created_at=20.0, priority=50, queue_key="linux"))
    await db.tasks.create(_task(0x4001, created_at=1.0, priority=100, queue_key="mac"))
    await db.tasks.create(_task(0x5001, created_at=0.0, priority=1, result={"state": "CANCELED"}))
    pending = await db.tasks.get_pending()
    assert [p["request_id"] for p in pending] == [0x3001, 0x4001, 0x1001, 0x2001]
    assert pending[0] == {"request_id": 0x3001, "priority": 50, "created_at": 20.0, "current_slice": 0,
                          "queue_key": "linux"}
    assert [p["request_id"] for p in await db.tasks.get_pending(queue_keys=["mac"])] == [0x4001, 0x2001]
    assert await db.tasks.get_pending(queue_keys=[]) == []
    assert len(await db.tasks.get_pending(limit=2)) == 2


@pytest_twisted.ensureDeferred
async def test_a_pending_task_is_started_once_and_finished(db):
    await db.tasks.create(_task(0x1001))
    assert await db.tasks.start_run(0x1001, "s1", 110.0) == 1
    assert await db.tasks.start_run(0x1001, "s2", 111.0) is None  # already taken
    run = await db.tasks.get_run(0x1001, 1)
    assert (run["slave"], run["state"], run["started_at"], run["slice_index"]) == ("s1", "RUNNING", 110.0, 0)
    assert await db.tasks.finish_run(0x1001, 1, "COMPLETED", 120.0, exit_code=0, duration=9.5,
                                     outputs_ref={"isolated": "c" * 40})
    assert not await db.tasks.finish_run(0x1001, 1, "COMPLETED", 121.0, exit_code=0)
    result = await db.tasks.get_result(0x1001)
    assert (result["state"], result["exit_code"], result["duration"], result["slave"], result["try_number"],
            result["completed_at"], result["outputs_ref"]) == (
        "COMPLETED", 0, 9.5, "s1", 1, 120.0, {"isolated": "c" * 40})


async def _completed(db, request_id: int, completed_at: float, exit_code: int = 0, state: str = "COMPLETED",
                     **task) -> None:
    await db.tasks.create(_task(request_id, **task))
    try_number = await db.tasks.start_run(request_id, "s1", completed_at - 1)
    await db.tasks.finish_run(request_id, try_number, state, completed_at, exit_code=exit_code)


@pytest_twisted.ensureDeferred
async def test_the_reusable_result_is_the_newest_completed_exit_0_idempotent_one_since_t(db):
    await _completed(db, 0x1001, 100.0)
    await _completed(db, 0x2001, 200.0)
    await _completed(db, 0x3001, 300.0, exit_code=1)  # failed: never reused
    await _completed(db, 0x4001, 400.0, state="TIMED_OUT")
    await _completed(db, 0x5001, 500.0, idempotent=False)  # not idempotent
    await _completed(db, 0x6001, 600.0, properties_hash=HASH_B)  # another hash
    assert (await db.tasks.find_reusable(HASH_A, 150.0))["request_id"] == 0x2001
    assert (await db.tasks.find_reusable(HASH_A, 0.0))["request_id"] == 0x2001
    assert await db.tasks.find_reusable(HASH_A, 201.0) is None
    assert (await db.tasks.find_reusable(HASH_B, 0.0))["request_id"] == 0x6001


@pytest_twisted.ensureDeferred
async def test_a_deduplicated_result_is_never_reused(db):
    await db.tasks.create(_task(0x1001, result={"state": "COMPLETED", "exit_code": 0, "completed_at": 100.0,
                                                "deduped_from": "ab01", "try_number": 0}))
    assert await db.tasks.find_reusable(HASH_A, 0.0) is None


@pytest_twisted.ensureDeferred
async def test_output_chunks_are_stored_at_their_offsets_and_read_by_offset_and_length(db):
    await db.tasks.create(_task(0x1001))
    await db.tasks.start_run(0x1001, "s1", 110.0)
    assert await db.tasks.append_output(0x1001, 1, 0, b"hello ") == 6
    assert await db.tasks.append_output(0x1001, 1, 6, "wörld\n".encode()) == 13
    assert await db.tasks.append_output(0x1001, 1, 0, b"hello ") == 13  # a retried update
    assert await db.tasks.append_output(0x1001, 1, 11, b"d\nmore") == 17  # overlaps the end
    assert await db.tasks.get_output(0x1001, 1) == "hello wörld\nmore".encode()
    assert await db.tasks.get_output(0x1001, 1, 4, 5) == "o wö".encode()
    assert await db.tasks.get_output(0x1001, 1, 13) == b"more"
    assert await db.tasks.get_output(0x1001, 1, 100) == b""
    assert await db.tasks.get_output(0x1001, 1, 0, 0) == b""
    with pytest.raises(OutputOutOfOrder, match="starts at 20 but 17 bytes are stored"):
        await db.tasks.append_output(0x1001, 1, 20, b"gap")
    with pytest.raises(KeyError):
        await db.tasks.append_output(0x1001, 2, 0, b"no such try")


@pytest_twisted.ensureDeferred
async def test_a_bots_dimensions_are_set_and_read_with_first_and_last_seen(db):
    await db.tasks.set_bot("s1", {"id": ["s1"], "pool": ["ci"]}, 100.0, version="1.0")
    await db.tasks.set_bot("s1", {"id": ["s1"], "pool": ["gpu"]}, 200.0, version="1.1", state={"disk": 5})
    await db.tasks.set_bot("s2", {"id": ["s2"]}, 50.0)
    bot = await db.tasks.get_bot("s1")
    assert (bot["dimensions"], bot["first_seen_at"], bot["last_seen_at"], bot["version"], bot["state"]) == (
        {"id": ["s1"], "pool": ["gpu"]}, 100.0, 200.0, "1.1", {"disk": 5})
    assert (bot["quarantined"], bot["maintenance"]) == (None, None)
    assert await db.tasks.set_bot_flags("s1", quarantined="low disk")
    assert not await db.tasks.set_bot_flags("nobody", maintenance="x")
    assert (await db.tasks.get_bot("s1"))["quarantined"] == "low disk"
    assert [b["name"] for b in await db.tasks.get_bots()] == ["s1", "s2"]
    assert [b["name"] for b in await db.tasks.get_bots(seen_since=100.0)] == ["s1"]
    assert await db.tasks.get_bot("nobody") is None


@pytest_twisted.ensureDeferred
async def test_a_parsed_request_is_stored_and_read_back_whole(db):
    body = {"name": "t", "user": "u@x", "priority": "30", "tags": ["k:v"], "request_uuid": "r1",
            "task_slices": [
                {"expiration_secs": "60", "properties": {
                    "command": ["true"],
                    "dimensions": [{"key": "pool", "value": "ci"}, {"key": "gpu", "value": "a"}],
                    "idempotent": True, "secret_bytes": base64.b64encode(b"shh").decode()}},
                {"expiration_secs": "120", "wait_for_capacity": True, "properties": {
                    "command": ["true"], "dimensions": [{"key": "pool", "value": "ci"}]}}]}
    request = model.request_from_json(body)
    assert await db.tasks.create(records.new_task(request, 0x1001, 100.0)) == (0x1001, True)
    stored = await db.tasks.get_request(0x1001)
    assert records.request_of(stored) == request
    assert stored["expiration_at"] == 280.0 and stored["tags"] == ["k:v"] and stored["priority"] == 30
    first, second = request.task_slices
    assert [s["properties_hash"] for s in stored["slices"]] == [
        first.properties.properties_hash(), second.properties.properties_hash()]
    assert [s["queue_key"] for s in stored["slices"]] == [
        queue_key({"gpu": ["a"], "pool": ["ci"]}), queue_key({"pool": ["ci"]})]
    assert [s["idempotent"] for s in stored["slices"]] == [True, False]
    assert b"shh" not in json.dumps(stored["request"]).encode()


@pytest_twisted.ensureDeferred
async def test_slaves_reaping_one_pending_task_at_once_give_it_to_one(db):
    await db.tasks.create(_task(0x1001))
    starts = [defer.ensureDeferred(db.tasks.start_run(0x1001, f"s{n}", 110.0 + n)) for n in range(8)]
    tries = await defer.gatherResults(starts, consumeErrors=True)
    assert sorted(tries, key=lambda t: t is None) == [1] + [None] * 7
    result = await db.tasks.get_result(0x1001)
    run = await db.tasks.get_run(0x1001, 1)
    assert (result["state"], result["try_number"], run["slave"]) == ("RUNNING", 1, result["slave"])
    assert await db.tasks.get_run(0x1001, 2) is None


@pytest_twisted.ensureDeferred
async def test_a_result_in_swarmings_v1_shape(db):
    request = model.request_from_json({"name": "t", "user": "u@x", "tags": ["k:v"], "task_slices": [
        {"expiration_secs": 60, "properties": {"command": ["true"],
                                               "dimensions": [{"key": "pool", "value": "ci"}]}}]})
    await db.tasks.create(records.new_task(request, 0x1001, 1_796_000_000.5))
    stored = await db.tasks.get_request(0x1001)
    pending = records.result_to_json(stored, await db.tasks.get_result(0x1001))
    assert pending == {
        "task_id": "10010", "name": "t", "user": "u@x", "tags": ["k:v"], "state": "PENDING",
        "current_task_slice": "0", "failure": False, "internal_failure": False, "costs_usd": [],
        "created_ts": "2026-11-30T00:53:20.500000", "modified_ts": "2026-11-30T00:53:20.500000",
        "queue_task_id": face_id(SWARMING, 0x1001)}  # its face as a Queue task (master/queue/faces.py)
    await db.tasks.start_run(0x1001, "s1", 1_796_000_001.0)
    await db.tasks.finish_run(0x1001, 1, "COMPLETED", 1_796_000_003.0, exit_code=3, duration=1.5)
    done = records.result_to_json(stored, await db.tasks.get_result(0x1001))
    assert (done["state"], done["exit_code"], done["duration"], done["try_number"], done["run_id"],
            done["bot_id"], done["failure"]) == ("COMPLETED", "3", 1.5, "1", "10011", "s1", True)
    assert done["started_ts"] == "2026-11-30T00:53:21" and done["completed_ts"] == "2026-11-30T00:53:23"
    summary, first_try = await db.tasks.get_result(0x1001), await db.tasks.get_run(0x1001, 1)
    run = records.result_to_json(stored, summary, first_try)
    assert (run["task_id"], run["run_id"], run["created_ts"]) == (
        "10011", "10011", "2026-11-30T00:53:20.500000")
    assert not any(value.endswith("Z") for key, value in done.items() if key.endswith("_ts"))


@pytest_twisted.ensureDeferred
async def test_a_task_created_running_has_its_first_try_on_the_slave_and_is_never_pending(db):
    assert await db.tasks.create_running(_task(0x1001), "bs1", 150.0) == 0x1001
    result = await db.tasks.get_result(0x1001)
    assert (result["state"], result["try_number"], result["slave"], result["started_at"]) == (
        "RUNNING", 1, "bs1", 150.0)
    assert await db.tasks.get_pending() == []
    assert await db.tasks.start_run(0x1001, "bs2", 151.0) is None  # no slave can reap it
    [run] = await db.tasks.runs_of_bot("bs1", 10)
    assert (run["request_id"], run["try_number"], run["state"]) == (0x1001, 1, "RUNNING")
    assert await db.tasks.finish_run(0x1001, 1, "COMPLETED", 160.0, exit_code=0, duration=10.0)
    assert (await db.tasks.get_result(0x1001))["state"] == "COMPLETED"


@pytest_twisted.ensureDeferred
async def test_a_request_read_once_is_answered_from_memory_and_as_a_copy(db, monkeypatch):
    await db.tasks.create(_task(0x1001))
    queries = []
    real_run = db.run
    monkeypatch.setattr(db, "run", lambda fn: queries.append(fn) or real_run(fn))
    first = await db.tasks.get_request(0x1001)
    assert len(queries) == 1
    first["tags"].append("changed:1")
    first["request"]["name"] = "changed"
    again = await db.tasks.get_request(0x1001)
    assert len(queries) == 1  # requests never change: not read again
    assert again["tags"] == ["a:1", "b:2"] and again["request"] == {"name": "task4097"}
    assert await db.tasks.get_request(0x2001) is None and len(queries) == 2  # an unknown id is not kept


@pytest_twisted.ensureDeferred
async def test_a_try_starts_on_a_given_slice_only_while_the_task_is_on_it(db):
    slices = [NewSlice(HASH_A, 60, "q1"), NewSlice(HASH_B, 600, "q2")]
    await db.tasks.create(NewTask(request_id=0x1001, created_at=100.0, name="t", priority=200, request={},
                                  expiration_at=760.0, slices=slices))
    assert await db.tasks.advance_slice(0x1001, 0, "q2", 161.0)
    assert await db.tasks.start_run(0x1001, "s1", 162.0, slice_index=0) is None  # read before it fell back
    assert (await db.tasks.get_result(0x1001))["state"] == "PENDING"
    assert await db.tasks.start_run(0x1001, "s1", 163.0, slice_index=1) == 1
    assert (await db.tasks.get_run(0x1001, 1))["slice_index"] == 1


@pytest_twisted.ensureDeferred
async def test_a_try_ended_for_a_retry_leaves_its_task_pending_for_the_next(db):
    await db.tasks.create(_task(0x1001))
    assert await db.tasks.start_run(0x1001, "bs1", 101.0) == 1
    assert await db.tasks.running_on("bs1") == [{"request_id": 0x1001, "try_number": 1, "slice_index": 0,
                                                 "started_at": 101.0}]
    assert await db.tasks.running_since(101.0) == []  # started at 101.0, not before
    assert await db.tasks.running_since(101.5) == [{"request_id": 0x1001, "try_number": 1, "slice_index": 0,
                                                    "started_at": 101.0, "slave": "bs1"}]
    assert await db.tasks.finish_run(0x1001, 1, "BOT_DIED", 102.0, retry=True, internal_failure=1)
    run, result = await db.tasks.get_run(0x1001, 1), await db.tasks.get_result(0x1001)
    assert (run["state"], run["internal_failure"], run["completed_at"]) == ("BOT_DIED", True, 102.0)
    assert (result["state"], result["slave"], result["completed_at"], result["try_number"]) == (
        "PENDING", None, None, 1)
    assert await db.tasks.running_on("bs1") == []
    assert await db.tasks.start_run(0x1001, "bs2", 103.0) == 2


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest_twisted.ensureDeferred
async def test_a_task_is_never_attached_to_a_twin_that_ends_meanwhile(db):
    # PostgreSQL reads committed rows: a twin read as RUNNING may be ending in another
    # transaction (finish_run, then the twins it reads to end with it), so the attach must wait
    # for that transaction and read the twin again, or the task waits for a result never given
    await db.tasks.create(_task(0x1001, created_at=100.0))
    await db.tasks.create(_task(0x2001, created_at=101.0))
    assert await db.tasks.start_run(0x1001, "bs1", 102.0) == 1
    ender = db.engine.connect()
    ending = ender.begin()
    ender.execute(sa.update(task_results).where(task_results.c.request_id == 0x1001)
                  .values(state="COMPLETED", exit_code=0))
    attaching = defer.ensureDeferred(db.tasks.attach_twin(0x2001, HASH_A, 103.0))
    try:
        await eventually(lambda: defer.succeed(attaching.called or waits_for_a_lock(db)),
                         "the attach to end or wait for the ending twin")
    finally:
        ending.commit()
        ender.close()
    assert await attaching is None
    assert (await db.tasks.get_result(0x2001))["twin_of"] is None


def waits_for_a_lock(db) -> bool:
    with db.engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar())
