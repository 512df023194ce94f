import pytest_twisted

from buildfarm.master.db.testing import open_test_db


@pytest_twisted.async_yield_fixture
async def db(db_url, tmp_path):
    """A migrated database of each backend, its connector set up."""
    connector = await open_test_db(str(tmp_path), db_url)
    yield connector
    await connector.stopService()
