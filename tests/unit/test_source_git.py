"""steps.Git, GitHub and GitLab: the remote command sequences (scripted, in memory), then
checkouts of real repositories with the slave's own commands (file:// and git daemon)."""

import os

import pytest
import pytest_twisted
from twisted.internet import task

from buildfarm.common.results import EXCEPTION, FAILURE, SUCCESS
from buildfarm.master.process.properties import Interpolate
from buildfarm.master.process.steps.source.base import Patch, StepFailed
from buildfarm.master.process.steps.source.git import Git, GitHub, GitLab, url_from_scp_style
from fixtures.polling import wait_for
from fixtures.sourcesteps import (
    Expect,
    GitDaemon,
    GitRepo,
    LocalSlaveContext,
    ScriptedContext,
    left_over_after_rebuild,
    run_step,
    shell,
)

URL = "file:///srv/repo"
SHA = "a" * 40
OTHER_SHA = "b" * 40
VERSION = shell("build", "git", "--version", stdout="git version 2.39.5\n")
NOT_PATCHED = Expect("stat", args={"file": "build/.buildbot-patched"}, rc=2)
NOTHING_THERE = Expect("listdir", args={"dir": "build"}, rc=2)
A_CLONE = Expect("listdir", args={"dir": "build"}, updates={"files": [".git", "README"]})
GOT_REVISION = shell("build", "git", "rev-parse", "HEAD", stdout=SHA + "\n")
FETCH_HEAD = [shell("build", "git", "fetch", "-f", "--progress", URL, "HEAD"),
              shell("build", "git", "checkout", "-f", "FETCH_HEAD")]


def scripted(*script, properties=None, clock=None):
    return ScriptedContext(list(script), properties=properties, clock=clock)


async def run_checked(step, ctx):
    result = await run_step(step, ctx)
    ctx.assert_done()
    return result


# --- the command sequences ------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_incremental_first_build_clones_and_sets_got_revision():
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "clone", URL, ".", "--progress"), GOT_REVISION)
    assert await run_checked(Git(repourl=URL), ctx) == (SUCCESS, "update")
    assert ctx.properties.getProperty("got_revision") == SHA
    assert ctx.properties.getPropertySource("got_revision") == "Git"


@pytest_twisted.ensureDeferred
async def test_incremental_update_fetches_and_checks_out_fetch_head():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, *FETCH_HEAD, GOT_REVISION)
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_incremental_over_a_directory_that_is_not_a_clone_clobbers_it():
    ctx = scripted(VERSION, NOT_PATCHED, Expect("listdir", updates={"files": ["junk"]}),
                   Expect("rmdir", args={"dir": "build"}),
                   shell("build", "git", "clone", URL, ".", "--progress"), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_a_known_revision_on_a_branch_is_checked_out_without_fetching():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "cat-file", "-e", OTHER_SHA),
                   shell("build", "git", "checkout", "-f", OTHER_SHA),
                   shell("build", "git", "checkout", "-B", "release"), GOT_REVISION,
                   properties={"branch": "release", "revision": OTHER_SHA})
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_an_unknown_revision_is_fetched_with_its_branch():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "cat-file", "-e", OTHER_SHA, rc=128),
                   shell("build", "git", "fetch", "-f", "--progress", URL, "release"),
                   shell("build", "git", "checkout", "-f", OTHER_SHA),
                   shell("build", "git", "checkout", "-B", "release"), GOT_REVISION,
                   properties={"branch": "release", "revision": OTHER_SHA})
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_first_clone_of_a_branch_uses_clone_branch():
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "clone", "--branch", "dev", URL, ".", "--progress"), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, branch="dev"), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_full_fresh_is_the_default_method_and_removes_ignored_files():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, shell("build", "git", "clean", "-f", "-f", "-d", "-x"),
                   *FETCH_HEAD, GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, mode="full"), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_full_fresh_clones_again_when_clean_fails():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "clean", "-f", "-f", "-d", "-x", rc=1), Expect("rmdir"),
                   shell("build", "git", "clone", URL, ".", "--progress"), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, mode="full", method="fresh"), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_full_clean_keeps_ignored_files():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, shell("build", "git", "clean", "-f", "-f", "-d"),
                   *FETCH_HEAD, GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, mode="full", method="clean"), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_full_clobber_removes_the_workdir_and_clones_shallow():
    ctx = scripted(VERSION, NOT_PATCHED, Expect("rmdir", args={"dir": "build"}),
                   shell("build", "git", "clone", "--depth", "1", URL, ".", "--progress"), GOT_REVISION)
    step = Git(repourl=URL, mode="full", method="clobber", shallow=True)
    assert await run_checked(step, ctx) == (SUCCESS, "update")


@pytest_twisted.ensureDeferred
async def test_full_copy_updates_the_source_dir_and_copies_it():
    ctx = scripted(VERSION, NOT_PATCHED, Expect("rmdir", args={"dir": "build"}),
                   Expect("listdir", args={"dir": "source"}, updates={"files": [".git"]}),
                   shell("source", "git", "fetch", "-f", "--progress", URL, "HEAD"),
                   shell("source", "git", "checkout", "-f", "FETCH_HEAD"),
                   Expect("cpdir", args={"fromdir": "source", "todir": "build"}), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, mode="full", method="copy"), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_submodules_are_synced_updated_and_cleaned():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, shell("build", "git", "clean", "-f", "-f", "-d", "-x"),
                   *FETCH_HEAD,
                   shell("build", "git", "submodule", "sync"),
                   shell("build", "git", "submodule", "update", "--init", "--recursive", "--force",
                         "--checkout"),
                   shell("build", "git", "submodule", "foreach", "--recursive", "git clean -f -f -d -x"),
                   shell("build", "git", "clean", "-f", "-f", "-d", "-x"), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, mode="full", submodules=True), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_a_failed_fetch_fails_the_step():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "fetch", "-f", "--progress", URL, "HEAD", rc=128))
    assert await run_checked(Git(repourl=URL), ctx) == (FAILURE, "update (failure)")
    assert f"git fetch -f --progress {URL} HEAD failed (exit code 128)" in ctx.log_text()
    assert ctx.properties.getProperty("got_revision") is None


@pytest_twisted.ensureDeferred
async def test_retry_fetch_fetches_once_more_after_a_failure():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "fetch", "-f", "--progress", URL, "HEAD", rc=128),
                   *FETCH_HEAD, GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, retryFetch=True), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_clobber_on_failure_clones_afresh_when_fetch_fails():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "fetch", "-f", "--progress", URL, "HEAD", rc=128),
                   Expect("rmdir"), shell("build", "git", "clone", URL, ".", "--progress"), GOT_REVISION)
    assert (await run_checked(Git(repourl=URL, clobberOnFailure=True), ctx))[0] == SUCCESS


def test_retry_waits_on_the_master_clock_then_clobbers_and_clones_again():
    clock = task.Clock()
    clone = ["git", "clone", URL, ".", "--progress"]
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE, shell("build", *clone, rc=128),
                   Expect("rmdir", args={"dir": "build"}), shell("build", *clone), GOT_REVISION, clock=clock)
    d = run_step(Git(repourl=URL, retry=(30, 2)), ctx)
    assert not d.called and len(ctx.script) == 3  # waiting, not retrying at once
    clock.advance(29)
    assert len(ctx.script) == 3
    clock.advance(1)
    assert d.result == (SUCCESS, "update")
    ctx.assert_done()


def test_retry_gives_up_after_its_repeats():
    clock = task.Clock()
    clone = ["git", "clone", URL, ".", "--progress"]
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE, shell("build", *clone, rc=128),
                   Expect("rmdir"), shell("build", *clone, rc=128), clock=clock)
    d = run_step(Git(repourl=URL, retry=(5, 1)), ctx)
    clock.advance(5)
    assert d.result == (FAILURE, "update (failure)")
    ctx.assert_done()


def test_a_build_stopped_while_retry_waits_tries_no_more():
    clock = task.Clock()
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "clone", URL, ".", "--progress", rc=128), clock=clock)
    d = run_step(Git(repourl=URL, retry=(30, 5)), ctx)
    ctx.build.stopped = "stopped by a user"
    clock.advance(30)
    assert d.result == (FAILURE, "update (failure)")
    ctx.assert_done()


def test_the_steps_are_in_plugins_steps():
    from buildfarm.master.plugins import steps
    from buildfarm.master.process.steps.source.mercurial import Mercurial
    from buildfarm.master.process.steps.source.svn import SVN
    assert (steps.Git, steps.GitHub, steps.GitLab, steps.Mercurial, steps.SVN) == (Git, GitHub, GitLab,
                                                                                 Mercurial, SVN)


@pytest_twisted.ensureDeferred
async def test_a_patch_is_applied_to_the_index_and_marks_the_tree():
    body = "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-x\n+y\n"
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, *FETCH_HEAD,
                   shell("build", "git", "update-index", "--refresh"),
                   Expect("downloadFile", args={"workdir": "build", "workerdest": ".buildbot-patched"}),
                   shell("build", "git", "apply", "--index", "-p", "1"), GOT_REVISION,
                   properties={"patch": (1, body)})
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS
    [apply] = [args for name, args in ctx.commands if name == "shell" and "apply" in args["command"]]
    assert apply["initial_stdin"] == body
    assert ctx.logs["patch"].text == body


@pytest.mark.parametrize(("value", "patch"), [
    (None, None),
    ((1, "body"), Patch(1, "body")),
    ([0, b"body", "sub"], Patch(0, "body", "sub")),
    ({"level": "2", "body": "body", "subdir": None}, Patch(2, "body")),
])
def test_patches_come_in_buildbots_shapes(value, patch):
    assert Patch.from_value(value) == patch


def test_a_malformed_patch_fails_the_step_with_a_reason():
    with pytest.raises(StepFailed, match="integer level"):
        Patch.from_value({"level": "one", "body": "x"})


@pytest_twisted.ensureDeferred
async def test_a_patched_tree_is_cleaned_first():
    ctx = scripted(VERSION, Expect("stat", rc=0), shell("build", "git", "clean", "-f", "-f", "-d", "-x"),
                   A_CLONE, *FETCH_HEAD, GOT_REVISION)
    assert (await run_checked(Git(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_codebase_sets_got_revision_per_codebase_and_names_the_step():
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "clone", URL, ".", "--progress"), GOT_REVISION,
                   properties={"got_revision": {"other": OTHER_SHA}})
    step = Git(repourl=URL, codebase="lib")
    assert step.name == "git-lib"
    assert await run_checked(step, ctx) == (SUCCESS, "update lib")
    assert ctx.properties.getProperty("got_revision") == {"other": OTHER_SHA, "lib": SHA}


@pytest_twisted.ensureDeferred
async def test_sourcestamps_property_picks_the_codebase_and_a_missing_one_fails():
    stamps = [{"codebase": "lib", "branch": "dev", "revision": None}]
    ctx = scripted(VERSION, NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "clone", "--branch", "dev", URL, ".", "--progress"), GOT_REVISION,
                   properties={"sourcestamps": stamps})
    assert (await run_checked(Git(repourl=URL, codebase="lib"), ctx))[0] == SUCCESS
    missing = scripted(properties={"sourcestamps": stamps})
    result = await run_checked(Git(repourl=URL, codebase="app"), missing)
    assert result == (FAILURE, "Codebase app not in build")


@pytest_twisted.ensureDeferred
async def test_always_use_latest_ignores_the_builds_revision():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, *FETCH_HEAD, GOT_REVISION,
                   properties={"revision": OTHER_SHA})
    assert (await run_checked(Git(repourl=URL, alwaysUseLatest=True), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_repourl_is_rendered_and_config_env_and_timeout_reach_the_command():
    url = "file:///srv/widgets"
    ctx = scripted(shell("build", "git", "-c", "core.autocrlf=false", "--version",
                         stdout="git version 2.39.5"),
                   NOT_PATCHED, NOTHING_THERE,
                   shell("build", "git", "-c", "core.autocrlf=false", "clone", url, ".", "--progress"),
                   shell("build", "git", "-c", "core.autocrlf=false", "rev-parse", "HEAD", stdout=SHA),
                   properties={"project": "widgets"})
    step = Git(repourl=Interpolate("file:///srv/%(prop:project)s"), config={"core.autocrlf": "false"},
               env={"GIT_TRACE": "0"}, timeout=77, logEnviron=False)
    assert (await run_checked(step, ctx))[0] == SUCCESS
    clone = ctx.commands[3][1]
    assert clone["env"] == {"GIT_TRACE": "0"} and clone["timeout"] == 77 and clone["logEnviron"] is False


@pytest_twisted.ensureDeferred
async def test_a_repourl_that_renders_to_nothing_fails_the_step_with_a_reason():
    ctx = scripted()
    step = Git(repourl=Interpolate("%(prop:missing)s"))
    assert await run_checked(step, ctx) == (FAILURE, "update (failure)")
    assert "repourl rendered to '', not a URL" in ctx.log_text()


@pytest_twisted.ensureDeferred
async def test_get_description_sets_commit_description():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE, *FETCH_HEAD, GOT_REVISION,
                   shell("build", "git", "describe", "--tags", "--abbrev=0", "HEAD", stdout="v1.2\n"))
    step = Git(repourl=URL, getDescription={"tags": True, "abbrev": 0})
    assert (await run_checked(step, ctx))[0] == SUCCESS
    assert ctx.properties.getProperty("commit-description") == "v1.2"


@pytest_twisted.ensureDeferred
async def test_a_slave_without_git_ends_the_step_with_an_exception():
    ctx = scripted(shell("build", "git", "--version", rc=127))
    assert await run_checked(Git(repourl=URL), ctx) == (EXCEPTION, "git is not installed on the slave")


@pytest_twisted.ensureDeferred
async def test_github_builds_a_merge_branch_at_its_newest_revision():
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "fetch", "-f", "--progress", URL, "refs/pull/7/merge"),
                   shell("build", "git", "checkout", "-f", "FETCH_HEAD"),
                   shell("build", "git", "checkout", "-B", "refs/pull/7/merge"), GOT_REVISION,
                   properties={"branch": "refs/pull/7/merge", "revision": OTHER_SHA})
    assert (await run_checked(GitHub(repourl=URL), ctx))[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_gitlab_merge_request_checks_out_the_source_branch_of_the_source_repository():
    fork = "ssh://git@gitlab.example/fork/widgets.git"
    ctx = scripted(VERSION, NOT_PATCHED, A_CLONE,
                   shell("build", "git", "fetch", "-f", "--progress", fork, "feature"),
                   shell("build", "git", "checkout", "-f", "FETCH_HEAD"),
                   shell("build", "git", "checkout", "-B", "feature"), GOT_REVISION,
                   properties={"target_branch": "main", "source_branch": "feature",
                               "source_git_ssh_url": fork, "revision": OTHER_SHA})
    assert (await run_checked(GitLab(repourl=URL), ctx))[0] == SUCCESS


def test_scp_style_addresses_become_ssh_urls_with_the_port():
    assert url_from_scp_style("git@host:org/repo.git", 2222) == "ssh://git@host:2222/org/repo.git"
    assert url_from_scp_style("https://host/repo.git") == "https://host/repo.git"
    assert url_from_scp_style("/srv/repo") == "/srv/repo"


@pytest.mark.parametrize(("kwargs", "problem"), [
    ({}, "Git: must provide repourl"),
    ({"repourl": URL, "mode": "update"}, "Git: mode must be 'incremental' or 'full', not 'update'"),
    ({"repourl": URL, "mode": "full", "method": "export"}, "Git: method must be one of"),
    ({"repourl": URL, "mode": "full", "method": "fresh", "shallow": True},
     "Git: in mode 'full' shallow only possible with method 'clobber'"),
    ({"repourl": URL, "retry": 3}, "Git: retry must be (delay in seconds, number of retries)"),
    ({"repourl": URL, "getDescription": "yes"}, "Git: getDescription must be a boolean or a dict"),
    ({"repourl": URL, "sshPrivateKey": "KEY"},
     "not supported by buildfarm: Git(sshPrivateKey=...) (Buildbot's steps.Git sshPrivateKey)"),
    ({"repourl": URL, "colour": "red"}, "Git got an unknown argument 'colour'"),
])
def test_bad_arguments_are_config_problems(kwargs, problem):
    problems = Git(**kwargs).config_problems()
    assert any(p.startswith(problem) for p in problems), problems


def test_a_source_step_halts_the_build_on_failure_by_default():
    assert Git(repourl=URL).haltOnFailure is True
    assert Git(repourl=URL, haltOnFailure=False).haltOnFailure is False


# --- real repositories, the slave's own commands ---------------------------------------------

def slave_ctx(tmp_path, name="slave", **properties):
    return LocalSlaveContext(tmp_path / name, properties=properties)


@pytest_twisted.ensureDeferred
async def test_real_incremental_checkout_follows_new_commits_and_keeps_untracked_files(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    first = repo.commit({"a.txt": "one\n"})
    ctx = slave_ctx(tmp_path)
    assert (await run_step(Git(repourl=repo.url, logEnviron=False), ctx))[0] == SUCCESS
    assert ctx.properties.getProperty("got_revision") == first
    with open(ctx.path("build", "scratch.o"), "w") as f:
        f.write("built")
    second = repo.commit({"a.txt": "two\n"})
    ctx2 = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(Git(repourl=repo.url, logEnviron=False), ctx2))[0] == SUCCESS
    assert ctx2.properties.getProperty("got_revision") == second
    assert ctx2.read("build", "a.txt") == "two\n"
    assert os.path.exists(ctx2.path("build", "scratch.o"))


@pytest_twisted.ensureDeferred
async def test_real_full_fresh_and_clean_differ_on_ignored_files(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({".gitignore": "*.o\n", "a.txt": "one\n"})
    fresh = Git(repourl=repo.url, mode="full", method="fresh", logEnviron=False)
    assert await left_over_after_rebuild(fresh, tmp_path / "fresh") == set()
    clean = Git(repourl=repo.url, mode="full", method="clean", logEnviron=False)
    assert await left_over_after_rebuild(clean, tmp_path / "clean") == {"x.o"}


@pytest_twisted.ensureDeferred
async def test_real_clobber_and_copy_start_from_a_new_tree(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    head = repo.commit({"a.txt": "one\n"})
    for method in ("clobber", "copy"):
        ctx = slave_ctx(tmp_path, name=method)
        os.makedirs(ctx.path("build"))
        with open(ctx.path("build", "stale"), "w") as f:
            f.write("x")
        assert (await run_step(Git(repourl=repo.url, mode="full", method=method), ctx))[0] == SUCCESS
        assert not os.path.exists(ctx.path("build", "stale")), method
        assert ctx.read("build", "a.txt") == "one\n"
        assert ctx.properties.getProperty("got_revision") == head
    assert os.path.isdir(ctx.path("source", ".git"))  # copy keeps its clone for the next build


@pytest_twisted.ensureDeferred
async def test_real_branch_switch_and_a_named_revision(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    main = repo.commit({"a.txt": "main\n"})
    repo.git("checkout", "-q", "-b", "feature")
    feature = repo.commit({"a.txt": "feature\n"})
    repo.git("checkout", "-q", "main")
    for branch, revision, text in (("feature", None, "feature\n"), ("main", None, "main\n"),
                                   ("feature", main, "main\n")):
        ctx = slave_ctx(tmp_path, branch=branch, revision=revision)
        assert (await run_step(Git(repourl=repo.url), ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.read("build", "a.txt") == text
        assert ctx.properties.getProperty("got_revision") == (revision or repo.head(branch))
    assert feature == repo.head("feature")


@pytest_twisted.ensureDeferred
async def test_real_submodule_is_checked_out_and_follows_the_superproject(tmp_path):
    lib = GitRepo(tmp_path / "lib")
    lib.commit({"lib.txt": "v1\n"})
    app = GitRepo(tmp_path / "app")
    app.git("-c", "protocol.file.allow=always", "submodule", "add", "-q", lib.url, "lib")
    app.commit({"app.txt": "app\n"})
    step = dict(repourl=app.url, submodules=True, config={"protocol.file.allow": "always"}, logEnviron=False)
    ctx = slave_ctx(tmp_path)
    assert (await run_step(Git(**step), ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "lib", "lib.txt") == "v1\n"
    lib.commit({"lib.txt": "v2\n"})
    app.git("-c", "protocol.file.allow=always", "submodule", "update", "--remote", "-q", "lib")
    app.commit({}, "bump lib")
    ctx = slave_ctx(tmp_path)
    assert (await run_step(Git(mode="full", **step), ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "lib", "lib.txt") == "v2\n"


@pytest_twisted.ensureDeferred
async def test_real_patch_is_applied_and_removed_by_the_next_build(tmp_path):
    repo = GitRepo(tmp_path / "repo")
    repo.commit({"a.txt": "one\n"})
    patch = "--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-one\n+patched\n"
    ctx = slave_ctx(tmp_path, patch=(1, patch))
    assert (await run_step(Git(repourl=repo.url), ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "a.txt") == "patched\n"
    ctx = slave_ctx(tmp_path)
    assert (await run_step(Git(repourl=repo.url), ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "a.txt") == "one\n"
    assert not os.path.exists(ctx.path("build", ".buildbot-patched"))


@pytest_twisted.ensureDeferred
async def test_real_clone_of_a_missing_repository_retries_until_it_appears(tmp_path):
    clock = task.Clock()
    path = tmp_path / "late"
    ctx = LocalSlaveContext(tmp_path / "slave", clock=clock)
    d = run_step(Git(repourl=f"file://{path}", retry=(60, 1), logEnviron=False), ctx)
    await wait_for(lambda: clock.getDelayedCalls(), "the first clone to fail")
    assert "checkout failed, trying 1 more times after 60 seconds" in ctx.log_text()
    repo = GitRepo(path)
    head = repo.commit({"a.txt": "late\n"})
    clock.advance(60)
    assert await d == (SUCCESS, "update")
    assert ctx.properties.getProperty("got_revision") == head


@pytest_twisted.ensureDeferred
async def test_real_fetch_from_a_git_daemon_on_loopback(tmp_path):
    repo = GitRepo(tmp_path / "served" / "widgets")
    first = repo.commit({"a.txt": "one\n"})
    daemon = GitDaemon(tmp_path / "served")
    try:
        await daemon.wait_ready("widgets")
        ctx = slave_ctx(tmp_path)
        step = Git(repourl=daemon.url("widgets"), logEnviron=False)
        assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.properties.getProperty("got_revision") == first
        second = repo.commit({"a.txt": "two\n"})
        ctx = slave_ctx(tmp_path)
        assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.properties.getProperty("got_revision") == second
        assert ctx.read("build", "a.txt") == "two\n"
    finally:
        daemon.stop()
