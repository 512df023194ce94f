"""Wake-ups between masters (master/cluster/wakeups.py): on PostgreSQL with c['multiMaster'] a
master LISTENs, and a request another master adds (or puts back) wakes its BotMaster at that
transaction's commit, its clock standing still (so not through the 2 s poll).  Real in-memory
masters on a real PostgreSQL server."""

import pytest_twisted
from twisted.internet import defer

from buildfarm.master.cluster.wakeups import libpq_conninfo, listens_for_wakeups
from tests.fixtures.memorymaster import MASTER_CFG, eventually, start_memory_master

NOW = 1_800_000_000.0


def cfg(url: str, multi: bool = True) -> str:
    return (MASTER_CFG.replace("'db_url': 'sqlite:///state.sqlite'", f"'db_url': {url!r}")
            + f"c['multiMaster'] = {multi!r}\n")


async def masters_on(url: str, tmp_path, *names: str, multi: bool = True) -> list:
    started = []
    for name in names:
        basedir = tmp_path / name
        basedir.mkdir()
        started.append(await start_memory_master(basedir, cfg(url, multi), now=NOW))
    return started


def test_only_postgresql_with_multimaster_listens():
    assert listens_for_wakeups("postgresql://u@h/db", True)
    assert not listens_for_wakeups("postgresql://u@h/db", False)
    assert not listens_for_wakeups("sqlite:////srv/state.sqlite", True)


def test_the_listening_connection_uses_the_masters_url_without_its_driver():
    assert libpq_conninfo("postgresql+psycopg://u:pw@h:5433/db", "/srv") == "postgresql://u:pw@h:5433/db"


@pytest_twisted.ensureDeferred
async def test_a_request_added_on_one_master_wakes_the_other_at_once(db_url_postgresql, tmp_path):
    a, b = await masters_on(db_url_postgresql, tmp_path, "a", "b")
    try:
        await eventually(lambda: defer.succeed(b.wakeups.listening), "b to listen")
        woken = b.wakeups.woken
        builderid = a.botmaster.builders["linux"].builderid

        await a.db.buildrequests.add(builderid, "test", {}, NOW)

        await eventually(lambda: defer.succeed(b.wakeups.woken > woken), "b to be woken")
        assert b.reactor.seconds() == NOW  # no poll ran: b's clock never moved
    finally:
        for master in (a, b):
            await master.stopService()
    assert a.wakeups.listening is False and b.wakeups._thread is None


@pytest_twisted.ensureDeferred
async def test_a_request_put_back_in_the_queue_wakes_the_masters(db_url_postgresql, tmp_path):
    [a] = await masters_on(db_url_postgresql, tmp_path, "a")
    try:
        await eventually(lambda: defer.succeed(a.wakeups.listening), "a to listen")
        brid = await a.db.buildrequests.add(a.botmaster.builders["linux"].builderid, "test", {}, NOW)
        assert await a.db.buildrequests.claim(brid, a.masterid, NOW)
        await eventually(lambda: defer.succeed(a.wakeups.woken >= 2), "the add to be heard")
        woken = a.wakeups.woken

        await a.db.buildrequests.unclaim(brid)

        await eventually(lambda: defer.succeed(a.wakeups.woken > woken), "the unclaim to be heard")
    finally:
        await a.stopService()


@pytest_twisted.ensureDeferred
async def test_a_master_without_multimaster_does_not_listen(db_url_postgresql, tmp_path):
    [a] = await masters_on(db_url_postgresql, tmp_path, "a", multi=False)
    try:
        assert a.wakeups._thread is None and not a.wakeups.listening
    finally:
        await a.stopService()
