"""``SessionStore``: the web UI's login sessions, kept in memory.

A session is a random id in an HttpOnly, SameSite=Lax cookie; the master keeps, per id, the
user's name, a CSRF token for its state-changing forms, and when it was last used.  Sessions
are lost when the master restarts (users log in again); an idle session expires after
``SESSION_IDLE_S`` on the injected clock.  Scopes are not copied into the session: they are
read from the user's account at each request, so a reconfig that removes a scope (or a user)
takes effect at once.
"""

import hmac
import secrets
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

COOKIE_NAME = b"buildfarm_session"
SESSION_IDLE_S = 8 * 3600.0
MAX_SESSIONS = 10_000
ID_BYTES = 32


@dataclass
class Session:
    """One logged-in browser."""

    sid: str
    user: str
    csrf_token: str
    last_used: float

    def csrf_matches(self, given: str | None) -> bool:
        """Whether ``given`` is this session's CSRF token (constant-time comparison)."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf_token.encode())


class SessionStore:
    """Sessions by id, expiring after ``idle_s`` without use."""

    def __init__(self, clock: IReactorTime, idle_s: float = SESSION_IDLE_S,
                 max_sessions: int = MAX_SESSIONS):
        self.clock = clock
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(self, user: str) -> Session:
        """A new session for ``user`` (the oldest one goes when the store is full)."""
        self._expire()
        while len(self._sessions) >= self.max_sessions:
            oldest = min(self._sessions.values(), key=lambda s: s.last_used)
            del self._sessions[oldest.sid]
        session = Session(secrets.token_urlsafe(ID_BYTES), user, secrets.token_urlsafe(ID_BYTES),
                          self.clock.seconds())
        self._sessions[session.sid] = session
        return session

    def get(self, sid: str | None) -> Session | None:
        """The live session of that id, its idle time restarted; None if unknown or expired."""
        if not sid:
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        now = self.clock.seconds()
        if now - session.last_used > self.idle_s:
            del self._sessions[sid]
            return None
        session.last_used = now
        return session

    def drop(self, sid: str | None) -> None:
        """Forget a session (logout)."""
        if sid:
            self._sessions.pop(sid, None)

    def drop_user(self, user: str) -> None:
        """Forget every session of ``user`` (a user removed from the configuration)."""
        for sid in [s.sid for s in self._sessions.values() if s.user == user]:
            del self._sessions[sid]

    def _expire(self) -> None:
        now = self.clock.seconds()
        for sid in [s.sid for s in self._sessions.values() if now - s.last_used > self.idle_s]:
            del self._sessions[sid]


def session_cookie(sid: str, secure: bool) -> bytes:
    """The Set-Cookie value that hands ``sid`` to the browser."""
    flags = b"; Path=/; HttpOnly; SameSite=Lax" + (b"; Secure" if secure else b"")
    return COOKIE_NAME + b"=" + sid.encode() + flags


def clearing_cookie() -> bytes:
    """The Set-Cookie value that removes the session cookie."""
    return COOKIE_NAME + b"=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
