"""steps.SVN: command sequences (scripted, in memory) and checkouts of real repositories
with the slave's own commands (file:// and svnserve on loopback)."""

import os
import subprocess

import pytest
import pytest_twisted

from buildfarm.common.results import FAILURE, SUCCESS
from buildfarm.master.process.steps.source.svn import SVN, canonical_svn_url, unversioned_files
from fixtures.daemons import free_port, stop_process
from fixtures.polling import wait_for
from fixtures.sourcesteps import (
    Expect,
    LocalSlaveContext,
    SvnRepo,
    left_over_after_rebuild,
    run_scripted,
    run_step,
    shell,
)

URL = "svn://svn.example/repo/trunk"
TAIL = ("--non-interactive", "--no-auth-cache")
AUTH = ("--username", "bob", "--password-from-stdin")
VERSION = shell("build", "svn", "--version")
NOT_PATCHED = Expect("stat", args={"file": "build/.buildbot-patched"}, rc=2)
INFO = f"""<?xml version="1.0"?><info><entry kind="dir" path="." revision="42"><url>{URL}</url>
<commit revision="40"></commit></entry></info>"""
GOT_REVISION = shell("build", "svn", "info", "--xml", stdout=INFO)
STATUS = """<?xml version="1.0"?><status><target path=".">
<entry path="junk.o"><wc-status item="unversioned" props="none"/></entry>
<entry path="keep.cfg"><wc-status item="unversioned" props="none"/></entry>
<entry path="ext"><wc-status item="external" props="none"/></entry>
</target></status>"""


@pytest_twisted.ensureDeferred
async def test_incremental_first_build_checks_out_and_sets_got_revision():
    result, ctx = await run_scripted(
        SVN(repourl=URL), VERSION, NOT_PATCHED, Expect("stat", args={"file": "build/.svn"}, rc=2),
        Expect("rmdir", args={"dir": "build"}), shell("build", "svn", "checkout", URL, ".", *TAIL),
        GOT_REVISION)
    assert result == (SUCCESS, "update")
    assert ctx.properties.getProperty("got_revision") == "42"


@pytest_twisted.ensureDeferred
async def test_incremental_update_of_the_same_url_to_a_revision_with_a_password_on_stdin():
    result, ctx = await run_scripted(
        SVN(repourl=URL, username="bob", password="s3cret", preferLastChangedRev=True), VERSION, NOT_PATCHED,
        Expect("stat", args={"file": "build/.svn"}),
        shell("build", "svn", "info", "--xml", *TAIL, *AUTH, stdout=INFO),
        shell("build", "svn", "update", "--revision", "41", *TAIL, *AUTH),
        GOT_REVISION, properties={"revision": 41})
    assert result[0] == SUCCESS
    assert ctx.properties.getProperty("got_revision") == "40"  # the last changed revision
    assert all("s3cret" not in " ".join(args["command"]) for name, args in ctx.commands if name == "shell")
    assert ctx.commands[3][1]["initial_stdin"] == "s3cret\n"


@pytest_twisted.ensureDeferred
async def test_full_fresh_removes_unversioned_and_ignored_files_but_keep_on_purge():
    result, ctx = await run_scripted(
        SVN(repourl=URL, mode="full", keep_on_purge=["keep.cfg"]), VERSION, NOT_PATCHED,
        Expect("stat"), shell("build", "svn", "info", "--xml", *TAIL, stdout=INFO),
        shell("build", "svn", "status", "--xml", "--no-ignore", *TAIL, stdout=STATUS),
        Expect("rmdir", args={"dir": ["build/junk.o"]}),
        shell("build", "svn", "update", *TAIL), GOT_REVISION)
    assert result[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_a_working_copy_of_another_url_is_clobbered():
    other = INFO.replace(URL, "svn://svn.example/repo/branches/old")
    result, _ = await run_scripted(
        SVN(repourl=URL, mode="full", method="clean"), VERSION, NOT_PATCHED,
        Expect("stat"), shell("build", "svn", "info", "--xml", *TAIL, stdout=other),
        Expect("rmdir"), shell("build", "svn", "checkout", URL, ".", *TAIL), GOT_REVISION)
    assert result[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_export_updates_the_source_copy_and_exports_it():
    result, _ = await run_scripted(
        SVN(repourl=URL, mode="full", method="export"), VERSION, NOT_PATCHED,
        Expect("rmdir", args={"dir": "build"}), Expect("stat", args={"file": "source/.svn"}),
        shell("source", "svn", "info", "--xml", *TAIL, stdout=INFO), shell("source", "svn", "update", *TAIL),
        shell("", "svn", "export", "source", "build"), shell("source", "svn", "info", "--xml", stdout=INFO))
    assert result[0] == SUCCESS


@pytest_twisted.ensureDeferred
async def test_export_of_a_codebase_keeps_its_own_source_copy_and_reads_its_revision_there():
    result, ctx = await run_scripted(
        SVN(repourl=URL, mode="full", method="export", codebase="docs"), VERSION, NOT_PATCHED,
        Expect("rmdir", args={"dir": "build"}), Expect("stat", args={"file": "source/docs/.svn"}, rc=2),
        Expect("rmdir", args={"dir": "source/docs"}),
        shell("source/docs", "svn", "checkout", URL, ".", *TAIL),
        shell("", "svn", "export", "source/docs", "build"),
        shell("source/docs", "svn", "info", "--xml", stdout=INFO))
    assert result == (SUCCESS, "update docs")
    assert ctx.properties.getProperty("got_revision") == {"docs": "42"}


@pytest_twisted.ensureDeferred
async def test_a_failed_checkout_fails_the_step():
    result, ctx = await run_scripted(
        SVN(repourl=URL), VERSION, NOT_PATCHED, Expect("stat", rc=2), Expect("rmdir"),
        shell("build", "svn", "checkout", URL, ".", *TAIL, rc=1))
    assert result == (FAILURE, "update (failure)")


def test_urls_are_compared_in_svns_canonical_form():
    assert canonical_svn_url("SVN://Host:3690/a/./b//c/../d/") == "svn://host/a/b/d"
    assert canonical_svn_url("http://host:8080/a%7eb") == "http://host:8080/a~b"
    assert canonical_svn_url("file:///srv/repo/trunk") == "file:///srv/repo/trunk"


def test_status_lists_unversioned_files_without_externals():
    assert unversioned_files(STATUS, ["keep.cfg"]) == ["junk.o"]


def test_bad_arguments_are_config_problems():
    assert SVN(repourl=URL, mode="full", method="rsync").config_problems() == [
        "SVN: method must be one of clean, fresh, clobber, copy, export, not 'rsync'"]
    assert "SVN: you must provide repourl" in SVN().config_problems()


# --- real repositories -----------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_real_incremental_update_and_branch_urls(tmp_path):
    repo = SvnRepo(tmp_path / "svn")
    first = repo.commit({"trunk/a.txt": "one\n", "branches/rel/a.txt": "rel\n"})
    trunk = SVN(repourl=f"{repo.url}/trunk", logEnviron=False)
    ctx = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(trunk, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.properties.getProperty("got_revision") == first
    second = repo.commit({"trunk/a.txt": "two\n"})
    ctx = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(trunk, ctx))[0] == SUCCESS, ctx.log_text()
    assert (ctx.read("build", "a.txt"), ctx.properties.getProperty("got_revision")) == ("two\n", second)
    ctx = LocalSlaveContext(tmp_path / "slave", properties={"revision": first})
    assert (await run_step(trunk, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "a.txt") == "one\n"
    ctx = LocalSlaveContext(tmp_path / "slave")  # another URL: a new checkout
    assert (await run_step(SVN(repourl=f"{repo.url}/branches/rel", logEnviron=False), ctx))[0] == SUCCESS
    assert ctx.read("build", "a.txt") == "rel\n"


@pytest.mark.parametrize(("method", "ignored_kept"), [("fresh", False), ("clean", True)])
@pytest_twisted.ensureDeferred
async def test_real_full_methods_purge(tmp_path, method, ignored_kept):
    repo = SvnRepo(tmp_path / "svn")
    repo.commit({"trunk/a.txt": "one\n"})
    subprocess.run(["svn", "propset", "-q", "svn:ignore", "*.o", os.path.join(repo.wc, "trunk")], check=True)
    subprocess.run(["svn", "commit", "-q", "-m", "ignore", repo.wc], check=True)
    step = SVN(repourl=f"{repo.url}/trunk", mode="full", method=method, logEnviron=False)
    assert await left_over_after_rebuild(step, tmp_path / "slave") == ({"x.o"} if ignored_kept else set())


@pytest.mark.parametrize("method", ["clobber", "copy", "export"])
@pytest_twisted.ensureDeferred
async def test_real_clobber_copy_export(tmp_path, method):
    repo = SvnRepo(tmp_path / "svn")
    rev = repo.commit({"trunk/a.txt": "one\n"})
    ctx = LocalSlaveContext(tmp_path / "slave")
    os.makedirs(ctx.path("build"))
    with open(ctx.path("build", "stale"), "w") as f:
        f.write("x")
    step = SVN(repourl=f"{repo.url}/trunk", mode="full", method=method, logEnviron=False)
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "a.txt") == "one\n" and not os.path.exists(ctx.path("build", "stale"))
    assert os.path.exists(ctx.path("build", ".svn")) is (method != "export")
    assert ctx.properties.getProperty("got_revision") == rev


@pytest_twisted.ensureDeferred
async def test_real_patch_then_a_clean_tree_next_build(tmp_path):
    repo = SvnRepo(tmp_path / "svn")
    repo.commit({"trunk/a.txt": "one\n"})
    step = SVN(repourl=f"{repo.url}/trunk", logEnviron=False)
    patch = "--- a/new.txt\n+++ b/new.txt\n@@ -0,0 +1 @@\n+added\n"
    ctx = LocalSlaveContext(tmp_path / "slave", properties={"patch": (1, patch)})
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert ctx.read("build", "new.txt") == "added\n"
    ctx = LocalSlaveContext(tmp_path / "slave")
    assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
    assert not os.path.exists(ctx.path("build", "new.txt"))
    assert not os.path.exists(ctx.path("build", ".buildbot-patched"))


@pytest_twisted.ensureDeferred
async def test_real_checkout_through_svnserve_on_loopback_with_a_password(tmp_path):
    repo = SvnRepo(tmp_path / "svn")
    rev = repo.commit({"trunk/a.txt": "served\n"})
    conf = os.path.join(repo.path, "conf")
    with open(os.path.join(conf, "svnserve.conf"), "w") as f:
        f.write("[general]\nanon-access = none\nauth-access = write\npassword-db = passwd\n")
    with open(os.path.join(conf, "passwd"), "w") as f:
        f.write("[users]\nbob = s3cret\n")
    port = free_port()
    server = subprocess.Popen(["svnserve", "--foreground", "-d", "--listen-host", "127.0.0.1",
                               "--listen-port", str(port), "-r", str(tmp_path / "svn")],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"svn://127.0.0.1:{port}/repo/trunk"

        def serving():
            argv = ["svn", "info", *TAIL, "--username", "bob", "--password", "s3cret", url]
            return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
        await wait_for(serving, "svnserve to answer", poll_s=0.05)
        ctx = LocalSlaveContext(tmp_path / "slave")
        step = SVN(repourl=url, username="bob", password="s3cret", logEnviron=False)
        assert (await run_step(step, ctx))[0] == SUCCESS, ctx.log_text()
        assert ctx.read("build", "a.txt") == "served\n"
        assert ctx.properties.getProperty("got_revision") == rev
        assert "s3cret" not in ctx.log_text()
        ctx = LocalSlaveContext(tmp_path / "slave")
        wrong = SVN(repourl=url, username="bob", password="wrong", logEnviron=False, mode="full",
                    method="clobber")
        assert (await run_step(wrong, ctx))[0] == FAILURE
    finally:
        stop_process(server, 5)
