import pytest
import pytest_twisted

from buildfarm.master.db.testing import TEST_DB_URL, open_test_db
from fixtures.postgres import PostgresServer

DB_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the whole session, started on first use."""
    server = PostgresServer.start_new()
    yield server
    server.stop()


@pytest.fixture(params=DB_BACKENDS)
def db_url(request):
    """The URL of an empty database of each backend: a SQLite file in the test's
    directory, or a new database on the session's PostgreSQL server (dropped afterwards)."""
    if request.param == "sqlite":
        yield TEST_DB_URL
        return
    server = request.getfixturevalue("postgres_server")
    name = server.create_database()
    yield server.url(name)
    server.drop_database(name)


@pytest_twisted.async_yield_fixture
async def db(db_url, tmp_path):
    """A migrated database of each backend, its connector set up."""
    connector = await open_test_db(str(tmp_path), db_url)
    yield connector
    await connector.stopService()
