"""What a workload module declares: the rows of the table it fills, each with how to compare
the two systems' figures and the issue's target."""

import os
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks import profiling
from benchmarks.stats import median, ratio


@dataclass(frozen=True)
class Row:
    """One measured figure of a workload.

    ``target`` decides from (ours, theirs) whether the issue's target is met; None when the
    row is reported for information only."""

    key: str
    measure: str
    higher_is_better: bool
    reference: str = ""
    target_text: str = ""
    target: Callable[[float, float], bool] | None = None
    digits: int = 1
    is_count: bool = False  # a count of events (failures, stuck logins): no ratio shown

    def ratio(self, ours: float, theirs: float) -> float:
        return float("nan") if self.is_count else ratio(ours, theirs, self.higher_is_better)


def at_least_times(factor: float) -> Callable[[float, float], bool]:
    """Target: ours at least ``factor`` times better than Buildbot's."""
    def met(ours: float, theirs: float) -> bool:
        return ratio(ours, theirs, True) >= factor
    return met


def at_most_fraction(fraction: float) -> Callable[[float, float], bool]:
    """Target: ours at most ``fraction`` of Buildbot's (for costs: time, memory)."""
    def met(ours: float, theirs: float) -> bool:
        return ours <= theirs * fraction
    return met


def below(limit: float) -> Callable[[float, float], bool]:
    """Target: ours below an absolute ``limit``, whatever Buildbot's."""
    return lambda ours, theirs: ours < limit


def at_most(limit: float) -> Callable[[float, float], bool]:
    """Target: ours at most an absolute ``limit``, whatever Buildbot's."""
    return lambda ours, theirs: ours <= limit


def at_least(limit: float) -> Callable[[float, float], bool]:
    """Target: ours at least an absolute ``limit``, whatever Buildbot's."""
    return lambda ours, theirs: ours >= limit


def medians(results: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the runs (each run's figures are printed, for the record)."""
    for index, run in enumerate(results, 1):
        print(f"  run {index}: " + ", ".join(f"{k}={v:.4g}" for k, v in run.items()), flush=True)
    return {key: median([r[key] for r in results]) for key in results[0]}


def profile_our_master(system, profile_dir: str | None, name: str, action: Callable[[], object]) -> None:
    """Run ``action`` once more (not measured) while py-spy records our master, when asked
    for profiles and ``system`` is buildfarm; print the profile's summary."""
    if not profile_dir or system.label != "buildfarm":
        return
    raw = os.path.join(profile_dir, f"{name}-buildfarm-master.txt")
    with profiling.recording(system.master_pid, raw):
        action()
    print(profiling.write_summary(raw, raw.replace(".txt", "-summary.txt")), flush=True)
