"""The task queries the Swarming API added to master/db/tasks.py, on SQLite and PostgreSQL:
list_tasks (filters, sort, keyset pages), count_tasks, runs_of_bot, delete_bot."""

import pytest_twisted

from buildfarm.master.db.tasks import NewSlice, NewTask, TaskQuery


def _task(request_id: int, created_at: float, tags=("purpose:test",), user="u@x") -> NewTask:
    return NewTask(request_id=request_id, created_at=created_at, name=f"t{request_id}", priority=100,
                   request={"name": f"t{request_id}"}, expiration_at=created_at + 600, user=user,
                   tags=list(tags),
                   slices=[NewSlice("a" * 64, 600, "q1")])


async def _three(db):
    made = ((0x11, 10.0, ("a:1",)), (0x21, 20.0, ("a:1", "b:2")), (0x31, 30.0, ()))
    for request_id, created_at, tags in made:
        await db.tasks.create(_task(request_id, created_at, tags))
    try_number = await db.tasks.start_run(0x11, "bs1", 40.0)
    await db.tasks.finish_run(0x11, try_number, "COMPLETED", 50.0, exit_code=0, duration=1.0)
    try_number = await db.tasks.start_run(0x21, "bs1", 41.0)
    await db.tasks.finish_run(0x21, try_number, "COMPLETED", 45.0, exit_code=2, duration=1.0)


@pytest_twisted.ensureDeferred
async def test_list_tasks_newest_first_with_the_requests_fields_and_tags(db):
    await _three(db)
    tasks = await db.tasks.list_tasks(TaskQuery())
    assert [t["request_id"] for t in tasks] == [0x31, 0x21, 0x11]
    assert (tasks[1]["name"], tasks[1]["user"], tasks[1]["tags"], tasks[1]["request"]) == (
        "t33", "u@x", ["a:1", "b:2"], {"name": "t33"})
    assert tasks[1]["state"] == "COMPLETED" and tasks[1]["exit_code"] == 2


@pytest_twisted.ensureDeferred
async def test_list_tasks_filters_and_count_agrees(db):
    await _three(db)
    cases = [(TaskQuery(states=("PENDING",)), [0x31]),
             (TaskQuery(states=("COMPLETED",), failure=True), [0x21]),
             (TaskQuery(states=("COMPLETED",), failure=False), [0x11]),
             (TaskQuery(tags=("a:1", "b:2")), [0x21]),
             (TaskQuery(tags=("a:1",)), [0x21, 0x11]), (TaskQuery(start=15.0, end=30.0), [0x21]),
             (TaskQuery(deduped=True), [])]
    for query, expected in cases:
        assert [t["request_id"] for t in await db.tasks.list_tasks(query)] == expected, query
        assert await db.tasks.count_tasks(query) == len(expected), query


@pytest_twisted.ensureDeferred
async def test_list_tasks_by_completion_leaves_out_the_unfinished_and_pages_by_key(db):
    await _three(db)
    first = await db.tasks.list_tasks(TaskQuery(sort="completed_at", limit=1))
    assert [t["request_id"] for t in first] == [0x11]
    rest = await db.tasks.list_tasks(TaskQuery(sort="completed_at", limit=1,
                                               after=(first[0]["completed_at"], first[0]["request_id"])))
    assert [t["request_id"] for t in rest] == [0x21]
    last = await db.tasks.list_tasks(TaskQuery(sort="completed_at", after=(45.0, 0x21)))
    assert last == []


@pytest_twisted.ensureDeferred
async def test_runs_of_bot_newest_first_in_pages(db):
    await _three(db)
    runs = await db.tasks.runs_of_bot("bs1", 1)
    assert [(r["request_id"], r["try_number"], r["name"], r["user"]) for r in runs] == [
        (0x21, 1, "t33", "u@x")]
    assert runs[0]["request_created_at"] == 20.0
    older = await db.tasks.runs_of_bot("bs1", 10, (runs[0]["started_at"], 0x21, 1))
    assert [r["request_id"] for r in older] == [0x11]
    assert await db.tasks.runs_of_bot("bs2", 10) == []


@pytest_twisted.ensureDeferred
async def test_delete_bot(db):
    await db.tasks.set_bot("bs1", {"pool": ["ci"]}, 5.0)
    assert await db.tasks.delete_bot("bs1") is True
    assert await db.tasks.get_bot("bs1") is None
    assert await db.tasks.delete_bot("bs1") is False
