"""Buildbot's ``buildbot.process.results`` for custom steps: the result codes, their names,
``statusToString``, ``worst_status`` and ``computeResultAndTermination``.

The codes are buildfarm's own (``buildfarm.common.results``), which are Buildbot's numbers.
"""

from buildfarm.common.results import (
    CANCELLED,
    EXCEPTION,
    FAILURE,
    RESULT_NAMES,
    RETRY,
    SKIPPED,
    SUCCESS,
    WARNINGS,
)

ALL_RESULTS = [SUCCESS, WARNINGS, FAILURE, SKIPPED, EXCEPTION, RETRY, CANCELLED]
Results = list(RESULT_NAMES)
MultipleResults = ["successes", "warnings", "failures", "skipped", "exceptions", "retries", "cancelled"]
# Best first: SKIPPED < SUCCESS < WARNINGS < FAILURE < EXCEPTION < RETRY < CANCELLED.
_WORST_FIRST = (CANCELLED, RETRY, EXCEPTION, FAILURE, WARNINGS, SUCCESS, SKIPPED)

__all__ = [
    "ALL_RESULTS", "CANCELLED", "EXCEPTION", "FAILURE", "MultipleResults", "RETRY", "Results",
    "ResultComputingConfigMixin", "SKIPPED", "SUCCESS", "WARNINGS", "computeResultAndTermination",
    "statusToString", "worst_status",
]


def statusToString(status: int | None, count: int = 1) -> str:  # noqa: N802 - Buildbot's name
    """The name of a result: "success", "failures" for a count above one, "not finished" for None."""
    if status is None:
        return "not finished"
    if not 0 <= status < len(Results):
        return "Invalid status"
    return MultipleResults[status] if count > 1 else Results[status]


def worst_status(a: int | None, b: int | None) -> int | None:
    """The worse of two results, as Buildbot orders them (CANCELLED is the worst)."""
    for status in _WORST_FIRST:
        if status in (a, b):
            return status
    return None


def computeResultAndTermination(obj, result: int, previousResult: int) -> tuple[int, bool]:  # noqa: N802, N803
    """The overall result after ``result`` of something with Buildbot's result options
    (``haltOnFailure``, ``flunkOnFailure``, ``warnOnFailure``, ``warnOnWarnings``,
    ``flunkOnWarnings``), and whether to stop here."""
    possible, terminate = result, False
    if result == FAILURE:
        if not obj.flunkOnFailure:
            possible = SUCCESS
        if obj.warnOnFailure:
            possible = WARNINGS
        if obj.flunkOnFailure:
            possible = FAILURE
        terminate = bool(obj.haltOnFailure)
    elif result == WARNINGS:
        possible = WARNINGS if obj.warnOnWarnings else SUCCESS
        if obj.flunkOnWarnings:
            possible = FAILURE
    elif result in (EXCEPTION, RETRY, CANCELLED):
        terminate = True
    return worst_status(previousResult, possible), terminate


class ResultComputingConfigMixin:
    """The result options, with Buildbot's defaults, of anything whose result counts."""

    haltOnFailure = False
    flunkOnWarnings = False
    flunkOnFailure = True
    warnOnWarnings = False
    warnOnFailure = False
    resultConfig = ["haltOnFailure", "flunkOnWarnings", "flunkOnFailure", "warnOnWarnings", "warnOnFailure"]
