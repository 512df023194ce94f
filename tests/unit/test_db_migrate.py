"""Schema migrations, URL resolution, and the connector's refusal to run on an old schema."""

import sqlite3
import threading

import pytest
import pytest_twisted
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from twisted.internet import reactor, threads

from buildfarm.master.db import model
from buildfarm.master.db.connector import SERVER_POOL_THREADS, DBConnector, SchemaNotCurrent
from buildfarm.master.db.engine import create_engine
from buildfarm.master.db.migrate import resolve_db_url, schema_is_current, upgrade_database
from buildfarm.master.db.testing import TEST_DB_URL, open_test_db


def test_relative_sqlite_path_is_resolved_against_basedir(tmp_path):
    resolved = resolve_db_url("sqlite:///state.sqlite", str(tmp_path))
    assert resolved == f"sqlite:///{tmp_path}/state.sqlite"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/master/state.sqlite", "sqlite://", "postgresql+psycopg://u:p@h/db"],
)
def test_absolute_memory_and_server_urls_are_left_alone(url):
    assert resolve_db_url(url, "/elsewhere") == url


@pytest.mark.parametrize("url", [
    "postgresql://u:p@db.example.com:5433/buildfarm?sslmode=require", "postgres://u:p@h/db",
])
def test_a_postgresql_url_without_a_driver_uses_psycopg(url):
    resolved = resolve_db_url(url, "/elsewhere")
    assert resolved == "postgresql+psycopg://" + url.split("://", 1)[1]
    assert create_engine(url, "/elsewhere").dialect.driver == "psycopg"


def test_upgrade_brings_a_new_database_to_the_head(db_url, tmp_path):
    assert not schema_is_current(db_url, str(tmp_path))
    upgrade_database(db_url, str(tmp_path))
    assert schema_is_current(db_url, str(tmp_path))


def test_upgrading_a_current_database_changes_nothing(db_url, tmp_path):
    upgrade_database(db_url, str(tmp_path))
    upgrade_database(db_url, str(tmp_path))
    assert schema_is_current(db_url, str(tmp_path))


def test_migrations_create_exactly_the_tables_of_the_model(db_url, tmp_path):
    upgrade_database(db_url, str(tmp_path))
    engine = create_engine(db_url, str(tmp_path))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), model.metadata)
    engine.dispose()
    assert differences == []


def _fill_revision_0001(conn: sa.Connection) -> dict[str, int]:
    """One of each row the first schema holds: a claimed request with a build and a log."""

    def add(table: sa.Table, **values) -> int:
        return conn.execute(sa.insert(table).values(**values)).inserted_primary_key[0]

    ids = {"masterid": add(model.masters, name="m1"), "builderid": add(model.builders, name="linux"),
           "slaveid": add(model.slaves, name="s1")}
    ids["brid"] = add(model.buildrequests, builderid=ids["builderid"], reason="forced",
                      properties='{"branch": "main"}', submitted_at=1.0,
                      claimed_by_masterid=ids["masterid"], claimed_at=2.0)
    ids["buildid"] = add(model.builds, number=1, builderid=ids["builderid"],
                         buildrequestid=ids["brid"], slaveid=ids["slaveid"],
                         masterid=ids["masterid"], started_at=3.0)
    stepid = add(model.steps, buildid=ids["buildid"], number=0, name="compile")
    ids["logid"] = add(model.logs, stepid=stepid, name="stdio", slug="stdio", num_lines=1)
    add(model.logchunks, logid=ids["logid"], first_line=0, last_line=0, content="hello\n")
    return ids


def _fill_at_0001(db_url: str, basedir: str) -> dict[str, int]:
    upgrade_database(db_url, basedir, revision="0001")
    engine = create_engine(db_url, basedir)
    try:
        with engine.begin() as conn:
            return _fill_revision_0001(conn)
    finally:
        engine.dispose()


@pytest_twisted.ensureDeferred
async def test_upgrading_a_0001_database_keeps_its_data(db_url, tmp_path):
    ids = await threads.deferToThread(_fill_at_0001, db_url, str(tmp_path))
    db = await open_test_db(str(tmp_path), db_url)  # upgrades to the head first
    try:
        request = await db.buildrequests.get(ids["brid"])
        assert (request["buildsetid"], request["claimed_by_masterid"], request["buildids"]) == (
            None, ids["masterid"], [ids["buildid"]],
        )
        assert request["properties"] == {"branch": "main"}
        build = await db.builds.get(ids["buildid"])
        assert (build["number"], build["slavename"], build["buildername"]) == (1, "s1", "linux")
        assert await db.logs.get_text(ids["logid"]) == "hello\n"
        bsid, brids = await db.buildsets.add("force", "r", {}, [ids["builderid"]], 4.0)
        assert (await db.buildrequests.get(brids[ids["builderid"]]))["buildsetid"] == bsid
    finally:
        await db.stopService()


def test_sqlite_database_uses_wal_journal(tmp_path):
    upgrade_database(TEST_DB_URL, str(tmp_path))
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest_twisted.ensureDeferred
async def test_setup_on_an_empty_database_names_the_upgrade_command(db_url, tmp_path):
    connector = DBConnector(db_url, str(tmp_path), reactor)
    with pytest.raises(SchemaNotCurrent, match=f"run: buildmaster upgrade-master {tmp_path}$"):
        await connector.setup()
    assert connector.pool is None


def test_a_database_server_gets_a_pool_of_five_threads_and_connections(db):
    expected = 1 if db.engine.dialect.name == "sqlite" else SERVER_POOL_THREADS
    assert db.pool.max == expected
    if expected > 1:
        assert db.engine.pool.size() == SERVER_POOL_THREADS


@pytest_twisted.ensureDeferred
async def test_queries_run_off_the_reactor_thread(db):
    query_thread = await db.run(lambda conn: threading.get_ident())
    assert query_thread != threading.get_ident()


@pytest_twisted.ensureDeferred
async def test_run_rolls_back_everything_when_the_function_fails(db):
    def add_then_fail(conn):
        conn.execute(sa.insert(model.builders).values(name="linux"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        await db.run(add_then_fail)
    assert await db.builders.get_all() == []


@pytest_twisted.ensureDeferred
async def test_foreign_keys_are_enforced(db):
    with pytest.raises(sa.exc.IntegrityError):
        await db.buildrequests.add(builderid=42, reason="r", properties={}, submitted_at=1.0)


@pytest_twisted.ensureDeferred
async def test_stopping_a_connector_that_never_set_up_is_harmless(tmp_path):
    await DBConnector(TEST_DB_URL, str(tmp_path), reactor).stopService()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
@pytest_twisted.ensureDeferred
async def test_an_in_memory_database_gets_its_schema_at_setup_and_keeps_its_rows(url, tmp_path):
    connector = DBConnector(url, str(tmp_path), reactor)
    await connector.setup()
    connector.startService()
    try:
        builderid = await connector.builders.find_or_create("linux")
        # A later transaction, on the pool's thread, sees the same database.
        assert await connector.builders.find_or_create("linux") == builderid
        assert [b["name"] for b in await connector.builders.get_all()] == ["linux"]
    finally:
        await connector.stopService()
    assert list(tmp_path.iterdir()) == []  # nothing was written to disk
