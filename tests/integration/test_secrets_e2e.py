"""Secrets stay secret end to end: a real master and a real slave (ours, and a stock
buildbot-worker 4.3 whose log header the master redacts) whose environment, step ``env`` and
info files hold secrets; the build log, the JSON API and the slave page show the variable
names but no secret value."""

import hashlib
import json
import os
import subprocess

import pytest

from fixtures.daemons import CLI_TIMEOUT_S, INTEROP_BIN_DIR, Slave, run_cli

PEM_BODY = "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ"
# The slave's own environment (the daemon inherits the test's environment).
SLAVE_SECRETS = {
    "DB_PASS": "hunter2-e2e",
    "DATABASE_URL": "postgres://u:pw-db-e2e@db.example.com/db",
    "SSH_PRIVATE_KEY": f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----",
    "GITHUB_PAT": "ghp_" + "E2e4C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "NPM_AUTH": "npm_" + "e2eB2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7E2ETEST",
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYE2ETESTKEY",
}
STEP_SECRET = "step-token-e2e"
ADMIN_PASSWORD = "pw-admin-e2e"
SECRET_VALUES = ("hunter2-e2e", "pw-db-e2e", PEM_BODY, SLAVE_SECRETS["GITHUB_PAT"], SLAVE_SECRETS["NPM_AUTH"],
                 SLAVE_SECRETS["AWS_ACCESS_KEY_ID"], SLAVE_SECRETS["AWS_SECRET_ACCESS_KEY"], STEP_SECRET,
                 ADMIN_PASSWORD)

MASTER_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [
    util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory([
        steps.ShellCommand(command='echo built', env={{'DEPLOY_TOKEN': '{step_secret}'}}),
    ])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def assert_no_secret(text: str, where: str) -> None:
    leaked = [value for value in SECRET_VALUES if value in text]
    assert not leaked, f"{where} shows {leaked}: {text}"


def start_slave(fleet, master, kind: str) -> None:
    """Create ``bs1`` (ours or a stock worker), give it an info/admin file with a URL
    password, start it."""
    if kind == "stock buildbot-worker 4.3":
        tool = os.path.join(INTEROP_BIN_DIR, "buildbot-worker")
        assert os.path.exists(tool), f"{tool} is missing: run `make interop` to install stock Buildbot"
        slave = Slave(os.path.join(fleet.root, "worker-bs1"), "bs1", stock=True)
        fleet.slaves.append(slave)
        subprocess.run([tool, "create-worker", slave.basedir, f"127.0.0.1:{master.pb_port}", "bs1", "pass"],
                       check=True, capture_output=True, timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    else:
        slave = fleet.slave(master, start=False)
    with open(os.path.join(slave.basedir, "info", "admin"), "w") as f:
        f.write(f"ops, wiki https://ops:{ADMIN_PASSWORD}@wiki.example.com/bs1\n")
    if slave.stock:
        subprocess.run([tool, "start", slave.basedir], check=True, capture_output=True,
                       timeout=CLI_TIMEOUT_S, stdin=subprocess.DEVNULL)
    else:
        run_cli("buildslave", "start", slave.basedir, check=True)


@pytest.mark.parametrize("kind", ["buildfarm buildslave", "stock buildbot-worker 4.3"])
def test_build_log_api_and_slave_page_show_names_but_no_secret_value(fleet, monkeypatch, kind):
    for name, value in SLAVE_SECRETS.items():
        monkeypatch.setenv(name, value)
    master = fleet.master(config=lambda pb_port, www_port: MASTER_CFG.format(
        pb_port=pb_port, www_port=www_port, step_secret=STEP_SECRET))
    start_slave(fleet, master, kind)
    master.wait_attached("bs1")

    request = master.wait_request_complete(master.force())
    assert request["result"] == "success"
    status, log = master.request("GET", f"/api/v1/builds/{request['buildids'][0]}/steps/0/logs/stdio")
    assert status == 200
    text = log.decode()
    assert "\nbuilt\n" in text
    assert_no_secret(text, "the build log")
    for name in (*SLAVE_SECRETS, "DEPLOY_TOKEN"):
        assert f"  {name}=" in text, name
    assert "  DATABASE_URL=postgres://u:<redacted>@db.example.com/db\n" in text

    status, body = master.request("GET", "/api/v1/slaves/bs1")
    assert status == 200
    assert_no_secret(body.decode(), "GET /api/v1/slaves/bs1")
    info = master.slave("bs1")["info"]
    assert set(SLAVE_SECRETS) <= set(info["environ"]) and info["environ"]["DB_PASS"] == "<redacted>"
    assert info["admin"].startswith("ops, wiki https://ops:<redacted>@wiki.example.com/bs1")
    status, body = master.request("GET", "/api/v1/slaves")
    assert status == 200
    assert_no_secret(body.decode(), "GET /api/v1/slaves")

    status, page = master.request("GET", "/slaves/bs1")
    assert status == 200
    assert "wiki.example.com" in page.decode()
    assert_no_secret(page.decode(), "the slave page")


# c['secretsProviders']: util.Secret and %(secret:...)s reach the slave, and only <name> is shown.

PROVIDED_TOKEN = "prov1ded-t0ken-e2e-7f3a"
PROVIDERS_CFG = """\
from buildfarm.master.plugins import schedulers, secrets, slaves, steps, util

c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['secretsProviders'] = [secrets.SecretInAFile(dirname={dirname!r})]
c['builders'] = [
    util.BuilderConfig(name='deploy', slavenames=['bs1'], factory=util.BuildFactory([
        steps.ShellCommand(command=['echo', util.Secret('token')]),
        steps.ShellCommand(
            command=['sh', '-c', 'test "$CHECK_VALUE" = "$1" && printf %s "$CHECK_VALUE" | sha256sum'
                     ' > token.sha && echo "env has $CHECK_VALUE"', 'sh', util.Secret('token')],
            env={{'CHECK_VALUE': util.Interpolate('%(secret:token)s')}}),
        steps.SetProperty(property='deploy_url', value=util.Interpolate('https://ci:%(secret:token)s@example.org/')),
    ])),
    util.BuilderConfig(name='missing', slavenames=['bs1'], factory=util.BuildFactory([
        steps.ShellCommand(command=['echo', util.Secret('not_there')]),
    ])),
]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['deploy', 'missing'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


@pytest.mark.parametrize("kind", ["buildfarm buildslave", "stock buildbot-worker 4.3"])
def test_a_provided_secret_reaches_the_slave_and_logs_pages_and_api_show_its_name(fleet, kind):
    secrets_dir = os.path.join(fleet.root, "secrets")
    os.mkdir(secrets_dir, 0o700)
    with open(os.path.join(secrets_dir, "token"), "w") as f:
        f.write(PROVIDED_TOKEN + "\n")
    os.chmod(os.path.join(secrets_dir, "token"), 0o600)
    master = fleet.master(config=lambda pb_port, www_port: PROVIDERS_CFG.format(
        pb_port=pb_port, www_port=www_port, dirname=secrets_dir))
    slave = fleet.stock_worker(master) if kind.startswith("stock") else fleet.slave(master)
    master.wait_attached("bs1")

    request = master.wait_request_complete(master.force("deploy"))
    assert request["result"] == "success"
    # The command's effect: the slave had the real value (in argv and in env, equal).
    with open(os.path.join(slave.basedir, "deploy", "build", "token.sha")) as f:
        assert f.read().split()[0] == hashlib.sha256(PROVIDED_TOKEN.encode()).hexdigest()

    buildid = request["buildids"][0]
    shown = []
    for number, expected in ((0, "\n<token>\n"), (1, "env has <token>\n")):
        status, log = master.request("GET", f"/api/v1/builds/{buildid}/steps/{number}/logs/stdio")
        assert status == 200
        text = log.decode()
        assert expected in text, text
        shown.append(text)
    header = shown[1].rsplit("env has <token>", 1)[0]
    assert header.splitlines()[0].endswith(" sh <token>"), header  # the command line the header shows
    assert "  CHECK_VALUE=<token>\n" in header, header  # and its environment
    build = master.get(f"/api/v1/builds/{buildid}")
    assert build["properties"]["deploy_url"] == "https://ci:<token>@example.org/"
    shown.append(json.dumps(build))
    for path in (f"/builds/{buildid}", f"/builds/{buildid}/steps/0/logs/stdio",
                 f"/builds/{buildid}/steps/1/logs/stdio/raw", "/builders/deploy"):
        status, page = master.request("GET", path)
        assert status == 200, path
        shown.append(page.decode())
    assert "&lt;token&gt;" in shown[3] or "<token>" in shown[3]
    for text in shown:
        assert PROVIDED_TOKEN not in text, text


def test_a_secret_no_provider_has_fails_the_build_naming_it(fleet):
    secrets_dir = os.path.join(fleet.root, "secrets")
    os.mkdir(secrets_dir, 0o700)
    master = fleet.master(config=lambda pb_port, www_port: PROVIDERS_CFG.format(
        pb_port=pb_port, www_port=www_port, dirname=secrets_dir))
    fleet.slave(master)
    master.wait_attached("bs1")

    request = master.wait_request_complete(master.force("missing"))
    assert request["result"] == "exception"
    build = master.get(f"/api/v1/builds/{request['buildids'][0]}")
    step = build["steps"][0]
    assert step["state_string"].startswith("secret 'not_there' is not found in any provider (SecretInAFile(")
    assert "Traceback" not in master.log_text().split("build missing#")[-1]
