"""``reporters.GitHubStatusPush`` and ``reporters.GitLabStatusPush`` end to end: a real master
and slave, a real local git repository (the build checks out a real commit), and two
recording HTTP servers on loopback (``baseURL``) that check each request as GitHub's and
GitLab's commit-status APIs do (method, path, auth header, JSON keys and the states each API
accepts) and answer 201 with a status like theirs.  Each build is pending (GitLab: running)
at its start and success or failure at its end; a build of a pull request
(``refs/pull/<n>/merge``) also gets GitHubCommentPush's comment; a GitHub endpoint answering
502 is retried.  A build retried (its slave stopped mid-build) stays pending: as Buildbot
sends, its first run ends ``pending`` (RETRY) and the rerun starts again and ends with its
result.  A master stopped or killed with statuses pending sends them once after its restart."""

import os
import re

import pytest

from fixtures.daemons import free_port, run_cli, wait_for
from fixtures.recordinghttp import RecordingHTTPServer
from fixtures.repos import GitRepo, run

GH_TOKEN, GL_TOKEN = "gh-t0ken", "gl-t0ken"
GITHUB_STATES = {"pending", "success", "failure", "error"}
GITLAB_STATES = {"pending", "running", "success", "failed", "canceled"}
GITHUB_PATH = re.compile(r"^/api/v3/repos/acme/widgets/statuses/(?P<sha>[0-9a-f]{40})$")
GITHUB_COMMENTS = re.compile(r"^/api/v3/repos/acme/widgets/issues/(?P<number>[0-9]+)/comments$")
GITLAB_PATH = re.compile(r"^/api/v4/projects/acme%2Fwidgets/statuses/(?P<sha>[0-9a-f]{40})$")

MASTER_CFG = """\
from buildfarm.master.plugins import reporters, schedulers, secrets, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['secretsProviders'] = [secrets.SecretInAFile(dirname={secrets_dir!r})]
c['builders'] = [
    util.BuilderConfig(name='passes', slavenames=['bs1'], factory=util.BuildFactory([
        steps.Git(repourl={repo_url!r}, mode='full', method='fresh'),
        steps.ShellCommand(command=['cat', 'a.txt'])])),
    util.BuilderConfig(name='fails', slavenames=['bs1'], factory=util.BuildFactory([
        steps.Git(repourl={repo_url!r}, mode='full', method='fresh'),
        steps.ShellCommand(command=['false'])])),
    util.BuilderConfig(name='lost', slavenames=['bs1'], factory=util.BuildFactory([
        steps.Git(repourl={repo_url!r}, mode='full', method='fresh'),
        steps.ShellCommand(command=['sh', '-c', 'if [ -e {marker} ]; then echo again; '
                                    'else touch {marker}; sleep 120; fi'])])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['passes', 'fails', 'lost'])]
c['www'] = {{'port': {www_port}}}
c['buildbotURL'] = 'http://ci.example.org/'
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
c['services'] = [
    reporters.GitHubStatusPush(util.Secret('gh'), baseURL={github_url!r},
                               backoff_base_s=0.5, backoff_max_s=1.0),
    reporters.GitHubCommentPush(util.Secret('gh'), baseURL={github_url!r}),
    reporters.GitLabStatusPush(util.Secret('gl'), baseURL={gitlab_url!r},
                               context=util.Interpolate('ci/%(prop:buildername)s')),
]
"""


def check_github(path: str, headers: dict, body) -> list[str]:
    """What GitHub's POST /repos/{owner}/{repo}/statuses/{sha} refuses (as 4xx)."""
    problems = []
    if headers.get("Authorization") not in (f"token {GH_TOKEN}", f"Bearer {GH_TOKEN}"):
        problems.append(f"github Authorization {headers.get('Authorization')}")
    if GITHUB_COMMENTS.match(path):  # POST /repos/{owner}/{repo}/issues/{n}/comments
        if not isinstance(body, dict) or set(body) != {"body"} or not isinstance(body["body"], str):
            problems.append(f"github comment {body!r}")
        return problems
    if not GITHUB_PATH.match(path):
        problems.append(f"github path {path}")
    if not isinstance(body, dict) or body.get("state") not in GITHUB_STATES:
        problems.append(f"github body {body!r}")
    elif not set(body) <= {"state", "target_url", "description", "context"}:
        problems.append(f"github keys {sorted(body)}")
    return problems


def check_gitlab(path: str, headers: dict, body) -> list[str]:
    """What GitLab's POST /api/v4/projects/{id}/statuses/{sha} refuses (as 4xx)."""
    problems = []
    if not GITLAB_PATH.match(path):
        problems.append(f"gitlab path {path}")
    if headers.get("Private-Token", headers.get("PRIVATE-TOKEN")) != GL_TOKEN:
        problems.append(f"gitlab PRIVATE-TOKEN {headers}")
    if not isinstance(body, dict) or body.get("state") not in GITLAB_STATES:
        problems.append(f"gitlab body {body!r}")
    elif not set(body) <= {"state", "ref", "name", "target_url", "description", "coverage", "pipeline_id"}:
        problems.append(f"gitlab keys {sorted(body)}")
    return problems


def status_like_the_api(path: str, body) -> dict:
    """A 201's body, as the APIs answer: the status created."""
    return {"id": 1, "url": path, "state": body["state"], "description": body.get("description"),
            "context": body.get("context", body.get("name")), "target_url": body.get("target_url")}


@pytest.fixture
def servers():
    github = RecordingHTTPServer(free_port(), "/api/v3", check_github)
    gitlab = RecordingHTTPServer(free_port(), "", check_gitlab)
    for server in (github, gitlab):
        server.status, server.reply = 201, status_like_the_api
    yield github, gitlab
    github.stop()
    gitlab.stop()


def lost_marker(fleet) -> str:
    """The file the ``lost`` builder's first run makes before it sleeps."""
    return os.path.join(fleet.root, "lost-once")


def start_master(fleet, repo: GitRepo, github: RecordingHTTPServer, gitlab: RecordingHTTPServer):
    """A master and its slave bs1, attached: (master, slave)."""
    secrets_dir = os.path.join(fleet.root, "secrets")
    os.makedirs(secrets_dir, mode=0o700, exist_ok=True)
    for name, value in (("gh", GH_TOKEN), ("gl", GL_TOKEN)):
        with open(os.path.join(secrets_dir, name), "w") as f:
            f.write(value)
        os.chmod(os.path.join(secrets_dir, name), 0o600)
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, secrets_dir=secrets_dir, repo_url=repo.url,
        github_url=github.url, gitlab_url=gitlab.url, marker=lost_marker(fleet)))
    slave = fleet.slave(master)
    master.wait_attached("bs1")
    return master, slave


def force(master, builder: str, sha: str, branch: str = "main") -> dict:
    brid = master.force(builder, properties={"branch": branch, "revision": sha,
                                             "repository": "https://github.com/acme/widgets.git"})
    return master.wait_request_complete(brid)


@pytest.fixture
def repo(tmp_path) -> tuple[GitRepo, str]:
    repo = GitRepo(str(tmp_path / "widgets"))
    return repo, repo.commit("a.txt", "hello\n", "first")


def statuses(server: RecordingHTTPServer) -> list[str]:
    """"<sha>:<state>" of each status recorded (comments left out)."""
    return [(GITHUB_PATH.match(p) or GITLAB_PATH.match(p))["sha"] + ":" + b["state"]
            for p, b in zip(server.paths, server.calls, strict=True) if not GITHUB_COMMENTS.match(p)]


def comments(server: RecordingHTTPServer) -> list[tuple[str, str]]:
    return [(GITHUB_COMMENTS.match(p)["number"], b["body"])
            for p, b in zip(server.paths, server.calls, strict=True) if GITHUB_COMMENTS.match(p)]


def test_each_build_is_pending_at_its_start_and_success_or_failure_at_its_end(fleet, servers, repo):
    github, gitlab = servers
    (git, sha) = repo
    for server in servers:
        server.start()
    master, _ = start_master(fleet, git, github, gitlab)

    assert force(master, "passes", sha)["result"] == "success"
    assert force(master, "fails", sha)["result"] == "failure"
    wait_for(lambda: len(github.calls) == 4 and len(gitlab.calls) == 4, "four statuses on each forge")
    assert comments(github) == []  # builds of no pull request get no comment

    assert github.problems == [] and gitlab.problems == []
    assert statuses(github) == [f"{sha}:pending", f"{sha}:success", f"{sha}:pending", f"{sha}:failure"]
    assert statuses(gitlab) == [f"{sha}:running", f"{sha}:success", f"{sha}:running", f"{sha}:failed"]
    start, end = github.calls[0], github.calls[1]
    assert start == {"state": "pending", "context": "buildbot/passes", "description": "Build started.",
                     "target_url": end["target_url"]}
    assert re.fullmatch(r"http://ci\.example\.org/builds/\d+", end["target_url"])
    assert end["description"] == "Build done."
    assert [c["name"] for c in gitlab.calls] == ["ci/passes", "ci/passes", "ci/fails", "ci/fails"]
    assert {c["ref"] for c in gitlab.calls} == {"main"}


def test_a_failing_github_endpoint_is_retried_until_it_takes_the_status(fleet, servers, repo):
    github, gitlab = servers
    (git, sha) = repo
    github.status = 502
    for server in servers:
        server.start()
    master, _ = start_master(fleet, git, github, gitlab)

    assert force(master, "passes", sha)["result"] == "success"
    wait_for(lambda: len(github.refused) >= 2, "two attempts answered 502")
    assert "answered 502" in master.log_text()
    github.status = 201
    wait_for(lambda: len(github.calls) == 2, "both statuses, once GitHub takes them")
    assert statuses(github) == [f"{sha}:pending", f"{sha}:success"]
    assert len(gitlab.calls) == 2 and github.problems == []


def test_a_pull_request_build_gets_its_statuses_and_a_comment_on_the_pull_request(fleet, servers, repo):
    github, gitlab = servers
    (git, sha) = repo
    git_ref = "refs/pull/7/merge"
    run("git", "update-ref", git_ref, sha, cwd=git.path)
    for server in servers:
        server.start()
    master, _ = start_master(fleet, git, github, gitlab)

    assert force(master, "passes", sha, branch=git_ref)["result"] == "success"
    wait_for(lambda: len(github.calls) == 3, "two statuses and a comment")
    assert github.problems == []
    assert statuses(github) == [f"{sha}:pending", f"{sha}:success"]
    assert comments(github) == [("7", "Build done.")]


def test_a_retried_build_stays_pending_until_its_rerun_ends(fleet, servers, repo):
    github, gitlab = servers
    (git, sha) = repo
    for server in servers:
        server.start()
    master, slave = start_master(fleet, git, github, gitlab)

    brid = master.force("lost", properties={"branch": "main", "revision": sha,
                                            "repository": "https://github.com/acme/widgets.git"})
    wait_for(lambda: os.path.exists(lost_marker(fleet)), "lost#1 running its step")
    run_cli("buildslave", "stop", slave.basedir, check=True)  # lost#1 ends RETRY
    run_cli("buildslave", "start", slave.basedir, check=True)  # the request runs again: lost#2
    assert master.wait_request_complete(brid, deadline_s=60)["result"] == "success"
    wait_for(lambda: len(github.calls) == 4 and len(gitlab.calls) == 4, "four statuses on each forge")

    assert github.problems == [] and gitlab.problems == []
    # Buildbot's: the RETRY end is pending (GitHub and GitLab), the rerun starts and ends anew.
    assert statuses(github) == [f"{sha}:pending", f"{sha}:pending", f"{sha}:pending", f"{sha}:success"]
    assert statuses(gitlab) == [f"{sha}:running", f"{sha}:pending", f"{sha}:running", f"{sha}:success"]
    assert [c["description"] for c in github.calls] == ["Build started.", "Build done.",
                                                        "Build started.", "Build done."]
    first, second = github.calls[1]["target_url"], github.calls[3]["target_url"]
    assert first != second  # each run links its own build
    assert github.calls[0]["target_url"] == first and github.calls[2]["target_url"] == second
    assert {c["context"] for c in github.calls} == {"buildbot/lost"}
    assert {c["name"] for c in gitlab.calls} == {"ci/lost"}
    assert comments(github) == []


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_a_master_restarted_with_statuses_pending_sends_them_once(fleet, servers, repo, how):
    github, gitlab = servers
    (git, sha) = repo
    master, _ = start_master(fleet, git, github, gitlab)  # both forges are down
    assert force(master, "fails", sha)["result"] == "failure"
    wait_for(lambda: master.log_text().count("failed (attempt") >= 2, "failed attempts logged")
    master.halt(how)

    for server in servers:
        server.start()
    run_cli("buildmaster", "start", master.basedir, check=True)
    wait_for(lambda: len(github.calls) == 2 and len(gitlab.calls) == 2, "the pending statuses, sent")
    master.wait_attached("bs1")
    assert force(master, "passes", sha)["result"] == "success"
    wait_for(lambda: len(github.calls) == 4 and len(gitlab.calls) == 4, "the next build's statuses")
    assert github.problems == [] and gitlab.problems == []
    assert statuses(github) == [f"{sha}:pending", f"{sha}:failure", f"{sha}:pending", f"{sha}:success"]
    assert statuses(gitlab) == [f"{sha}:running", f"{sha}:failed", f"{sha}:running", f"{sha}:success"]
    assert [c["context"] for c in github.calls] == ["buildbot/fails"] * 2 + ["buildbot/passes"] * 2
