"""How the pages show times, durations and results (jinja2 filters)."""

import time

from buildfarm.common.results import result_name

MINUTE_S = 60
HOUR_S = 3600
DAY_S = 86400


def timestamp(epoch: float | None) -> str:
    """``2026-11-27 17:08:31Z`` (UTC), or an empty string."""
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(epoch))


def duration(seconds: float | None) -> str:
    """``4s``, ``3m 4s``, ``2h 5m``, ``3d 4h``; an empty string for None."""
    if seconds is None:
        return ""
    seconds = max(0, int(seconds))
    if seconds < MINUTE_S:
        return f"{seconds}s"
    if seconds < HOUR_S:
        return f"{seconds // MINUTE_S}m {seconds % MINUTE_S}s"
    if seconds < DAY_S:
        return f"{seconds // HOUR_S}h {seconds % HOUR_S // MINUTE_S}m"
    return f"{seconds // DAY_S}d {seconds % DAY_S // HOUR_S}h"


def result_class(results: int | None, complete: bool = True) -> str:
    """The CSS class of a result: ``result-success`` ... or ``result-running``."""
    if not complete or results is None:
        return "result-running"
    return f"result-{result_name(results)}"


def result_label(results: int | None, complete: bool = True) -> str:
    if not complete or results is None:
        return "running"
    return result_name(results)


FILTERS = {"timestamp": timestamp, "duration": duration, "result_class": result_class,
           "result_label": result_label}
