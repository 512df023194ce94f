"""ChangeFilter, SingleBranchScheduler and AnyBranchScheduler on a task.Clock."""

import re

from buildfarm.master.changes.change import Change
from buildfarm.master.changes.filter import ChangeFilter
from buildfarm.master.schedulers.basic import AnyBranchScheduler, SingleBranchScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager


def change(**fields) -> Change:
    return Change.from_dict({"changeid": 1, "author": "ann", **fields})


def add_change(manager, **fields) -> int:
    fields.setdefault("author", "ann")
    fields.setdefault("files", ["src/main.c"])
    return result_of(manager.add_change(**fields))


# -- ChangeFilter ---------------------------------------------------------------------------

def test_change_filter_values_lists_regexes_and_functions():
    assert ChangeFilter(branch="main").filter_change(change(branch="main"))
    assert not ChangeFilter(branch="main").filter_change(change(branch="dev"))
    assert ChangeFilter(branch=["main", "dev"]).filter_change(change(branch="dev"))
    assert ChangeFilter(branch_re="release/").filter_change(change(branch="release/2.0"))
    assert not ChangeFilter(branch_re="release/").filter_change(change(branch="old-release/2.0"))
    assert not ChangeFilter(branch_re="release/").filter_change(change(branch=None))
    assert ChangeFilter(project_fn=lambda p: p.startswith("lib")).filter_change(change(project="libfoo"))
    assert not ChangeFilter(category="docs").filter_change(change(category="code"))
    assert ChangeFilter(filter_fn=lambda c: "x.c" in c.files).filter_change(change(files=["x.c"]))


def test_change_filter_checks_combine_with_and():
    both = ChangeFilter(branch="main", repository="git://a")
    assert both.filter_change(change(branch="main", repository="git://a"))
    assert not both.filter_change(change(branch="main", repository="git://b"))


def test_change_filter_branch_none_means_the_default_branch_and_omitted_means_any():
    assert ChangeFilter(branch=None).filter_change(change(branch=None))
    assert not ChangeFilter(branch=None).filter_change(change(branch="main"))
    assert ChangeFilter().filter_change(change(branch="anything"))


def test_change_filter_config_problems():
    assert ChangeFilter(branch_re="(").config_problems()[0].startswith("ChangeFilter branch_re='('")
    assert "must be callable" in ChangeFilter(project_fn="nope").config_problems()[0]
    assert "unknown argument 'brnch'" in ChangeFilter(brnch="x").config_problems()[0]


def test_change_filters_with_the_same_arguments_are_equal():
    assert ChangeFilter(branch="main", branch_re=re.compile("m")) == \
        ChangeFilter(branch="main", branch_re="m")
    assert ChangeFilter(filter_fn=lambda c: c.branch == "a") == \
        ChangeFilter(filter_fn=lambda c: c.branch == "a")
    assert ChangeFilter(branch="main") != ChangeFilter(branch="dev")


# -- SingleBranchScheduler ------------------------------------------------------------------

def test_without_tree_stable_timer_each_important_change_builds_at_once():
    master = FakeMaster()
    manager = started_manager(master, SingleBranchScheduler(
        "sbs", ["a"], branch="main", fileIsImportant=lambda c: any(f.endswith(".c") for f in c.files)))
    add_change(manager, branch="main", revision="r1", repository="git://r", project="p")
    add_change(manager, branch="main", revision="r2", files=["README"])
    add_change(manager, branch="dev", revision="r3")
    buildsets = master.buildsets("sbs")
    assert len(buildsets) == 1
    assert buildsets[0]["properties"] == {
        "branch": "main", "revision": "r1", "repository": "git://r", "project": "p", "codebase": "",
        "changeids": [1], "scheduler": "sbs",
    }
    assert master.botmaster.wakeups == 1


def test_tree_stable_timer_restarts_on_each_change_and_builds_once_for_the_burst():
    master = FakeMaster()
    manager = started_manager(master, SingleBranchScheduler("sbs", ["a"], branch="main", treeStableTimer=60))
    for revision in ("r1", "r2", "r3"):
        add_change(manager, branch="main", revision=revision, properties={"by": revision})
        master.reactor.advance(59)
    assert master.buildsets("sbs") == []
    master.reactor.advance(1)
    buildsets = master.buildsets("sbs")
    assert len(buildsets) == 1
    assert buildsets[0]["properties"]["revision"] == "r3"
    assert buildsets[0]["properties"]["by"] == "r3"
    assert buildsets[0]["properties"]["changeids"] == [1, 2, 3]
    master.reactor.advance(600)
    assert len(master.buildsets("sbs")) == 1


def test_unimportant_changes_alone_never_build_but_ride_along_with_an_important_one():
    master = FakeMaster()
    manager = started_manager(master, SingleBranchScheduler(
        "sbs", ["a"], branch="main", treeStableTimer=10, fileIsImportant=lambda c: "docs" not in c.files))
    add_change(manager, branch="main", revision="r1", files=["docs"])
    master.reactor.advance(100)
    assert master.buildsets("sbs") == []
    add_change(manager, branch="main", revision="r2")
    master.reactor.advance(5)
    add_change(manager, branch="main", revision="r3", files=["docs"])  # restarts the running timer
    master.reactor.advance(9)
    assert master.buildsets("sbs") == []
    master.reactor.advance(1)
    assert [b["properties"]["changeids"] for b in master.buildsets("sbs")] == [[1, 2, 3]]


def test_pending_changes_survive_a_restart_and_their_timer_starts_again():
    master = FakeMaster()
    manager = started_manager(master, SingleBranchScheduler("sbs", ["a"], branch="main", treeStableTimer=30))
    add_change(manager, branch="main", revision="r1")
    result_of(manager.stop())
    master.reactor.advance(100)
    assert master.buildsets("sbs") == []
    result_of(manager.reconfigService(master.config))
    master.reactor.advance(30)
    assert [b["properties"]["revision"] for b in master.buildsets("sbs")] == ["r1"]


def test_changes_stored_while_stopped_are_caught_up_once():
    master = FakeMaster()
    manager = started_manager(master, SingleBranchScheduler("sbs", ["a"], branch="main"))
    add_change(manager, branch="main", revision="r1")
    result_of(manager.stop())
    result_of(master.db.changes.add("bob", "", ["x.c"], 0.0, 0.0, branch="main", revision="r2"))
    result_of(manager.reconfigService(master.config))
    assert [b["properties"]["revision"] for b in master.buildsets("sbs")] == ["r1", "r2"]
    row = result_of(master.db.changes.get(2))
    result_of(manager.schedulers["sbs"].got_change(row))  # offered again: ignored
    assert len(master.buildsets("sbs")) == 2


def test_single_branch_scheduler_config_problems():
    assert SingleBranchScheduler("s", ["a"], branch="main").config_problems() == []
    assert SingleBranchScheduler("s", ["a"], branch=None).config_problems() == []
    assert "needs branch=" in SingleBranchScheduler("s", ["a"]).config_problems()[0]
    both = SingleBranchScheduler("s", ["a"], branch="x", change_filter=ChangeFilter(branch="y"))
    assert "not both" in both.config_problems()[0]
    assert "treeStableTimer" in SingleBranchScheduler("s", ["a"], branch="x", treeStableTimer=-1) \
        .config_problems()[0]
    assert "fileIsImportant" in SingleBranchScheduler("s", ["a"], branch="x", fileIsImportant=3) \
        .config_problems()[0]
    assert "change_filter must be" in SingleBranchScheduler("s", ["a"], change_filter="main") \
        .config_problems()[0]


# -- AnyBranchScheduler ---------------------------------------------------------------------

def test_any_branch_scheduler_keeps_one_timer_per_branch():
    master = FakeMaster()
    manager = started_manager(master, AnyBranchScheduler(
        "abs", ["a"], treeStableTimer=10, change_filter=ChangeFilter(branch_re="(main|dev)$")))
    add_change(manager, branch="main", revision="m1")
    master.reactor.advance(6)
    add_change(manager, branch="dev", revision="d1")
    add_change(manager, branch="feature", revision="f1")  # filtered out
    master.reactor.advance(4)
    assert [b["properties"]["revision"] for b in master.buildsets("abs")] == ["m1"]
    add_change(manager, branch="main", revision="m2")
    master.reactor.advance(6)
    assert [b["properties"]["revision"] for b in master.buildsets("abs")] == ["m1", "d1"]
    master.reactor.advance(4)
    buildsets = master.buildsets("abs")
    assert [(b["properties"]["branch"], b["properties"]["changeids"]) for b in buildsets] == [
        ("main", [1]), ("dev", [2]), ("main", [4])]


def test_any_branch_scheduler_refuses_a_branch_argument():
    assert "takes no branch" in AnyBranchScheduler("abs", ["a"], branch="main").config_problems()[0]
