"""Changes from outside into real master and slave daemons: stock Buildbot 4.3's
``buildbot sendchange`` (from .venv-interop) over PB to a ``PBChangeSource``, and a signed
GitHub push to ``/change_hook/github`` on the real web port; each triggers a build on a real
slave.  A forged push and a wrong sendchange password are refused."""

import json
import os
import subprocess
import urllib.error
import urllib.request

from buildfarm.master.changes.hooks import github_signature
from fixtures.buildbotpackage import interop_venv
from fixtures.daemons import free_port, wait_for

PAYLOADS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "webhooks")
# The stock Buildbot CLI (BUILDFARM_INTEROP_VENV names another .venv-interop: fixtures/buildbotpackage.py).
BUILDBOT = os.path.join(interop_venv(), "bin", "buildbot")
SECRET = "It's a Secret to Everybody"
CLI_TIMEOUT_S = 60

MASTER_CFG = """\
from buildfarm.master.plugins import changes, schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['change_source'] = [changes.PBChangeSource(user='ci', passwd='ci-pw', prefix='src/'),
                      changes.PBChangeSource(user='ci2', passwd='ci2-pw', port={change_port})]
c['www'] = {{'port': {www_port},
            'change_hook_dialects': {{'github': {{'secret': {secret!r}, 'strict': True}}}}}}
c['builders'] = [util.BuilderConfig(name=name, slavenames=['bs1'], factory=util.BuildFactory(
    [steps.ShellCommand(command=['echo', util.Property('revision')])])) for name in ('sent', 'pushed')]
c['schedulers'] = [
    schedulers.SingleBranchScheduler(name='sent', builderNames=['sent'], treeStableTimer=None,
        change_filter=util.ChangeFilter(branch='main', repository='file:///srv/repo')),
    schedulers.SingleBranchScheduler(name='pushed', builderNames=['pushed'], treeStableTimer=None,
        change_filter=util.ChangeFilter(branch='main', project='Codertocat/Hello-World')),
]
"""


def start(fleet, change_port: int = 0):
    assert os.access(BUILDBOT, os.X_OK), f"{BUILDBOT} is missing: run `make interop` (or set " \
                                         "BUILDFARM_INTEROP_VENV)"
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, secret=SECRET, change_port=change_port or free_port()))
    fleet.slave(master)
    master.wait_attached("bs1")
    return master


def sendchange(master, auth: str, revision: str, port: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BUILDBOT, "sendchange", "--master", f"127.0.0.1:{port or master.pb_port}", "--auth", auth,
         "--who", "alice <alice@example.org>", "--repository", "file:///srv/repo", "--branch", "main",
         "--revision", revision, "--comments", "fix the frobnicator", "--vc", "git",
         "src/frob.c", "docs/frob.md"],
        capture_output=True, text=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)


def post_hook(master, body: bytes, signature: str) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature}
    request = urllib.request.Request(master.url + "/change_hook/github", data=body, method="POST",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def finished_builds(master, builder: str) -> list[dict]:
    return master.get(f"/api/v1/builds?builder={builder}&complete=true")["builds"]


def test_stock_buildbot_sendchange_triggers_a_build_and_a_wrong_password_is_refused(fleet):
    master = start(fleet)
    refused = sendchange(master, "ci:wrong", "bad1")
    assert refused.returncode != 0, refused.stdout
    sent = sendchange(master, "ci:ci-pw", "abc123")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [build] = wait_for(lambda: finished_builds(master, "sent"), "the build of the sent change")
    assert build["result"] == "success"
    assert (build["properties"]["revision"], build["properties"]["branch"]) == ("abc123", "main")
    [change] = master.get("/api/v1/changes")["changes"]
    assert change["author"] == "alice <alice@example.org>"
    assert change["files"] == ["frob.c"]  # the source's prefix: only src/, without it
    assert "login refused" in master.log_text()


def test_sendchange_to_a_change_source_with_its_own_port(fleet):
    change_port = free_port()
    master = start(fleet, change_port)
    assert sendchange(master, "bs1:pass", "slave1", port=change_port).returncode != 0  # no slave there
    sent = sendchange(master, "ci2:ci2-pw", "own123", port=change_port)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [build] = wait_for(lambda: finished_builds(master, "sent"), "the build of the sent change")
    assert (build["result"], build["properties"]["revision"]) == ("success", "own123")
    [change] = master.get("/api/v1/changes")["changes"]
    assert change["files"] == ["src/frob.c", "docs/frob.md"]  # this source has no prefix


def test_signed_github_push_triggers_a_build_and_a_forged_one_is_refused(fleet):
    master = start(fleet)
    with open(os.path.join(PAYLOADS, "github_push.json"), "rb") as f:
        body = f.read()
    forged = post_hook(master, body, github_signature("not the secret", body))
    assert forged[0] == 403 and "X-Hub-Signature-256" in forged[1]["error"]
    status, answer = post_hook(master, body, github_signature(SECRET, body))
    assert (status, answer) == (200, {"changeids": [1]})
    [build] = wait_for(lambda: finished_builds(master, "pushed"), "the build of the pushed commit")
    assert build["result"] == "success"
    assert build["properties"]["revision"] == "8f8a3d1f2a3c6b2cbd5f1b1d8bd2c4f3d3e4a5b6"
    audit = master.get("/api/v1/audit?surface=change_hook")["audit"]
    assert sorted((row["outcome"], row["status"]) for row in audit) == [("done", 200), ("refused", 403)]
