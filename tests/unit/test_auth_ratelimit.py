"""``LoginLimiter``: failed logins per user and per source, on an injected clock."""

import pytest
from twisted.internet import task

from buildfarm.master.auth.ratelimit import Limited, LoginLimiter


@pytest.fixture
def clock():
    return task.Clock()


def fail(limiter: LoginLimiter, user: str | None, source: str, times: int = 1) -> None:
    for _ in range(times):
        limiter.begin(user, source)  # charged; no success follows


def test_a_user_gets_its_limit_of_failures_then_waits_for_one_to_drain(clock):
    limiter = LoginLimiter(clock, per_user=10, per_source=1000, window_s=60)
    for number in range(10):
        fail(limiter, "oncall", f"10.0.0.{number}")  # ten sources: the user's own limit
    with pytest.raises(Limited) as limited:
        limiter.begin("oncall", "10.0.1.1")
    assert limited.value.retry_after == 6 and "for 'oncall'" in str(limited.value)
    clock.advance(5)
    with pytest.raises(Limited) as limited:
        limiter.begin("oncall", "10.0.1.1")
    assert limited.value.retry_after == 1
    clock.advance(1)
    limiter.begin("oncall", "10.0.1.1")  # one failure drained: one more try


def test_a_source_gets_its_limit_of_failures_whatever_the_names(clock):
    limiter = LoginLimiter(clock, per_user=10, per_source=50, window_s=60)
    for number in range(50):
        fail(limiter, f"user{number}", "10.6.6.6")
    with pytest.raises(Limited) as limited:
        limiter.begin("someone-else", "10.6.6.6")
    assert "from 10.6.6.6" in str(limited.value) and limited.value.retry_after == 2
    limiter.begin("someone-else", "10.0.0.1")  # another source is not held back


def test_a_refused_attempt_is_not_charged_so_waiting_is_enough(clock):
    limiter = LoginLimiter(clock, per_user=3, per_source=100, window_s=30)
    fail(limiter, "a", "s", 3)
    for _ in range(100):
        with pytest.raises(Limited):
            limiter.begin("a", "s")
    clock.advance(10)
    limiter.begin("a", "s")


def test_success_takes_back_its_charge_and_empties_the_users_bucket(clock):
    limiter = LoginLimiter(clock, per_user=3, per_source=3, window_s=60)
    fail(limiter, "a", "s1", 2)
    for _ in range(20):  # only failures count: many right logins never add up
        limiter.begin("a", "s1")
        limiter.succeeded("a", "s1")
    fail(limiter, "a", "s2", 2)
    limiter.begin("a", "s2")
    limiter.succeeded("a", "s2")
    assert limiter.users.level("a", clock.seconds()) == 0
    fail(limiter, "a", "s3", 3)
    with pytest.raises(Limited):
        limiter.begin("a", "s4")


def test_a_user_is_not_limited_from_a_source_it_logged_in_from(clock):
    limiter = LoginLimiter(clock, per_user=3, per_source=50, window_s=60)
    limiter.begin("bs1", "10.0.0.5")
    limiter.succeeded("bs1", "10.0.0.5")
    fail(limiter, "bs1", "10.6.6.6", 3)  # someone guesses bs1's password elsewhere
    with pytest.raises(Limited):
        limiter.begin("bs1", "10.6.6.7")
    limiter.begin("bs1", "10.0.0.5")  # the slave itself reconnects
    limiter.succeeded("bs1", "10.0.0.5")


def test_bearer_tokens_count_against_their_source_only(clock):
    limiter = LoginLimiter(clock, per_user=1, per_source=2, window_s=60)
    fail(limiter, None, "s", 2)
    with pytest.raises(Limited):
        limiter.begin(None, "s")
    assert len(limiter.users) == 0


def test_memory_is_bounded_whatever_the_names_and_sources(clock):
    limiter = LoginLimiter(clock, per_user=5, per_source=5, window_s=60, max_keys=100, max_known_pairs=10)
    for number in range(10_000):
        fail(limiter, f"name{number}", f"10.{number // 256 % 256}.{number % 256}.1")
        limiter.succeeded(f"known{number}", f"src{number}")
    assert len(limiter.users) == 100 and len(limiter.sources) == 100
    assert len(limiter._known) == 10
