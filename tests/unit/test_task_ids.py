"""Task ids (master/tasks/ids.py): Swarming's scheme, from an injected clock and random source."""

import pytest
from twisted.internet.task import Clock

from buildfarm.master.tasks import ids


def _clock(seconds: float) -> Clock:
    clock = Clock()
    clock.advance(seconds)
    return clock


def test_a_request_id_holds_the_milliseconds_since_2010_the_random_bits_and_the_version():
    request_id = ids.new_request_id(_clock(ids.EPOCH_S + 1.5), lambda bits: 0xABCD)
    assert request_id == (1500 << 20) | (0xABCD << 4) | 1
    assert ids.created_at(request_id) == ids.EPOCH_S + 1.5


def test_the_summary_id_ends_in_0_and_a_run_id_in_its_try_number():
    request_id = ids.new_request_id(_clock(1_796_000_000.25), lambda bits: 0x1234)
    summary = ids.summary_id(request_id)
    assert summary == f"{request_id:x}0" and summary.endswith("0")
    assert ids.run_id(request_id, 1) == summary[:-1] + "1"
    assert ids.run_id(request_id, 2) == summary[:-1] + "2"
    assert len(summary) == 16  # in 2026, as Swarming's ids of the time


def test_summary_and_run_ids_convert_both_ways():
    request_id = ids.new_request_id(_clock(1_796_000_000), lambda bits: 7)
    run = ids.run_id(request_id, 2)
    assert ids.parse_task_id(run) == (request_id, 2)
    assert ids.to_summary_id(run) == ids.summary_id(request_id)
    assert ids.to_run_id(ids.summary_id(request_id), 1) == ids.run_id(request_id, 1)
    assert ids.parse_task_id(ids.summary_id(request_id)) == (request_id, 0)


def test_ids_from_the_same_millisecond_differ_by_their_random_bits():
    clock = _clock(1_796_000_000)
    randoms = iter([1, 2])
    first, second = (ids.new_request_id(clock, lambda bits: next(randoms)) for _ in range(2))
    assert first != second and ids.created_at(first) == ids.created_at(second)


def test_ids_sort_by_creation_time():
    early = ids.new_request_id(_clock(1_796_000_000), lambda bits: 0xFFFF)
    late = ids.new_request_id(_clock(1_796_000_000.001), lambda bits: 0)
    assert early < late


@pytest.mark.parametrize("bad", ["", "0", "ABC10", "12g0", " 10", "1" * 18, "x", "120"])
def test_a_bad_task_id_is_refused_with_the_reason(bad):
    with pytest.raises(ids.BadTaskId):
        ids.parse_task_id(bad)


def test_a_try_number_outside_1_to_15_is_refused():
    with pytest.raises(ValueError, match="try number"):
        ids.run_id(0x11, 0)
    with pytest.raises(ValueError, match="try number"):
        ids.run_id(0x11, 16)


def test_a_clock_before_2010_is_refused():
    with pytest.raises(ValueError, match="outside"):
        ids.new_request_id(_clock(1000), lambda bits: 0)
