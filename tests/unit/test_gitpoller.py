"""GitPoller on real git repositories made by the test, its state in a real database, its
time on a ``task.Clock``: what it reports, what it remembers across a restart, which branches
it follows, when it polls, and which master polls under multi-master."""


import pytest
import pytest_twisted
from twisted.internet import defer, task
from zope.interface.verify import verifyObject

from buildfarm.master.changes.base import VCSCommandFailed, run_command
from buildfarm.master.changes.gitpoller import GitPoller
from buildfarm.master.changes.interfaces import IChangeSourceMaster
from buildfarm.master.changes.manager import ChangeSourceManager
from buildfarm.master.config import MasterConfig
from fixtures.pollers import PollerMaster, poll
from fixtures.repos import GitRepo, run


@pytest.fixture
def repo(tmp_path):
    repo = GitRepo(str(tmp_path / "upstream"))
    repo.commit("README", "hello\n", "first")
    return repo


@pytest_twisted.ensureDeferred
async def test_first_poll_records_the_branch_and_reports_nothing(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, branch="main")
    assert await poll(poller, master) == []
    assert await sqlite_db.state.get(poller.state_name, "lastRev") == {"main": repo.head()}


@pytest_twisted.ensureDeferred
async def test_a_new_commit_becomes_a_change_with_its_details(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, branch="main", project="hello", category="push")
    await poll(poller, master)
    sha = repo.commit("src/main.c", "int main;\n", "Add main\n\nWith a body.", when=1_700_000_123)
    [change] = await poll(poller, master)
    assert change["revision"] == sha
    assert change["branch"] == "main"
    assert change["author"] == "Ann Author <ann@example.org>"
    assert change["committer"] == "Carl Committer <carl@example.org>"
    assert change["comments"] == "Add main\n\nWith a body."
    assert change["files"] == ["src/main.c"]
    assert change["when_timestamp"] == 1_700_000_123
    assert (change["repository"], change["project"], change["category"]) == (repo.url, "hello", "push")


@pytest_twisted.ensureDeferred
async def test_several_commits_are_reported_oldest_first_and_only_once(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, branch="main")
    await poll(poller, master)
    shas = [repo.commit("a", str(i), f"commit {i}") for i in range(3)]
    assert [c["revision"] for c in await poll(poller, master)] == shas
    assert [c["revision"] for c in await poll(poller, master)] == shas  # nothing new


@pytest_twisted.ensureDeferred
async def test_a_restarted_poller_neither_loses_nor_repeats_changes(sqlite_db, repo, tmp_path):
    await poll(GitPoller(repo.url, branch="main"), PollerMaster(sqlite_db, str(tmp_path)))
    before = repo.commit("a", "1", "before the restart")
    await poll(GitPoller(repo.url, branch="main"), PollerMaster(sqlite_db, str(tmp_path)))
    during = repo.commit("a", "2", "while the master was down")
    # A new master process: a new poller object and clock, the same database.
    changes = await poll(GitPoller(repo.url, branch="main"), PollerMaster(sqlite_db, str(tmp_path)))
    assert [c["revision"] for c in changes] == [before, during]


@pytest_twisted.ensureDeferred
async def test_default_branches_follow_the_remote_head(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url)
    await poll(poller, master)
    repo.checkout("topic", new=True)
    repo.commit("t", "1", "on topic")  # HEAD of the remote now names topic
    repo.checkout("main")
    sha = repo.commit("m", "1", "on main")
    assert [(c["branch"], c["revision"]) for c in await poll(poller, master)] == [("main", sha)]


@pytest_twisted.ensureDeferred
async def test_branches_true_follows_every_branch_and_a_new_branch_brings_only_its_commits(
        sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, branches=True)
    await poll(poller, master)
    repo.checkout("feature", new=True)
    sha = repo.commit("f", "1", "feature work")
    assert [(c["branch"], c["revision"]) for c in await poll(poller, master)] == [("feature", sha)]


@pytest_twisted.ensureDeferred
async def test_branches_as_a_list_and_as_a_callable(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    listed = GitPoller(repo.url, branches=["release"], name="listed", workdir="w1")
    chosen = GitPoller(repo.url, branches=lambda ref: ref.startswith("refs/heads/rel"), name="chosen",
                       workdir="w2")
    repo.checkout("release", new=True)
    await poll(listed, master)
    await poll(chosen, master)
    sha = repo.commit("r", "1", "release fix")
    repo.checkout("main")
    repo.commit("m", "1", "not followed")
    changes = await poll(listed, master)
    changes = await poll(chosen, master)
    assert [(c["branch"], c["revision"]) for c in changes] == [("release", sha), ("release", sha)]


@pytest_twisted.ensureDeferred
async def test_category_may_be_a_callable_of_the_change(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, branch="main", category=lambda change: change["branch"] + "-cat")
    await poll(poller, master)
    repo.commit("a", "1", "x")
    [change] = await poll(poller, master)
    assert change["category"] == "main-cat"


@pytest_twisted.ensureDeferred
async def test_the_workdir_is_under_the_master_basedir(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path / "master"))
    await poll(GitPoller(repo.url, branch="main", workdir="gitpoller-workdir"), master)
    assert (tmp_path / "master" / "gitpoller-workdir" / "HEAD").exists()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_repository_is_logged_and_the_poller_goes_on(sqlite_db, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller("file://" + str(tmp_path / "missing"), branch="main")
    assert await poll(poller, master) == []  # no exception out of poll_if_ours
    assert await sqlite_db.state.get(poller.state_name, "lastRev") is None


async def wait_for_poll(poller) -> None:
    if poller._polling is not None:
        await poller._polling


@pytest_twisted.ensureDeferred
async def test_it_polls_every_poll_interval_and_not_at_launch_unless_asked(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    lazy = GitPoller(repo.url, branch="main", pollInterval=60, name="lazy", workdir="w1")
    eager = GitPoller(repo.url, branch="main", pollInterval=60, pollAtLaunch=True, name="eager",
                      workdir="w2")
    for poller in (lazy, eager):
        poller.activate(master)
        poller.startService()
    try:
        await wait_for_poll(eager)
        assert await sqlite_db.state.get(eager.state_name, "lastRev") is not None
        assert await sqlite_db.state.get(lazy.state_name, "lastRev") is None
        master.reactor.advance(59)
        assert lazy._polling is None
        master.reactor.advance(1)
        await wait_for_poll(lazy)
        assert await sqlite_db.state.get(lazy.state_name, "lastRev") == {"main": repo.head()}
    finally:
        await defer.gatherResults([lazy.stopService(), eager.stopService()])


@pytest_twisted.ensureDeferred
async def test_under_multi_master_one_master_polls_until_its_claim_runs_out(sqlite_db, repo, tmp_path):
    first = PollerMaster(sqlite_db, str(tmp_path / "m1"), masterid=1, multi_master=True)
    second = PollerMaster(sqlite_db, str(tmp_path / "m2"), masterid=2, multi_master=True)
    mine, theirs = GitPoller(repo.url, branch="main", pollInterval=60), GitPoller(repo.url, branch="main",
                                                                                  pollInterval=60)
    mine.activate(first)
    theirs.activate(second)
    assert await mine.poll_if_ours() is True
    assert await theirs.poll_if_ours() is False
    repo.commit("a", "1", "x")
    second.reactor.advance(2 * 60 + 60 + 1)  # the first master stopped renewing its claim
    assert await theirs.poll_if_ours() is True
    assert len(await sqlite_db.changes.get_all()) == 1
    assert await mine.poll_if_ours() is False


@pytest_twisted.ensureDeferred
async def test_a_stopped_master_releases_its_claim_at_once(sqlite_db, repo, tmp_path):
    first = PollerMaster(sqlite_db, str(tmp_path / "m1"), masterid=1, multi_master=True)
    second = PollerMaster(sqlite_db, str(tmp_path / "m2"), masterid=2, multi_master=True)
    mine, theirs = GitPoller(repo.url, branch="main"), GitPoller(repo.url, branch="main")
    mine.activate(first)
    mine.startService()
    master_claimed = await mine.poll_if_ours()
    await mine.stopService()
    theirs.activate(second)
    assert master_claimed and await theirs.poll_if_ours() is True


@pytest_twisted.ensureDeferred
async def test_a_command_past_its_deadline_is_killed_and_fails(tmp_path):
    clock = task.Clock()
    running = defer.ensureDeferred(run_command(["sleep", "30"], clock, timeout_s=5))
    clock.advance(6)
    with pytest.raises(VCSCommandFailed, match="no answer in 5 s"):
        await running


@pytest_twisted.ensureDeferred
async def test_a_failing_command_reports_its_stderr(tmp_path):
    with pytest.raises(VCSCommandFailed, match="exited with 128: .*not a git repository"):
        await run_command(["git", "--git-dir", str(tmp_path), "log"], task.Clock())


# -- the manager -----------------------------------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_the_manager_starts_sources_once_the_master_is_ready_and_reconfigures_them(
        sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    kept, changed = GitPoller(repo.url, branch="main"), GitPoller(repo.url, branch="main", name="other")
    master.config.change_sources = [kept, changed]
    manager = ChangeSourceManager(master)
    manager.startService()
    assert manager.sources == []  # not before the schedulers are active
    await manager.master_ready()
    assert manager.sources == [kept, changed] and kept.running and changed.running
    new_config = MasterConfig(filename="master.cfg", change_sources=[
        GitPoller(repo.url, branch="main"), GitPoller(repo.url, branch="main", name="other", pollInterval=5)])
    await manager.reconfigService(new_config)
    assert manager.sources[0] is kept and kept.running
    assert manager.sources[1] is new_config.change_sources[1] and not changed.running
    await manager.stopService()
    assert not any(s.running for s in new_config.change_sources)




@pytest_twisted.ensureDeferred
async def test_stopping_kills_a_command_in_flight_and_reports_nothing(sqlite_db, tmp_path):
    hung = tmp_path / "hung-git"
    pidfile = tmp_path / "hung.pid"
    hung.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 60\n")
    hung.chmod(0o755)
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller("file:///nowhere", branch="main", gitbin=str(hung), pollAtLaunch=True)
    poller.activate(master)
    poller.startService()
    deadline = master.reactor.seconds()  # the test's real wait is bounded by polling the pid file
    for _ in range(200):
        if pidfile.exists() and pidfile.read_text().strip():
            break
        await deferLater_real(0.05)
    pid = int(pidfile.read_text())
    await poller.stopService()
    assert master.reactor.seconds() == deadline  # nothing waited on the master's clock
    for _ in range(200):  # SIGKILL was sent; the kernel ends it at once, reaping takes a moment
        if not process_alive(pid):
            break
        await deferLater_real(0.05)
    assert not process_alive(pid)
    assert await sqlite_db.changes.get_all() == []


def deferLater_real(seconds: float) -> defer.Deferred:  # noqa: N802
    from twisted.internet import reactor

    return task.deferLater(reactor, seconds, lambda: None)


def process_alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not yet reaped counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:
        return False


@pytest_twisted.ensureDeferred
async def test_a_branch_pushed_without_new_commits_is_built_only_when_asked(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    quiet = GitPoller(repo.url, branches=True, name="quiet", workdir="w1")
    eager = GitPoller(repo.url, branches=True, name="eager", workdir="w2", buildPushesWithNoCommits=True)
    await poll(quiet, master)
    await poll(eager, master)
    run("git", "branch", "copy-of-main", cwd=repo.path)
    assert await poll(quiet, master) == []
    [change] = await poll(eager, master)
    assert (change["branch"], change["revision"]) == ("copy-of-main", repo.head())


@pytest_twisted.ensureDeferred
async def test_only_tags_reports_new_tags(sqlite_db, repo, tmp_path):
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(repo.url, only_tags=True)
    run("git", "tag", "v1", cwd=repo.path)
    await poll(poller, master)
    sha = repo.commit("a", "1", "release 2")
    repo.commit("b", "1", "not tagged: not reported by itself")
    run("git", "tag", "v2", sha, cwd=repo.path)
    assert [(c["branch"], c["revision"]) for c in await poll(poller, master)] == [("refs/tags/v2", sha)]


@pytest_twisted.ensureDeferred
async def test_a_very_long_repourl_keeps_its_state_under_a_name_the_database_takes(sqlite_db, repo, tmp_path):
    (tmp_path / "upstream" / "x").mkdir()
    long_url = repo.url + "/x/.." * 60  # the same repository, named with 300 more characters
    master = PollerMaster(sqlite_db, str(tmp_path))
    poller = GitPoller(long_url, branch="main")
    await poll(poller, master)
    assert len(poller.state_name) <= 255
    assert await sqlite_db.state.get(poller.state_name, "lastRev") == {"main": repo.head()}


def test_the_pollers_master_double_provides_what_a_change_source_uses(tmp_path):
    assert verifyObject(IChangeSourceMaster, PollerMaster(db=None, basedir=str(tmp_path)))
