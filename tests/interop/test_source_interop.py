"""The source checkout steps run by a stock buildbot-worker 4.3 attached to a buildfarm master:
the master sends only the commands a 4.x worker has (shell, stat, listdir, rmdir, cpdir,
downloadFile), so git, hg and svn checkouts, and a try-style patch, build there as on our
own slave."""

from fixtures.sourcesteps import run_source_builds


def test_git_hg_and_svn_checkouts_and_change_builds_on_a_stock_worker(fleet, tmp_path):
    run_source_builds(fleet, tmp_path, lambda master: fleet.stock_worker(master, "bs1"))
