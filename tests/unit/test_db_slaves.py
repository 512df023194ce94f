"""Slaves: what they report on attaching, and which master they are attached to."""

import pytest_twisted


@pytest_twisted.async_fixture
async def masters(db):
    return [await db.masters.find_or_create(name) for name in ("m1", "m2")]


@pytest_twisted.ensureDeferred
async def test_attaching_records_info_version_and_master(db, masters):
    info = {"admin": "ops@example.com", "host": "builder-1", "numcpus": 8}
    slaveid = await db.slaves.attached("s1", masters[0], info, "1.2.0", 100.0)
    assert await db.slaves.get("s1") == {
        "slaveid": slaveid, "name": "s1", "info": info, "version": "1.2.0",
        "connected_masterid": masters[0], "last_connected_at": 100.0,
        "last_disconnected_at": None,
    }


@pytest_twisted.ensureDeferred
async def test_lists_read_the_reported_info_only_when_asked(db, masters):
    await db.slaves.attached("s1", masters[0], {"environ": {"PATH": "/bin"}}, "1.0", 100.0)
    await db.slaves.attached("s2", masters[0], {"host": "b2"}, "1.0", 100.0)
    assert [row["info"] for row in await db.slaves.get_all()] == [{"environ": {"PATH": "/bin"}},
                                                                   {"host": "b2"}]
    light = await db.slaves.get_all(with_info=False)
    assert [(row["name"], row["info"], row["version"]) for row in light] == [
        ("s1", None, "1.0"), ("s2", None, "1.0")]
    assert await db.slaves.get_infos(["s2", "unknown"]) == {"s2": {"host": "b2"}}
    assert await db.slaves.get_infos([]) == {}


@pytest_twisted.ensureDeferred
async def test_a_slave_keeps_its_id_across_attachments(db, masters):
    first = await db.slaves.find_or_create("s1")
    assert await db.slaves.attached("s1", masters[0], {}, None, 1.0) == first
    assert await db.slaves.find_or_create("s1") == first


@pytest_twisted.ensureDeferred
async def test_detaching_clears_the_master_and_records_the_time(db, masters):
    await db.slaves.attached("s1", masters[0], {}, None, 100.0)
    await db.slaves.detached("s1", masters[0], 200.0)
    slave = await db.slaves.get("s1")
    assert (slave["connected_masterid"], slave["last_disconnected_at"]) == (None, 200.0)


@pytest_twisted.ensureDeferred
async def test_a_stale_detach_does_not_unhook_the_slave_from_its_new_master(db, masters):
    m1, m2 = masters
    await db.slaves.attached("s1", m2, {}, None, 100.0)
    await db.slaves.detached("s1", m1, 101.0)
    assert (await db.slaves.get("s1"))["connected_masterid"] == m2


@pytest_twisted.ensureDeferred
async def test_detach_all_of_master_leaves_other_masters_slaves(db, masters):
    m1, m2 = masters
    for name, masterid in (("a", m1), ("b", m1), ("c", m2)):
        await db.slaves.attached(name, masterid, {}, None, 1.0)
    await db.slaves.detach_all_of_master(m1, 50.0)
    slaves = await db.slaves.get_all()
    assert [(s["name"], s["connected_masterid"]) for s in slaves] == [
        ("a", None), ("b", None), ("c", m2),
    ]
    assert slaves[0]["last_disconnected_at"] == 50.0


@pytest_twisted.ensureDeferred
async def test_get_of_an_unknown_slave_is_none(db):
    assert await db.slaves.get("nobody") is None


@pytest_twisted.ensureDeferred
async def test_connection_history_newest_first_and_closed_by_detach_or_master_restart(db, masters):
    await db.slaves.attached("s1", masters[0], {}, None, 10.0, "10.0.0.5:40000")
    await db.slaves.detached("s1", masters[0], 20.0)
    await db.slaves.attached("s1", masters[1], {}, None, 30.0, "10.0.0.5:40001")
    await db.slaves.attached("s1", masters[1], {}, None, 35.0, "10.0.0.5:40002")  # detach never seen
    assert await db.slaves.get_connections("s1") == [
        {"masterid": masters[1], "peer": "10.0.0.5:40002", "connected_at": 35.0, "disconnected_at": None},
        {"masterid": masters[1], "peer": "10.0.0.5:40001", "connected_at": 30.0, "disconnected_at": 35.0},
        {"masterid": masters[0], "peer": "10.0.0.5:40000", "connected_at": 10.0, "disconnected_at": 20.0},
    ]
    await db.slaves.detach_all_of_master(masters[1], 50.0)
    assert (await db.slaves.get_connections("s1", limit=1))[0]["disconnected_at"] == 50.0
    assert await db.slaves.get_connections("nobody") == []
