"""ForceScheduler ``codebases`` (util.CodebaseParameter) and ``reason`` as any parameter type."""

import pytest

from buildfarm.master.schedulers.forceparams import (
    ChoiceStringParameter,
    CodebaseParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
)
from buildfarm.master.schedulers.forcesched import ForceParameterError, ForceScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from buildfarm.master.www.ui import forceform


def forced(scheduler: ForceScheduler, submitted: dict, reason: str | None = None) -> dict:
    """The buildset a force of builder ``a`` with ``submitted`` properties adds."""
    master = FakeMaster()
    manager = started_manager(master, scheduler)
    result_of(manager.force("a", reason, submitted))
    return master.buildsets(scheduler.name)[0]


def test_each_codebase_gets_a_sourcestamp_from_its_full_named_fields():
    scheduler = ForceScheduler("force", ["a"], codebases=[
        "app", CodebaseParameter("lib", branch="stable", project=None)])
    buildset = forced(scheduler, {"app_branch": "feature", "app_revision": "abc123",
                                  "app_repository": "file:///srv/app", "lib_revision": "def456"})
    assert buildset["properties"]["sourcestamps"] == [
        {"codebase": "app", "branch": "feature", "project": "", "repository": "file:///srv/app",
         "revision": "abc123"},
        {"codebase": "lib", "branch": "stable", "repository": "", "revision": "def456"},
    ]
    assert "branch" not in buildset["properties"]  # several codebases: no single-stamp properties


def test_one_codebase_also_sets_the_single_stamp_properties_as_buildbot_does():
    scheduler = ForceScheduler("force", ["a"], codebases=[CodebaseParameter("")])
    properties = forced(scheduler, {"branch": "main", "revision": "r9", "project": "p"})["properties"]
    assert properties["sourcestamps"] == [
        {"codebase": "", "branch": "main", "project": "p", "repository": "", "revision": "r9"}]
    assert {k: properties[k] for k in ("branch", "revision", "repository", "project", "codebase")} == {
        "branch": "main", "revision": "r9", "repository": "", "project": "p", "codebase": ""}


def test_codebase_fields_and_declared_parameters_are_apart():
    scheduler = ForceScheduler("force", ["a"], properties=[IntParameter("jobs", default=2)],
                               codebases=["app"])
    properties = forced(scheduler, {"jobs": "3", "app_branch": "b"})["properties"]
    assert properties["jobs"] == 3 and properties["sourcestamps"][0]["branch"] == "b"
    with pytest.raises(ForceParameterError) as caught:
        forced(scheduler, {"lib_branch": "b"})
    assert caught.value.field == "lib_branch"


@pytest.mark.parametrize("submitted, field, words", [
    ({"lib_branch": "main"}, "lib_branch", "fixed"),
    ({"app_branch": "nope"}, "app_branch", "not one of"),
    ({"app_revision": 12}, "app_revision", "string"),
])
def test_a_bad_codebase_field_is_refused_naming_it(submitted, field, words):
    scheduler = ForceScheduler("force", ["a"], codebases=[
        CodebaseParameter("app", branch=ChoiceStringParameter("branch", choices=["main", "dev"])),
        CodebaseParameter("lib", branch=FixedParameter("branch", default="stable"))])
    with pytest.raises(ForceParameterError) as caught:
        forced(scheduler, submitted)
    assert caught.value.field == field and words in caught.value.message


def test_codebases_config_problems():
    assert ForceScheduler("f", ["a"], codebases=["x", CodebaseParameter("y")]).config_problems() == []
    for codebases, words in [
        ([], "non-empty list"),
        ("x", "non-empty list"),
        ([3], "not 3"),
        (["x", "x"], "'x' is listed twice"),
        ([CodebaseParameter("x", branch=StringParameter("twig"))], "field 'twig'"),
        ([CodebaseParameter("x", patch=object())], "patch= is not supported"),
        ([CodebaseParameter("x", revision=IntParameter("revision", default="z"))], "bad default"),
    ]:
        problems = ForceScheduler("f", ["a"], codebases=codebases).config_problems()
        assert any(words in p for p in problems), (codebases, problems)
    clash = ForceScheduler("f", ["a"], properties=[StringParameter("branch")], codebases=[""])
    assert any("'branch' has the name of a codebase field" in p for p in clash.config_problems())


def test_without_codebases_a_build_has_no_sourcestamps():
    properties = forced(ForceScheduler("force", ["a"]), {"branch": "dev"})["properties"]
    assert properties == {"branch": "dev", "scheduler": "force"}


@pytest.mark.parametrize("reason, submitted, expected", [
    (ChoiceStringParameter("reason", choices=["release", "test"]), None, "release"),
    (ChoiceStringParameter("reason", choices=["release", "test"]), "test", "test"),
    (FixedParameter("reason", default="nightly rerun"), None, "nightly rerun"),
    (IntParameter("reason", default=7), "42", "42"),
    (StringParameter("why", default="because"), "I said so", "I said so"),
])
def test_reason_may_be_any_parameter_type(reason, submitted, expected):
    scheduler = ForceScheduler("force", ["a"], reason=reason)
    assert scheduler.config_problems() == []
    assert forced(scheduler, {}, submitted)["reason"] == expected


@pytest.mark.parametrize("reason, submitted", [
    (ChoiceStringParameter("reason", choices=["release", "test"]), "other"),
    (FixedParameter("reason", default="nightly rerun"), "other"),
])
def test_a_reason_its_parameter_refuses_is_an_error(reason, submitted):
    with pytest.raises(ForceParameterError) as caught:
        forced(ForceScheduler("force", ["a"], reason=reason), {}, submitted)
    assert caught.value.field == "reason"


def test_a_reason_that_is_not_a_parameter_is_a_config_problem():
    problems = ForceScheduler("f", ["a"], reason=3).config_problems()
    assert any("reason must be a string or a force parameter" in p for p in problems)


def test_force_form_shows_and_reads_codebase_fields():
    scheduler = ForceScheduler("force", ["a"], codebases=[
        CodebaseParameter("app", project=None), CodebaseParameter("lib", branch="stable", hide=True)])
    fields = {f.name: f.kind for f in forceform.form_fields(scheduler)}
    assert fields == {"app_branch": "text", "app_repository": "text", "app_revision": "text",
                      "lib_branch": "hidden", "lib_project": "hidden", "lib_repository": "hidden",
                      "lib_revision": "hidden"}
    reason, properties = forceform.submitted_values(
        scheduler, {"reason": ["r"], "app_branch": ["dev"], "lib_branch": ["other"], "lib_revision": ["9"]})
    assert reason == "r"
    assert properties == {"app_branch": "dev", "lib_revision": "9"}  # a fixed field is not read


def test_checkconfig_warns_about_layout_arguments_of_codebase_parameters(tmp_path):
    from buildfarm.master.config import load_config
    cfg = tmp_path / "master.cfg"
    cfg.write_text(
        "from buildfarm.master.plugins import schedulers, util, worker, steps\n"
        "c = BuildmasterConfig = {}\n"
        "c['workers'] = [worker.Worker('bs1', 'pw')]\n"
        "c['builders'] = [util.BuilderConfig(name='a', workernames=['bs1'],\n"
        "                 factory=util.BuildFactory([steps.ShellCommand(command='true')]))]\n"
        "c['schedulers'] = [schedulers.ForceScheduler(name='f', builderNames=['a'], codebases=[\n"
        "    util.CodebaseParameter('app', columns=2,\n"
        "                           branch=util.StringParameter(name='branch', size=40))])]\n")
    config = load_config(str(cfg))
    assert any("'app'" in w and "'columns'" in w for w in config.warnings), config.warnings
    assert any("'branch'" in w and "'size'" in w for w in config.warnings), config.warnings
