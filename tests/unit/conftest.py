import pytest_twisted

from buildfarm.master.db.testing import open_test_db


@pytest_twisted.async_yield_fixture
async def db(tmp_path):
    """A migrated SQLite database in the test's directory, its connector set up."""
    connector = await open_test_db(str(tmp_path))
    yield connector
    await connector.stopService()
