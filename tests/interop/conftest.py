import pytest

from fixtures.daemons import Fleet
from fixtures.stock_buildbot import StockMasters


@pytest.fixture
def stock_masters(tmp_path):
    """Stock Buildbot masters started by this test, stopped when it ends."""
    started = StockMasters(str(tmp_path))
    yield started
    started.stop_all()


@pytest.fixture
def fleet(tmp_path):
    """buildfarm masters and slaves started by this test, stopped when it ends."""
    started = Fleet(str(tmp_path))
    yield started
    started.stop_all()
