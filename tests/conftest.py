import pytest

from buildfarm.master.db.testing import TEST_DB_URL
from fixtures.daemons import Fleet
from fixtures.fixedports import hold_fixed_ports
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


@pytest.fixture
def db_url_postgresql(postgres_server, request):
    """A new, empty database on the session's PostgreSQL server (dropped afterwards).  A test's
    masters are stopped before their database is dropped: a master whose database vanished
    under it keeps retrying it while it shuts down, until the fleet's stop deadline kills it."""
    fleet = request.getfixturevalue("fleet") if "fleet" in request.fixturenames else None
    name = postgres_server.create_database()
    yield postgres_server.url(name)
    if fleet is not None:
        fleet.stop_all()
    postgres_server.drop_database(name)


@pytest.fixture
def fleet(tmp_path):
    """Masters and slaves started by this test, stopped when it ends."""
    started = Fleet(str(tmp_path))
    yield started
    started.stop_all()


@pytest.fixture
def fixed_ports():
    """For a test that listens on a fixed port (9989, 8010, ... as a stock sample.cfg does):
    it runs only while no other such test does, in this pytest process, another xdist worker
    or another run on this machine (``@pytest.mark.usefixtures("fixed_ports")``)."""
    with hold_fixed_ports():
        yield
