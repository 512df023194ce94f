"""Where the Hawk verifier (master/auth/hawk.py) remembers the nonces it has received, so that a
replayed request is refused.

``INonceStore`` is what the verifier asks; ``hawk.NonceCache`` keeps them in the process (one
master), ``SharedNonceStore`` in the database the masters share (``c['multiMaster']``): a
request received by master A and replayed to master B is refused by B.  Its rows expire with
the skew window; ``SharedNonceStore`` deletes the expired ones every ``PURGE_INTERVAL_S``,
through the database's thread pool (the reactor never waits on it).
"""

import hashlib

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface, implementer

log = Logger()

PURGE_INTERVAL_S = 60.0  # how often the expired shared nonces are deleted


class INonceStore(Interface):
    """The nonces of the requests received in the last skew window."""

    def remember(client_id: str, nonce: str, ts: str) -> defer.Deferred:  # noqa: N805 - an interface
        """Record the request (client, nonce, timestamp); fires with True when it had been
        received before (a replay), False when it is new."""

    def start() -> None:
        """Begin any periodic work (purging expired nonces)."""

    def stop() -> None:
        """End it."""


def nonce_key(client_id: str, nonce: str, ts: str) -> str:
    """The key of one request: the SHA-256 (hex) of its client, nonce and timestamp (Hawk
    attributes hold no newline, so the joined text names one triple)."""
    return hashlib.sha256(f"{client_id}\n{nonce}\n{ts}".encode()).hexdigest()


def expiry_of(ts: str, window_s: float, now: float) -> float:
    """Until when a request stays acceptable: its timestamp plus the skew window (``now`` plus
    the window for a timestamp that is no number; the verifier refuses those before)."""
    try:
        return float(ts) + window_s
    except ValueError:
        return now + window_s


@implementer(INonceStore)
class SharedNonceStore:
    """The nonces in the shared database (``db.nonces``, master/db/nonces.py)."""

    def __init__(self, clock: IReactorTime, db, window_s: float):
        self.clock = clock
        self.db = db
        self.window_s = window_s
        self._purger: task.LoopingCall | None = None

    def remember(self, client_id: str, nonce: str, ts: str) -> defer.Deferred:
        until = expiry_of(ts, self.window_s, self.clock.seconds())
        d = defer.ensureDeferred(self.db.nonces.remember(nonce_key(client_id, nonce, ts), until))
        return d.addCallback(lambda new: not new)

    def start(self) -> None:
        if self._purger is None:
            self._purger = task.LoopingCall(self.purge)
            self._purger.clock = self.clock
            self._purger.start(PURGE_INTERVAL_S, now=False)

    def stop(self) -> None:
        if self._purger is not None and self._purger.running:
            self._purger.stop()
        self._purger = None

    def purge(self) -> defer.Deferred:
        """Delete the expired nonces; never fails (logged: the next purge tries again)."""
        d = defer.ensureDeferred(self.db.nonces.purge(self.clock.seconds()))
        d.addErrback(lambda f: log.failure("deleting expired Hawk nonces failed", f))
        return d
