"""/change_hook/<dialect> in memory: the payloads GitHub, GitLab and Bitbucket document
(tests/fixtures/webhooks/), rendered on the web site of a real master built in memory (real
database, schedulers and auth), down to the buildsets the existing schedulers make of them."""

import json
import pathlib
from urllib.parse import urlencode

import pytest
import pytest_twisted

from buildfarm.master.changes.hooks import (
    HookError,
    HookRefused,
    HookRequest,
    changes_from,
    github_signature,
    validate_dialects,
)
from buildfarm.master.config import load_config
from buildfarm.master.www.site import WWWService
from fixtures.memoryhttp import render
from fixtures.memorymaster import eventually, memory_master_fixture

PAYLOADS = pathlib.Path(__file__).parent.parent / "fixtures" / "webhooks"
SECRET = "It's a Secret to Everybody"
GITLAB_TOKEN = "gl-token-1"
TREE_STABLE_S = 60

HOOKS_CFG = f"""\
from buildfarm.master.plugins import slaves, schedulers, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': 9989}}}}
f = util.BuildFactory([steps.ShellCommand(command=['true'])])
c['builders'] = [util.BuilderConfig(name=n, slavenames=['bs1'], factory=f) for n in ('main', 'pulls', 'gl')]
c['schedulers'] = [
    schedulers.SingleBranchScheduler(name='main', builderNames=['main'], treeStableTimer={TREE_STABLE_S},
        change_filter=util.ChangeFilter(branch='main', project='Codertocat/Hello-World')),
    schedulers.AnyBranchScheduler(name='pulls', builderNames=['pulls'],
        change_filter=util.ChangeFilter(category='pull')),
    schedulers.AnyBranchScheduler(name='gl', builderNames=['gl'],
        change_filter=util.ChangeFilter(repository='git@example.com:mike/diaspora.git')),
]
c['www'] = {{'port': 8010, 'change_hook_dialects': {{
    'github': {{'secret': {SECRET!r}, 'strict': True}},
    'gitlab': {{'secret': {GITLAB_TOKEN!r}}},
    'bitbucket': True,
    'base': True,
}}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""

master = memory_master_fixture(HOOKS_CFG, now=1000.0)


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def site(master):
    return WWWService(master).make_site().resource


async def post(master, path: str, body: bytes, headers: dict, args: dict | None = None):
    return await render(site(master), "POST", path, args=args, body=body, headers=headers)


def github_headers(event: str, body: bytes, secret: str = SECRET) -> dict:
    return {"X-GitHub-Event": event, "Content-Type": "application/json",
            "X-Hub-Signature-256": github_signature(secret, body), "X-GitHub-Delivery": "72d3162e"}


async def buildsets_of(master) -> list[str]:
    return sorted(row["scheduler"] for row in await master.db.buildsets.get_all())


async def _has_buildsets(master, expected: list[str]) -> bool:
    return await buildsets_of(master) == expected


# -- GitHub ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_signed_github_push_adds_its_commits_and_feeds_the_single_branch_scheduler(master):
    body = payload("github_push.json")
    response = await post(master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    change = await master.db.changes.get(changeid)
    assert change["author"] == "Codertocat <21031067+Codertocat@users.noreply.github.com>"
    assert change["committer"] == "GitHub <noreply@github.com>"
    assert change["revision"] == "8f8a3d1f2a3c6b2cbd5f1b1d8bd2c4f3d3e4a5b6"
    assert change["branch"] == "main"
    assert change["files"] == ["README.md"]
    assert change["repository"] == "https://github.com/Codertocat/Hello-World"
    assert change["project"] == "Codertocat/Hello-World"
    assert change["when_timestamp"] == 1557933641.0  # 2019-05-15T15:20:41Z
    assert change["properties"]["event"] == "push"
    assert await buildsets_of(master) == []  # the tree must stay stable first
    master.reactor.advance(TREE_STABLE_S)
    await eventually(lambda: _has_buildsets(master, ["main"]), "the tree-stable timer's buildset")


@pytest_twisted.ensureDeferred
async def test_forged_github_signature_is_refused_with_a_json_403_and_audited(master):
    body = payload("github_push.json")
    response = await post(master, "/change_hook/github", body, github_headers("push", body, secret="guess"))
    assert response.code == 403
    assert response.header("content-type") == "application/json"
    assert "X-Hub-Signature-256 does not match" in json.loads(response.body)["error"]
    assert await master.db.changes.count() == 0
    [row] = await master.db.audit.get_all(surface="change_hook")
    assert (row["outcome"], row["status"], row["scope"]) == ("refused", 403, "change_hook:github")


@pytest_twisted.ensureDeferred
async def test_github_body_altered_after_signing_is_refused(master):
    body = payload("github_push.json")
    headers = github_headers("push", body)
    forged = body.replace(b"refs/heads/main", b"refs/heads/evil")
    response = await post(master, "/change_hook/github", forged, headers)
    assert response.code == 403
    assert await master.db.changes.count() == 0


@pytest_twisted.ensureDeferred
async def test_unsigned_github_request_is_refused_when_the_hook_has_a_secret(master):
    body = payload("github_push.json")
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    response = await post(master, "/change_hook/github", body, headers)
    assert response.code == 403
    assert "missing X-Hub-Signature-256" in json.loads(response.body)["error"]


@pytest_twisted.ensureDeferred
async def test_github_pull_request_opened_feeds_the_scheduler_filtering_on_category_pull(master):
    body = payload("github_pull_request.json")
    response = await post(master, "/change_hook/github", body, github_headers("pull_request", body))
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    change = await master.db.changes.get(changeid)
    assert change["branch"] == "refs/pull/2/merge"
    assert change["revision"] == "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
    assert change["category"] == "pull"
    assert change["author"] == "Codertocat"
    assert change["comments"].startswith("GitHub Pull Request #2 (1 commit)\nUpdate the README")
    assert change["properties"]["basename"] == "master"
    assert await buildsets_of(master) == ["pulls"]


@pytest_twisted.ensureDeferred
async def test_github_ping_is_answered_without_a_change(master):
    body = json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode()
    response = await post(master, "/change_hook/github", body, github_headers("ping", body))
    assert response.code == 200
    assert json.loads(response.body) == {"changeids": []}


@pytest_twisted.ensureDeferred
async def test_signed_github_request_that_is_not_json_is_a_400(master):
    body = b"{not json"
    response = await post(master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 400
    assert "not JSON" in json.loads(response.body)["error"]
    [row] = await master.db.audit.get_all(surface="change_hook")
    assert (row["outcome"], row["status"]) == ("failed", 400)


@pytest_twisted.ensureDeferred
async def test_signed_github_payload_missing_fields_is_a_400_not_a_500(master):
    body = json.dumps({"ref": "refs/heads/main"}).encode()
    response = await post(master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 400
    assert "github payload not understood" in json.loads(response.body)["error"]


# -- GitLab, Bitbucket, base ----------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_gitlab_push_with_its_token_adds_each_commit(master):
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": GITLAB_TOKEN,
               "Content-Type": "application/json"}
    response = await post(master, "/change_hook/gitlab", payload("gitlab_push.json"), headers)
    assert response.code == 200, response.body
    ids = json.loads(response.body)["changeids"]
    changes = [await master.db.changes.get(i) for i in ids]
    assert [c["revision"] for c in changes] == ["b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327",
                                                "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"]
    assert changes[0]["author"] == "Jordi Mallach <jordi@softcatala.org>"
    assert changes[0]["files"] == ["CHANGELOG", "app/controller/application.rb"]
    assert changes[0]["branch"] == "master"
    assert changes[0]["repository"] == "git@example.com:mike/diaspora.git"
    assert await buildsets_of(master) == ["gl", "gl"]


@pytest_twisted.ensureDeferred
async def test_gitlab_request_with_a_wrong_token_is_refused(master):
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": "wrong", "Content-Type": "application/json"}
    response = await post(master, "/change_hook/gitlab", payload("gitlab_push.json"), headers)
    assert response.code == 403
    assert json.loads(response.body)["error"] == "wrong or missing X-Gitlab-Token"
    assert await master.db.changes.count() == 0


@pytest_twisted.ensureDeferred
async def test_gitlab_merge_request_opened_targets_its_branch(master):
    headers = {"X-Gitlab-Event": "Merge Request Hook", "X-Gitlab-Token": GITLAB_TOKEN}
    response = await post(master, "/change_hook/gitlab", payload("gitlab_merge_request.json"), headers)
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    change = await master.db.changes.get(changeid)
    assert (change["branch"], change["category"]) == ("master", "merge_request")
    assert change["properties"]["source_branch"] == "ms-viewport"


@pytest_twisted.ensureDeferred
async def test_bitbucket_post_service_payload_form_field(master):
    body = urlencode({"payload": payload("bitbucket_post.json").decode()}).encode()
    args = {"payload": payload("bitbucket_post.json").decode()}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await post(master, "/change_hook/bitbucket", body, headers, args)
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    change = await master.db.changes.get(changeid)
    assert change["author"] == "Marcus Bertrand <marcus@somedomain.com>"
    assert change["repository"] == "https://bitbucket.org/marcus/project-x/"
    assert change["files"] == ["somefile.py"]


@pytest_twisted.ensureDeferred
async def test_base_dialect_reads_form_fields(master):
    args = {"author": "alice", "branch": "main", "revision": "abc123", "project": "Codertocat/Hello-World",
            "files": json.dumps(["a.c"]), "properties": json.dumps({"x": "1"}), "comments": "fix"}
    response = await post(master, "/change_hook/base", urlencode(args).encode(),
                          {"Content-Type": "application/x-www-form-urlencoded"}, args)
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    change = await master.db.changes.get(changeid)
    assert (change["author"], change["branch"], change["files"], change["properties"]) == \
        ("alice", "main", ["a.c"], {"x": "1"})
    master.reactor.advance(TREE_STABLE_S)
    await eventually(lambda: _has_buildsets(master, ["main"]), "the tree-stable timer's buildset")


@pytest_twisted.ensureDeferred
async def test_unconfigured_dialect_is_a_json_404(master):
    response = await post(master, "/change_hook/gitea", b"{}", {"Content-Type": "application/json"})
    assert response.code == 404
    assert "no change hook dialect 'gitea'" in json.loads(response.body)["error"]


@pytest_twisted.ensureDeferred
async def test_get_on_a_change_hook_is_a_json_405(master):
    response = await render(site(master), "GET", "/change_hook/github")
    assert response.code == 405
    assert json.loads(response.body)["error"] == "change hooks take POST only"


# -- the dialects alone ---------------------------------------------------------------------

def test_github_deleted_branch_and_skip_ci_add_nothing():
    push = json.loads(payload("github_push.json"))
    deleted = json.dumps({**push, "deleted": True}).encode()
    assert changes_from("github", {}, HookRequest({"x-github-event": "push"}, deleted)) == []
    skipped = {**push, "head_commit": {**push["head_commit"], "message": "docs [ci skip]"}}
    skipped_body = json.dumps(skipped).encode()
    assert changes_from("github", {}, HookRequest({"x-github-event": "push"}, skipped_body)) == []


def test_github_tag_push_has_category_tag():
    push = {**json.loads(payload("github_push.json")), "ref": "refs/tags/v1.0"}
    [change] = changes_from("github", {}, HookRequest({"x-github-event": "push"}, json.dumps(push).encode()))
    assert (change["branch"], change["category"]) == ("v1.0", "tag")


def test_github_codebase_option_names_the_codebase():
    body = payload("github_push.json")
    [change] = changes_from("github", {"codebase": "hello"}, HookRequest({"x-github-event": "push"}, body))
    assert change["codebase"] == "hello"


def test_github_unknown_event_is_an_error():
    with pytest.raises(HookError, match="unknown GitHub event 'issues'"):
        changes_from("github", {}, HookRequest({"x-github-event": "issues"}, b"{}"))


def test_github_signature_is_checked_before_the_body_is_read():
    with pytest.raises(HookRefused):
        changes_from("github", {"secret": SECRET}, HookRequest(
            {"x-github-event": "push", "x-hub-signature-256": "sha256=00"}, b"{not json"))


@pytest.mark.parametrize(("dialects", "error"), [
    ({"gitea": {}}, "change hook dialect 'gitea' is not supported by buildfarm"),
    ({"github": {"strict": True}}, "'strict' needs a 'secret'"),
    ({"github": {"class": object}}, "option 'class' is not supported by buildfarm"),
    ({"gitlab": {"secret": 3}}, "'secret' must be a non-empty string"),
    ({"base": "yes"}, "its options must be a dict (or True)"),
    (["github"], "must be a dict of dialect name: options"),
])
def test_bad_dialect_configuration_is_named(dialects, error):
    _, errors = validate_dialects(dialects)
    assert any(error in e for e in errors), errors


@pytest_twisted.ensureDeferred
async def test_signed_push_with_a_branch_longer_than_the_database_holds_is_a_400(master):
    push = json.loads(payload("github_push.json"))
    body = json.dumps({**push, "ref": "refs/heads/" + "b" * 300}).encode()
    response = await post(master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 400
    assert json.loads(response.body)["error"] == "branch is longer than 255 characters"
    assert await master.db.changes.count() == 0


@pytest_twisted.ensureDeferred
async def test_signed_payload_nested_too_deeply_is_a_400(master):
    body = b"[" * 100_000 + b"]" * 100_000
    response = await post(master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 400
    assert json.loads(response.body)["error"] == "the payload is nested too deeply"


def test_base_when_timestamp_out_of_range_is_an_error():
    with pytest.raises(HookError, match="when_timestamp must be epoch seconds"):
        changes_from("base", {}, HookRequest({}, b"", {"when_timestamp": ["1e300"]}))


CODEBASE_CFG = HOOKS_CFG.replace(
    "'github': {'secret'", "'github': {'codebase': 'hello', 'secret'").replace(
    "schedulers.AnyBranchScheduler(name='gl'",
    "schedulers.AnyBranchScheduler(name='hello', builderNames=['gl'], "
    "codebases={'hello': {'repository': 'https://github.com/Codertocat/Hello-World'}}, "
    "change_filter=util.ChangeFilter(codebase='hello')),\n    schedulers.AnyBranchScheduler(name='gl'")
codebase_master = memory_master_fixture(CODEBASE_CFG, now=1000.0)


@pytest_twisted.ensureDeferred
async def test_github_codebase_option_feeds_a_scheduler_filtering_on_that_codebase(codebase_master):
    body = payload("github_push.json")
    response = await post(codebase_master, "/change_hook/github", body, github_headers("push", body))
    assert response.code == 200, response.body
    [changeid] = json.loads(response.body)["changeids"]
    assert (await codebase_master.db.changes.get(changeid))["codebase"] == "hello"
    [buildset] = await codebase_master.db.buildsets.get_all()
    assert buildset["scheduler"] == "hello"
    assert buildset["properties"]["codebase"] == "hello"


def test_checkconfig_warns_of_a_dialect_without_a_secret(tmp_path):
    path = tmp_path / "master.cfg"
    path.write_text(HOOKS_CFG)
    warnings = load_config(str(path)).warnings
    assert any("change hook 'base' has no secret" in w for w in warnings), warnings
    assert not any("'github' has no secret" in w for w in warnings)
    assert not any("change_hook_dialects'] has no effect" in w for w in warnings)
