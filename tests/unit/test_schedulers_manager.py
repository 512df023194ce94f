"""SchedulerManager: reconfig, force with typed parameters, triggers, Dependent, buildsets."""

import pytest

from buildfarm.common.results import FAILURE, SUCCESS, WARNINGS
from buildfarm.master.changes.filter import ChangeFilter
from buildfarm.master.schedulers.basic import SingleBranchScheduler
from buildfarm.master.schedulers.dependent import Dependent
from buildfarm.master.schedulers.forceparams import (
    BooleanParameter,
    ChoiceStringParameter,
    FixedParameter,
    IntParameter,
    StringParameter,
)
from buildfarm.master.schedulers.forcesched import ForceParameterError, ForceScheduler
from buildfarm.master.schedulers.manager import NotForceable, UnknownBuilder, UnknownScheduler
from buildfarm.master.schedulers.testing import FakeConfig, FakeMaster, result_of, started_manager
from buildfarm.master.schedulers.timed import Periodic
from buildfarm.master.schedulers.triggerable import Triggerable


def finish(master, manager, brid, results):
    """What the BotMaster does when a request's build ends."""
    manager.buildrequest_finished(master.db.buildrequests.finish(brid, results))


# -- reconfig -------------------------------------------------------------------------------

def test_reconfig_keeps_unchanged_replaces_changed_and_stops_removed_schedulers():
    master = FakeMaster()
    kept, changed, removed = (Periodic("kept", ["a"], periodicBuildTimer=100),
                              Periodic("changed", ["a"], periodicBuildTimer=100),
                              Periodic("removed", ["a"], periodicBuildTimer=100))
    manager = started_manager(master, kept, changed, removed)
    master.reactor.advance(0)
    assert len(master.buildsets()) == 3
    new = [Periodic("kept", ["a"], periodicBuildTimer=100),
           Periodic("changed", ["a", "b"], periodicBuildTimer=100),
           Periodic("added", ["a"], periodicBuildTimer=100)]
    result_of(manager.reconfigService(FakeConfig(new)))
    assert manager.schedulers["kept"] is kept
    assert manager.schedulers["changed"] is new[1] and not changed.active
    assert "removed" not in manager.schedulers and not removed.active
    master.reactor.advance(0)
    assert [b["scheduler"] for b in master.buildsets()][3:] == ["added"]  # "changed" kept its last build
    master.reactor.advance(100)
    assert sorted(b["scheduler"] for b in master.buildsets()[4:]) == ["added", "changed", "kept"]


def test_reconfig_compares_functions_and_filters_by_what_they_do():
    master = FakeMaster()
    first = SingleBranchScheduler("s", ["a"], change_filter=ChangeFilter(branch_fn=lambda b: b == "x"),
                                  fileIsImportant=lambda c: True)
    manager = started_manager(master, first)
    again = SingleBranchScheduler("s", ["a"], change_filter=ChangeFilter(branch_fn=lambda b: b == "x"),
                                  fileIsImportant=lambda c: True)
    result_of(manager.reconfigService(FakeConfig([again])))
    assert manager.schedulers["s"] is first
    other = SingleBranchScheduler("s", ["a"], change_filter=ChangeFilter(branch_fn=lambda b: b == "y"))
    result_of(manager.reconfigService(FakeConfig([other])))
    assert manager.schedulers["s"] is other


def test_a_dependent_follows_its_upstream_by_name_across_a_reconfig():
    def schedulers(upstream_timer):
        upstream = Periodic("nightly", ["a"], periodicBuildTimer=upstream_timer)
        return [upstream, Dependent("tests", upstream, ["b"])]

    first = schedulers(100)
    manager = started_manager(FakeMaster(), *first)
    changed_upstream = schedulers(200)
    result_of(manager.reconfigService(FakeConfig(changed_upstream)))
    assert manager.schedulers["nightly"] is changed_upstream[0]
    assert manager.schedulers["tests"] is first[1]  # only its upstream's name matters to it


def test_stop_cancels_every_timer():
    master = FakeMaster()
    manager = started_manager(master, Periodic("p", ["a"], periodicBuildTimer=10))
    result_of(manager.stop())
    assert master.reactor.getDelayedCalls() == []


# -- force ----------------------------------------------------------------------------------

def test_force_adds_a_one_request_buildset():
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler("force", ["a", "b"], properties={"fixed": "1"}))
    brid = result_of(manager.force("b", None, {"colour": "blue"}, owner="ann"))
    [buildset] = master.buildsets("force")
    assert buildset["buildrequestids"] == [brid]
    assert master.db.buildrequests.rows[brid]["builderid"] == 2
    assert buildset["reason"] == "force build"
    assert buildset["properties"] == {"fixed": "1", "colour": "blue", "owner": "ann", "scheduler": "force"}


def test_force_of_unknown_or_unforceable_builders_is_refused():
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler("force", ["a"]))
    with pytest.raises(UnknownBuilder):
        result_of(manager.force("nope", None, {}))
    with pytest.raises(NotForceable):
        result_of(manager.force("b", None, {}))


def test_without_parameters_submitted_properties_must_be_strings():
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler("force", ["a"]))
    with pytest.raises(ForceParameterError) as caught:
        result_of(manager.force("a", None, {"count": 3}))
    assert caught.value.field == "count"


PARAMETERS = [
    StringParameter("branch", default="main", regex=r"[a-z/]+$"),
    IntParameter("jobs", default=4),
    BooleanParameter("clean"),
    ChoiceStringParameter("flavour", choices=["debug", "release"]),
    FixedParameter("channel", default="nightly"),
    StringParameter("ticket", required=True),
]


def forced_properties(submitted: dict) -> dict:
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler("force", ["a"], properties=PARAMETERS))
    result_of(manager.force("a", "because", submitted))
    return master.buildsets("force")[0]["properties"]


def test_parameters_fill_defaults_and_convert_values():
    assert forced_properties({"ticket": "T-1", "jobs": "8", "clean": "yes"}) == {
        "branch": "main", "jobs": 8, "clean": True, "flavour": "debug", "channel": "nightly",
        "ticket": "T-1", "scheduler": "force",
    }


@pytest.mark.parametrize("submitted, field, words", [
    ({}, "ticket", "required"),
    ({"ticket": ""}, "ticket", "required"),
    ({"ticket": "T", "branch": "Main!"}, "branch", "does not match"),
    ({"ticket": "T", "jobs": "many"}, "jobs", "integer"),
    ({"ticket": "T", "jobs": True}, "jobs", "integer"),
    ({"ticket": "T", "clean": "maybe"}, "clean", "true or false"),
    ({"ticket": "T", "flavour": "fast"}, "flavour", "not one of"),
    ({"ticket": "T", "channel": "stable"}, "channel", "fixed"),
    ({"ticket": "T", "colour": "blue"}, "colour", "unknown property"),
])
def test_bad_force_values_raise_an_error_naming_the_field(submitted, field, words):
    with pytest.raises(ForceParameterError) as caught:
        forced_properties(submitted)
    assert caught.value.field == field
    assert words in caught.value.message


def test_reason_parameter_checks_the_submitted_reason():
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler(
        "force", ["a"], reason=StringParameter("reason", default="Manual", regex="[A-Z]")))
    result_of(manager.force("a", None, {}))
    assert master.buildsets("force")[0]["reason"] == "Manual"
    with pytest.raises(ForceParameterError) as caught:
        result_of(manager.force("a", "lower case", {}))
    assert caught.value.field == "reason"


def test_force_scheduler_config_problems():
    assert ForceScheduler("f", ["a"], properties=PARAMETERS).config_problems() == []
    problems = ForceScheduler("f", ["a"], properties=[
        IntParameter("n", default="x"), StringParameter("s", regex="("), "oops",
        ChoiceStringParameter("c", choices=[]), IntParameter("n")]).config_problems()
    assert any("'n'" in p and "bad default" in p for p in problems)
    assert any("'s'" in p and "regex" in p for p in problems)
    assert any("'oops' is not a force parameter" in p for p in problems)
    assert any("'c'" in p and "choices" in p for p in problems)
    assert any("duplicate parameter 'n'" in p for p in problems)
    assert "unknown argument 'colour'" in ForceScheduler("f", ["a"], colour=1).config_problems()[0]


# -- buildsets, triggers and Dependent ------------------------------------------------------

def test_trigger_returns_ids_and_a_deferred_of_the_buildset_results():
    master = FakeMaster()
    manager = started_manager(master, Triggerable("tests", ["a", "b"]))
    bsid, brids, finished = result_of(manager.trigger("tests", {"revision": "r1"}, parent_buildid=7))
    buildset = master.db.buildsets.rows[bsid]
    assert buildset["parent_buildid"] == 7 and buildset["properties"]["revision"] == "r1"
    assert sorted(brids) == [1, 2]
    finish(master, manager, brids[1], SUCCESS)
    assert not finished.called
    finish(master, manager, brids[2], WARNINGS)
    assert result_of(finished) == WARNINGS
    assert master.db.buildsets.rows[bsid]["complete"]


def test_trigger_wakes_up_when_another_master_completed_the_buildset():
    master = FakeMaster()
    manager = started_manager(master, Triggerable("tests", ["a"]))
    bsid, _, finished = result_of(manager.trigger("tests", {}, parent_buildid=7))
    master.db.buildsets.rows[bsid].update(complete=True, results=WARNINGS)  # done elsewhere
    result_of(manager.check_remote_completions())
    assert result_of(finished) == WARNINGS


def test_trigger_of_an_unknown_or_untriggerable_scheduler_is_a_clear_error():
    master = FakeMaster()
    manager = started_manager(master, ForceScheduler("force", ["a"]))
    with pytest.raises(UnknownScheduler, match="'nope' is not configured"):
        result_of(manager.trigger("nope", {}, 1))
    with pytest.raises(KeyError, match="'force' is not a Triggerable"):
        result_of(manager.trigger("force", {}, 1))


def test_dependent_builds_after_upstream_success_with_its_source():
    master = FakeMaster()
    upstream = SingleBranchScheduler("build", ["a"], branch="main")
    manager = started_manager(master, upstream, Dependent("test", upstream, ["b", "c"]))
    result_of(manager.add_change(author="ann", files=["x"], branch="main", revision="r7"))
    [buildset] = master.buildsets("build")
    finish(master, manager, buildset["buildrequestids"][0], SUCCESS)
    [downstream] = master.buildsets("test")
    assert downstream["reason"] == "downstream"
    assert downstream["properties"]["revision"] == "r7" and downstream["properties"]["changeids"] == [1]
    assert len(downstream["buildrequestids"]) == 2


def test_dependent_does_not_build_after_upstream_failure_or_other_schedulers():
    master = FakeMaster()
    upstream = Triggerable("build", ["a"])
    manager = started_manager(master, upstream, Triggerable("other", ["a"]),
                              Dependent("test", upstream, ["b"]))
    _, brids, _ = result_of(manager.trigger("build", {}, 1))
    finish(master, manager, brids[1], FAILURE)
    _, brids, _ = result_of(manager.trigger("other", {}, 1))
    finish(master, manager, brids[1], SUCCESS)
    assert master.buildsets("test") == []


def test_a_buildset_completes_once_even_if_told_twice():
    master = FakeMaster()
    upstream = Triggerable("build", ["a"])
    manager = started_manager(master, upstream, Dependent("test", upstream, ["b"]))
    _, brids, _ = result_of(manager.trigger("build", {}, 1))
    request = master.db.buildrequests.finish(brids[1], SUCCESS)
    manager.buildrequest_finished(request)
    manager.buildrequest_finished(request)
    assert len(master.buildsets("test")) == 1


def test_dependent_config_problems_and_unknown_upstream():
    upstream = Triggerable("build", ["a"])
    assert "upstream must be another scheduler" in Dependent("d", "build", ["a"]).config_problems()[0]
    dependent = Dependent("d", upstream, ["a"])
    assert dependent.cross_check(FakeConfig([upstream, dependent])) == []
    assert dependent.cross_check(FakeConfig([dependent])) == [
        "Dependent 'd': upstream scheduler 'build' is not in c['schedulers']"]
