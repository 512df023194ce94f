"""The ``RunIsolated`` and ``IsolateArchive`` steps (master/process/steps/isolate.py): their
arguments checked at config load (one line each, at the master.cfg line that made them), and
the server a slave is sent to."""

import pytest

from buildfarm.master.config import load_config
from buildfarm.master.process.properties import Property
from buildfarm.master.process.steps.isolate import (
    IsolateArchive,
    RunIsolated,
    is_loopback_url,
    port_number,
)
from fixtures.docexamples import example
from fixtures.mastercfg import config_errors, write_master_cfg

HASH = "a" * 40


def test_good_steps_have_no_problems():
    assert RunIsolated(isolated=Property("isolated")).config_problems() == []
    assert RunIsolated(isolated=HASH, namespace="sha256-deflate", command=["python3", "run.py"],
                       extra_args=["--out", "${ISOLATED_OUTDIR}"], env={"A": "1", "B": None},
                       server="http://master.example:8010", hard_timeout=60, io_timeout=None,
                       grace_period=0, cache_policies={"max_items": 10}).config_problems() == []
    assert IsolateArchive(path="out", blacklist=[r"\.pyc$"]).config_problems() == []


@pytest.mark.parametrize("kwargs, message", [
    ({}, "RunIsolated isolated (the tree's hash, e.g. util.Property('isolated')) must be a non-empty string"),
    ({"isolated": HASH, "namespace": "no/such"}, "RunIsolated namespace: namespace must be"),
    ({"isolated": HASH, "namespace": 3}, "RunIsolated namespace must be a string"),
    ({"isolated": HASH, "server": "ftp://x"}, "RunIsolated server must be an http:// or https:// URL"),
    ({"isolated": HASH, "hard_timeout": -1}, "RunIsolated hard_timeout must be a number of seconds"),
    ({"isolated": HASH, "hard_timeout": None}, "RunIsolated hard_timeout must be a number of seconds"),
    ({"isolated": HASH, "io_timeout": "10"}, "RunIsolated io_timeout must be a number of seconds"),
    ({"isolated": HASH, "grace_period": True}, "RunIsolated grace_period must be a number of seconds"),
    ({"isolated": HASH, "command": []}, "RunIsolated command must be a list of strings"),
    ({"isolated": HASH, "command": "make test"}, "RunIsolated command must be a list of strings"),
    ({"isolated": HASH, "extra_args": [1]}, "RunIsolated extra_args must be a list of strings"),
    ({"isolated": HASH, "env": {"A": 1}}, "RunIsolated env must map names to strings"),
    ({"isolated": HASH, "output_property": ""}, "RunIsolated output_property must be a non-empty string"),
    ({"isolated": HASH, "cache_policies": 5}, "RunIsolated cache_policies must be a dict"),
    ({"isolated": HASH, "bogus": 1}, "RunIsolated got an unknown argument 'bogus'"),
])
def test_run_isolated_names_each_bad_argument(kwargs, message):
    problems = RunIsolated(**kwargs).config_problems()
    assert len(problems) == 1 and problems[0].startswith(message), problems


@pytest.mark.parametrize("kwargs, message", [
    ({}, "IsolateArchive path (a directory of the build, relative to workdir) must be a non-empty string"),
    ({"path": "out", "blacklist": r"\.pyc"}, "IsolateArchive blacklist must be a list of regular"),
    ({"path": "out", "blacklist": ["("]}, "IsolateArchive blacklist '(' is not a regular expression"),
    ({"path": "out", "property": None}, "IsolateArchive property must be a non-empty string"),
    ({"path": "out", "namespace": "a b"}, "IsolateArchive namespace: namespace must be"),
])
def test_isolate_archive_names_each_bad_argument(kwargs, message):
    problems = IsolateArchive(**kwargs).config_problems()
    assert len(problems) == 1 and problems[0].startswith(message), problems


def test_checkconfig_reports_a_bad_step_at_its_line(tmp_path):
    errors = config_errors(tmp_path, """\
        from buildfarm.master.plugins import slaves, steps, util
        c = BuildmasterConfig = {}
        c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
        c['protocols'] = {'pb': {'port': 9989}}
        c['builders'] = [util.BuilderConfig(name='b', slavenames=['bs1'], factory=util.BuildFactory([
            steps.RunIsolated(isolated=util.Property('isolated'), hard_timeout='1h'),
        ]))]
        """)
    assert len(errors) == 1
    assert "master.cfg:6" in errors[0] and "RunIsolated hard_timeout must be a number of seconds" in errors[0]


@pytest.mark.parametrize("url, loopback", [
    ("http://localhost:8010/", True), ("http://127.0.0.1:8010/", True), ("http://[::1]:8010/", True),
    ("https://ci.example.com/", False), ("http://10.0.0.5:8010/", False),
])
def test_a_loopback_buildbot_url_is_not_given_to_slaves(url, loopback):
    assert is_loopback_url(url) is loopback


def test_the_www_port_number_is_read_from_its_endpoint():
    assert port_number("tcp:8010") == 8010
    assert port_number("tcp:port=8011:interface=0.0.0.0") == 8011
    assert port_number(None) is None


def test_the_pipeline_of_the_docs_loads(tmp_path):
    text = PIPELINE_HEAD + example("cas.md", "run-pipeline")
    config = load_config(write_master_cfg(tmp_path, text))
    build, test = (config_of(config, name) for name in ("build", "test"))
    assert [type(s).__name__ for s in build.factory.steps] == ["ShellCommand", "IsolateArchive", "Trigger"]
    [run] = test.factory.steps
    assert isinstance(run, RunIsolated) and run.hard_timeout == 600 and run.grace_period == 30


# What the docs' pipeline fragment adds to: two slaves, empty builders and schedulers.
PIPELINE_HEAD = """\
from buildfarm.master.plugins import slaves
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass'), slaves.BuildSlave('bs2', 'pass')]
c['protocols'] = {'pb': {'port': 9989}}
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['builders'] = []
c['schedulers'] = []
"""


def config_of(config, name):
    [builder] = [b for b in config.builders if b.name == name]
    return builder
