"""checkconfig tells the whole truth: every problem of master.cfg and of the helper modules
it imports, in one run, each at its own file and line; Buildbot names buildfarm lacks named
as not supported; keys and arguments without effect warned about."""

import textwrap

import pytest

from buildfarm.master import plugins
from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.pluginspace import NotSupportedByBuildfarm, UnknownPluginName
from fixtures.mastercfg import ISSUE_EXAMPLE, WORKERS_EXAMPLE

WORKERS_CFG = WORKERS_EXAMPLE


def write(directory, name, text):
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


def problems(path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    return [str(e) for e in caught.value.errors]


def test_a_missing_name_in_a_helper_module_is_reported_at_its_line(tmp_path):
    write(tmp_path, "helpers_i16a/__init__.py", "")
    write(tmp_path, "helpers_i16a/workers.py", """\
        from buildfarm.master.plugins import worker

        NAMES = ['bs1']

        WORKERS = [worker.Worker(name, undefined_password) for name in NAMES]
        """)
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "c['workers'] = [worker.Worker('bs1', 'pass')]",
        "from helpers_i16a.workers import WORKERS\nc['workers'] = WORKERS"))
    assert problems(path) == [
        "helpers_i16a/workers.py:5: NameError: name 'undefined_password' is not defined"]


def test_every_problem_of_master_cfg_and_its_helpers_is_reported_in_one_run(tmp_path):
    write(tmp_path, "helpers_i16b.py", """\
        from buildfarm.master.plugins import steps, util

        def checkout():
            return steps.Robocopy(source='a', destination='b')

        CHECKOUT = checkout()
        TESTS = steps.ShellCommand(command=['make', 'check'], haltOnFailure=missing_flag)
        """)
    path = write(tmp_path, "master.cfg", WORKERS_CFG + textwrap.dedent("""\
        import helpers_i16b
        c['change_source'] = [changes.P4Source(p4port='perforce:1666')]
        c['schedulers'].append(schedulers.ForceScheduler(name='force2', builderNames=['nobody']))
        c['protocols'] = {'pb': {'port': 'nine'}}
        """))
    assert problems(path) == [
        "helpers_i16b.py:4: not supported by buildfarm: Robocopy (Buildbot's buildbot.steps.mswin.Robocopy)",
        "helpers_i16b.py:7: NameError: name 'missing_flag' is not defined",
        "master.cfg:9: not supported by buildfarm: P4Source (Buildbot's buildbot.changes.p4poller.P4Source)",
        "master.cfg:10: scheduler 'force2' names unknown builder 'nobody'",
        "master.cfg:11: bad PB port 'nine': give a number or an endpoint like 'tcp:9989'",
    ]


def test_a_syntax_error_in_a_helper_module_is_reported_at_its_line(tmp_path):
    write(tmp_path, "helpers_i16c.py", "X = 1\nY = (\n")
    path = write(tmp_path, "master.cfg", WORKERS_CFG + "from helpers_i16c import X, Y\nc['title'] = Y\n")
    assert problems(path) == ["helpers_i16c.py:2: syntax error: '(' was never closed"]


def test_the_names_a_failed_statement_would_bind_raise_no_second_error(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "c['workers'] = [worker.Worker('bs1', 'pass')]",
        "WORKERS = [worker.LibVirtWorker('bs1', 'pass', hd_image='x')]\nc['workers'] = WORKERS"))
    assert problems(path) == [
        "master.cfg:3: not supported by buildfarm: LibVirtWorker "
        "(Buildbot's buildbot.worker.libvirt.LibVirtWorker)"]


def test_config_objects_made_in_a_helper_module_are_reported_there(tmp_path):
    write(tmp_path, "helpers_i16d.py", """\
        from buildfarm.master.plugins import worker

        WORKERS = [worker.Worker('bs1', 'pass'),
                   worker.Worker('bs1', 'other')]
        """)
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "c['workers'] = [worker.Worker('bs1', 'pass')]",
        "from helpers_i16d import WORKERS\nc['workers'] = WORKERS"))
    assert problems(path) == ["helpers_i16d.py:4: duplicate slave name 'bs1'"]


def test_an_unsupported_buildbot_name_says_so_and_where_buildbot_has_it():
    with pytest.raises(NotSupportedByBuildfarm) as caught:
        getattr(plugins.reporters, "IRC")  # noqa: B009 - the attribute access is what is tested
    assert str(caught.value) == "not supported by buildfarm: IRC (Buildbot's buildbot.reporters.irc.IRC)"
    with pytest.raises(NotSupportedByBuildfarm, match=r"DownloadsFromProperties \(Buildbot's "
                                                      r"buildbot\.steps\.source\.repo\.RepoDownloadsFromProperties\)"):
        getattr(plugins.util.repo, "DownloadsFromProperties")  # noqa: B009
    with pytest.raises(NotSupportedByBuildfarm, match=r"Buildbot's buildbot\.statistics\.MetricsCollector"):
        getattr(plugins.statistics, "MetricsCollector")  # noqa: B009


def test_a_name_buildbot_lacks_too_is_an_unknown_name():
    with pytest.raises(UnknownPluginName) as caught:
        getattr(plugins.steps, "NoSuchStep")  # noqa: B009
    assert str(caught.value) == ("buildfarm.master.plugins.steps has no name 'NoSuchStep', and neither "
                                 "has Buildbot 4.3.0's buildbot.plugins.steps")


def test_unsupported_names_are_absent_to_hasattr_and_getattr_defaults():
    assert not hasattr(plugins.steps, "Robocopy")
    assert getattr(plugins.changes, "P4Source", None) is None
    assert plugins.steps.supports("ShellCommand") and not plugins.steps.supports("Robocopy")


def test_star_import_binds_every_buildbot_namespace(tmp_path):
    namespace: dict = {}
    exec("from buildfarm.master.plugins import *", namespace)
    for name in ("changes", "reporters", "schedulers", "secrets", "steps", "util", "worker", "webhooks"):
        assert namespace[name] is getattr(plugins, name)
    exec("from buildfarm.master.plugins import steps, util", namespace)
    assert namespace["util"].BuildFactory is plugins.util.BuildFactory


def test_keys_without_effect_are_warned_about(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG + textwrap.dedent("""\
        c['buildbotNetUsageData'] = 'basic'
        c['caches'] = {'Builds': 50}
        c['www'] = {'port': 8010, 'plugins': {'waterfall_view': {}}}
        """))
    config = load_config(path)
    assert config.warnings == [
        "master.cfg:8: c['buildbotNetUsageData'] has no effect: nothing is sent: buildfarm never sends "
        "usage data anywhere",
        "master.cfg:9: c['caches'] has no effect: buildfarm has no object caches to size: the pages and "
        "the API read the database on each request",
        "master.cfg:10: c['www']['plugins'] has no effect: buildfarm's web pages are built in; "
        "there are no www plugins",
    ]


def test_keys_that_ask_for_nothing_get_no_warning(tmp_path):
    path = write(tmp_path, "master.cfg",
                 WORKERS_CFG + "c['buildbotNetUsageData'] = None\nc['services'] = []\n")
    assert load_config(path).warnings == []


def test_unknown_www_key_and_a_change_source_that_is_none_are_errors(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG + "c['www'] = {'port': 8010, 'prot': 1}\n"
                                                       "c['change_source'] = ['git://example']\n")
    assert problems(path) == ["master.cfg:8: unknown c['www'] key 'prot'",
                              "master.cfg:9: c['change_source'] holds 'git://example', not a change source"]


def test_worker_argument_errors_say_worker(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "worker.Worker('bs1', 'pass')", "worker.Worker('bs1', 'pass', max_buidls=2)"))
    assert problems(path) == ["master.cfg:3: Worker got an unknown argument 'max_buidls'"]
    missing = write(tmp_path, "master.cfg", WORKERS_CFG.replace("worker.Worker('bs1', 'pass')",
                                                                "worker.Worker('bs1')"))
    assert problems(missing) == [
        "master.cfg:3: TypeError: Worker.__init__() missing 1 required positional argument: 'password'"]
    old = write(tmp_path, "master.cfg", ISSUE_EXAMPLE.replace("BuildSlave('bs1', 'pass')",
                                                              "BuildSlave('bs1', 'pass', colour=1)"))
    assert problems(old) == ["master.cfg:3: BuildSlave got an unknown argument 'colour'"]


def test_worker_arguments_without_effect_are_warned_about(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "worker.Worker('bs1', 'pass')",
        "worker.Worker('bs1', 'pass', notify_on_missing=['ops@example.org'], machine_name='m')"))
    assert load_config(path).warnings == [
        "master.cfg:3: Worker 'bs1': notify_on_missing: the master marks the slave missing after "
        "missing_timeout (status, API, log, an event); only a reporter with "
        "reporters.WorkerMissingGenerator in c['services'] mails it (reporters.MailNotifier has one by "
        "default)",
        "master.cfg:3: Worker argument 'machine_name' has no effect in buildfarm: buildfarm has no machines"]


def test_a_problem_of_a_factory_shared_by_builders_is_reported_once(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG + textwrap.dedent("""\
        f = util.BuildFactory()
        f.addStep(steps.ShellCommand(command=[]))
        c['builders'] += [util.BuilderConfig(name=n, workernames=['bs1'], factory=f) for n in ('a', 'b', 'c')]
        """))
    assert problems(path) == ["master.cfg:9: ShellCommand needs a command string or list of strings, not []"]


def test_schedulers_take_their_builder_names_when_the_config_is_loaded(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "builderNames=['runtests']", "builderNames=names") .replace(
        "c['schedulers']", "names = []\nc['schedulers']") + "names.append('runtests')\n")
    config = load_config(path)
    assert config.schedulers[0].builderNames == ["runtests"]


def test_force_parameter_layout_arguments_and_username_are_warned_about(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace(
        "schedulers.ForceScheduler(name='force', builderNames=['runtests'])",
        "schedulers.ForceScheduler(name='force', builderNames=['runtests'], username=util.FixedParameter("
        "name='username', default=''),\n    properties=[util.StringParameter(name='v', size=80)])"))
    assert load_config(path).warnings == [
        "master.cfg:6: ForceScheduler 'force': argument 'username' has no effect: the user is the one "
        "who logged in",
        "master.cfg:6: ForceScheduler 'force': parameter 'v': argument 'size' has no effect: "
        "buildfarm's force form has its own layout",
    ]


def test_an_unchanged_buildbot_import_line_says_what_to_import_instead(tmp_path):
    path = write(tmp_path, "master.cfg", WORKERS_CFG.replace("buildfarm.master.plugins", "buildbot.plugins"))
    assert problems(path) == [
        "master.cfg:1: ModuleNotFoundError: No module named 'buildbot': buildfarm does not import Buildbot; "
        "import from buildfarm.master.plugins (docs/porting.md)"]
