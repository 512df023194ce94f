"""steps.Mercurial: command sequences (scripted, in memory) and checkouts of real
repositories with the slave's own commands."""

import os

import pytest
import pytest_twisted

from buildfarm.common.results import EXCEPTION, SUCCESS
from buildfarm.master.process.steps.source.mercurial import Mercurial
from fixtures.sourcesteps import (
    Expect,
    HgRepo,
    LocalSlaveContext,
    left_over_after_rebuild,
    run_scripted,
    run_step,
    shell,
)

URL = "http://hg.example/repo"
NODE = "c" * 40
VERSION = shell("build", "hg", "--verbose", "--version")
HAS_HG = Expect("stat", args={"file": "build/.hg"})
NO_HG = Expect("stat", args={"file": "build/.hg"}, rc=2)
PARENTS = shell("build", "hg", "--verbose", "parents", "--template", "{node}\\n", stdout=NODE + "\n")
NO_ADDED = shell("build", "hg", "--verbose", "locate", "set:added()", rc=1)


@pytest_twisted.ensureDeferred
async def test_incremental_first_build_clones_and_updates():
    (result, _), ctx = await run_scripted(
        Mercurial(repourl=URL), VERSION, NO_HG,
        shell("build", "hg", "--verbose", "clone", "--noupdate", URL, "."), NO_ADDED,
        shell("build", "hg", "--verbose", "update", "--clean"), PARENTS)
    assert result == SUCCESS
    assert ctx.properties.getProperty("got_revision") == NODE


@pytest_twisted.ensureDeferred
async def test_inrepo_branch_update_pulls_that_branch():
    (result, _), _ = await run_scripted(
        Mercurial(repourl=URL, branchType="inrepo"), VERSION, HAS_HG,
        shell("build", "hg", "--verbose", "pull", URL, "--rev", "stable"),
        shell("build", "hg", "--verbose", "identify", "--branch", stdout="stable\n"), NO_ADDED,
        shell("build", "hg", "--verbose", "update", "--clean", "--rev", "stable"), PARENTS,
        properties={"branch": "stable"})
    assert result == SUCCESS


@pytest_twisted.ensureDeferred
async def test_inrepo_branch_change_clobbers():
    (result, _), _ = await run_scripted(
        Mercurial(repourl=URL, branchType="inrepo"), VERSION, HAS_HG,
        shell("build", "hg", "--verbose", "pull", URL, "--rev", "stable"),
        shell("build", "hg", "--verbose", "identify", "--branch", stdout="default\n"),
        Expect("rmdir", args={"dir": "build"}),
        shell("build", "hg", "--verbose", "clone", "--noupdate", URL, "."),
        shell("build", "hg", "--verbose", "update", "--clean", "--rev", "stable"), PARENTS,
        properties={"branch": "stable"})
    assert result == SUCCESS


@pytest.mark.parametrize(("method", "purge"), [("fresh", ["purge", "--all"]), ("clean", ["purge"])])
@pytest_twisted.ensureDeferred
async def test_full_fresh_and_clean_purge_then_pull(method, purge):
    (result, _), _ = await run_scripted(
        Mercurial(repourl=URL, mode="full", method=method), VERSION, HAS_HG,
        shell("build", "hg", "--verbose", "--config", "extensions.purge=", *purge),
        shell("build", "hg", "--verbose", "pull", URL), NO_ADDED,
        shell("build", "hg", "--verbose", "update", "--clean"), PARENTS)
    assert result == SUCCESS


@pytest_twisted.ensureDeferred
async def test_a_slave_without_hg_ends_the_step_with_an_exception():
    (result, _), _ = await run_scripted(Mercurial(repourl=URL), shell("build", "hg", "--verbose", "--version",
                                                                      rc=127))
    assert result == EXCEPTION


def test_bad_arguments_are_config_problems():
    assert Mercurial(repourl=URL, mode="full", method="copy").config_problems() == [
        "Mercurial: method must be one of clean, fresh, clobber, not 'copy'"]
    assert "Mercurial: you must provide a repourl" in Mercurial().config_problems()
    assert Mercurial(repourl=URL, branchType="named").config_problems() == [
        "Mercurial: branchType must be 'dirname' or 'inrepo', not 'named'"]


# --- real repositories -----------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_real_incremental_checkout_follows_commits_and_sets_got_revision(tmp_path):
    repo = HgRepo(tmp_path / "repo")
    first = repo.commit({"a.txt": "one\n"})
    step = Mercurial(repourl=repo.url, branchType="inrepo", logEnviron=False)
    ctx = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.properties.getProperty("got_revision") == first
    second = repo.commit({"a.txt": "two\n"})
    ctx = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.properties.getProperty("got_revision") == second
    assert ctx.read("build", "a.txt") == "two\n"


@pytest_twisted.ensureDeferred
async def test_real_inrepo_branch_switch_and_named_revision(tmp_path):
    repo = HgRepo(tmp_path / "repo")
    default = repo.commit({"a.txt": "default\n"})
    repo.hg("branch", "-q", "stable")
    stable = repo.commit({"a.txt": "stable\n"})
    repo.hg("update", "-q", "default")
    step = Mercurial(repourl=repo.url, branchType="inrepo", logEnviron=False)
    builds = (("stable", None, "stable\n", stable), (None, None, "default\n", default),
              ("stable", default, "default\n", default))
    for branch, revision, text, node in builds:
        ctx = LocalSlaveContext(tmp_path / "slave", properties={"branch": branch, "revision": revision})
        assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.read("build", "a.txt") == text
        assert ctx.properties.getProperty("got_revision") == node


@pytest.mark.parametrize(("method", "ignored_kept"), [("fresh", False), ("clean", True)])
@pytest_twisted.ensureDeferred
async def test_real_full_methods_purge_untracked_files(tmp_path, method, ignored_kept):
    repo = HgRepo(tmp_path / "repo")
    repo.commit({".hgignore": "syntax: glob\n*.o\n", "a.txt": "one\n"})
    step = Mercurial(repourl=repo.url, branchType="inrepo", mode="full", method=method, logEnviron=False)
    assert await left_over_after_rebuild(step, tmp_path / "slave") == ({"x.o"} if ignored_kept else set())


@pytest_twisted.ensureDeferred
async def test_real_clobber_and_a_patch(tmp_path):
    repo = HgRepo(tmp_path / "repo")
    node = repo.commit({"a.txt": "one\n"})
    patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+patched\n"
    ctx = LocalSlaveContext(tmp_path / "slave", properties={"patch": {"level": 1, "body": patch}})
    os.makedirs(ctx.path("build"))
    step = Mercurial(repourl=repo.url, branchType="inrepo", mode="full", method="clobber", logEnviron=False)
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "a.txt") == "patched\n"
    assert ctx.properties.getProperty("got_revision") == node


@pytest_twisted.ensureDeferred
async def test_real_dirname_branches_append_the_branch_to_the_url(tmp_path):
    trunk = HgRepo(tmp_path / "repos" / "trunk")
    trunk.commit({"a.txt": "trunk\n"})
    trunk.hg("clone", "-q", trunk.path, str(tmp_path / "repos" / "release"))
    release = HgRepo.existing(tmp_path / "repos" / "release")
    release.commit({"a.txt": "release\n"})
    step = Mercurial(repourl=f"file://{tmp_path}/repos/", defaultBranch="trunk", logEnviron=False)
    for branch, text in ((None, "trunk\n"), ("release", "release\n")):
        ctx = LocalSlaveContext(tmp_path / "slave", properties={"branch": branch})
        assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.read("build", "a.txt") == text
