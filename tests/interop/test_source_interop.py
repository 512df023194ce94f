"""Source checkouts across the two implementations, in both directions: our source steps
run by a stock buildbot-worker 4.3 attached to a buildfarm master (the master sends only the
commands a 4.x worker has: shell, stat, listdir, rmdir, cpdir, downloadFile), and Buildbot
4.3's own source steps, on a stock master, run by our slave."""

from fixtures.sourcesteps import run_source_builds, served_repositories, source_builders
from fixtures.stock_buildbot import CONFIG_PREAMBLE, SUCCESS


def test_git_hg_and_svn_checkouts_and_change_builds_on_a_stock_worker(fleet, tmp_path):
    run_source_builds(fleet, tmp_path, lambda master: fleet.stock_worker(master, "bs1"))


def test_stock_masters_source_steps_check_out_on_our_slave(fleet, stock_masters, tmp_path):
    """The other direction: Buildbot 4.3's own Git, Mercurial and SVN steps, on a stock
    master, run their commands on our slave."""
    with served_repositories(tmp_path) as served:
        master = stock_masters.start(CONFIG_PREAMBLE + source_builders(served))
        fleet.slave(master, "bs1", "pass")
        master.wait_worker_connected("bs1")
        expected = {"git": ("git main", served["git"].head("main")),
                    "hg": ("hg default", served["hg"].node()), "svn": ("svn trunk", "1")}
        for builder, (text, revision) in expected.items():
            build = master.wait_build_finished(master.force("force", builder))
            assert build["results"] == SUCCESS, master.steps(build["buildid"])
            assert master.properties(build["buildid"])["got_revision"] == revision
            assert text in master.step_log(build["buildid"], 2)  # 0 is Buildbot's worker_preparation
        build = master.wait_build_finished(master.force("force", "git", branch="feature"))
        assert build["results"] == SUCCESS
        assert master.properties(build["buildid"])["got_revision"] == served["git"].head("feature")
