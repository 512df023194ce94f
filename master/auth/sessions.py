"""``SessionStore``: the web UI's login sessions, kept in memory.

A session is a random id in an HttpOnly, SameSite=Lax cookie; the master keeps, per id, the
user's name, a CSRF token for its state-changing forms, and when it was last used.  Sessions
are lost when the master restarts (users log in again); an idle session expires after
``SESSION_IDLE_S`` on the injected clock.  A user holds at most ``MAX_SESSIONS_PER_USER``
sessions (their own least recently used goes), and the store at most ``MAX_SESSIONS``, taken
from whoever holds the most, so logging in again and again ends nobody else's session.
Scopes are not copied into the session: they are
read from the user's account at each request, so a reconfig that removes a scope (or a user)
takes effect at once.
"""

import hmac
import secrets
from dataclasses import dataclass

from twisted.internet.interfaces import IReactorTime

COOKIE_NAME = b"buildfarm_session"
SESSION_IDLE_S = 8 * 3600.0
# A user's own least recently used session goes when they open one more than this; the whole
# store's bound only ever takes from the user holding the most, so nobody logging in again
# and again can end someone else's session.
MAX_SESSIONS_PER_USER = 20
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
    """Sessions by id, expiring after ``idle_s`` without use, at most ``per_user`` of one
    user and ``max_sessions`` in all."""

    def __init__(self, clock: IReactorTime, idle_s: float = SESSION_IDLE_S,
                 max_sessions: int = MAX_SESSIONS, per_user: int = MAX_SESSIONS_PER_USER):
        self.clock = clock
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self.per_user = per_user
        self._sessions: dict[str, Session] = {}
        self._by_user: dict[str, dict[str, Session]] = {}  # each user's, least recently used first

    def __len__(self) -> int:
        return len(self._sessions)

    def count(self, user: str) -> int:
        """How many live sessions ``user`` has."""
        return len(self._by_user.get(user, ()))

    def create(self, user: str) -> Session:
        """A new session for ``user``; their own least recently used one goes when they hold
        ``per_user``, and when the store is full the user holding the most loses their oldest."""
        self._expire()
        while self.count(user) >= self.per_user:
            self._remove(next(iter(self._by_user[user].values())))
        while len(self._sessions) >= self.max_sessions:
            # From the user holding the most; among equals, the session unused the longest.
            busiest = max(self._by_user.values(),
                          key=lambda mine: (len(mine), -next(iter(mine.values())).last_used))
            self._remove(next(iter(busiest.values())))
        session = Session(secrets.token_urlsafe(ID_BYTES), user, secrets.token_urlsafe(ID_BYTES),
                          self.clock.seconds())
        self._sessions[session.sid] = session
        self._by_user.setdefault(user, {})[session.sid] = session
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
            self._remove(session)
            return None
        session.last_used = now
        mine = self._by_user[session.user]
        mine[sid] = mine.pop(sid)  # now the user's most recently used
        return session

    def drop(self, sid: str | None) -> None:
        """Forget a session (logout)."""
        session = self._sessions.get(sid) if sid else None
        if session is not None:
            self._remove(session)

    def drop_user(self, user: str) -> None:
        """Forget every session of ``user`` (a user removed from the configuration)."""
        for session in list(self._by_user.get(user, {}).values()):
            self._remove(session)

    def _remove(self, session: Session) -> None:
        del self._sessions[session.sid]
        mine = self._by_user[session.user]
        del mine[session.sid]
        if not mine:
            del self._by_user[session.user]

    def _expire(self) -> None:
        now = self.clock.seconds()
        for session in [s for s in self._sessions.values() if now - s.last_used > self.idle_s]:
            self._remove(session)


def session_cookie(sid: str, secure: bool) -> bytes:
    """The Set-Cookie value that hands ``sid`` to the browser."""
    flags = b"; Path=/; HttpOnly; SameSite=Lax" + (b"; Secure" if secure else b"")
    return COOKIE_NAME + b"=" + sid.encode() + flags


def clearing_cookie() -> bytes:
    """The Set-Cookie value that removes the session cookie."""
    return COOKIE_NAME + b"=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"
