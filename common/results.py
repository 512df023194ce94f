"""Build and step results, with Buildbot's integer codes and names."""

SUCCESS = 0
WARNINGS = 1
FAILURE = 2
SKIPPED = 3
EXCEPTION = 4
RETRY = 5
CANCELLED = 6

RESULT_NAMES = ("success", "warnings", "failure", "skipped", "exception", "retry", "cancelled")

# How bad each result is, for combining step results into a build result: the worse wins.
_SEVERITY = {
    SKIPPED: 0,
    SUCCESS: 1,
    WARNINGS: 2,
    FAILURE: 3,
    EXCEPTION: 4,
    RETRY: 5,
    CANCELLED: 6,
}


def result_name(results: int | None) -> str | None:
    """The lower-case name of a result code, or None for an unfinished result."""
    if results is None:
        return None
    return RESULT_NAMES[results]


def worst_result(first: int, second: int) -> int:
    """The more severe of two results (SKIPPED counts as better than SUCCESS)."""
    return first if _SEVERITY[first] >= _SEVERITY[second] else second
