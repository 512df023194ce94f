import pytest

from fixtures.daemons import Fleet


@pytest.fixture
def fleet(tmp_path):
    """Masters and slaves started by this test, stopped when it ends."""
    started = Fleet(str(tmp_path))
    yield started
    started.stop_all()
