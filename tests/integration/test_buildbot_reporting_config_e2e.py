"""Issue 17's done-when, end to end: a master.cfg written as Buildbot 4 projects write theirs
(``from buildbot.plugins import *``, ``c['workers']``, a GitPoller, a Git step, ``c['www']`` with
``auth``/``authz``, ``c['services']`` with a MailNotifier and a GitHubStatusPush, the token from
``SecretInAFile``) loads on stock Buildbot 4.3 (``buildbot checkconfig``) and, with only its
import line changed, on buildfarm.  There, against a real slave, a real git repository, a real
SMTP server (aiosmtpd, STARTTLS and AUTH) and a recording HTTP server as GitHub's API: a force
by a user without the role is a 403 JSON; by a user with it, the build runs on the slave,
GitHub gets pending and then success or failure for the commit's real sha, and the failing build
(not the passing one: ``mode=('failing', 'problem')``) is mailed with its template rendered."""

import base64
import json
import os
import re

import pytest

from fixtures.daemons import free_port, run_cli, wait_for
from fixtures.recordinghttp import RecordingHTTPServer
from fixtures.repos import GitRepo
from fixtures.smtpserver import SMTPServer
from fixtures.stock_buildbot import require_interop_venv, run_buildbot

GH_TOKEN, SMTP_PASSWORD = "ghp-t0ken", "smtp-pa55"
GITHUB_STATUS = re.compile(r"^/api/v3/repos/acme/widgets/statuses/(?P<sha>[0-9a-f]{40})$")

# Our own text, in the style of python/buildmaster-config and buildbot-docker-example-config.
# {placeholders} are filled by the test; doubled braces are the config's own.
MASTER_CFG = """\
# -*- python -*-
# ex: set filetype=python:

from buildbot.plugins import *

SECRETS_DIR = {secrets_dir!r}
REPO_URL = {repo_url!r}

c = BuildmasterConfig = {{}}

####### WORKERS

c['workers'] = [worker.Worker("linux-1", "linux-1-pass")]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}

####### SECRETS

c['secretsProviders'] = [secrets.SecretInAFile(dirname=SECRETS_DIR)]

####### CHANGESOURCES

c['change_source'] = [
    changes.GitPoller(REPO_URL, workdir='gitpoller-workdir', branches=['main'], pollInterval=3600),
]

####### SCHEDULERS

c['schedulers'] = [
    schedulers.SingleBranchScheduler(
        name="main", change_filter=util.ChangeFilter(branch='main'),
        treeStableTimer=None, builderNames=["widgets-linux"]),
    schedulers.ForceScheduler(name="force", builderNames=["widgets-linux"]),
]

####### BUILDERS

factory = util.BuildFactory()
factory.addStep(steps.Git(repourl=REPO_URL, mode='full', method='clobber'))
factory.addStep(steps.ShellCommand(name="test", command=["sh", "check.sh"], haltOnFailure=True))

c['builders'] = [
    util.BuilderConfig(name="widgets-linux", workernames=["linux-1"], factory=factory),
]

####### REPORTERS

MAIL_TEMPLATE = '''\\
The build {{{{ buildername }}}} #{{{{ build['number'] }}}} on {{{{ workername }}}}: {{{{ status_detected }}}}.
Summary: {{{{ summary }}}}
Details: {{{{ build_url }}}}
-- {{{{ buildbot_title }}}}
'''

c['services'] = [
    reporters.MailNotifier(
        fromaddr="buildbot@example.org",
        sendToInterestedUsers=False,
        extraRecipients=["widgets-dev@example.org"],
        relayhost="localhost", smtpPort={smtp_port}, useTls=True,
        smtpUser="mailer", smtpPassword=util.Secret("smtp_password"),
        generators=[
            reporters.BuildStatusGenerator(
                mode=('failing', 'problem'),
                message_formatter=reporters.MessageFormatter(
                    template=MAIL_TEMPLATE, template_type='plain',
                    subject="{{{{ buildername }}}} broke on {{{{ workername }}}}")),
        ],
    ),
    reporters.GitHubStatusPush(
        token=util.Secret("github_token"),
        baseURL={github_url!r},
        context=util.Interpolate("buildbot/%(prop:buildername)s"),
        generators=[reporters.BuildStartEndStatusGenerator(builders=["widgets-linux"])],
        verbose=True,
    ),
]

####### WEB

c['www'] = dict(
    port={www_port},
    plugins=dict(waterfall_view={{}}, console_view={{}}, grid_view={{}}),
    auth=util.UserPasswordAuth({{"alice": "alice-pw", "bob": "bob-pw"}}),
    authz=util.Authz(
        allowRules=[
            util.ForceBuildEndpointMatcher(role="admins"),
            util.StopBuildEndpointMatcher(role="owner"),
            util.AnyControlEndpointMatcher(role="admins"),
        ],
        roleMatchers=[
            util.RolesFromUsername(roles=["admins"], usernames=["alice"]),
            util.RolesFromOwner(role="owner"),
        ],
    ),
)

####### PROJECT IDENTITY

c['title'] = "Widgets CI"
c['titleURL'] = "https://github.com/acme/widgets"
c['buildbotURL'] = "http://127.0.0.1:{www_port}/"
c['buildbotNetUsageData'] = None
c['db'] = {{'db_url': "sqlite:///state.sqlite"}}
"""
STOCK_IMPORT = "from buildbot.plugins import *"
BUILDFARM_IMPORT = "from buildfarm.master.plugins import *"


def check_github(path: str, headers: dict, body) -> list[str]:
    """What GitHub's POST /repos/{owner}/{repo}/statuses/{sha} refuses."""
    problems = []
    if headers.get("Authorization") not in (f"token {GH_TOKEN}", f"Bearer {GH_TOKEN}"):
        problems.append(f"Authorization {headers.get('Authorization')}")
    if not GITHUB_STATUS.match(path):
        problems.append(f"path {path}")
    if not isinstance(body, dict) or body.get("state") not in {"pending", "success", "failure", "error"}:
        problems.append(f"body {body!r}")
    return problems


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def write_secrets(directory: str) -> str:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    for name, value in (("github_token", GH_TOKEN), ("smtp_password", SMTP_PASSWORD)):
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(value)
        os.chmod(path, 0o600)
    return directory


def widgets_repo(path: str) -> tuple[GitRepo, str, str]:
    """A repository whose first commit passes its check and whose second fails it."""
    repo = GitRepo(path)
    good = repo.commit("check.sh", "echo all widgets fine\n", "a passing check")
    bad = repo.commit("check.sh", "echo widget 7 is broken; exit 1\n", "a failing check")
    return repo, good, bad


def config_text(pb_port: int, www_port: int, secrets_dir: str, repo: GitRepo, smtp_port: int,
                github_url: str) -> str:
    return MASTER_CFG.format(pb_port=pb_port, www_port=www_port, secrets_dir=secrets_dir,
                             repo_url=repo.url, smtp_port=smtp_port, github_url=github_url)


def test_the_config_loads_on_stock_buildbot_4_3(tmp_path):
    require_interop_venv()
    repo, _, _ = widgets_repo(str(tmp_path / "widgets"))
    cfg = tmp_path / "master.cfg"
    cfg.write_text(config_text(free_port(), free_port(), write_secrets(str(tmp_path / "secrets")), repo,
                               free_port(), "http://127.0.0.1:1/api/v3"))
    checked = run_buildbot("checkconfig", str(cfg))
    assert "Config file is good!" in checked.stdout, checked.stdout + checked.stderr


@pytest.fixture
def smtp(tmp_path, monkeypatch):
    server = SMTPServer(str(tmp_path), free_port(), user="mailer", password=SMTP_PASSWORD)
    monkeypatch.setenv("SSL_CERT_FILE", server.cert_file)  # the master trusts the relay's certificate
    server.start()
    yield server
    server.stop()


@pytest.fixture
def github():
    server = RecordingHTTPServer(free_port(), "/api/v3", check_github)
    server.status = 201
    server.reply = lambda path, body: {"id": 1, "state": body["state"], "context": body.get("context")}
    server.start()
    yield server
    server.stop()


def force(master, user: str, password: str, sha: str) -> tuple[int, dict]:
    body = {"reason": "a release check",
            "properties": {"branch": "main", "revision": sha,
                           "repository": "https://github.com/acme/widgets.git"}}
    status, data = master.request("POST", "/api/v1/builders/widgets-linux/force", body,
                                  {"Content-Type": "application/json", **basic(user, password)}, user=None)
    return status, json.loads(data)


def test_the_config_with_its_import_line_changed_authorizes_builds_and_reports_them(fleet, tmp_path,
                                                                                   smtp, github):
    repo, good, bad = widgets_repo(str(tmp_path / "widgets"))
    secrets_dir = write_secrets(str(tmp_path / "secrets"))

    def ported(pb_port: int, www_port: int) -> str:
        text = config_text(pb_port, www_port, secrets_dir, repo, smtp.port, github.url)
        assert text.count(STOCK_IMPORT) == 1
        return text.replace(STOCK_IMPORT, BUILDFARM_IMPORT)

    master = fleet.master(config=ported)
    checked = run_cli("buildmaster", "checkconfig", master.basedir)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    fleet.slave(master, "linux-1", "linux-1-pass")
    master.wait_attached("linux-1")

    status, body = force(master, "bob", "bob-pw", good)  # bob has no role
    assert (status, body["scope"]) == (403, "builds:force:widgets-linux"), body
    assert master.get("/api/v1/buildrequests")["buildrequests"] == []

    results = {}
    for sha in (good, bad):
        status, body = force(master, "alice", "alice-pw", sha)  # alice is in 'admins'
        assert status == 200, body
        done = master.wait_request_complete(body["buildrequestid"])
        results[sha] = done["results"]
        assert done["properties"]["owner"] == "alice"
    assert results == {good: 0, bad: 2}  # SUCCESS, FAILURE
    builds = master.get("/api/v1/builds?builder=widgets-linux&complete=true")["builds"]
    assert sorted(b["properties"]["got_revision"] for b in builds) == sorted([good, bad])
    assert {b["slavename"] for b in builds} == {"linux-1"}

    wait_for(lambda: len(github.calls) == 4, "pending and an end status for each build")
    assert github.problems == []
    assert [(GITHUB_STATUS.match(p)["sha"], c["state"]) for p, c in zip(github.paths, github.calls,
                                                                          strict=True)] == [
        (good, "pending"), (good, "success"), (bad, "pending"), (bad, "failure")]
    assert {c["context"] for c in github.calls} == {"buildbot/widgets-linux"}

    [mail] = wait_for(smtp.received, "the failing build's mail")
    assert mail["tls"] and mail["authenticated"]
    assert mail["to"] == ["widgets-dev@example.org"]
    message = mail["message"]
    assert message["Subject"] == "widgets-linux broke on linux-1"
    assert message.get_content_type() == "text/plain"  # template_type='plain', no logs attached
    lines = message.get_content().splitlines()
    # 'new failure': the build before it passed (Buildbot's status_detected).
    assert lines[0] == "The build widgets-linux #2 on linux-1: new failure."
    assert lines[1].startswith("Summary: BUILD FAILED")
    assert re.fullmatch(rf"Details: http://127\.0\.0\.1:{master.www_port}/builds/\d+", lines[2]), lines
    assert lines[3] == "-- Widgets CI"
    assert len(smtp.received()) == 1  # the passing build was not mailed
    assert "Traceback" not in master.log_text()
