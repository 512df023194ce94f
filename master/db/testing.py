"""Helpers for tests that need a real, migrated database: by default a SQLite file in a
temp folder, or any database URL (tests/fixtures/postgres.py provides PostgreSQL ones)."""

from dataclasses import dataclass

from twisted.internet import threads

from buildfarm.master.db.connector import DBConnector
from buildfarm.master.db.migrate import upgrade_database

TEST_DB_URL = "sqlite:///state.sqlite"


async def open_test_db(basedir: str, db_url: str = TEST_DB_URL, reactor=None) -> DBConnector:
    """A set-up connector on a freshly migrated database; stop it with ``stopService()``.
    Its results arrive through ``reactor`` (the running global one unless given)."""
    if reactor is None:
        from twisted.internet import reactor
    await threads.deferToThread(upgrade_database, db_url, basedir)
    db = DBConnector(db_url, basedir, reactor)
    await db.setup()
    db.startService()
    return db


@dataclass
class RunningBuild:
    """The ids of a build started by :func:`add_running_build`."""

    masterid: int
    builderid: int
    slaveid: int
    buildrequestid: int
    buildid: int
    number: int


async def add_running_build(
    db: DBConnector, builder: str = "linux", slave: str = "slave1", master: str = "master1",
    now: float = 1000.0,
) -> RunningBuild:
    """Add a master, builder, slave and request, claim the request and start a build."""
    masterid = await db.masters.find_or_create(master)
    builderid = await db.builders.find_or_create(builder)
    slaveid = await db.slaves.attached(slave, masterid, {}, None, now)
    brid = await db.buildrequests.add(builderid, "test", {}, now)
    await db.buildrequests.claim(brid, masterid, now)
    buildid, number = await db.builds.add(builderid, brid, slaveid, masterid, now)
    return RunningBuild(masterid, builderid, slaveid, brid, buildid, number)
