"""Nightly with ``branch`` and ``change_filter`` together, and ``onlyIfChanged`` with them, as
Buildbot 4.3's timed schedulers behave (task.Clock and the in-memory database double)."""

import datetime

from buildfarm.master.changes.filter import ChangeFilter
from buildfarm.master.schedulers.basic import SingleBranchScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from buildfarm.master.schedulers.timed import Nightly, Periodic

HOUR_S = 3600
DAY_S = 24 * HOUR_S


def local(*args) -> float:
    return datetime.datetime(*args).timestamp()


def pass_time(master, seconds: float, step: float = 60) -> None:
    while seconds > 0:
        master.reactor.advance(min(step, seconds))
        seconds -= step


def revisions(master, name="n") -> list:
    return [b["properties"].get("revision") for b in master.buildsets(name)]


def change(manager, revision, branch="main", project="widgets", files=("x.c",)):
    result_of(manager.add_change(author="ann", files=list(files), branch=branch, project=project,
                                 revision=revision))


def nightly_manager(**kwargs):
    """A master at 2030-01-15 12:00 running a Nightly at 03:00 that already built once (so
    its next quiet night is skipped)."""
    master = FakeMaster(start_time=local(2030, 1, 15, 12, 0))
    master.db.state.values[("n", "last_build")] = local(2030, 1, 15, 3, 0)
    return master, started_manager(master, Nightly("n", ["a"], hour=3, **kwargs))


def test_branch_and_change_filter_together_are_accepted_by_nightly_only():
    both = dict(branch="main", change_filter=ChangeFilter(project="widgets"))
    assert Nightly("n", ["a"], onlyIfChanged=True, **both).config_problems() == []
    assert Periodic("p", ["a"], periodicBuildTimer=60, **both).config_problems() == []
    problems = SingleBranchScheduler("s", ["a"], **both).config_problems()
    assert any("not both" in p for p in problems)


def test_a_change_counts_only_if_it_passes_the_filter_and_is_on_the_branch():
    master, manager = nightly_manager(onlyIfChanged=True, branch="main",
                                      change_filter=ChangeFilter(project="widgets"))
    change(manager, "other-branch", branch="dev")
    change(manager, "other-project", project="gadgets")
    pass_time(master, DAY_S)
    assert revisions(master) == []  # neither change counts: a quiet night
    change(manager, "r1")
    pass_time(master, DAY_S)
    assert revisions(master) == ["r1"]
    assert master.buildsets("n")[0]["properties"]["changeids"] == [3]


def test_without_changes_a_nightly_builds_its_branch():
    master, manager = nightly_manager(branch="release", change_filter=ChangeFilter(project="widgets"))
    pass_time(master, DAY_S)
    [buildset] = master.buildsets("n")
    assert buildset["properties"]["branch"] == "release" and "changeids" not in buildset["properties"]


def test_unimportant_changes_wait_through_a_skipped_night_and_join_the_next_build():
    master, manager = nightly_manager(onlyIfChanged=True, branch="main",
                                      fileIsImportant=lambda c: not c.files[0].endswith(".txt"))
    change(manager, "doc", files=["README.txt"])
    pass_time(master, DAY_S)
    assert revisions(master) == []  # only an unimportant change: skipped
    change(manager, "code")
    pass_time(master, DAY_S)
    assert revisions(master) == ["code"]
    assert master.buildsets("n")[0]["properties"]["changeids"] == [1, 2]


def test_only_important_drops_unimportant_changes_from_the_build():
    master, manager = nightly_manager(onlyIfChanged=True, branch="main", onlyImportant=True,
                                      fileIsImportant=lambda c: not c.files[0].endswith(".txt"))
    change(manager, "doc", files=["README.txt"])
    change(manager, "code")
    pass_time(master, DAY_S)
    assert master.buildsets("n")[0]["properties"]["changeids"] == [2]


def test_the_first_time_builds_even_without_changes():
    master = FakeMaster(start_time=local(2030, 1, 15, 12, 0))
    started_manager(master, Nightly("n", ["a"], hour=3, onlyIfChanged=True, branch="main"))
    pass_time(master, 2 * DAY_S)
    assert [b["submitted_at"] for b in master.buildsets("n")] == [local(2030, 1, 16, 3, 0)]


def test_turning_only_if_changed_on_builds_once_more_then_skips_quiet_nights():
    master, manager = nightly_manager(branch="main")
    pass_time(master, DAY_S)
    assert len(master.buildsets("n")) == 1  # onlyIfChanged off: every night
    master.config.schedulers = [Nightly("n", ["a"], hour=3, branch="main", onlyIfChanged=True)]
    result_of(manager.reconfigService(master.config))
    pass_time(master, DAY_S)
    assert len(master.buildsets("n")) == 2  # changes made while it was off were not watched
    pass_time(master, DAY_S)
    assert len(master.buildsets("n")) == 2


def test_force_at_times_build_without_an_important_change():
    master = FakeMaster(start_time=local(2030, 1, 15, 12, 0))
    master.db.state.values[("n", "last_build")] = local(2030, 1, 15, 12, 0)
    started_manager(master, Nightly("n", ["a"], hour="*", minute=0, onlyIfChanged=True,
                                    force_at_hour=18))
    pass_time(master, 12 * HOUR_S)
    assert [b["submitted_at"] for b in master.buildsets("n")] == [local(2030, 1, 15, 18, 0)]


def test_bad_force_at_field_is_named():
    problems = Nightly("n", ["a"], force_at_hour=25).config_problems()
    assert len(problems) == 1 and "bad force_at_hour=25" in problems[0]
