"""Source steps in a master.cfg: they load from plugins.steps, and what is wrong with their
arguments (an unsupported one included) is reported at the step's line."""

import pytest

from buildfarm.master.config import ConfigErrors, load_config
from fixtures.mastercfg import ISSUE_EXAMPLE

SHELL_STEP = "steps.ShellCommand(command=['echo', 'hello'])"


def write(tmp_path, steps_text):
    path = tmp_path / "master.cfg"
    path.write_text(ISSUE_EXAMPLE.replace(SHELL_STEP, steps_text))
    return str(path)


def test_a_config_with_every_source_step_loads(tmp_path):
    config = load_config(write(tmp_path, (
        "steps.Git(repourl=util.Interpolate('file:///srv/%(prop:project)s'), mode='full', method='copy',"
        " submodules=True, retry=(10, 2), codebase='app'),"
        " steps.GitHub(repourl='https://github.com/o/r.git'), steps.GitLab(repourl='git@gitlab.com:o/r.git'),"
        " steps.Mercurial(repourl='https://hg.example/r', branchType='inrepo'),"
        " steps.SVN(repourl='svn://svn.example/r/trunk', mode='full', method='export')")))
    names = [step.name for step in config.builders[0].factory.steps]
    assert names == ["git-app", "git", "git", "hg", "svn"]


def test_bad_and_unsupported_arguments_are_reported_at_the_steps_line(tmp_path):
    path = write(tmp_path, "\n    steps.Git(repourl='file:///r', sshPrivateKey='KEY'),"
                           "\n    steps.SVN(repourl='svn://r', mode='mirror')")
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    errors = [str(e) for e in caught.value.errors]
    with open(path) as f:
        lines = f.read().splitlines()
    git_line = next(n for n, line in enumerate(lines, 1) if "steps.Git(" in line)
    assert any(f"master.cfg:{git_line}" in e and "not supported by buildfarm: Git(sshPrivateKey=...)" in e
               for e in errors), errors
    assert any(f"master.cfg:{git_line + 1}" in e and "SVN: mode must be 'incremental' or 'full'" in e
               for e in errors), errors
