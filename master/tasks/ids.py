"""Task ids, as Swarming made them.

A request id is a 63-bit integer: the milliseconds since 2010-01-01 UTC (43 bits), 16 random
bits and a 4-bit version.  Written in hex, the request id followed by one more hex digit names
either the task (``0``: the summary id) or one try of it (its try number: the run id), so one
id says "the task" and another "that attempt on that slave".
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

EPOCH_S = 1262304000  # 2010-01-01T00:00:00Z
TIME_BITS = 43
RANDOM_BITS = 16
VERSION_BITS = 4
ID_VERSION = 1
MAX_TRY_NUMBER = 15  # one hex digit
_HEX_ID = re.compile(r"[0-9a-f]{2,17}")


class BadTaskId(ValueError):
    """A string that is not a task id; the message says why."""


def new_request_id(clock: IReactorTime, random_bits: Callable[[int], int]) -> int:
    """A new request id from ``clock.seconds()`` and ``random_bits(16)`` (e.g.
    ``random.SystemRandom().getrandbits``)."""
    ms = int(clock.seconds() * 1000) - EPOCH_S * 1000
    if not 0 <= ms < 1 << TIME_BITS:
        raise ValueError(f"the clock ({clock.seconds()} s) is outside the task id range")
    suffix = random_bits(RANDOM_BITS) & ((1 << RANDOM_BITS) - 1)
    return (ms << (RANDOM_BITS + VERSION_BITS)) | (suffix << VERSION_BITS) | ID_VERSION


def created_at(request_id: int) -> float:
    """The epoch seconds (to the millisecond) encoded in ``request_id``."""
    return (request_id >> (RANDOM_BITS + VERSION_BITS)) / 1000 + EPOCH_S


def summary_id(request_id: int) -> str:
    """The task's id: the request id in hex, then ``0``."""
    return f"{request_id:x}0"


def run_id(request_id: int, try_number: int) -> str:
    """The id of try ``try_number`` (1 ..) of the task: the request id in hex, then the try."""
    if not 1 <= try_number <= MAX_TRY_NUMBER:
        raise ValueError(f"try number must be 1..{MAX_TRY_NUMBER}, not {try_number}")
    return f"{request_id:x}{try_number:x}"


def parse_task_id(task_id: str) -> tuple[int, int]:
    """``(request_id, try_number)`` of a summary id (try 0) or a run id; BadTaskId if it is not one."""
    if not isinstance(task_id, str) or not _HEX_ID.fullmatch(task_id):
        raise BadTaskId(f"task id must be 2 to 17 lower-case hex digits [0-9a-f], not {task_id!r}")
    request_id, try_number = int(task_id[:-1], 16), int(task_id[-1], 16)
    if request_id & ((1 << VERSION_BITS) - 1) != ID_VERSION:
        raise BadTaskId(f"task id {task_id!r} is not of version {ID_VERSION}")
    if request_id >> 63:
        raise BadTaskId(f"task id {task_id!r} is out of range")
    return request_id, try_number


def to_summary_id(task_id: str) -> str:
    """The summary id of a summary or run id."""
    return summary_id(parse_task_id(task_id)[0])


def to_run_id(task_id: str, try_number: int) -> str:
    """The id of try ``try_number`` of the task named by a summary or run id."""
    return run_id(parse_task_id(task_id)[0], try_number)
