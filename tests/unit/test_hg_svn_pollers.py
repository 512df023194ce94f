"""HgPoller and SVNPoller on real Mercurial and Subversion repositories made by the test,
their state in a real database: what they report, which branches, and across a restart."""

import pytest
import pytest_twisted

from buildfarm.master.changes.hgpoller import HgPoller
from buildfarm.master.changes.svnpoller import SVNPoller, split_file_branches, split_file_projects_branches
from fixtures.pollers import PollerMaster, poll
from fixtures.repos import HgRepo, SvnRepo


@pytest.fixture
def hg_repo(tmp_path):
    repo = HgRepo(str(tmp_path / "hg-upstream"))
    repo.commit("README", "hello\n", "first")
    return repo


@pytest.fixture
def svn_repo(tmp_path):
    repo = SvnRepo(str(tmp_path / "svn-upstream"))
    repo.commit("trunk/README", "hello\n", "first")
    return repo


# -- Mercurial -------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_hg_first_poll_reports_nothing_then_each_new_changeset_once(sqlite_db, hg_repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = HgPoller(hg_repo.url, workdir="hg-work", project="hello")
    assert await poll(poller, master) == []
    nodes = [hg_repo.commit("src/a.c", str(i), f"change {i}", when=1_700_000_000 + i) for i in range(2)]
    changes = await poll(poller, master)
    assert [c["revision"] for c in changes] == nodes
    assert changes[0]["author"] == "Ann Author <ann@example.org>"
    assert changes[0]["comments"] == "change 0"
    assert changes[0]["files"] == ["src/a.c"]
    assert changes[0]["when_timestamp"] == 1_700_000_000
    assert (changes[0]["branch"], changes[0]["project"], changes[0]["repository"]) == (
        "default", "hello", hg_repo.url)
    assert [c["revision"] for c in await poll(poller, master)] == nodes  # nothing repeated


@pytest_twisted.ensureDeferred
async def test_hg_restart_neither_loses_nor_repeats(sqlite_db, hg_repo, tmp_path):
    await poll(HgPoller(hg_repo.url, workdir="hg-work"), PollerMaster(sqlite_db, str(tmp_path)))
    node = hg_repo.commit("a", "1", "while down")
    changes = await poll(HgPoller(hg_repo.url, workdir="hg-work"), PollerMaster(sqlite_db, str(tmp_path)))
    changes = await poll(HgPoller(hg_repo.url, workdir="hg-work"), PollerMaster(sqlite_db, str(tmp_path)))
    assert [c["revision"] for c in changes] == [node]


@pytest_twisted.ensureDeferred
async def test_hg_follows_only_the_named_branches(sqlite_db, hg_repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = HgPoller(hg_repo.url, branches=["stable"], workdir="hg-work")
    hg_repo.branch("stable")
    hg_repo.commit("s", "0", "open stable")
    await poll(poller, master)
    node = hg_repo.commit("s", "1", "fix on stable")
    hg_repo.update("default")
    hg_repo.commit("d", "1", "not followed")
    assert [(c["branch"], c["revision"]) for c in await poll(poller, master)] == [("stable", node)]


@pytest_twisted.ensureDeferred
async def test_hg_branches_true_reports_a_new_branch(sqlite_db, hg_repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = HgPoller(hg_repo.url, branches=True, workdir="hg-work")
    await poll(poller, master)
    hg_repo.branch("feature")
    node = hg_repo.commit("f", "1", "feature work")
    assert [(c["branch"], c["revision"]) for c in await poll(poller, master)] == [("feature", node)]


# -- Subversion ------------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_svn_first_poll_reports_nothing_then_each_new_revision_once(sqlite_db, svn_repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = SVNPoller(svn_repo.url + "/trunk", project="hello")
    assert await poll(poller, master) == []
    revs = [svn_repo.commit("trunk/src/a.c", str(i), f"change {i}") for i in range(2)]
    changes = await poll(poller, master)
    assert [c["revision"] for c in changes] == [str(r) for r in revs]
    assert (changes[0]["author"], changes[0]["comments"]) == ("ann", "change 0")
    assert (changes[0]["files"], changes[1]["files"]) == (["src/", "src/a.c"], ["src/a.c"])
    assert (changes[0]["branch"], changes[0]["project"]) == (None, "hello")
    assert changes[0]["when_timestamp"] > 1_600_000_000
    assert [c["revision"] for c in await poll(poller, master)] == [str(r) for r in revs]


@pytest_twisted.ensureDeferred
async def test_svn_restart_neither_loses_nor_repeats(sqlite_db, svn_repo, tmp_path):
    await poll(SVNPoller(svn_repo.url), PollerMaster(sqlite_db, str(tmp_path)))
    rev = svn_repo.commit("trunk/a", "1", "while down")
    await poll(SVNPoller(svn_repo.url), PollerMaster(sqlite_db, str(tmp_path)))
    changes = await poll(SVNPoller(svn_repo.url), PollerMaster(sqlite_db, str(tmp_path)))
    assert [c["revision"] for c in changes] == [str(rev)]


@pytest_twisted.ensureDeferred
async def test_svn_split_file_puts_each_path_on_its_branch(sqlite_db, svn_repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = SVNPoller(svn_repo.url, split_file=split_file_branches)
    await poll(poller, master)
    svn_repo.commit("branches/rel-1/fix.c", "1", "on a branch")
    svn_repo.commit("tags/v1/x", "1", "ignored by split_file")
    svn_repo.commit("trunk/main.c", "1", "on trunk")
    changes = await poll(poller, master)
    assert [(c["branch"], c["files"]) for c in changes] == [("branches/rel-1", ["fix.c"]), (None, ["main.c"])]


def test_svn_split_file_helpers_follow_buildbot():
    assert split_file_branches("trunk/a/b.c") == (None, "a/b.c")
    assert split_file_branches("branches/b1/x") == ("branches/b1", "x")
    assert split_file_branches("tags/v1/x") is None
    assert split_file_projects_branches("proj/branches/b1/x") == {"project": "proj", "branch": "branches/b1",
                                                                  "path": "x"}
