"""The ``buildmaster`` CLI as a user runs it: clear one-line errors, never a traceback."""

import json
import os
import re
import subprocess
import sys

import pytest

from fixtures.buildbotpackage import expected_sample_problems, ported_sample_cfg
from fixtures.daemons import BIN_DIR, pid_alive, read_pid, run_cli

BROKEN_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {'pb': {'port': 'nine'}}
c['builders'] = [util.BuilderConfig(name='a', slavenames=['bs9'], factory=util.BuildFactory([])),
                 util.BuilderConfig(name='a', slavenames=['bs1'], builddir='x',
                                    factory=util.BuildFactory([]))]
"""


def assert_no_traceback(result):
    assert "Traceback" not in result.stdout + result.stderr


def test_create_master_writes_a_config_that_checks(tmp_path):
    basedir = str(tmp_path / "bm")
    created = run_cli("buildmaster", "create-master", basedir)
    assert created.returncode == 0, created.stderr
    assert os.path.exists(os.path.join(basedir, "state.sqlite"))
    assert oct(os.stat(os.path.join(basedir, "buildbot.tac")).st_mode & 0o777) == "0o600"
    checked = run_cli("buildmaster", "checkconfig", basedir)
    assert checked.returncode == 0
    assert "is valid: 2 slaves, 1 builders, 1 schedulers" in checked.stdout
    password = re.search(r"user 'admin' may do anything; its password \(in master.cfg\): (\S+)",
                         created.stdout).group(1)
    with open(os.path.join(basedir, "master.cfg")) as f:
        assert f"util.User('admin', password='{password}', scopes=['*'])" in f.read()
    other = run_cli("buildmaster", "create-master", str(tmp_path / "bm2"), check=True)
    assert password not in other.stdout  # each master gets its own random password


def test_create_master_refuses_an_existing_basedir(tmp_path):
    basedir = str(tmp_path / "bm")
    run_cli("buildmaster", "create-master", basedir, check=True)
    again = run_cli("buildmaster", "create-master", basedir)
    assert again.returncode == 1
    assert again.stderr.strip().count("\n") == 0
    assert "already holds master.cfg" in again.stderr
    assert_no_traceback(again)


def test_checkconfig_reports_every_problem_with_file_and_line(tmp_path):
    cfg = tmp_path / "master.cfg"
    cfg.write_text(BROKEN_CFG)
    result = run_cli("buildmaster", "checkconfig", str(cfg))
    assert result.returncode == 1
    assert "master.cfg:4: bad PB port 'nine'" in result.stderr
    assert "master.cfg:5: builder 'a' names unknown slave 'bs9'" in result.stderr
    assert "master.cfg:6: duplicate builder name 'a'" in result.stderr
    assert_no_traceback(result)


def shifted_lines(problem: str, by: int) -> str:
    where, _, message = problem.partition(": ")
    filename, _, line = where.partition(":")
    return f"{filename}:{int(line) + by}: {message}"


def test_checkconfig_reports_a_helper_module_and_unsupported_names_one_line_each(tmp_path):
    (tmp_path / "helpers").mkdir()
    (tmp_path / "helpers" / "__init__.py").write_text("")
    (tmp_path / "helpers" / "workers.py").write_text(
        "from buildfarm.master.plugins import worker\n\n"
        "NAMES = ['bs1']\n\n"
        "WORKERS = [worker.Worker(name, password) for name in NAMES]\n")
    (tmp_path / "master.cfg").write_text(ported_sample_cfg().replace(
        "c['workers'] = [worker.Worker(\"example-worker\", \"pass\")]",
        "from helpers.workers import WORKERS\nc['workers'] = WORKERS\n"
        "c['services'] = [reporters.PushoverNotifier(user_key='u', api_token='t')]"))
    result = run_cli("buildmaster", "checkconfig", str(tmp_path))
    assert result.returncode == 1
    expected = [
        "buildmaster: warning: master.cfg:98: c['www']['plugins'] has no effect: buildfarm's web pages "
        "are built in; there are no www plugins",
        "buildmaster: helpers/workers.py:5: NameError: name 'password' is not defined",
        "buildmaster: master.cfg:20: not supported by buildfarm: PushoverNotifier "
        "(Buildbot's buildbot.reporters.pushover.PushoverNotifier)",
    ]
    # The sample's own problems, two lines further down (the helper import added two lines).
    expected += [f"buildmaster: {shifted_lines(problem, 2)}" for problem in expected_sample_problems()]
    expected.append(f"buildmaster: {len(expected) - 1} problem(s) in {tmp_path / 'master.cfg'}")
    assert result.stderr.splitlines() == expected
    assert_no_traceback(result)


def test_start_with_broken_config_says_why_and_starts_nothing(tmp_path):
    basedir = str(tmp_path / "bm")
    run_cli("buildmaster", "create-master", basedir, check=True)
    with open(os.path.join(basedir, "master.cfg"), "a") as f:
        f.write("c['builders'][0].slavenames.append('ghost')\n")
    result = run_cli("buildmaster", "start", basedir)
    assert result.returncode == 1
    assert "builder 'runtests' names unknown slave 'ghost'" in result.stderr
    assert read_pid(basedir) is None
    assert_no_traceback(result)


def test_start_with_a_taken_port_fails_with_the_log_tail(tmp_path, fleet):
    running = fleet.master()
    basedir = str(tmp_path / "second")
    run_cli("buildmaster", "create-master", "--pb-port", str(running.pb_port),
            "--www-port", str(running.www_port + 1 if running.www_port < 65535 else 1025), basedir,
            check=True)
    result = run_cli("buildmaster", "start", basedir)
    assert result.returncode == 1
    assert "the master did not start" in result.stderr
    assert "Address already in use" in result.stderr or "in use" in result.stderr
    assert_no_traceback(result)


def test_restart_with_broken_config_keeps_the_running_master(fleet):
    master = fleet.master()
    pid = read_pid(master.basedir)
    with open(os.path.join(master.basedir, "master.cfg"), "a") as f:
        f.write("c['www'] = {'port': -1}\n")
    result = run_cli("buildmaster", "restart", master.basedir)
    assert result.returncode == 1
    assert "bad www port -1" in result.stderr
    assert "the running master keeps running" in result.stderr
    assert pid_alive(pid) and read_pid(master.basedir) == pid
    assert master.get("/api/v1/builders")["builders"][0]["name"] == "runtests"


def test_api_errors_are_json_with_the_right_status(fleet):
    master = fleet.master()
    cases = [
        ("POST", "/api/v1/builders/nosuch/force", None, 404),
        ("GET", "/api/v1/builds/999", None, 404),
        ("GET", "/api/v1/buildrequests/999", None, 404),
        ("GET", "/api/v1/builds/1/steps/0/logs/stdio", None, 404),
        ("GET", "/api/v1/nothing/here", None, 404),
        ("GET", "/api/v1/builds?complete=maybe", None, 400),
        ("POST", "/api/v1/builders/runtests/force", {"colour": "red"}, 400),
        ("POST", "/api/v1/builders/runtests/force", {"properties": []}, 400),
        ("DELETE", "/api/v1/builders", None, 405),
    ]
    for method, path, body, status in cases:
        got, data = master.request(method, path, body)
        assert got == status, (method, path, got, data)
        assert "error" in json.loads(data), (method, path, data)


def test_stop_when_not_running_says_so(tmp_path):
    basedir = str(tmp_path / "bm")
    run_cli("buildmaster", "create-master", basedir, check=True)
    result = run_cli("buildmaster", "stop", basedir)
    assert result.returncode == 0
    assert "not running" in result.stdout


def test_unknown_command_is_one_usage_error():
    result = run_cli("buildmaster", "frobnicate")
    assert result.returncode == 2
    assert_no_traceback(result)


def twistd_help(python: str, env: dict | None = None) -> str:
    code = "import sys; from twisted.scripts.twistd import run; sys.argv = ['twistd', '--help']; run()"
    result = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env,
                            timeout=60, cwd="/")
    return result.stdout


def test_twistd_lists_both_plugins_in_the_editable_install():
    out = twistd_help(os.path.join(BIN_DIR, "python"))
    assert "buildmaster" in out and "buildslave" in out


def test_twistd_lists_both_plugins_in_a_plain_install(tmp_path):
    target = tmp_path / "site"
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(target), repo], check=True, capture_output=True, timeout=300)
    assert (target / "twisted" / "plugins" / "buildfarm_plugins.py").exists()
    assert (target / "buildfarm" / "master" / "service.py").exists()
    env = dict(os.environ, PYTHONPATH=str(target))
    out = twistd_help(sys.executable, env)
    assert "buildmaster" in out and "buildslave" in out


@pytest.mark.usefixtures("fixed_ports")  # the sample master.cfg's 9989 and 8010
def test_start_on_an_unupgraded_database_names_the_fix(tmp_path):
    basedir = str(tmp_path / "bm")
    run_cli("buildmaster", "create-master", basedir, check=True)
    for name in os.listdir(basedir):
        if name.startswith("state.sqlite"):
            os.remove(os.path.join(basedir, name))
    result = run_cli("buildmaster", "start", basedir)
    assert result.returncode == 1
    assert f"database schema is not current; run: buildmaster upgrade-master {basedir}" in result.stderr
    assert_no_traceback(result)
    assert run_cli("buildmaster", "upgrade-master", basedir).returncode == 0
    assert run_cli("buildmaster", "start", basedir).returncode == 0
    run_cli("buildmaster", "stop", basedir, check=True)
