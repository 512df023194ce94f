"""W8's pure parts (benchmarks/w8_multimaster.py): how the fleet and the requests are spread
over the masters, the config lines it adds, and how a run's figures become the table's row.
Nothing here is timed or started."""

import math

import pytest

from benchmarks import run, w8_multimaster
from benchmarks.systems import OUR_PREAMBLE, render_config
from benchmarks.w8_multimaster import (
    BUILDER,
    MASTER_COUNTS,
    SLAVES,
    flatten,
    multimaster_config,
    rotation,
    rows,
    split_slaves,
    spread,
)


def test_every_configuration_runs_the_same_fleet_split_evenly():
    for n in MASTER_COUNTS:
        shares = split_slaves(SLAVES, n)
        assert len(shares) == n
        assert sorted(sum(shares, [])) == sorted(SLAVES)
        assert {len(share) for share in shares} == {len(SLAVES) // n}


def test_a_fleet_that_does_not_split_evenly_is_refused():
    with pytest.raises(ValueError, match="do not split evenly"):
        split_slaves(["s1", "s2", "s3", "s4"], 3)


def test_requests_go_round_robin_over_the_masters():
    assert spread(7, 3) == [0, 1, 2, 0, 1, 2, 0]
    assert spread(3, 1) == [0, 0, 0]


def test_each_run_measures_the_configurations_in_a_rotated_order():
    assert [rotation(MASTER_COUNTS, run) for run in range(4)] == [[1, 2, 3], [2, 3, 1], [3, 1, 2], [1, 2, 3]]


def test_the_masters_share_one_database_with_multi_master_on():
    url = "postgresql+psycopg://u@127.0.0.1:5432/db1"
    cfg = render_config(OUR_PREAMBLE, SLAVES, [BUILDER], 1, 2) + multimaster_config(url)
    namespace: dict = {}
    exec(compile(cfg.replace("from buildfarm.master.plugins import schedulers, steps, util, worker\n", ""),
                 "master.cfg", "exec"),
         {"worker": _Anything(), "util": _Anything(), "steps": _Anything(), "schedulers": _Anything()},
         namespace)
    config = namespace["c"]
    assert config["db"] == {"db_url": url}  # after W1's SQLite line: the shared database wins
    assert config["multiMaster"] is True
    assert config["collapseRequests"] is False  # every request its own build, as W1


def test_a_run_becomes_one_row_with_the_ratios_to_one_master():
    figures = {n: {"builds_per_s": bps, "master_cpu_s": cpu, "postgres_cpu_s": pg, "unsuccessful": bad,
                   "load_1min": load}
               for n, bps, cpu, pg, bad, load in ((1, 40.0, 3.0, 1.0, 0, 1.5), (2, 36.0, 3.5, 1.2, 1, 2.5),
                                                   (3, 30.0, 4.0, 1.5, 0, 2.0))}
    flat = flatten(figures)
    assert flat["builds_per_s_3"] == 30.0
    assert flat["ratio_2"] == pytest.approx(0.9)
    assert flat["ratio_3"] == pytest.approx(0.75)
    assert flat["unsuccessful"] == 1
    assert flat["load_1min"] == 2.5
    counted_over_all_runs = {f"transactions_per_build_{n}" for n in MASTER_COUNTS}
    assert {row.key for row in rows(False)} == set(flat) | counted_over_all_runs


def test_the_ratio_row_holds_the_issue_target_and_buildbot_shows_no_figure():
    [ratio_row] = [row for row in rows(False) if row.key == "ratio_3"]
    assert ratio_row.target(0.8, math.nan) and not ratio_row.target(0.79, math.nan)
    assert run.WORKLOADS["W8"] is w8_multimaster
    figures = w8_multimaster.measure(run.SYSTEMS[1], "/nonexistent", 1, True)  # Buildbot: nothing started
    assert all(math.isnan(v) for v in figures.values())
    lines = run.table_rows(w8_multimaster, rows(True), {**figures, "ratio_3": 0.85}, run.NOT_RUN)
    assert [line[-1] for line in lines if "3 masters" in line[1]] == ["yes"]


class _Anything:
    """Stands for the plugin modules: any attribute, any call."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        return self
