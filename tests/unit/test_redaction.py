"""Redaction (common/redaction.py) by name and by value shape, and where it applies: the
slave's ShellCommand log header, the master's handling of any slave's log header, and the
JSON API's slave info."""

import json
import os
import time

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from buildfarm.common.redaction import (
    REDACTED,
    is_secret_name,
    redact_environ,
    redact_info,
    redact_log_header,
    redact_value,
)
from buildfarm.master.pb.remotecommand import OutputOnlyLog, RemoteCommand
from buildfarm.master.process.build import Build
from buildfarm.master.www.api import JSONAPI
from buildfarm.slave.bot import Bot
from buildfarm.slave.builder import SlaveBuilder
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.memoryhttp import render

# The issue's examples (fake values of the real shapes).
GITHUB_PAT = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_FINE_PAT = "github_pat_11ABCDEFG0" + "x" * 60
NPM_TOKEN = "npm_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
       "AAAAAAABAAAAMwAAAAtzc2gtZWQyNTUxOQ==\n-----END OPENSSH PRIVATE KEY-----")
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
HOSTILE_CPU_BOUND_S = 1.0  # linear: ~0.02 s here; the quadratic scheme search took 7 s
SECRET_ENVIRON = {
    "DB_PASS": "hunter2",
    "DATABASE_URL": "postgres://u:pw-db-9@db.example.com/db",
    "SSH_PRIVATE_KEY": PEM,
    "GITHUB_PAT": GITHUB_PAT,
    "NPM_AUTH": NPM_TOKEN,
    "AWS_ACCESS_KEY_ID": AWS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
}
SECRET_VALUES = ("hunter2", "pw-db-9", "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ", GITHUB_PAT,
                 NPM_TOKEN, AWS_KEY_ID, AWS_SECRET)
HARMLESS_ENVIRON = {
    "PATH": "/usr/local/bin:/usr/bin", "HOME": "/home/cltbld", "KEYBOARD_LAYOUT": "us",
    "MONKEY": "banana", "PWD": "/builds/slave", "OLDPWD": "/", "SSH_AUTH_SOCK": "/tmp/agent.1",
    "XDG_SESSION_ID": "3", "TOKENIZERS_PARALLELISM": "false", "GIT_AUTHOR_NAME": "Release Bot",
    "UPSTREAM": "https://user@hg.example.com/repo", "MIRROR": "https://hg.example.com:8443/repo?x=a@b",
    "GIT_COMMIT": "0123456789abcdef0123456789abcdef01234567", "LANG": "C.UTF-8",
}


# -- names ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "DB_PASS", "PASSWORD", "PGPASSWORD", "MYSQL_PWD", "DB_PASSWD", "SECRET", "CLIENT_SECRET",
    "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN", "GITHUBTOKEN", "API_KEY", "APIKEY", "SSH_KEY",
    "GITHUB_PAT", "NPM_AUTH", "GOOGLE_APPLICATION_CREDENTIALS", "SSH_PRIVATE_KEY",
    "SESSION_COOKIE", "FLASK_SESSION", "SENTRY_DSN", "apiKey", "dbPassword", "x-auth-token",
    "gpg.passphrase",
])
def test_secret_names_are_recognised_by_their_word_parts(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", [
    "PATH", "HOME", "KEYBOARD_LAYOUT", "MONKEY", "PWD", "OLDPWD", "SSH_AUTH_SOCK", "XDG_SESSION_ID",
    "DBUS_SESSION_BUS_ADDRESS", "TOKENIZERS_PARALLELISM", "GIT_AUTHOR_NAME", "PATCH_LEVEL",
    "BYPASS_CACHE", "SESSIONNAME", "SECRETARY", "LANG", "",
])
def test_harmless_look_alike_names_are_not_secret(name):
    assert not is_secret_name(name)


def test_the_issues_environment_comes_back_without_a_secret_value():
    shown = redact_environ({**SECRET_ENVIRON, **HARMLESS_ENVIRON})
    text = json.dumps(shown)
    for value in SECRET_VALUES:
        assert value not in text
    assert shown["DATABASE_URL"] == f"postgres://u:{REDACTED}@db.example.com/db"
    assert shown["DB_PASS"] == shown["SSH_PRIVATE_KEY"] == shown["GITHUB_PAT"] == REDACTED
    assert {name: shown[name] for name in HARMLESS_ENVIRON} == HARMLESS_ENVIRON


# -- shapes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("token", [
    GITHUB_PAT, "gho_" + "x" * 36, "ghs_" + "y" * 36, GITHUB_FINE_PAT, "glpat-" + "Ab3_-" * 4,
    "xoxb-1234567890-abcdefghij", "xoxp-1234567890-abcdefghij", AWS_KEY_ID, "ASIAY34FZKBOKMUTVV7A",
    NPM_TOKEN, "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "rk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "pypi-AgEIcHlwaS5vcmcCJGE0ZTY5ZDZlLWYwNzctNGFjNy04NTViLWVjYTc5ZjY5NTQ5NwACJXsicGVybWlzc2lvbnMiOiAidXNlciJ9",
])
def test_known_token_shapes_are_redacted_whatever_the_name(token):
    assert redact_environ({"HARMLESS": f"value {token} more"}) == {"HARMLESS": f"value {REDACTED} more"}


def test_a_url_keeps_its_user_and_host_and_loses_only_its_password():
    assert redact_value("https://ci:s3cr@t!@git.example.com:443/r.git and ftp://a:b@h") == \
        f"https://ci:{REDACTED}@git.example.com:443/r.git and ftp://a:{REDACTED}@h"
    assert redact_value("redis://:only-password@cache:6379/0") == f"redis://:{REDACTED}@cache:6379/0"


def test_a_pem_private_key_is_redacted_whole_even_unterminated_or_with_escaped_newlines():
    assert redact_value(f"before\n{PEM}\nafter") == f"before\n{REDACTED}\nafter"
    assert redact_value(PEM.replace("\n", "\\n")) == REDACTED
    assert redact_value("-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA") == REDACTED
    public = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact_value(public) == public


def test_the_aws_secret_key_next_to_an_access_key_id_is_redacted():
    assert redact_value(f"{AWS_KEY_ID}:{AWS_SECRET}") == f"{REDACTED}:{REDACTED}"
    # Without a key id on the line, 40 characters are not enough to call something a secret.
    assert redact_value(AWS_SECRET) == AWS_SECRET


@pytest.mark.parametrize("text", [
    "ghp_short", "npm_install", "glpat-x", "sk_live_", "eyJ", "pypi-simple", "xoxb-1",
    "AKIA", "OAKIAIOSFODNN7EXAMPLE", "0123456789abcdef0123456789abcdef01234567",
    "https://hg.example.com/r", "https://user@host/p", "mailto:a@b", "C:\\Program Files",
])
def test_harmless_look_alike_values_are_kept(text):
    assert redact_value(text) == text


def test_info_is_redacted_by_name_and_shape_at_every_level_keeping_other_types():
    info = {"environ": {"DB_PASS": "x", "PATH": "/bin", "URL": "https://u:p@h/"}, "numcpus": 4,
            "password": "x", "admin": f"ops <ops@example.com> {GITHUB_PAT}", "list": ["https://u:p@h"],
            "worker_commands": {"shell": "3.0"}, "bytes": b"https://u:p@h", "token": None}
    assert redact_info(info) == {
        "environ": {"DB_PASS": REDACTED, "PATH": "/bin", "URL": f"https://u:{REDACTED}@h/"},
        "numcpus": 4, "password": REDACTED, "admin": f"ops <ops@example.com> {REDACTED}",
        "list": [f"https://u:{REDACTED}@h"], "worker_commands": {"shell": "3.0"},
        "bytes": f"https://u:{REDACTED}@h", "token": None}


@pytest.mark.parametrize("hostile", [
    "a-" * 50_000 + " x://y", "a." * 50_000 + "://", "x://u:" + "p@" * 50_000,
    "-----BEGIN " + "A " * 50_000, "eyJa." * 20_000,
])
def test_redaction_stays_linear_on_hostile_100_kb_values(hostile):
    started = time.process_time()
    redact_log_header(hostile)
    assert time.process_time() - started < HOSTILE_CPU_BOUND_S


# -- log headers ---------------------------------------------------------------------------

STOCK_WORKER_HEADER = (
    " environment:\n"
    "  AWS_SECRET_ACCESS_KEY=" + AWS_SECRET + "\n"
    "  HOME=/home/worker\n"
    "  MULTI_LINE_SECRET=first\n"
    "second line\n"
    "  PATH=/usr/bin\n"
    "  UPLOAD_URL=https://bot:pw-upload@files.example.com/up\n"
    " using PTY: False\n"
)


def test_a_log_header_hides_secret_entries_and_their_continuation_lines():
    assert redact_log_header(STOCK_WORKER_HEADER) == (
        " environment:\n"
        f"  AWS_SECRET_ACCESS_KEY={REDACTED}\n"
        "  HOME=/home/worker\n"
        f"  MULTI_LINE_SECRET={REDACTED}\n"
        f"{REDACTED}\n"
        "  PATH=/usr/bin\n"
        f"  UPLOAD_URL=https://bot:{REDACTED}@files.example.com/up\n"
        " using PTY: False\n"
    )


def test_redacting_a_redacted_header_changes_nothing():
    once = redact_log_header(STOCK_WORKER_HEADER)
    assert redact_log_header(once) == once


class RecordingLog(OutputOnlyLog):
    """A StepLog that keeps what the RemoteCommand writes to it."""

    def __init__(self):
        self.headers, self.stdout = [], []

    def add_header(self, text):
        self.headers.append(text)

    def add_stdout(self, text):
        self.stdout.append(text)

    def add_stderr(self, text):
        pass


def test_the_master_redacts_the_header_any_slave_sends_but_not_its_output():
    log = RecordingLog()
    command = RemoteCommand("shell", {}, log)
    command.remote_update([[{"header": STOCK_WORKER_HEADER.encode()}, 0],
                           [{"stdout": "https://u:p@h\n"}, 0]])
    header = "".join(log.headers)
    assert AWS_SECRET not in header and "pw-upload" not in header and "second line" not in header
    assert "  AWS_SECRET_ACCESS_KEY=" in header and "  HOME=/home/worker\n" in header
    assert log.stdout == ["https://u:p@h\n"]


# -- the slave's ShellCommand header ---------------------------------------------------------

WAIT_DEADLINE_S = 10.0
POLL_S = 0.02


class RecordingCommandRef:
    """Stands in for the master's RemoteCommand reference: records the updates."""

    def __init__(self):
        self.updates, self.completed = [], False

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        if name == "update":
            self.updates.extend(entry[0] for entry in args[0])
        elif name == "complete":
            self.completed = True
        return defer.succeed(None)

    def text(self, key):
        return "".join(u[key] for u in self.updates if key in u)


async def run_shell(tmp_path, monkeypatch, **args) -> RecordingCommandRef:
    """Run a real shell command on a SlaveBuilder; the references' updates once complete."""
    clock = task.Clock()
    builder = SlaveBuilder("linux", "linux-build", SlaveRuntime(str(tmp_path), defaultRegistry(), reactor,
                                                                clock, lambda: None))
    os.makedirs(builder.basedir)
    ref = RecordingCommandRef()
    builder.remote_startCommand(ref, "1", "shell", {
        "workdir": "build", "want_stdout": True, "want_stderr": True, "logEnviron": True,
        "timeout": 60, "maxTime": None, "sigtermTime": None, "interruptSignal": "KILL",
        "usePTY": False, "logfiles": {}, "initial_stdin": None, **args})
    clock.advance(0)
    for _ in range(int(WAIT_DEADLINE_S / POLL_S)):
        if ref.completed:
            return ref
        clock.advance(POLL_S)  # the update batcher's flush delay
        await task.deferLater(reactor, POLL_S, lambda: None)
    pytest.fail("the shell command did not complete")


@pytest_twisted.ensureDeferred
async def test_the_slaves_shell_header_shows_variable_names_but_no_secret_value(tmp_path, monkeypatch):
    for name, value in SECRET_ENVIRON.items():
        monkeypatch.setenv(name, value)
    ref = await run_shell(tmp_path, monkeypatch, command="echo ran",
                          env={"STEP_TOKEN": "tok-from-the-step", "MIRROR": "https://m:pw-mirror@m.example/"})
    header = ref.text("header")
    assert ref.text("stdout") == "ran\n"
    for value in (*SECRET_VALUES, "tok-from-the-step", "pw-mirror"):
        assert value not in header
    for name in set(SECRET_ENVIRON) - {"DATABASE_URL"} | {"STEP_TOKEN"}:
        assert f"  {name}={REDACTED}\n" in header
    assert f"  DATABASE_URL=postgres://u:{REDACTED}@db.example.com/db\n" in header
    assert f"  MIRROR=https://m:{REDACTED}@m.example/\n" in header
    assert f"  HOME={os.environ['HOME']}\n" in header


@pytest_twisted.ensureDeferred
async def test_the_slaves_command_line_in_the_header_loses_url_passwords(tmp_path, monkeypatch):
    ref = await run_shell(tmp_path, monkeypatch, command="echo https://u:pw-cmd@h/ >/dev/null",
                          logEnviron=False)
    header = ref.text("header")
    assert "pw-cmd" not in header and f"echo https://u:{REDACTED}@h/ >/dev/null\n" in header
    assert " environment:" not in header


# -- the JSON API --------------------------------------------------------------------------

# A master with slave s1 and user ops, who may read slaves and s1's environment (a token).
REDACTION_CFG = """\
from buildfarm.master.plugins import slaves, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('s1', 'pass')]
c['protocols'] = {'pb': {'port': 9989}}
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['s1'],
                 factory=util.BuildFactory([steps.ShellCommand(command=['make'])]))]
c['www'] = {'port': 8010}
c['db'] = {'db_url': %r}
c['users'] = [util.User('ops', tokens=['ops-token'], scopes=['slaves:read', 'slaves:read-environment:s1'])]
"""


@pytest_twisted.ensureDeferred
async def test_the_json_api_shows_a_slaves_environment_without_secret_values(tmp_path, db_url):
    # (imported here: the rest of this module is about other surfaces)
    from fixtures.memorymaster import attach_slave, start_memory_master

    master = await start_memory_master(tmp_path, REDACTION_CFG % db_url, now=100.0)
    try:
        reported = {"environ": {**SECRET_ENVIRON, **HARMLESS_ENVIRON}, "admin": "ops https://o:pw-admin@wiki/"}
        await attach_slave(master, "s1", info=reported)  # the whole report goes to the database
        resource = JSONAPI(master).resource()
        anonymous = json.loads((await render(resource, "GET", "/api/v1/slaves/s1")).body)
        assert "environ" not in anonymous["info"]  # shown only with slaves:read-environment:s1
        for path in ("/api/v1/slaves/s1", "/api/v1/slaves"):
            response = await render(resource, "GET", path, headers={"authorization": "Bearer ops-token"})
            assert response.code == 200
            text = response.body.decode()
            for value in (*SECRET_VALUES, "pw-admin"):
                assert value not in text, (path, value)
            body = json.loads(text)
            info = body["info"] if "info" in body else body["slaves"][0]["info"]
            assert set(info["environ"]) == set(SECRET_ENVIRON) | set(HARMLESS_ENVIRON)
            assert info["environ"]["PATH"] == HARMLESS_ENVIRON["PATH"]
            assert info["environ"]["GITHUB_PAT"] == REDACTED
    finally:
        await master.stopService()


# -- build properties from the slave's info ------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_slave_info_build_properties_are_redacted_like_the_info(tmp_path):
    # (imported here: the rest of this module is about other surfaces)
    from buildfarm.master.pb.buildslave import BuildSlave
    from buildfarm.master.process.builder import SlaveBuilder as MasterSlaveBuilder
    from fixtures.memorymaster import start_memory_master

    master = await start_memory_master(tmp_path)
    try:
        slave = BuildSlave("bs1", master.botmaster, master.reactor, 60.0, 30.0)
        slave.info = {"admin": "ops https://ops:pw-admin@wiki.example.com/bs1", "access_token": "t0ken",
                      "numcpus": 8, "host": "bs1.example.com"}
        builder = master.botmaster.builders["linux"]
        build = Build(master, builder, MasterSlaveBuilder(builder, slave, None), {"properties": {}})
        build._set_properties()
    finally:
        await master.stopService()
    props = build.properties
    assert props.getProperty("slave_info_admin") == f"ops https://ops:{REDACTED}@wiki.example.com/bs1"
    assert props.getProperty("slave_info_access_token") == REDACTED
    assert props.getProperty("slave_info_numcpus") == 8
    assert props.getProperty("slave_info_host") == "bs1.example.com"


# -- what the slave reports ----------------------------------------------------------------

def test_the_slave_reports_its_environment_to_the_master_already_redacted(tmp_path, monkeypatch):
    for name, value in SECRET_ENVIRON.items():
        monkeypatch.setenv(name, value)
    runtime = SlaveRuntime(str(tmp_path), defaultRegistry(), reactor, task.Clock(), lambda: None)
    environ = Bot(runtime).remote_getSlaveInfo()["environ"]
    assert set(SECRET_ENVIRON) <= set(environ) and environ["PATH"] == os.environ["PATH"]
    for value in SECRET_VALUES:
        assert value not in json.dumps(environ)
