"""The source checkout steps run by a stock buildbot-worker 4.3 attached to a buildfarm master:
the master sends only the commands a 4.x worker has (shell, stat, listdir, rmdir, cpdir,
downloadFile), so git, hg and svn checkouts build there as on our own slave."""

import pytest

from fixtures.sourcesteps import (
    check_change_builds,
    check_source_builds,
    served_repositories,
    source_master,
)


@pytest.fixture
def served(tmp_path):
    with served_repositories(tmp_path) as repositories:
        yield repositories


def test_git_hg_and_svn_checkouts_and_change_builds_on_a_stock_worker(fleet, served):
    master = source_master(fleet, served)
    fleet.stock_worker(master, "bs1")
    master.wait_attached("bs1")
    check_source_builds(master, served)
    check_change_builds(master, served)
