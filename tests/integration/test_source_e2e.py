"""Source checkout steps in real builds: a real master and slave on loopback, repositories
served by git daemon and hg serve, and a Subversion repository over file://."""

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


def test_git_hg_and_svn_checkouts_and_change_builds_on_our_slave(fleet, served):
    master = source_master(fleet, served)
    fleet.slave(master)
    master.wait_attached("bs1")
    check_source_builds(master, served)
    check_change_builds(master, served)
