"""Step logs: chunks appended in batches, counted in lines, read back whole or by lines."""

import pytest_twisted

from buildfarm.master.db.logs import slugify
from buildfarm.master.db.testing import add_running_build


@pytest_twisted.async_fixture
async def stepid(db):
    build = await add_running_build(db)
    return await db.steps.add(build.buildid, 0, "compile", 10.0)


@pytest_twisted.ensureDeferred
async def test_appended_text_reads_back_with_its_line_count(db, stepid):
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append(logid, "one\ntwo\n")
    await db.logs.append(logid, "three\n")
    assert await db.logs.get_text(logid) == "one\ntwo\nthree\n"
    assert (await db.logs.get_by_slug(stepid, "stdio"))["num_lines"] == 3


@pytest_twisted.ensureDeferred
async def test_a_chunk_ending_mid_line_is_kept_as_given(db, stepid):
    logid = await db.logs.add(stepid, "stdio")
    for text in ("a\nhal", "f line\n", "", "tail"):
        await db.logs.append(logid, text)
    assert await db.logs.get_text(logid) == "a\nhalf line\ntail"
    assert (await db.logs.get_by_slug(stepid, "stdio"))["num_lines"] == 2
    assert await db.logs.get_text_range(logid, 1, 1) == "half line\n"


@pytest_twisted.ensureDeferred
async def test_append_many_writes_several_logs_in_order(db, stepid):
    out = await db.logs.add(stepid, "stdio")
    err = await db.logs.add(stepid, "stderr")
    await db.logs.append_many([(out, "1\n"), (err, "e\n"), (out, "2\n3\n")])
    assert (await db.logs.get_text(out), await db.logs.get_text(err)) == ("1\n2\n3\n", "e\n")
    counts = {log["name"]: log["num_lines"] for log in await db.logs.get_all(stepid)}
    assert counts == {"stdio": 3, "stderr": 1}


@pytest_twisted.ensureDeferred
async def test_text_range_returns_the_requested_lines(db, stepid):
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append_many([(logid, "l0\nl1\n"), (logid, "l2\nl3\n"), (logid, "l4\n")])
    assert await db.logs.get_text_range(logid, 1, 3) == "l1\nl2\nl3\n"
    assert await db.logs.get_text_range(logid, 9, 12) == ""


@pytest_twisted.ensureDeferred
async def test_a_new_log_is_open_and_finish_completes_it(db, stepid):
    logid = await db.logs.add(stepid, "Test Results.xml")
    assert await db.logs.get_all(stepid) == [{
        "logid": logid, "stepid": stepid, "name": "Test Results.xml",
        "slug": "test_results_xml", "type": "s", "num_lines": 0, "complete": False,
    }]
    await db.logs.finish(logid)
    assert (await db.logs.get_by_slug(stepid, "test_results_xml"))["complete"] is True


@pytest_twisted.ensureDeferred
async def test_a_slug_taken_in_the_step_gets_a_suffix(db, stepid):
    await db.logs.add(stepid, "out.txt")
    second = await db.logs.add(stepid, "out_txt")
    assert (await db.logs.get_by_slug(stepid, "out_txt_2"))["logid"] == second


def test_slug_replaces_everything_but_lowercase_letters_and_digits():
    assert slugify("Build Log (x86-64)") == "build_log__x86_64_"


@pytest_twisted.ensureDeferred
async def test_text_range_counts_lines_by_newline_only(db, stepid):
    logid = await db.logs.add(stepid, "stdio")
    await db.logs.append_many([(logid, "10%\r50%\r100%\nnext\n"), (logid, "a\x0bb\nlast\n")])
    assert await db.logs.get_text_range(logid, 1, 2) == "next\na\x0bb\n"
    assert await db.logs.get_text_range(logid, 3, 3) == "last\n"
