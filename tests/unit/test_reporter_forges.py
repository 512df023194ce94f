"""``GitHubStatusPush``, ``GitHubCommentPush`` and ``GitLabStatusPush`` (master/reporters/
github.py, gitlab.py, forge.py) against an in-memory HTTP resource (treq's ``StubTreq``):
the URL, headers and JSON body of each request per build event and result, repository URLs,
pull request numbers, answers that give a report up or are retried, arguments' checks."""

import json
import os
import re

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.web.resource import Resource
from zope.interface.verify import verifyObject

from buildfarm.common.results import CANCELLED, EXCEPTION, FAILURE, RETRY, SUCCESS, WARNINGS
from buildfarm.master.config import load_config
from buildfarm.master.plugins import reporters
from buildfarm.master.process.buildevents import BUILD_FINISHED, BUILD_STARTED
from buildfarm.master.process.properties import Interpolate, Secret
from buildfarm.master.reporters.forge import parse_repository_url
from buildfarm.master.reporters.github import GitHubCommentPush, GitHubStatusPush, github_state
from buildfarm.master.reporters.gitlab import GitLabStatusPush, gitlab_state
from buildfarm.master.reporters.http import EndpointFailed
from buildfarm.master.reporters.interfaces import IReporter
from buildfarm.master.reporters.sender import ReportRejected
from fixtures.memorymaster import MASTER_CFG, start_memory_master

SHA = "0123456789abcdef0123456789abcdef01234567"


class Endpoint(Resource):
    """Answers ``status`` to a POST and records (method, path, headers, JSON body)."""

    isLeaf = True

    def __init__(self, status: int = 201):
        super().__init__()
        self.status = status
        self.requests: list[tuple[bytes, str, dict, dict]] = []

    def render_POST(self, request):  # noqa: N802 - twisted.web's name
        headers = {k.decode(): v[0].decode() for k, v in request.requestHeaders.getAllRawHeaders()}
        url = f"{'https' if request.isSecure() else 'http'}://{headers['Host']}{request.uri.decode()}"
        self.requests.append((request.method, url, headers, json.loads(request.content.read())))
        request.setResponseCode(self.status)
        return b'{"message": "nope"}' if self.status >= 400 else b'{"id": 1}'


@pytest_twisted.async_yield_fixture
async def master(tmp_path):
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "gh").write_text("t0ken")
    os.chmod(secrets_dir / "gh", 0o600)
    cfg = MASTER_CFG + (f"from buildfarm.master.plugins import secrets\n"
                        f"c['secretsProviders'] = [secrets.SecretInAFile(dirname={str(secrets_dir)!r})]\n")
    started = await start_memory_master(tmp_path, cfg)
    yield started
    await started.stopService()


def stamp(**kwargs) -> dict:
    return {"branch": "main", "revision": SHA, "project": "", "repository": "https://github.com/acme/widgets.git",
            "codebase": "", **kwargs}


def a_build(complete=False, results=None, stamps=None, **props) -> dict:
    properties = {"buildername": ["linux", "Build"], **{k: [v, "Build"] for k, v in props.items()}}
    return {"buildid": 7, "number": 3, "complete": complete, "results": results, "started_at": 100.0,
            "url": "http://ci.example.org/builds/7", "properties": properties,
            "buildset": {"sourcestamps": stamps if stamps is not None else [stamp()]}}


def report(build: dict, body="Build done.") -> list:
    return [{"body": body, "builds": [build]}]


def wire(master, reporter, endpoint: Endpoint):
    reporter.master, reporter.client = master, StubTreq(endpoint)
    return reporter


@pytest_twisted.ensureDeferred
async def test_github_status_at_start_posts_pending_with_token_context_and_target_url(master):
    endpoint = Endpoint()
    push = wire(master, GitHubStatusPush(Secret("gh"), baseURL="https://ghe.example.org/api/v3/"), endpoint)
    await push.sendMessage(report(a_build(), body="Build started."))
    [(method, uri, headers, body)] = endpoint.requests
    assert (method, uri) == (b"POST", f"https://ghe.example.org/api/v3/repos/acme/widgets/statuses/{SHA}")
    assert headers["Authorization"] == "token t0ken"
    assert headers["Content-Type"] == "application/json"
    assert body == {"state": "pending", "context": "buildbot/linux", "description": "Build started.",
                    "target_url": "http://ci.example.org/builds/7"}


@pytest_twisted.ensureDeferred
async def test_the_default_context_names_the_builder_before_the_build_set_buildername(master):
    endpoint = Endpoint()
    push = wire(master, GitLabStatusPush("t"), endpoint)
    build = dict(a_build(), properties={}, builder={"name": "arm64"})
    await push.sendMessage(report(build, body="Build started."))
    assert endpoint.requests[0][3]["name"] == "buildbot/arm64"


@pytest_twisted.ensureDeferred
async def test_github_description_is_cut_to_the_140_characters_github_takes(master):
    endpoint = Endpoint()
    push = wire(master, GitHubStatusPush("t"), endpoint)
    await push.sendMessage(report(a_build(complete=True, results=FAILURE), body="x" * 500))
    description = endpoint.requests[0][3]["description"]
    assert len(description) == 140 and description == "x" * 139 + "\u2026"


@pytest.mark.parametrize(("results", "state"), [(SUCCESS, "success"), (WARNINGS, "success"),
                                                (FAILURE, "failure"), (EXCEPTION, "error"),
                                                (CANCELLED, "error"), (RETRY, "pending")])
def test_github_state_of_a_finished_build(results, state):
    assert github_state(a_build(complete=True, results=results)) == state


@pytest.mark.parametrize(("complete", "started", "results", "state"), [
    (False, None, None, "pending"), (False, 100.0, None, "running"), (True, 100.0, SUCCESS, "success"),
    (True, 100.0, WARNINGS, "success"), (True, 100.0, FAILURE, "failed"), (True, 100.0, EXCEPTION, "failed"),
    (True, 100.0, CANCELLED, "canceled"), (True, 100.0, RETRY, "pending")])
def test_gitlab_state_of_a_build(complete, started, results, state):
    build = dict(a_build(complete=complete, results=results), started_at=started)
    assert gitlab_state(build) == state


@pytest_twisted.ensureDeferred
async def test_github_one_status_per_sourcestamp_with_a_revision_and_a_rendered_context(master):
    endpoint = Endpoint()
    push = wire(master, GitHubStatusPush("plain", context=Interpolate("ci/%(prop:buildername)s/%(prop:os)s")),
                endpoint)
    stamps = [stamp(codebase="app"), stamp(codebase="lib", repository="git@github.com:acme/lib.git",
                                           revision="f" * 40),
              stamp(codebase="doc", revision=None), stamp(codebase="local", repository="file:///srv/x")]
    await push.sendMessage(report(a_build(complete=True, results=FAILURE, stamps=stamps, os="deb")))
    assert [(uri, body["state"], body["context"]) for _, uri, _, body in endpoint.requests] == [
        (f"https://api.github.com/repos/acme/widgets/statuses/{SHA}", "failure", "ci/linux/deb"),
        (f"https://api.github.com/repos/acme/lib/statuses/{'f' * 40}", "failure", "ci/linux/deb")]


@pytest_twisted.ensureDeferred
async def test_github_owner_and_name_come_from_the_project_when_it_reads_owner_slash_name(master):
    endpoint = Endpoint()
    push = wire(master, GitHubStatusPush("t"), endpoint)
    await push.sendMessage(report(a_build(stamps=[stamp(project="org/app", repository="file:///srv/app")])))
    assert endpoint.requests[0][1] == f"https://api.github.com/repos/org/app/statuses/{SHA}"


@pytest.mark.parametrize(("url", "path"), [
    ("https://github.com/acme/widgets.git", ("acme", "widgets")),
    ("https://github.com/acme/widgets", ("acme", "widgets")),
    ("http://127.0.0.1:8080/acme/widgets/", ("acme", "widgets")),
    ("git@github.com:acme/widgets.git", ("acme", "widgets")),
    ("ssh://git@gitlab.example.org:2222/group/sub/widgets.git", ("group/sub", "widgets")),
    ("git://github.com/acme/widgets.git", ("acme", "widgets")),
    ("https://user:pw@gitlab.com/g/w.git", ("g", "w")),
    ("file:///srv/git/widgets", None), ("/srv/git/widgets", None), ("widgets", None),
    ("https://github.com/widgets", None), ("", None), (None, None)])
def test_repository_urls_in_https_ssh_and_scp_forms(url, path):
    parsed = parse_repository_url(url)
    assert (tuple(parsed) if parsed else None) == path


@pytest_twisted.ensureDeferred
async def test_gitlab_status_posts_to_the_url_encoded_project_with_private_token(master):
    endpoint = Endpoint()
    push = wire(master, GitLabStatusPush(Interpolate("%(secret:gh)s"), baseURL="http://gl.example.org"),
                endpoint)
    stamps = [stamp(repository="git@gl.example.org:group/sub/widgets.git", branch="feature")]
    await push.sendMessage(report(a_build(complete=True, results=SUCCESS, stamps=stamps)))
    [(method, uri, headers, body)] = endpoint.requests
    assert uri == f"http://gl.example.org/api/v4/projects/group%2Fsub%2Fwidgets/statuses/{SHA}"
    assert headers["Private-Token"] == "t0ken" and "Authorization" not in headers
    assert body == {"state": "success", "ref": "feature", "name": "buildbot/linux",
                    "description": "Build done.", "target_url": "http://ci.example.org/builds/7"}


@pytest_twisted.ensureDeferred
async def test_gitlab_source_project_id_and_source_branch_properties_win(master):
    endpoint = Endpoint()
    push = wire(master, GitLabStatusPush("t"), endpoint)
    await push.sendMessage(report(a_build(source_project_id=42, source_branch="mr-branch")))
    [(_, uri, _, body)] = endpoint.requests
    assert uri == f"https://gitlab.com/api/v4/projects/42/statuses/{SHA}"
    assert (body["ref"], body["state"]) == ("mr-branch", "running")


@pytest.mark.parametrize(("props", "number"), [({"branch": "refs/pull/12/merge"}, "12"),
                                               ({"branch": "refs/pull/5/head"}, "5"),
                                               ({"branch": "main", "github.number": 9}, "9")])
@pytest_twisted.ensureDeferred
async def test_github_comment_goes_to_the_pull_request_of_the_build(master, props, number):
    endpoint = Endpoint()
    push = wire(master, GitHubCommentPush("t"), endpoint)
    await push.sendMessage(report(a_build(complete=True, results=SUCCESS, **props), body="All good."))
    [(_, uri, headers, body)] = endpoint.requests
    assert uri == f"https://api.github.com/repos/acme/widgets/issues/{number}/comments"
    assert body == {"body": "All good."} and headers["Authorization"] == "token t"


@pytest_twisted.ensureDeferred
async def test_github_comment_sends_nothing_without_a_pull_request_or_a_body(master):
    endpoint = Endpoint()
    push = wire(master, GitHubCommentPush("t"), endpoint)
    await push.sendMessage(report(a_build(branch="main"), body="x"))
    await push.sendMessage(report(a_build(branch="refs/pull/3/merge"), body=None))
    assert endpoint.requests == []


@pytest.mark.parametrize("cls", [GitHubStatusPush, GitLabStatusPush])
@pytest_twisted.ensureDeferred
async def test_a_4xx_gives_the_report_up_and_a_5xx_or_429_is_retried(master, cls):
    for status, error in [(422, ReportRejected), (500, EndpointFailed), (429, EndpointFailed)]:
        push = wire(master, cls("t"), Endpoint(status))
        with pytest.raises(error, match=str(status)):
            await push.sendMessage(report(a_build()))


@pytest.mark.parametrize(("cls", "start", "end"), [(GitHubStatusPush, "Build started.", "Build done."),
                                                   (GitLabStatusPush, "Build started.", "Build done."),
                                                   (GitHubCommentPush, None, "Build done.")])
@pytest_twisted.ensureDeferred
async def test_the_default_generators_are_buildbots(master, cls, start, end):
    [generator] = cls("t").generators
    build = dict(a_build(), builder={"name": "linux", "tags": []}, state_string="", prev_build=None)
    started = await generator.generate(master, None, BUILD_STARTED, build)
    ended = await generator.generate(master, None, BUILD_FINISHED,
                                     dict(build, complete=True, results=SUCCESS))
    assert (started["body"], ended["body"]) == (start, end)


@pytest.mark.parametrize(("kwargs", "error"), [({"token": None}, "token is required"),
                                               ({"token": ""}, "token is required"),
                                               ({"token": "t", "baseURL": "ftp://x"}, "baseURL")])
@pytest.mark.parametrize("cls", [GitHubStatusPush, GitHubCommentPush, GitLabStatusPush])
def test_wrong_arguments_are_refused(cls, kwargs, error):
    with pytest.raises(ValueError, match=error):
        cls(**kwargs)


def test_the_reporters_are_in_the_plugins_and_provide_ireporter():
    assert reporters.GitHubStatusPush is GitHubStatusPush and reporters.GitLabStatusPush is GitLabStatusPush
    assert reporters.GitHubCommentPush is GitHubCommentPush
    for cls in (GitHubStatusPush, GitHubCommentPush, GitLabStatusPush):
        assert verifyObject(IReporter, cls("t", verbose=True, verify=False, debug=True))


CFG_HEAD = """\
from buildfarm.master.plugins import reporters, schedulers, slaves, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command='true')]))]
"""


def test_the_configuration_page_examples_load_at_buildbots_module_paths(tmp_path):
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "configuration.md")) as f:
        page = f.read()
    examples = re.findall(r"```python\n(.*?)```", page[page.index("## Reporters"):], re.S)[:2]
    path = tmp_path / "master.cfg"
    path.write_text(CFG_HEAD + "".join(examples) + """\
from buildfarm.master.reporters.github import GitHubCommentPush
c['services'].append(GitHubCommentPush('t', name='comments'))
""")
    services = load_config(str(path)).services
    assert [type(s) for s in services[1:]] == [GitHubStatusPush, GitLabStatusPush, GitHubCommentPush]
    gitlab = services[2]
    assert gitlab.base_url == "https://gitlab.example.org" and services[1].base_url == "https://api.github.com"
