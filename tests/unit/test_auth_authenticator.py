"""``Authenticator``: every password check costs one PBKDF2 run of the same iterations, off
the reactor thread; failed logins are limited per user and per source (``RateLimited``)."""

import base64
import hashlib
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, task

from buildfarm.master.auth import passwords
from buildfarm.master.auth.authenticator import Authenticator, RateLimited, Unauthenticated, work_iterations
from buildfarm.master.auth.passwords import DEFAULT_HASH_ITERATIONS, hash_password, verify_password_hash
from buildfarm.master.auth.ratelimit import LoginLimiter
from buildfarm.master.auth.users import User, validate_users

ITERATIONS = 1000  # the work of every check in these tests: small, but the same for all


def accounts():
    found, problems = validate_users([
        User("plain", password="p1ain", scopes=["slaveapi:read"]),
        User("hashed", password_hash=hash_password("h4shed", ITERATIONS), scopes=["slaveapi:read"]),
        User("tokens", tokens=["tok-1"], scopes=["slaveapi:read"]),
    ], None)
    assert problems == []
    return found


class CountingRunner:
    """``run_slowly`` that runs at once and records each call: the PBKDF2 runs are counted
    by what is asked of it, not by timing."""

    def __init__(self):
        self.calls = []

    def __call__(self, function, *args):
        self.calls.append((function, args))
        return defer.maybeDeferred(function, *args)

    def verifications(self) -> list[int]:
        """The iteration count of each password verification asked for."""
        return [int(args[1].split("$")[1]) for function, args in self.calls
                if function is verify_password_hash]


def basic(name: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{name}:{password}".encode())


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def runner():
    return CountingRunner()


@pytest.fixture
def authenticator(clock, runner):
    return Authenticator(accounts(), clock, run_slowly=runner)


@pytest.mark.parametrize("name", ["plain", "hashed", "tokens", "nobody"])
@pytest_twisted.ensureDeferred
async def test_a_wrong_password_costs_one_pbkdf2_run_of_the_same_iterations_whoever_the_user(
        authenticator, runner, name):
    with pytest.raises(Unauthenticated, match="wrong user name or password"):
        await authenticator.check_password(name, "guess", "10.0.0.1")
    assert runner.verifications() == [ITERATIONS]


@pytest.mark.parametrize("name, password", [("plain", "p1ain"), ("hashed", "h4shed")])
@pytest_twisted.ensureDeferred
async def test_a_right_password_costs_one_run_then_is_remembered(authenticator, runner, name, password):
    assert (await authenticator.check_password(name, password, "10.0.0.1")).name == name
    assert (await authenticator.authenticate(basic(name, password), "10.0.0.1")).name == name
    assert runner.verifications() == [ITERATIONS]


def test_plain_passwords_are_hashed_once_off_the_reactor_when_the_authenticator_is_made(runner, clock):
    Authenticator(accounts(), clock, run_slowly=runner)
    hashing = [args for function, args in runner.calls if function is not verify_password_hash]
    assert len(hashing) == 1 and sorted(hashing[0][0]) == ["plain"] and hashing[0][1] == ITERATIONS


def test_the_work_of_a_check_is_the_configured_hashes_or_the_default():
    assert work_iterations(accounts()) == ITERATIONS
    assert work_iterations([a for a in accounts() if a.password_hash is None]) == DEFAULT_HASH_ITERATIONS


@pytest_twisted.ensureDeferred
async def test_pbkdf2_never_runs_on_the_reactor_thread(monkeypatch, clock):
    configured = accounts()
    threads_used = []
    real = hashlib.pbkdf2_hmac

    def recording(*args):
        threads_used.append(threading.current_thread() is threading.main_thread())
        return real(*args)

    monkeypatch.setattr(passwords.hashlib, "pbkdf2_hmac", recording)
    authenticator = Authenticator(configured, clock)  # the default: a thread of the reactor's pool
    for name in ("plain", "hashed", "tokens", "nobody"):
        with pytest.raises(Unauthenticated):
            await authenticator.check_password(name, "guess")
    assert await authenticator.check_password("plain", "p1ain")
    assert len(threads_used) == 6 and not any(threads_used)


@pytest_twisted.ensureDeferred
async def test_checks_made_before_the_plain_passwords_are_hashed_wait_for_them(clock):
    slow = []

    def later(function, *args):
        d = defer.Deferred()
        slow.append((d, function, args))
        return d

    authenticator = Authenticator(accounts(), clock, run_slowly=later)
    first = defer.ensureDeferred(authenticator.check_password("plain", "p1ain"))
    second = defer.ensureDeferred(authenticator.check_password("plain", "nope"))
    d, function, args = slow.pop(0)
    d.callback(function(*args))  # the hashing of the plain passwords ends
    for d, function, args in slow:
        d.callback(function(*args))
    assert (await first).name == "plain"
    with pytest.raises(Unauthenticated):
        await second


@pytest_twisted.ensureDeferred
async def test_bearer_tokens_and_malformed_headers(authenticator):
    assert (await authenticator.authenticate(b"Bearer tok-1", "s")).name == "tokens"
    for header in (None, b"", b"Digest abc", b"Basic !!!", b"Basic bm9jb2xvbg==", b"Bearer nope"):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(header, "s")


# -- limits ---------------------------------------------------------------------------------

@pytest_twisted.ensureDeferred
async def test_a_user_is_limited_after_ten_failures_and_the_right_password_waits_too(authenticator, runner):
    for number in range(10):
        with pytest.raises(Unauthenticated) as refused:
            await authenticator.authenticate(basic("hashed", f"guess{number}"), f"10.0.0.{number}")
        assert not isinstance(refused.value, RateLimited)
    with pytest.raises(RateLimited) as limited:
        await authenticator.check_password("hashed", "h4shed", "10.0.1.1")
    assert limited.value.retry_after == 6
    assert len(runner.verifications()) == 10  # a refused attempt costs no PBKDF2 run


@pytest_twisted.ensureDeferred
async def test_a_success_resets_the_users_count(authenticator):
    for _ in range(9):
        with pytest.raises(Unauthenticated):
            await authenticator.check_password("plain", "nope", "10.0.0.1")
    await authenticator.check_password("plain", "p1ain", "10.0.0.1")
    for _ in range(9):
        with pytest.raises(Unauthenticated) as refused:
            await authenticator.check_password("plain", "nope", "10.0.0.2")
        assert not isinstance(refused.value, RateLimited)


@pytest_twisted.ensureDeferred
async def test_bad_bearer_tokens_and_garbage_are_limited_per_source(clock, runner):
    authenticator = Authenticator(accounts(), clock, LoginLimiter(clock, per_source=3), run_slowly=runner)
    for header in (b"Bearer a", b"Bearer b", b"Basic !!!"):
        with pytest.raises(Unauthenticated):
            await authenticator.authenticate(header, "10.6.6.6")
    with pytest.raises(RateLimited):
        await authenticator.authenticate(b"Bearer tok-1", "10.6.6.6")
    assert (await authenticator.authenticate(b"Bearer tok-1", "10.0.0.1")).name == "tokens"


@pytest_twisted.ensureDeferred
async def test_the_limiter_outlives_a_new_authenticator(clock, runner):
    limiter = LoginLimiter(clock, per_user=2)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            authenticator = Authenticator(accounts(), clock, limiter, run_slowly=runner)
            await authenticator.check_password("plain", "x", "s")
    reconfigured = Authenticator(accounts(), clock, limiter, run_slowly=runner)
    with pytest.raises(RateLimited):
        await reconfigured.check_password("plain", "p1ain", "t")
    clock.advance(30)
    assert await reconfigured.check_password("plain", "p1ain", "t")
