import pytest_twisted

from buildfarm.master.db.testing import TEST_DB_URL, open_test_db


@pytest_twisted.async_yield_fixture
async def db(db_url, tmp_path):
    """A migrated database of each backend, its connector set up."""
    connector = await open_test_db(str(tmp_path), db_url)
    yield connector
    await connector.stopService()


@pytest_twisted.async_yield_fixture
async def sqlite_db(tmp_path):
    """A migrated SQLite database under the test's folder, its connector set up (tests that
    run real processes beside it, where one backend is enough)."""
    connector = await open_test_db(str(tmp_path), TEST_DB_URL)
    yield connector
    await connector.stopService()
