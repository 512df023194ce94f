"""The benchmark harness's pure helpers: percentiles, ratios, targets, profile summaries and
the master.cfg both systems get.  Nothing here is timed."""

import math

import pytest

from benchmarks.profiling import frame_name, summarise
from benchmarks.stats import median, percentile, ratio
from benchmarks.systems import OUR_PREAMBLE, STOCK_PREAMBLE, Builder, Shell, Upload, render_config
from benchmarks.workload import Row, at_least_times, at_most_fraction, below


def test_percentile_interpolates_between_ranks():
    assert percentile([10, 20, 30, 40], 50) == 25
    assert percentile([10, 20, 30, 40], 0) == 10
    assert percentile([10, 20, 30, 40], 100) == 40
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.5], 95) == 7.5


def test_percentile_rejects_out_of_range():
    with pytest.raises(ValueError):
        percentile([1, 2], 101)


def test_empty_figures_are_nan_not_errors():
    assert math.isnan(median([]))
    assert math.isnan(percentile([], 50))


def test_ratio_says_how_many_times_better_ours_is():
    assert ratio(20, 4, higher_is_better=True) == 5
    assert ratio(60, 300, higher_is_better=False) == 5
    assert math.isnan(ratio(1, 0, higher_is_better=True))


def test_targets_compare_ours_with_buildbot_or_a_limit():
    assert at_least_times(5)(21.5, 4.3)
    assert not at_least_times(5)(21.4, 4.3)
    assert at_most_fraction(1 / 5)(60, 301)
    assert not at_most_fraction(1 / 5)(61, 301)
    assert below(20)(19.9, 53) and not below(20)(20, 53)
    assert Row("k", "m", higher_is_better=False).ratio(10, 45) == 4.5


def test_profile_summary_counts_busy_self_samples_and_our_total_samples_per_function():
    stacks = [
        "run (twisted/internet/base.py:1300);dataReceived (twisted/spread/banana.py:180) 30\n",
        "run (twisted/internet/base.py:1301);append (/work/main/master/db/logs.py:190);"
        "loads (json/decoder.py:10) 10\n",
        "not a stack line\n",
        "run (twisted/internet/base.py:1300);EPollReactor.doPoll (twisted/internet/epollreactor.py:5) 99\n",
    ]
    samples, by_self, by_total = summarise(stacks, top=2)
    assert samples == 40
    assert by_self == [("dataReceived (twisted/spread/banana.py)", 30), ("loads (json/decoder.py)", 10)]
    assert by_total == [("append (master/db/logs.py)", 10)]  # only buildfarm's own functions


def test_frame_names_drop_line_numbers_and_site_packages():
    assert (frame_name("write (/x/.venv/lib/python3.11/site-packages/twisted/spread/pb.py:77)")
            == "write (twisted/spread/pb.py)")


@pytest.mark.parametrize("preamble, import_line", [
    (OUR_PREAMBLE, "from buildfarm.master.plugins import"),
    (STOCK_PREAMBLE, "from buildbot.plugins import"),
])
def test_both_systems_get_the_same_config_body(preamble, import_line):
    builders = [Builder("b", ["s1"], [Shell(["true"]), Upload("a.bin", "/tmp/a.bin")])]
    text = render_config(preamble, ["s1"], builders, 1234, 5678)
    assert text.startswith(import_line)
    assert "c['collapseRequests'] = False" in text
    assert "steps.ShellCommand(command=['true'], logEnviron=False)" in text
    assert "1234" in text and "5678" in text
    compile(text, "master.cfg", "exec")


def test_a_config_without_builders_has_no_scheduler():
    text = render_config(OUR_PREAMBLE, ["s0", "s1"], [], 1, 2)
    assert "c['schedulers'] = []" in text
