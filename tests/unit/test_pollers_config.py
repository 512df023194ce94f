"""c['change_source'] with Buildbot's pollers: loaded into the configuration, their arguments
checked at their own line, and the ones without effect warned about."""

import textwrap

import pytest

from buildfarm.master.changes.gitpoller import GitPoller
from buildfarm.master.config import ConfigErrors, load_config
from fixtures.mastercfg import WORKERS_EXAMPLE

BASE_CFG = WORKERS_EXAMPLE


def load(tmp_path, extra: str):
    path = tmp_path / "master.cfg"
    path.write_text(BASE_CFG + textwrap.dedent(extra))
    return load_config(str(path))


def problems(tmp_path, extra: str) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load(tmp_path, extra)
    return [str(e) for e in caught.value.errors]


def test_buildbot_sample_git_poller_loads_into_the_configuration(tmp_path):
    config = load(tmp_path, """\
        c['change_source'] = []
        c['change_source'].append(changes.GitPoller(
                'https://github.com/buildbot/hello-world.git',
                workdir='gitpoller-workdir', branch='master',
                pollInterval=300))
        """)
    [poller] = config.change_sources
    assert isinstance(poller, GitPoller)
    assert (poller.repourl, poller.branches, poller.workdir, poller.pollInterval) == (
        "https://github.com/buildbot/hello-world.git", ["master"], "gitpoller-workdir", 300)
    assert config.warnings == []


def test_one_change_source_without_a_list_is_accepted(tmp_path):
    config = load(tmp_path, "c['change_source'] = changes.GitPoller('file:///srv/repo.git')\n")
    assert [p.name for p in config.change_sources] == ["file:///srv/repo.git"]


def test_bad_poller_arguments_are_errors_at_the_poller_line(tmp_path):
    assert problems(tmp_path, """\
        c['change_source'] = [
            changes.GitPoller('file:///a', pollInterval=0),
            changes.GitPoller('file:///b', branches='main'),
        ]
        """) == [
        "master.cfg:9: GitPoller 'file:///a': pollInterval must be a number of seconds above 0, not 0",
        "master.cfg:10: GitPoller 'file:///b': branches must be a list of branch names, True or a callable, "
        "not 'main'",
    ]


def test_each_poller_kind_checks_its_repository_url_and_branches(tmp_path):
    assert problems(tmp_path, """\
        c['change_source'] = [
            changes.HgPoller(42, name='hg', branches='default'),
            changes.SVNPoller('', name='svn'),
        ]
        """) == [
        "master.cfg:9: HgPoller: repourl must be a non-empty string, not 42",
        "master.cfg:9: HgPoller 'hg': branches must be a list of branch names, True or a callable, "
        "not 'default'",
        "master.cfg:10: SVNPoller: repourl must be a non-empty string, not ''",
    ]


def test_two_pollers_of_one_name_are_an_error(tmp_path):
    assert problems(tmp_path, """\
        c['change_source'] = [changes.GitPoller('file:///a', branch='x'),
                              changes.GitPoller('file:///a', branch='y')]
        """) == ["master.cfg:9: two change sources are named 'file:///a': give each a distinct name="]


def test_arguments_without_effect_are_warned_about(tmp_path):
    config = load(tmp_path, """\
        c['change_source'] = [changes.GitPoller('git@example.org:r.git', sshPrivateKey='key',
                                                pollRandomDelayMax=30)]
        """)
    assert config.warnings == [
        "master.cfg:8: GitPoller 'git@example.org:r.git': argument 'pollRandomDelayMax' has no effect "
        "in buildfarm",
        "master.cfg:8: GitPoller 'git@example.org:r.git': argument 'sshPrivateKey' has no effect "
        "in buildfarm",
    ]


def test_hg_and_svn_pollers_load_with_buildbot_arguments(tmp_path):
    config = load(tmp_path, """\
        c['change_source'] = [
            changes.HgPoller('https://hg.example.org/repo', workdir='hg-work', branches=['default', 'stable'],
                             pollInterval=120, pollAtLaunch=True),
            changes.SVNPoller('svn://svn.example.org/repo', split_file=util.svn.split_file_branches,
                              svnuser='ann', histmax=10, project='hello'),
        ]
        """)
    hg, svn = config.change_sources
    assert (hg.branches, hg.workdir, hg.pollInterval, hg.pollAtLaunch) == (
        ["default", "stable"], "hg-work", 120, True)
    assert (svn.repourl, svn.svnuser, svn.histmax, svn.project, svn.split_file("trunk/a")) == (
        "svn://svn.example.org/repo", "ann", 10, "hello", (None, "a"))
    assert config.warnings == []


def docs_example(page: str, heading: str) -> str:
    """The first ```python block after ``heading`` in docs/``page``."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs", page), encoding="utf-8") as f:
        text = f.read()
    after = text[text.index(heading):]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("page, heading", [("configuration.md", "### Pollers"), ("porting.md", "## Pollers")])
def test_the_docs_poller_examples_load(tmp_path, page, heading):
    config = load(tmp_path, docs_example(page, heading))
    assert [type(s).__name__ for s in config.change_sources] == ["GitPoller", "HgPoller", "SVNPoller"]
    assert config.warnings == []


def test_every_poller_is_a_change_source_and_a_service():
    from twisted.application.service import IService
    from zope.interface.verify import verifyObject

    from buildfarm.master.changes.hgpoller import HgPoller
    from buildfarm.master.changes.interfaces import IChangeSource
    from buildfarm.master.changes.svnpoller import SVNPoller

    for poller in (GitPoller("file:///r"), HgPoller("file:///r"), SVNPoller("file:///r")):
        assert verifyObject(IChangeSource, poller) and verifyObject(IService, poller)
