"""Periodic and Nightly against a task.Clock and the in-memory database double."""

import datetime

import pytest
from zope.interface.verify import verifyObject

from buildfarm.master.schedulers.base import IScheduler
from buildfarm.master.schedulers.testing import FakeMaster, result_of, started_manager
from buildfarm.master.schedulers.timed import Nightly, Periodic

HOUR_S = 3600
DAY_S = 24 * HOUR_S


def local(*args) -> float:
    """Epoch seconds of a local date and time (Nightly works in the master's time zone)."""
    return datetime.datetime(*args).timestamp()


def pass_time(master, seconds: float, step: float = 60) -> None:
    """Let ``seconds`` pass in steps, so each timer fires at its own time."""
    while seconds > 0:
        master.reactor.advance(min(step, seconds))
        seconds -= step


def build_times(master, name) -> list[float]:
    return [b["submitted_at"] for b in master.buildsets(name)]


def test_schedulers_provide_the_interface():
    verifyObject(IScheduler, Periodic("p", ["a"], periodicBuildTimer=10))
    verifyObject(IScheduler, Nightly("n", ["a"]))


def test_periodic_builds_at_once_then_every_period():
    master = FakeMaster()
    start = master.reactor.seconds()
    started_manager(master, Periodic("every10", ["a", "b"], periodicBuildTimer=10))
    master.reactor.advance(0)
    pass_time(master, 35, step=1)
    assert build_times(master, "every10") == [start, start + 10, start + 20, start + 30]
    buildset = master.buildsets("every10")[0]
    assert len(buildset["buildrequestids"]) == 2
    assert buildset["properties"]["scheduler"] == "every10"
    assert "Periodic" in buildset["reason"]


def test_periodic_after_a_restart_continues_from_its_last_build():
    master = FakeMaster()
    start = master.reactor.seconds()
    manager = started_manager(master, Periodic("p", ["a"], periodicBuildTimer=100))
    master.reactor.advance(0)
    master.reactor.advance(30)
    result_of(manager.stop())
    master.reactor.advance(30)  # down for 30 s: the next build is still due at start + 100
    result_of(manager.reconfigService(master.config))
    assert build_times(master, "p") == [start]
    master.reactor.advance(39)
    assert build_times(master, "p") == [start]
    master.reactor.advance(1)
    assert build_times(master, "p") == [start, start + 100]


def test_periodic_that_missed_builds_while_down_builds_once_at_start():
    master = FakeMaster()
    start = master.reactor.seconds()
    manager = started_manager(master, Periodic("p", ["a"], periodicBuildTimer=10))
    master.reactor.advance(0)
    result_of(manager.stop())
    master.reactor.advance(95)
    result_of(manager.reconfigService(master.config))
    master.reactor.advance(0)
    assert build_times(master, "p") == [start, start + 95]
    pass_time(master, 10, step=1)
    assert build_times(master, "p") == [start, start + 95, start + 105]


def test_periodic_config_problems():
    assert Periodic("p", ["a"], periodicBuildTimer=5).config_problems() == []
    for bad in (None, 0, -1, "10", True):
        problems = Periodic("p", ["a"], periodicBuildTimer=bad).config_problems()
        assert any("periodicBuildTimer" in p for p in problems), bad


def test_nightly_builds_at_cron_times_across_a_day_boundary():
    master = FakeMaster(start_time=local(2030, 1, 15, 21, 0))
    started_manager(master, Nightly("nightly", ["a"], hour=[3, 23], minute=30))
    pass_time(master, 30 * HOUR_S)
    assert build_times(master, "nightly") == [
        local(2030, 1, 15, 23, 30), local(2030, 1, 16, 3, 30), local(2030, 1, 16, 23, 30),
    ]


def test_nightly_day_of_week_counts_from_monday_zero():
    # 2030-01-14 is a Monday.
    master = FakeMaster(start_time=local(2030, 1, 14, 12, 0))
    started_manager(master, Nightly("weekly", ["a"], dayOfWeek=2, hour=1, minute=0))
    pass_time(master, 7 * DAY_S)
    assert build_times(master, "weekly") == [local(2030, 1, 16, 1, 0)]  # Wednesday


def test_nightly_missed_while_down_builds_once_at_start_then_on_schedule():
    master = FakeMaster(start_time=local(2030, 1, 15, 2, 0))
    manager = started_manager(master, Nightly("n", ["a"], hour=3, minute=0))
    pass_time(master, HOUR_S)
    assert build_times(master, "n") == [local(2030, 1, 15, 3, 0)]
    result_of(manager.stop())
    master.reactor.advance(2 * DAY_S + HOUR_S)  # down across two 03:00s
    result_of(manager.reconfigService(master.config))
    master.reactor.advance(0)
    assert build_times(master, "n") == [local(2030, 1, 15, 3, 0), local(2030, 1, 17, 4, 0)]
    pass_time(master, DAY_S)
    assert build_times(master, "n")[-1] == local(2030, 1, 18, 3, 0)
    assert len(build_times(master, "n")) == 3


def test_nightly_only_if_changed_skips_a_quiet_night():
    master = FakeMaster(start_time=local(2030, 1, 15, 12, 0))
    manager = started_manager(master, Nightly("n", ["a"], hour=3, onlyIfChanged=True, branch="main"))
    pass_time(master, DAY_S)
    assert build_times(master, "n") == [local(2030, 1, 16, 3, 0)]  # the first time: a baseline
    result_of(manager.add_change(author="ann", files=["x.c"], branch="other", revision="r0"))
    pass_time(master, DAY_S)
    assert len(build_times(master, "n")) == 1
    result_of(manager.add_change(author="ann", files=["x.c"], branch="main", revision="r1"))
    pass_time(master, DAY_S)
    assert build_times(master, "n")[1:] == [local(2030, 1, 18, 3, 0)]
    assert master.buildsets("n")[1]["properties"]["revision"] == "r1"


@pytest.mark.parametrize("field, value", [
    ("minute", 60), ("hour", 24), ("dayOfMonth", 0), ("month", 13), ("dayOfWeek", "funday"),
    ("minute", "every"), ("hour", [1, "x"]), ("minute", True),
])
def test_nightly_bad_cron_field_is_named(field, value):
    problems = Nightly("n", ["a"], **{field: value}).config_problems()
    assert len(problems) == 1
    assert f"bad {field}=" in problems[0]


def test_nightly_accepts_crontab_fields():
    assert Nightly("n", ["a"], minute="*/15", hour="1-5", dayOfWeek=[0, 6]).config_problems() == []
    assert Nightly("n", ["a"], minute="*/15", dayOfWeek=[0, 6]).cron_line() == "*/15 * * * 1,0"
