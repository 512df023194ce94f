"""``LoginLimiter``: failed logins limited per source (peer address) and per user.

Each key (a user name, a source address) has a leaky bucket: a login attempt adds one to
its level, the level drains at ``limit`` per ``window_s`` seconds, and a key whose level
reached ``limit`` is refused until it drained by one (``retry_after`` says in how many
whole seconds).  Only failures stay counted: an attempt is charged before the password is
checked (so a burst of concurrent guesses cannot all pass the check), and a success takes
back the source's charge and empties the user's bucket.

A (user, source) pair that logged in successfully is remembered (a bounded set): from that
source the user's own limit does not apply, so a slave or a person reconnecting from their
usual address is not locked out by someone guessing their password elsewhere.  The
source's limit still applies to everyone.

Memory is bounded: at most ``max_keys`` buckets per table (drained ones go first, then the
least recently charged) and ``max_known_pairs`` remembered pairs.  The limiter holds no
configuration of users, so one object can outlive a reconfig: give the same limiter to
each new ``Authenticator``.
"""

import math
from collections import OrderedDict
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

FAILURES_PER_USER = 10
FAILURES_PER_SOURCE = 50
WINDOW_S = 60.0
MAX_KEYS = 10_000
MAX_KNOWN_PAIRS = 4_096


class Limited(Exception):
    """Too many failed logins for a user or from a source."""

    def __init__(self, what: str, retry_after: int):
        super().__init__(f"too many failed logins {what}; retry in {retry_after} s")
        self.what = what
        self.retry_after = retry_after


@dataclass
class _Bucket:
    level: float
    updated: float


class _Buckets:
    """Leaky buckets by key: ``limit`` charges per ``window_s``, at most ``max_keys`` keys."""

    def __init__(self, limit: int, window_s: float, max_keys: int):
        self.limit = limit
        self.rate = limit / window_s  # drained per second
        self.window_s = window_s
        self.max_keys = max_keys
        self._buckets: OrderedDict[object, _Bucket] = OrderedDict()  # least recently charged first

    def __len__(self) -> int:
        return len(self._buckets)

    def level(self, key, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        return max(0.0, bucket.level - (now - bucket.updated) * self.rate)

    def retry_after(self, key, now: float) -> int | None:
        """Whole seconds until ``key`` may try again, or None if it may now."""
        excess = self.level(key, now) - (self.limit - 1)
        if excess <= 0:
            return None
        return max(1, math.ceil(excess / self.rate))

    def charge(self, key, now: float, amount: float = 1.0) -> None:
        level = self.level(key, now) + amount
        self._buckets.pop(key, None)
        if level <= 0:
            return
        self._buckets[key] = _Bucket(level, now)
        self._bound(now)

    def clear(self, key) -> None:
        self._buckets.pop(key, None)

    def _bound(self, now: float) -> None:
        while len(self._buckets) > self.max_keys:
            # The front was charged longest ago: drained ones go first, then the oldest.
            self._buckets.popitem(last=False)


class LoginLimiter:
    """Counts failed logins per user and per source; refuses keys over their limit."""

    def __init__(self, clock: IReactorTime, per_user: int = FAILURES_PER_USER,
                 per_source: int = FAILURES_PER_SOURCE, window_s: float = WINDOW_S,
                 max_keys: int = MAX_KEYS, max_known_pairs: int = MAX_KNOWN_PAIRS):
        self.clock = clock
        self.users = _Buckets(per_user, window_s, max_keys)
        self.sources = _Buckets(per_source, window_s, max_keys)
        self.max_known_pairs = max_known_pairs
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()

    def begin(self, user: str | None, source: str | None) -> None:
        """Charge a login attempt of ``user`` (None: a bearer token) from ``source``;
        raise ``Limited`` (charging nothing) when either is over its limit."""
        now = self.clock.seconds()
        wait = self.sources.retry_after(source, now) if source is not None else None
        if wait is not None:
            raise Limited(f"from {source}", wait)
        if user is not None and (user, source) not in self._known:
            wait = self.users.retry_after(user, now)
            if wait is not None:
                raise Limited(f"for {user!r}", wait)
        if source is not None:
            self.sources.charge(source, now)
        if user is not None:
            self.users.charge(user, now)

    def succeeded(self, user: str | None, source: str | None) -> None:
        """The attempt begun for ``user`` from ``source`` proved right: take back its charge."""
        now = self.clock.seconds()
        if source is not None:
            self.sources.charge(source, now, -1.0)
        if user is not None:
            self.users.clear(user)
            if source is not None:
                self._known.pop((user, source), None)
                self._known[(user, source)] = None
                while len(self._known) > self.max_known_pairs:
                    self._known.popitem(last=False)
