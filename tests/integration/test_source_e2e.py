"""Source checkout steps in real builds: a real master and slave on loopback, repositories
served by git daemon and hg serve, and a Subversion repository over file://; forced builds
(a branch switch, got_revision, commit-description) and builds of posted changes (one with
a try-style patch)."""

from fixtures.sourcesteps import run_source_builds


def test_git_hg_and_svn_checkouts_and_change_builds_on_our_slave(fleet, tmp_path):
    run_source_builds(fleet, tmp_path, lambda master: fleet.slave(master))
