"""Pollers in a real master daemon: a GitPoller polls a repository made by the test on local
disk, and a new commit there becomes a build of that revision on a real slave, through the
schedulers that exist (SingleBranchScheduler with a ChangeFilter).  A commit made while the
master is down is built once after it restarts, and nothing is built twice."""

from fixtures.daemons import run_cli, wait_for
from fixtures.repos import GitRepo, HgRepo, SvnRepo

MASTER_CFG = """\
from buildfarm.master.plugins import changes, schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['change_source'] = [changes.GitPoller({repourl!r}, workdir='gitpoller-workdir', branch='main',
                                        pollInterval=1, pollAtLaunch=True, project='hello')]
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory(
    [steps.ShellCommand(command=['git', '-C', {repo!r}, 'cat-file', '-e',
                                 util.Interpolate('%(prop:revision)s^{{commit}}')])]))]
c['schedulers'] = [schedulers.SingleBranchScheduler(
    name='on-main', builderNames=['runtests'], change_filter=util.ChangeFilter(branch='main'))]
"""


def builds(master) -> list[dict]:
    found = master.get("/api/v1/builds?builder=runtests&complete=true")["builds"]
    return sorted(found, key=lambda b: b["buildid"])


def test_a_new_commit_polled_by_git_poller_is_built_once_even_across_a_restart(fleet, tmp_path):
    repo = GitRepo(str(tmp_path / "hello"))
    repo.commit("README", "hello\n", "first")
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, repourl=repo.url, repo=repo.path))
    fleet.slave(master)
    master.wait_attached("bs1")
    wait_for(lambda: "GitPoller " + repo.url + ": first poll" in master.log_text(), "the first poll")

    sha = repo.commit("src/main.c", "int main;\n", "Add main")
    [build] = wait_for(lambda: builds(master), "a build of the new commit")
    assert build["result"] == "success"
    assert (build["properties"]["revision"], build["properties"]["branch"]) == (sha, "main")
    assert build["properties"]["project"] == "hello"
    [change] = master.get("/api/v1/changes")["changes"]
    assert (change["revision"], change["author"], change["comments"]) == (
        sha, "Ann Author <ann@example.org>", "Add main")

    run_cli("buildmaster", "stop", master.basedir, check=True)
    during = repo.commit("src/main.c", "int main(void);\n", "While the master was down")
    run_cli("buildmaster", "start", master.basedir, check=True)
    wait_for(lambda: len(builds(master)) == 2, "a build of the commit made during the restart")
    later = repo.commit("NEWS", "news\n", "After the restart")
    done = wait_for(lambda: len(b := builds(master)) == 3 and b, "a build of the commit after it")
    assert [b["properties"]["revision"] for b in done] == [sha, during, later]
    assert all(b["result"] == "success" for b in done)
    assert [c["revision"] for c in master.get("/api/v1/changes")["changes"]] == [later, during, sha]


THREE_POLLERS_CFG = """\
from buildfarm.master.plugins import changes, schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass', max_builds=3)]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['www'] = {{'port': {www_port}}}
c['change_source'] = [
    changes.GitPoller({git!r}, branches=True, pollInterval=1, pollAtLaunch=True),
    changes.HgPoller({hg!r}, workdir='hg-work', pollInterval=1, pollAtLaunch=True),
    changes.SVNPoller({svn!r}, pollInterval=1, pollAtLaunch=True),
]
c['builders'] = [
    util.BuilderConfig(name=name, slavenames=['bs1'], factory=util.BuildFactory(
        [steps.ShellCommand(command=['echo', util.Interpolate('%(prop:revision)s')])]))
    for name in ('git', 'hg', 'svn')]
c['schedulers'] = [
    schedulers.AnyBranchScheduler(name=name, builderNames=[name],
                                  change_filter=util.ChangeFilter(repository=url))
    for name, url in (('git', {git!r}), ('hg', {hg!r}), ('svn', {svn!r}))]
"""


def test_git_hg_and_svn_pollers_each_trigger_a_build_of_their_new_commit(fleet, tmp_path):
    git, hg, svn = GitRepo(str(tmp_path / "g")), HgRepo(str(tmp_path / "h")), SvnRepo(str(tmp_path / "s"))
    git.commit("README", "1", "first")
    hg.commit("README", "1", "first")
    svn.commit("trunk/README", "1", "first")
    master = fleet.master(config=lambda pb_port, www_port: THREE_POLLERS_CFG.format(
        pb_port=pb_port, www_port=www_port, git=git.url, hg=hg.url, svn=svn.url))
    fleet.slave(master)
    master.wait_attached("bs1")
    for kind, repo in (("GitPoller", git), ("HgPoller", hg), ("SVNPoller", svn)):
        wait_for(lambda line=f"{kind} {repo.url}: first poll": line in master.log_text(),
                 f"the first poll of the {kind}")

    git.checkout("topic", new=True)
    expected = {"git": git.commit("t", "1", "on a new branch"), "hg": hg.commit("a", "2", "second"),
                "svn": str(svn.commit("trunk/a", "2", "second"))}

    def built(builder):
        found = master.get(f"/api/v1/builds?builder={builder}&complete=true")["builds"]
        return found and found[0]

    for builder, revision in expected.items():
        build = wait_for(lambda builder=builder: built(builder), f"a {builder} build")
        assert (build["result"], build["properties"]["revision"]) == ("success", revision)
    assert built("git")["properties"]["branch"] == "topic"
