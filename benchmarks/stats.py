"""Pure helpers for the figures: medians, percentiles, ratios.  No I/O, so they are tested
in memory (tests/unit/test_benchmarks_smoke.py)."""

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (NaN when there are none, so a table still prints)."""
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0..100) of ``values``, linearly interpolated between the two
    nearest ranks (numpy's default, "linear")."""
    if not values:
        return float("nan")
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} is not within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(ours: float, theirs: float, higher_is_better: bool) -> float:
    """How many times better ours is: ours/theirs for rates, theirs/ours for costs."""
    numerator, denominator = (ours, theirs) if higher_is_better else (theirs, ours)
    if denominator == 0 or denominator != denominator:  # zero or NaN
        return float("nan")
    return numerator / denominator
