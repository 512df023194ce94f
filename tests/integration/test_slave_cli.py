"""The ``buildslave`` CLI as a user runs it: create-slave, start, stop, restart; errors are
one line on stderr, never a traceback."""

import os
import signal
import stat

import pytest

from fixtures.daemons import free_port, pid_alive, read_pid, run_cli, wait_for

STOP_DEADLINE_S = 30.0


@pytest.fixture
def started(tmp_path):
    """Basedirs whose slave a test started; each is stopped (killed if need be) at the end."""
    basedirs = []
    yield basedirs
    for basedir in basedirs:
        pid = read_pid(basedir)
        if pid is not None and pid_alive(pid):
            run_cli("buildslave", "stop", basedir)
        if pid is not None and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def createSlave(basedir, master="127.0.0.1:9989", *options):
    return run_cli("buildslave", "create-slave", *options, str(basedir), master, "bs1", "pass")


def assertOneLineError(result, text):
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and text in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_create_slave_writes_a_private_tac_and_info_files(tmp_path):
    basedir = tmp_path / "slave"

    result = createSlave(basedir, "master.example.org:9000", "--keepalive", "30")

    assert result.returncode == 0, result.stderr
    tac = basedir / "buildbot.tac"
    assert stat.S_IMODE(tac.stat().st_mode) == 0o600
    text = tac.read_text()
    assert "buildmaster_host = 'master.example.org'" in text and "port = 9000" in text
    assert "keepalive = 30" in text and f"basedir = {str(basedir)!r}" in text
    assert (basedir / "info" / "admin").read_text().strip()
    assert (basedir / "info" / "host").read_text().strip()
    assert "buildslave start" in result.stdout


def test_create_slave_accepts_a_bracketed_ipv6_address(tmp_path):
    result = createSlave(tmp_path / "slave", "[::1]:9000")

    assert result.returncode == 0, result.stderr
    assert "buildmaster_host = '::1'" in (tmp_path / "slave" / "buildbot.tac").read_text()


@pytest.mark.parametrize("address", ["no such host:9989", "host:port", "host:99999", "::1:9989"])
def test_malformed_master_address_is_one_line_and_exit_1(tmp_path, address):
    result = createSlave(tmp_path / "slave", address)

    assertOneLineError(result, "malformed master address")
    assert not (tmp_path / "slave" / "buildbot.tac").exists()


def test_bad_option_value_is_one_line_and_exit_1(tmp_path):
    result = createSlave(tmp_path / "slave", "127.0.0.1", "--maxdelay", "soon")

    assertOneLineError(result, "--maxdelay")


def test_existing_slave_basedir_is_refused_without_force(tmp_path):
    createSlave(tmp_path / "slave")

    result = createSlave(tmp_path / "slave", "other:9989")

    assertOneLineError(result, "already holds a slave")


def test_force_keeps_a_different_tac_and_writes_tac_new(tmp_path):
    basedir = tmp_path / "slave"
    createSlave(basedir)
    before = (basedir / "buildbot.tac").read_text()

    result = createSlave(basedir, "other:9989", "--force")

    assert result.returncode == 0, result.stderr
    assert (basedir / "buildbot.tac").read_text() == before
    assert "'other'" in (basedir / "buildbot.tac.new").read_text()
    assert "buildbot.tac.new" in result.stdout


def test_start_without_a_master_returns_once_the_failed_attempt_is_logged(tmp_path, started):
    basedir = str(tmp_path / "slave")
    createSlave(basedir, f"127.0.0.1:{free_port()}")

    result = run_cli("buildslave", "start", basedir)
    started.append(basedir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "buildslave started; master not reachable yet: connection to master" in result.stdout
    assert pid_alive(read_pid(basedir))


def test_stop_stops_a_running_slave(tmp_path, started):
    basedir = str(tmp_path / "slave")
    createSlave(basedir, f"127.0.0.1:{free_port()}")
    run_cli("buildslave", "start", basedir)
    started.append(basedir)
    pid = read_pid(basedir)

    result = run_cli("buildslave", "stop", basedir)

    assert result.returncode == 0 and "buildslave stopped" in result.stdout
    wait_for(lambda: not pid_alive(pid), "the slave process to exit", STOP_DEADLINE_S)


def test_stop_when_not_running_says_so(tmp_path):
    createSlave(tmp_path / "slave")

    result = run_cli("buildslave", "stop", str(tmp_path / "slave"))

    assert result.returncode == 0 and "buildslave not running" in result.stdout


def test_restart_replaces_the_running_slave(tmp_path, started):
    basedir = str(tmp_path / "slave")
    createSlave(basedir, f"127.0.0.1:{free_port()}")
    run_cli("buildslave", "start", basedir)
    started.append(basedir)
    first = read_pid(basedir)

    result = run_cli("buildslave", "restart", basedir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "buildslave stopped" in result.stdout and "buildslave started" in result.stdout
    assert read_pid(basedir) != first and pid_alive(read_pid(basedir))


def test_start_without_a_tac_is_one_line_and_exit_1(tmp_path):
    result = run_cli("buildslave", "start", str(tmp_path))

    assertOneLineError(result, "has no buildbot.tac")


def test_start_attaches_to_a_running_master_which_then_runs_a_build(tmp_path, fleet, started):
    master = fleet.master(command=["echo", "built by buildslave"])
    basedir = str(tmp_path / "slave")
    createSlave(basedir, f"127.0.0.1:{master.pb_port}")

    result = run_cli("buildslave", "start", basedir)
    started.append(basedir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"buildslave attached to master 127.0.0.1:{master.pb_port}" in result.stdout
    master.wait_attached("bs1")
    request = master.wait_request_complete(master.force())
    assert request["result"] == "success"


TERM_IGNORING_CFG = """\
from buildfarm.master.plugins import schedulers, slaves, steps, util
c = BuildmasterConfig = {{}}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['protocols'] = {{'pb': {{'port': {pb_port}}}}}
c['builders'] = [util.BuilderConfig(name='runtests', slavenames=['bs1'], factory=util.BuildFactory([
    steps.ShellCommand(command=['sh', '-c', "trap '' TERM; echo $$ > {pidfile}; exec sleep 120"],
                       sigtermTime=60)]))]
c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['runtests'])]
c['www'] = {{'port': {www_port}}}
c['db'] = {{'db_url': 'sqlite:///state.sqlite'}}
"""


def test_stop_kills_a_running_command_that_ignores_sigterm(tmp_path, fleet, started):
    # The step would wait 60 s between SIGTERM and SIGKILL; the stopping slave gives its
    # commands STOP_GRACE_S (5 s), then SIGKILLs their process groups.
    pidfile = tmp_path / "command.pid"
    master = fleet.master(config=lambda pb, www: TERM_IGNORING_CFG.format(
        pb_port=pb, www_port=www, pidfile=pidfile))
    basedir = str(tmp_path / "slave")
    createSlave(basedir, f"127.0.0.1:{master.pb_port}")
    assert run_cli("buildslave", "start", basedir).returncode == 0
    started.append(basedir)
    master.wait_attached("bs1")
    master.force()
    command_pid = wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit()
                           and int(pidfile.read_text()), "the command to start")

    result = run_cli("buildslave", "stop", basedir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "buildslave stopped" in result.stdout
    wait_for(lambda: not pid_alive(command_pid), "the command to be killed", 10)
