"""common/deadline.py: the one deadline helper (PB remote calls and the SlaveAPI's channels)."""

import pytest
import pytest_twisted
from twisted.internet import defer, task

from buildfarm.common.deadline import with_deadline
from buildfarm.master.pb.deadline import DeadlineExceeded, call_with_deadline


class Late(Exception):
    pass


def failure_of(d: defer.Deferred):
    failures = []
    d.addErrback(failures.append)
    return failures[0].value if failures else None


def test_work_that_ends_in_time_gives_its_result_and_leaves_no_timer():
    clock = task.Clock()
    work = defer.Deferred()
    d = with_deadline(work, 5.0, clock, lambda: Late("late"))
    work.callback("done")
    assert d.result == "done" and clock.getDelayedCalls() == []


def test_work_past_its_deadline_is_cancelled_and_fails_with_the_named_error():
    clock = task.Clock()
    cancelled = []
    work = defer.Deferred(canceller=cancelled.append)
    d = with_deadline(work, 5.0, clock, lambda: Late("no answer within 5 s"))
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.2)
    error = failure_of(d)
    assert isinstance(error, Late) and str(error) == "no answer within 5 s" and cancelled == [work]


def test_a_coroutine_is_bounded_too_and_other_errors_pass_through():
    clock = task.Clock()

    async def fails():
        raise ValueError("bad")

    assert isinstance(failure_of(with_deadline(fails(), 5.0, clock, lambda: Late())), ValueError)


class SilentRemote:
    def callRemote(self, method, *args):  # noqa: N802 - PB's naming
        return defer.Deferred()


@pytest_twisted.ensureDeferred
async def test_a_pb_call_past_its_deadline_raises_deadline_exceeded():
    clock = task.Clock()
    call = defer.ensureDeferred(call_with_deadline(clock, 3.0, SilentRemote(), "print", "ping"))
    clock.advance(3.0)
    with pytest.raises(DeadlineExceeded, match="print got no answer within 3 s"):
        await call

