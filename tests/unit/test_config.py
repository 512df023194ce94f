"""Loading master.cfg: the issue's example works as written, and every problem is
reported with its file and line."""

import sys

import pytest
import pytest_twisted
from twisted.internet import threads

from buildfarm.master.config import ConfigErrors, load_config
from fixtures.mastercfg import ISSUE_EXAMPLE
from fixtures.mastercfg import config_errors as errors_of
from fixtures.mastercfg import write_master_cfg as write


def test_issue_example_loads_as_written(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE))
    assert sorted(config.slaves) == ["bs1", "bs2"]
    assert config.builders[0].name == "runtests"
    assert config.builders[0].slavenames == ["bs1", "bs2"]
    assert config.pb_port == "tcp:9989"
    assert config.www_port == "tcp:8010"
    assert config.db_url == "sqlite:///state.sqlite"


def test_buildbot4_names_are_aliases(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE.replace(
        "from buildfarm.master.plugins import slaves,", "from buildfarm.master.plugins import worker, slaves,"
    ).replace("c['slaves'] = [slaves.BuildSlave('bs1', 'pass'), slaves.BuildSlave('bs2', 'pass')]",
              "c['workers'] = [worker.Worker('bs1', 'pass'), worker.Worker('bs2', 'pass')]"
    ).replace("slavenames=", "workernames=")))
    assert sorted(config.slaves) == ["bs1", "bs2"]
    assert config.builders[0].slavenames == ["bs1", "bs2"]


def test_syntax_error_names_the_line(tmp_path):
    assert errors_of(tmp_path, "c = BuildmasterConfig = {}\nc['www'] = {'port': 8010\n") == [
        "master.cfg:2: syntax error: '{' was never closed"
    ]


def test_exception_names_the_line(tmp_path):
    errors = errors_of(tmp_path, "c = BuildmasterConfig = {}\n\nc['slaves'] = [undefined]\n")
    assert errors == ["master.cfg:3: NameError: name 'undefined' is not defined"]


def test_unknown_slave_duplicate_builder_and_bad_port_are_reported_together(tmp_path):
    text = ISSUE_EXAMPLE.replace("slavenames=['bs1', 'bs2']", "slavenames=['bs1', 'bs3']")
    text = text.replace("'port': 9989", "'port': 70000")
    text += ("c['builders'].append(util.BuilderConfig(name='runtests', slavenames=['bs1'],\n"
             "                      builddir='other', factory=util.BuildFactory([])))\n")
    errors = errors_of(tmp_path, text)
    assert "master.cfg:5: builder 'runtests' names unknown slave 'bs3'" in errors
    assert "master.cfg:10: duplicate builder name 'runtests'" in errors
    assert "master.cfg:4: bad PB port 70000: must be between 1 and 65535" in errors
    assert len(errors) == 3


def test_duplicate_slave_names_the_line(tmp_path):
    text = ISSUE_EXAMPLE.replace("slaves.BuildSlave('bs2', 'pass')", "slaves.BuildSlave('bs1', 'x')")
    errors = errors_of(tmp_path, text)
    assert "master.cfg:3: duplicate slave name 'bs1'" in errors


def test_unknown_key_and_same_port_twice(tmp_path):
    text = ISSUE_EXAMPLE.replace("c['www'] = {'port': 8010}", "c['www'] = {'port': 9989}")
    text += "c['colour'] = 'blue'\n"
    errors = errors_of(tmp_path, text)
    assert "master.cfg:10: unknown BuildmasterConfig key 'colour'" in errors
    assert "master.cfg:8: www port tcp:9989 is also the PB port" in errors


def test_step_without_command_is_reported(tmp_path):
    text = ISSUE_EXAMPLE.replace("steps.ShellCommand(command=['echo', 'hello'])",
                                 "steps.ShellCommand(command=[])")
    assert any("ShellCommand needs a command" in e for e in errors_of(tmp_path, text))


def test_missing_buildmasterconfig(tmp_path):
    assert errors_of(tmp_path, "x = 1\n") == ["master.cfg: does not define a BuildmasterConfig dict"]


def test_missing_file(tmp_path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(str(tmp_path / "nope.cfg"))
    assert "cannot read" in str(caught.value)


def test_issue6_users_and_slaveapi_load_as_written(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE + """\
c['users'] = [util.User('oncall', password='s3cret', scopes=['slaveapi:*']),
              util.User('viewer', password='v1ew', scopes=['slaveapi:read'])]
c['slaveapi'] = {'port': 8081}
"""))
    assert config.slaveapi.port == "tcp:8081"
    assert [u.name for u in config.users] == ["oncall", "viewer"]
    assert config.www_allow_anonymous_read is True
    assert config.www_anonymous_scopes == ("builds:read", "changes:read", "slaves:read", "metrics:read")
    assert config.warnings == []


def test_slaveapi_port_clash_and_bad_www_flag_are_reported(tmp_path):
    errors = errors_of(tmp_path, ISSUE_EXAMPLE + """\
c['www'] = {'port': 8010, 'allow_anonymous_read': 'no'}
c['slaveapi'] = {'port': 9989, 'reboot_timeout': -1}
""")
    assert any("['allow_anonymous_read'] must be True or False" in e for e in errors), errors
    assert any("SlaveAPI port tcp:9989 is also the PB or www port" in e for e in errors), errors
    assert any("reboot_timeout" in e for e in errors), errors


def test_slave_port_limits_are_read_from_the_pb_protocol(tmp_path):
    from buildfarm.master.pb.limits import PBLimits

    assert load_config(write(tmp_path, ISSUE_EXAMPLE)).pb_limits == PBLimits()
    text = ISSUE_EXAMPLE.replace(
        "{'pb': {'port': 9989}}",
        "{'pb': {'port': 9989, 'login_timeout': 5, 'max_pending_logins': 10,"
        " 'max_message_bytes': 1048576, 'max_message_items': 5000}}")
    assert load_config(write(tmp_path, text)).pb_limits == PBLimits(
        login_timeout=5, max_pending_logins=10, max_message_bytes=1048576, max_message_items=5000)


def test_bad_slave_port_limits_are_reported(tmp_path):
    text = ISSUE_EXAMPLE.replace(
        "{'pb': {'port': 9989}}",
        "{'pb': {'port': 9989, 'login_timeout': 0, 'max_pending_logins': 2.5,"
        " 'max_message_bytes': '16M', 'max_message_items': True}}")
    errors = "\n".join(errors_of(tmp_path, text))
    assert "login_timeout must be a positive number, not 0" in errors
    assert "max_pending_logins must be a positive whole number, not 2.5" in errors
    assert "max_message_bytes must be a positive whole number, not '16M'" in errors
    assert "max_message_items must be a positive whole number, not True" in errors


def test_buildbot_url_is_kept_with_a_trailing_slash(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE + "c['buildbotURL'] = 'http://master.example.com:8010'\n"))
    assert config.buildbot_url == "http://master.example.com:8010/"
    assert load_config(write(tmp_path, ISSUE_EXAMPLE)).buildbot_url is None


def test_a_buildbot_url_that_is_not_an_http_url_is_reported(tmp_path):
    errors = errors_of(tmp_path, ISSUE_EXAMPLE + "c['buildbotURL'] = 'master.example.com'\n")
    assert any("c['buildbotURL'] must be an http:// or https:// URL, not 'master.example.com'" in e
               for e in errors), errors


def test_anonymous_callers_get_nothing_when_anonymous_reading_is_off(tmp_path):
    text = ISSUE_EXAMPLE + "c['www'] = {'port': 8010, 'allow_anonymous_read': False}\n"
    config = load_config(write(tmp_path, text))
    assert config.www_anonymous_scopes == () and config.warnings == []


def test_anonymous_scopes_granting_writes_load_with_a_warning(tmp_path):
    config = load_config(write(tmp_path, ISSUE_EXAMPLE + (
        "c['www'] = {'port': 8010, 'anonymous_scopes': ['builds:read', 'builds:force:runtests']}\n")))
    assert config.www_anonymous_scopes == ("builds:read", "builds:force:runtests")
    assert len(config.warnings) == 1 and "'builds:force:runtests'" in config.warnings[0]


def test_checkconfig_prints_the_anonymous_write_warning(tmp_path, capsys):
    from buildfarm.master.scripts.runner import main

    path = write(tmp_path, ISSUE_EXAMPLE + "c['www'] = {'port': 8010, 'anonymous_scopes': ['slaveapi:*']}\n")
    assert main(["checkconfig", path]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "'slaveapi:*'" in err and "more than reading" in err


def test_bad_anonymous_scopes_are_reported(tmp_path):
    text = ISSUE_EXAMPLE + "c['www'] = {'port': 8010, 'anonymous_scopes': 'builds:read'}\n"
    errors = errors_of(tmp_path, text)
    assert any("anonymous_scopes'] must be a list" in e for e in errors), errors


def test_master_cfg_imports_modules_beside_it_and_theirs(tmp_path):
    (tmp_path / "farmhelpers_i15.py").write_text("from farmnames_i15 import SLAVE\nNAMES = [SLAVE]\n")
    (tmp_path / "farmnames_i15.py").write_text("SLAVE = 'bs1'\n")
    config = load_config(write(tmp_path, ISSUE_EXAMPLE + "from farmhelpers_i15 import NAMES\n"
                                                        "c['properties'] = {'names': NAMES}\n"))
    assert config.properties == {"names": ["bs1"]}


@pytest_twisted.ensureDeferred
async def test_loading_in_a_thread_leaves_sys_path_alone(tmp_path):
    before = list(sys.path)
    config = await threads.deferToThread(load_config, write(tmp_path, ISSUE_EXAMPLE + (
        "import os, sys\n"
        "c['properties'] = {'path_changed': os.path.dirname(__file__) in sys.path}\n")))
    assert config.properties == {"path_changed": False}
    assert sys.path == before
