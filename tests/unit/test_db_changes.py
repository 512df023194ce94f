"""Changes: what change sources report, read back by id, newest first, or after an id."""

import pytest_twisted


async def _add(db, n, **fields):
    return await db.changes.add(f"author{n}", f"commit {n}", [f"f{n}.c"], 100.0 + n, 200.0 + n,
                                **fields)


@pytest_twisted.ensureDeferred
async def test_a_change_reads_back_with_every_field(db):
    changeid = await db.changes.add(
        "Ann <ann@example.com>", "Fix the build\n\nDetails.", ["src/a.c", "docs/é.txt"],
        1700000000.5, 1700000001.25, branch="main", revision="abc123",
        repository="https://git.example.com/repo.git", project="farm", codebase="core",
        category="bugfix", committer="Bob <bob@example.com>", properties={"ci": {"skip": False}},
    )
    assert await db.changes.get(changeid) == {
        "changeid": changeid, "author": "Ann <ann@example.com>",
        "committer": "Bob <bob@example.com>", "comments": "Fix the build\n\nDetails.",
        "branch": "main", "revision": "abc123",
        "repository": "https://git.example.com/repo.git", "project": "farm",
        "codebase": "core", "category": "bugfix", "when_timestamp": 1700000000.5,
        "files": ["src/a.c", "docs/é.txt"], "properties": {"ci": {"skip": False}},
        "created_at": 1700000001.25,
    }


@pytest_twisted.ensureDeferred
async def test_optional_fields_default_to_empty_or_none(db):
    changeid = await db.changes.add("ann", "", [], 1.0, 2.0)
    change = await db.changes.get(changeid)
    assert {k: change[k] for k in ("branch", "revision", "category", "committer")} == dict.fromkeys(
        ("branch", "revision", "category", "committer")
    )
    assert (change["repository"], change["project"], change["codebase"]) == ("", "", "")
    assert (change["files"], change["properties"]) == ([], {})


@pytest_twisted.ensureDeferred
async def test_get_of_an_unknown_change_is_none(db):
    assert await db.changes.get(404) is None


@pytest_twisted.ensureDeferred
async def test_get_all_is_newest_first_with_paging(db):
    ids = [await _add(db, n) for n in range(4)]
    assert [c["changeid"] for c in await db.changes.get_all()] == ids[::-1]
    assert [c["changeid"] for c in await db.changes.get_all(limit=2, offset=1)] == [ids[2], ids[1]]


@pytest_twisted.ensureDeferred
async def test_get_after_returns_the_later_changes_oldest_first(db):
    ids = [await _add(db, n, branch="main") for n in range(4)]
    assert [c["changeid"] for c in await db.changes.get_after(ids[1])] == ids[2:]
    assert [c["changeid"] for c in await db.changes.get_after(0)] == ids
    assert await db.changes.get_after(ids[-1]) == []
