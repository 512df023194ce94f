"""Reporters in master.cfg: Buildbot's import paths load, a wrong argument is reported at its
line by checkconfig, two reporters of one name are refused, and the example of
docs/configuration.md ("Reporters") loads."""

import os
import re
import textwrap

import pytest

from buildfarm.master.config import ConfigErrors, load_config
from buildfarm.master.reporters.http import HttpStatusPush

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HEAD = """\
from buildfarm.master.plugins import reporters, schedulers, slaves, steps, util
c = BuildmasterConfig = {}
c['slaves'] = [slaves.BuildSlave('bs1', 'pass')]
c['builders'] = [util.BuilderConfig(name='linux', slavenames=['bs1'],
                 factory=util.BuildFactory([steps.ShellCommand(command='true')]))]
"""


def load(tmp_path, body: str):
    path = tmp_path / "master.cfg"
    path.write_text(HEAD + body)
    return load_config(str(path))


def errors(tmp_path, body: str) -> list[str]:
    with pytest.raises(ConfigErrors) as raised:
        load(tmp_path, body)
    return [str(e) for e in raised.value.errors]


def test_buildbot_module_paths_load(tmp_path):
    config = load(tmp_path, """\
from buildfarm.master.reporters.http import HttpStatusPush
from buildfarm.master.reporters.generators.build import BuildStatusGenerator, BuildStartEndStatusGenerator
from buildfarm.master.reporters.generators.worker import WorkerMissingGenerator
from buildfarm.master.reporters.message import MessageFormatter, MessageFormatterMissingWorker
from buildfarm.master.reporters.base import ReporterBase
c['services'] = [HttpStatusPush('http://127.0.0.1:9/hook', generators=[
    BuildStatusGenerator(mode='change', message_formatter=MessageFormatter(template='{{ summary }}')),
    BuildStartEndStatusGenerator(),
    WorkerMissingGenerator(message_formatter=MessageFormatterMissingWorker())])]
""")
    [push] = config.services
    assert isinstance(push, HttpStatusPush) and len(push.generators) == 3


def test_a_wrong_mode_is_reported_at_its_line(tmp_path):
    found = errors(tmp_path, "c['services'] = [reporters.HttpStatusPush('http://x/', generators=[\n"
                             "    reporters.BuildStatusGenerator(mode='sometimes')])]\n")
    assert found[0] == ("master.cfg:7: ValueError: mode 'sometimes' is not one of change, failing, passing, "
                        "problem, warnings, exception, cancelled")


def test_two_reporters_of_one_name_are_refused(tmp_path):
    found = errors(tmp_path, "c['services'] = [reporters.HttpStatusPush('http://x/'),\n"
                             "                 reporters.HttpStatusPush('http://y/')]\n")
    assert any("two services in c['services'] are named 'HttpStatusPush'" in e for e in found)
    config = load(tmp_path, "c['services'] = [reporters.HttpStatusPush('http://x/'),\n"
                            "                 reporters.HttpStatusPush('http://y/', name='second')]\n")
    assert [s.name for s in config.services] == ["HttpStatusPush", "second"]


def test_unprovided_reporters_are_named_as_not_supported(tmp_path):
    found = errors(tmp_path, "c['services'] = [reporters.PushoverNotifier('u', 't')]\n")
    assert found[0].startswith("master.cfg:6: not supported by buildfarm: PushoverNotifier")


def test_a_mail_notifier_loads_with_its_secrets_and_default_generators(tmp_path):
    config = load(tmp_path, "c['services'] = [reporters.MailNotifier(fromaddr='ci@example.org', "
                            "relayhost='smtp.example.org', smtpPort=587, useTls=True, smtpUser='ci', "
                            "smtpPassword=util.Secret('smtp'), lookup='example.org')]\n")
    [mail] = config.services
    assert (mail.name, mail.relayhost, mail.smtpPort, mail.useTls) == ("MailNotifier", "smtp.example.org",
                                                                       587, True)
    assert [type(g).__name__ for g in mail.generators] == ["BuildStatusGenerator", "WorkerMissingGenerator"]


def test_a_wrong_mail_notifier_argument_is_an_error_at_its_line(tmp_path):
    found = errors(tmp_path, "c['services'] = [reporters.MailNotifier(fromaddr='nobody')]\n")
    assert found == ["master.cfg:6: ValueError: MailNotifier: fromaddr must be an email address, "
                     "not 'nobody'"]


def test_the_configuration_page_example_loads(tmp_path):
    with open(os.path.join(REPO, "docs", "configuration.md")) as f:
        page = f.read()
    section = page[page.index("## Reporters"):]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    config = load(tmp_path, example)
    [push] = config.services
    assert push.server_url == "https://ci-dashboard.example.org/hooks/buildfarm"
    assert push.generators[0].mode == ("failing", "change")


def test_the_configuration_page_mail_example_loads(tmp_path):
    with open(os.path.join(REPO, "docs", "configuration.md")) as f:
        page = f.read()
    section = page[page.index("**MailNotifier("):]
    example = textwrap.dedent(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    [mail] = load(tmp_path, example).services
    assert (mail.relayhost, mail.smtpPort, mail.useTls, mail.extraRecipients) == (
        "smtp.example.org", 587, True, ["team@example.org"])

