"""Constructs real, public Buildbot 4 configurations use (docs/porting.md, "Real
configurations tried"), each written here in our own words: Buildbot module paths other than
``buildbot.plugins``, helper packages without ``__init__.py``, a star import of a helper that
fails, force parameters written against Buildbot's API, a Trigger with ``sourceStamps``, and
``w.workername``.  What buildfarm lacks is named ``not supported by buildfarm``."""

import importlib.util
import os
import sys
import textwrap

import pytest

from buildfarm.master import buildbotmodules
from buildfarm.master.config import ConfigErrors, Worker, load_config
from buildfarm.master.schedulers.forceparams import BaseParameter, StringParameter, ValidationError
from buildfarm.master.schedulers.forcesched import ForceParameterError, ForceScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from fixtures.buildbotpackage import REPO_ROOT, buildbot_package_file

HEAD = """\
from buildfarm.master.plugins import *
c = BuildmasterConfig = {}
c['protocols'] = {'pb': {'port': 9989}}
"""


def write(directory, name, text):
    """Write ``text`` (dedented; after ``HEAD`` when it starts with it) to ``directory/name``."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    head = HEAD if text.startswith(HEAD) else ""
    path.write_text(head + textwrap.dedent(text[len(head):]))
    return str(path)


def problems(path):
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    return [str(e) for e in caught.value.errors]


def forced(scheduler: ForceScheduler, submitted: dict) -> dict:
    """The properties of the buildset a force of builder ``a`` with ``submitted`` adds."""
    master = FakeMaster()
    started_manager(master, scheduler)
    result_of(master.scheduler.force("a", None, submitted))
    return master.buildsets(scheduler.name)[0]["properties"]


# -- Buildbot's module paths ---------------------------------------------------------------

def test_the_buildbot_module_paths_configs_import_from_load(tmp_path):
    path = write(tmp_path, "master.cfg", HEAD + """\
        from buildfarm.master import locks
        from buildfarm.master.config import BuilderConfig
        from buildfarm.master.process.factory import BuildFactory
        from buildfarm.master.schedulers.forcesched import ForceScheduler, StringParameter, ValidationError
        from buildfarm.master.steps.source.git import Git
        from buildfarm.master.steps.source.github import GitHub
        from buildfarm.master.steps.source.mercurial import Mercurial
        from buildfarm.master.worker import Worker

        c['workers'] = [Worker('w1', 'pw'), Worker('w2', 'pw')]
        names = [w.workername for w in c['workers']]
        build_lock = locks.WorkerLock('build', maxCount=1)
        f = BuildFactory()
        f.addStep(Git(repourl='https://example.org/a.git', mode='full', method='clobber'))
        f.addStep(GitHub(repourl='https://example.org/b.git', workdir='b'))
        f.addStep(Mercurial(repourl='https://example.org/c', workdir='c'))
        c['builders'] = [BuilderConfig(name='build', workernames=names, factory=f,
                                       locks=[build_lock.access('exclusive')])]
        c['schedulers'] = [ForceScheduler(name='force', builderNames=['build'],
                                          properties=[StringParameter('target')])]
        """)
    config = load_config(path)
    assert [b.name for b in config.builders] == ["build"]
    assert config.builders[0].slavenames == ["w1", "w2"]


def test_worker_has_buildbots_workername():
    assert Worker("w1", "pw").workername == "w1"


@pytest.mark.parametrize("statement, message", [
    ("from buildfarm.master.data.resultspec import Filter",
     "not supported by buildfarm: Filter (Buildbot's buildbot.data.resultspec.Filter)"),
    ("from buildfarm.master.data import resultspec",
     "not supported by buildfarm: resultspec (Buildbot's module buildbot.data.resultspec)"),
    ("from buildfarm.master.worker.local import LocalWorker",
     "not supported by buildfarm: LocalWorker (Buildbot's buildbot.worker.local.LocalWorker)"),
    ("from buildfarm.master.util import bytes2unicode, unicode2bytes",
     "not supported by buildfarm: bytes2unicode, unicode2bytes (Buildbot's buildbot.util.bytes2unicode, "
     "buildbot.util.unicode2bytes)"),
    ("from buildfarm.master.www import oauth2",
     "not supported by buildfarm: oauth2 (Buildbot's module buildbot.www.oauth2)"),
    ("from buildfarm.master.worker import AbstractWorker",
     "not supported by buildfarm: AbstractWorker (Buildbot's buildbot.worker.AbstractWorker)"),
    ("import buildfarm.master.reporters.irc",
     "not supported by buildfarm: irc (Buildbot's module buildbot.reporters.irc)"),
])
def test_a_buildbot_module_or_name_buildfarm_does_not_mirror_is_named_so(tmp_path, statement, message):
    path = write(tmp_path, "master.cfg", HEAD + statement + "\n")
    assert problems(path) == [f"master.cfg:4: {message}"]


def test_a_module_buildbot_lacks_too_stays_an_import_error(tmp_path):
    path = write(tmp_path, "master.cfg", HEAD + "from buildfarm.master.nosuchthing import x\n")
    assert problems(path) == [
        "master.cfg:4: ModuleNotFoundError: No module named 'buildfarm.master.nosuchthing'"]


def test_the_modules_table_is_what_the_generator_makes_from_buildbot_4_3():
    spec = importlib.util.spec_from_file_location(
        "buildbot_modules", os.path.join(REPO_ROOT, "contrib", "buildbot_modules.py"))
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    dist_info = os.path.dirname(buildbot_package_file("buildbot-4.3.*.dist-info", "RECORD"))
    with open(buildbotmodules.__file__, encoding="utf-8") as f:
        assert f.read() == generator.render(dist_info)


# -- helper modules --------------------------------------------------------------------------

def test_a_helper_package_without_init_py_loads_as_in_buildbot(tmp_path):
    write(tmp_path, "rc_nslib/workers.py", """\
        from buildfarm.master.plugins import worker
        WORKERS = [worker.Worker('w1', 'pw')]
        """)
    write(tmp_path, "rc_nslib/builders.py", """\
        from rc_nslib.workers import WORKERS
        from buildfarm.master.plugins import steps, util
        BUILDERS = [util.BuilderConfig(name='b', workernames=[w.name for w in WORKERS],
                    factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
        """)
    path = write(tmp_path, "master.cfg", HEAD + """\
        from rc_nslib.workers import WORKERS
        from rc_nslib.builders import BUILDERS
        c['workers'] = WORKERS
        c['builders'] = BUILDERS
        """)
    config = load_config(path)
    assert [b.name for b in config.builders] == ["b"]


def test_a_star_import_of_a_failed_helper_raises_no_second_error(tmp_path):
    write(tmp_path, "rc_starlib.py", """\
        from buildfarm.master.www import oauth2

        class Bot:
            pass
        """)
    path = write(tmp_path, "master.cfg", HEAD + """\
        from rc_starlib import *
        bot = Bot()
        """)
    assert problems(path) == [
        "rc_starlib.py:1: not supported by buildfarm: oauth2 (Buildbot's module buildbot.www.oauth2)"]


# -- force parameters written against Buildbot's API ----------------------------------------

class UpperParameter(BaseParameter):
    """Buildbot's way: ``parse_from_arg`` converts, ``ValidationError`` refuses."""

    def parse_from_arg(self, s):
        if not s.isalpha():
            raise ValidationError(f"{s!r} is not a word")
        return s.upper()


class TagParameter(BaseParameter):
    """Buildbot's way: ``updateFromKwargs`` sets several properties from one field."""

    def updateFromKwargs(self, properties, kwargs, **unused):  # noqa: N802 - Buildbot's name
        tag = self.getFromKwargs(kwargs)
        if tag == "boom":
            raise KeyError(tag)
        properties[self.name] = tag
        properties["force_branch"] = tag.partition("-")[0]


def test_a_parse_from_arg_parameter_converts_and_refuses_as_in_buildbot():
    scheduler = ForceScheduler("force", ["a"], properties=[UpperParameter("word", default="")])
    assert scheduler.config_problems() == []  # Buildbot checks no default of such a parameter
    assert forced(scheduler, {"word": "hello"})["word"] == "HELLO"
    with pytest.raises(ForceParameterError, match="'h1' is not a word"):
        forced(scheduler, {"word": "h1"})


def test_an_update_from_kwargs_parameter_sets_its_properties():
    scheduler = ForceScheduler("force", ["a"], properties=[TagParameter("tag"), StringParameter("who")])
    properties = forced(scheduler, {"tag": "v24-rc1", "who": "me"})
    assert (properties["tag"], properties["force_branch"], properties["who"]) == ("v24-rc1", "v24", "me")


def test_a_custom_parameter_that_fails_refuses_the_request_without_a_server_error():
    scheduler = ForceScheduler("force", ["a"], properties=[TagParameter("tag")])
    with pytest.raises(ForceParameterError, match="KeyError"):
        forced(scheduler, {"tag": "boom"})


def test_a_custom_parameter_whose_check_fails_is_a_config_problem_not_a_traceback(tmp_path):
    path = write(tmp_path, "master.cfg", HEAD + """\
        from buildfarm.master.schedulers.forcesched import BaseParameter

        class Broken(BaseParameter):
            def config_problems(self):
                raise RuntimeError('no tags yet')

        c['workers'] = [worker.Worker('w1', 'pw')]
        c['builders'] = [util.BuilderConfig(name='b', workernames=['w1'],
                         factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
        c['schedulers'] = [schedulers.ForceScheduler(name='force', builderNames=['b'],
                                                     properties=[Broken('tag')])]
        """)
    assert problems(path) == ["master.cfg:13: scheduler 'force': RuntimeError: no tags yet"]


def test_a_renderable_builder_names_is_named_not_supported(tmp_path):
    path = write(tmp_path, "master.cfg", HEAD + """\
        @util.renderer
        def every_builder(props):
            return ['b']

        c['workers'] = [worker.Worker('w1', 'pw')]
        c['builders'] = [util.BuilderConfig(name='b', workernames=['w1'],
                         factory=util.BuildFactory([steps.ShellCommand(command=['true'])]))]
        c['schedulers'] = [schedulers.Triggerable(name='t', builderNames=every_builder)]
        """)
    [problem] = problems(path)
    assert problem.startswith("master.cfg:11: scheduler 't': not supported by buildfarm: a renderable "
                              "builderNames")


# -- what one cause reports ------------------------------------------------------------------

def test_an_error_in_a_module_outside_the_basedir_is_reported_once_at_its_own_line(tmp_path):
    write(tmp_path, "lib/rc_outside/__init__.py", "")
    write(tmp_path, "lib/rc_outside/renderables.py", """\
        from buildfarm.master.interfaces import IRenderable
        """)
    path = write(tmp_path, "master/master.cfg", HEAD + f"""\
        import sys
        sys.path.append({str(tmp_path / 'lib')!r})
        from rc_outside.renderables import IRenderable
        from rc_outside import renderables
        """)
    try:
        assert problems(path) == ["../lib/rc_outside/renderables.py:1: not supported by buildfarm: "
                                  "IRenderable (Buildbot's buildbot.interfaces.IRenderable)"]
    finally:
        sys.path.remove(str(tmp_path / "lib"))


def test_a_key_whose_statement_failed_raises_no_key_error_after(tmp_path):
    path = write(tmp_path, "master.cfg", HEAD + """\
        c['schedulers'] = make_schedulers()
        c['schedulers'].extend([])
        """)
    assert problems(path) == ["master.cfg:4: NameError: name 'make_schedulers' is not defined"]


def test_a_failed_submodule_import_raises_no_second_error_in_its_package(tmp_path):
    write(tmp_path, "rc_pkg/bad.py", "VALUE = missing_value\n")
    write(tmp_path, "rc_pkg/__init__.py", """\
        from importlib import reload
        import rc_pkg.bad
        reload(rc_pkg.bad)
        value = bad.VALUE
        """)
    path = write(tmp_path, "master.cfg", HEAD + "import rc_pkg\n")
    assert problems(path) == ["rc_pkg/bad.py:1: NameError: name 'missing_value' is not defined"]


def test_cmake_has_buildbots_default_cmake(tmp_path):
    from buildfarm.master.plugins import steps

    assert steps.CMake.DEFAULT_CMAKE == "cmake"
    assert steps.CMake(cmake=steps.CMake.DEFAULT_CMAKE).cmake == "cmake"


def test_set_property_from_command_has_buildbots_step_name():
    from buildfarm.master.plugins import steps

    step = steps.SetPropertyFromCommand(command=["cat", "VERSION"], property="version")
    assert (step.name, step.property_source) == ("setproperty", "SetPropertyFromCommand Step")


def test_keys_of_a_buildmaster_config_literal_are_reported_at_their_lines(tmp_path):
    path = write(tmp_path, "master.cfg", """\
        from buildfarm.master.plugins import *
        c = BuildmasterConfig = {
            'workers': [worker.Worker('w1', 'pw')],
            'protocols': {'pb': {'port': 9989}, 'msgpack_experimental_v7': {'port': 9988}},
            'codebaseGenerator': lambda change: change['project'],
        }
        """)
    with pytest.raises(ConfigErrors) as caught:
        load_config(path)
    assert [str(e) for e in caught.value.errors] == [
        "master.cfg:4: unknown protocol 'msgpack_experimental_v7' (only 'pb' is supported)"]
    assert caught.value.warnings == [
        "master.cfg:5: c['codebaseGenerator'] has no effect: buildfarm does not generate codebases "
        "from changes"]


def test_a_custom_parameter_whose_choices_fail_still_shows_in_the_force_form():
    from buildfarm.master.www.ui import forceform

    class RemoteTags(BaseParameter):
        @property
        def choices(self):
            raise OSError("the repository cannot be reached")

    field = forceform.parameter_field(RemoteTags("tag", default=""))
    assert (field.name, field.kind, field.choices) == ("tag", "text", [])
