"""Masters and builders: rows found or created by name."""

import pytest_twisted
import sqlalchemy as sa

from buildfarm.master.db import model


@pytest_twisted.ensureDeferred
async def test_find_or_create_returns_the_same_id_for_the_same_name(db):
    first = await db.masters.find_or_create("m1")
    assert await db.masters.find_or_create("m1") == first
    assert await db.masters.find_or_create("m2") != first


@pytest_twisted.ensureDeferred
async def test_mark_active_records_when_the_master_was_alive(db):
    masterid = await db.masters.find_or_create("m1")
    await db.masters.mark_active(masterid, 123.5)
    query = sa.select(model.masters.c.active, model.masters.c.last_active)
    assert tuple(await db.run(lambda conn: conn.execute(query).one())) == (1, 123.5)


@pytest_twisted.ensureDeferred
async def test_builders_are_listed_by_name(db):
    windows = await db.builders.find_or_create("windows")
    linux = await db.builders.find_or_create("linux")
    assert await db.builders.find_or_create("linux") == linux
    assert await db.builders.get_all() == [
        {"builderid": linux, "name": "linux"}, {"builderid": windows, "name": "windows"},
    ]
    assert await db.builders.get_by_name("windows") == {"builderid": windows, "name": "windows"}
    assert await db.builders.get_by_name("mac") is None
