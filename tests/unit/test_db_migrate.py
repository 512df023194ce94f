"""Schema migrations, URL resolution, and the connector's refusal to run on an old schema."""

import sqlite3
import threading

import pytest
import pytest_twisted
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from buildfarm.master.db import model
from buildfarm.master.db.connector import DBConnector, SchemaNotCurrent
from buildfarm.master.db.engine import create_engine
from buildfarm.master.db.migrate import resolve_db_url, schema_is_current, upgrade_database
from buildfarm.master.db.testing import TEST_DB_URL


def test_relative_sqlite_path_is_resolved_against_basedir(tmp_path):
    resolved = resolve_db_url("sqlite:///state.sqlite", str(tmp_path))
    assert resolved == f"sqlite:///{tmp_path}/state.sqlite"


@pytest.mark.parametrize(
    "url",
    ["sqlite:////var/lib/master/state.sqlite", "sqlite://", "postgresql+psycopg://u:p@h/db"],
)
def test_absolute_memory_and_server_urls_are_left_alone(url):
    assert resolve_db_url(url, "/elsewhere") == url


def test_upgrade_brings_a_new_database_to_the_head(tmp_path):
    assert not schema_is_current(TEST_DB_URL, str(tmp_path))
    upgrade_database(TEST_DB_URL, str(tmp_path))
    assert schema_is_current(TEST_DB_URL, str(tmp_path))


def test_upgrading_a_current_database_changes_nothing(tmp_path):
    upgrade_database(TEST_DB_URL, str(tmp_path))
    upgrade_database(TEST_DB_URL, str(tmp_path))
    assert schema_is_current(TEST_DB_URL, str(tmp_path))


def test_migrations_create_exactly_the_tables_of_the_model(tmp_path):
    upgrade_database(TEST_DB_URL, str(tmp_path))
    engine = create_engine(TEST_DB_URL, str(tmp_path))
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), model.metadata)
    engine.dispose()
    assert differences == []


def test_sqlite_database_uses_wal_journal(tmp_path):
    upgrade_database(TEST_DB_URL, str(tmp_path))
    with sqlite3.connect(tmp_path / "state.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest_twisted.ensureDeferred
async def test_setup_on_an_empty_database_names_the_upgrade_command(tmp_path):
    (tmp_path / "state.sqlite").touch()
    connector = DBConnector(TEST_DB_URL, str(tmp_path))
    with pytest.raises(SchemaNotCurrent, match=f"run: buildmaster upgrade-master {tmp_path}$"):
        await connector.setup()
    assert connector.pool is None


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
    await DBConnector(TEST_DB_URL, str(tmp_path)).stopService()
