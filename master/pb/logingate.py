"""``LoginGate``: the slave port's connections that have not logged in yet.

Each such connection has a deadline (``login_timeout``) and a budget of messages, and may only
send the steps of PB's login (`pre_login_problem` says what else it sent).  At most
``max_pending_logins`` of them exist at once; past that a new connection is closed as soon as
it is accepted.  Closing the newcomer rather than the oldest keeps logins already under way
(a slave needs a few round trips) from being evicted by a flood; what the flood holds frees
itself within ``login_timeout``, and a refused slave retries with its usual backoff.  Logged-in
slaves never count.
"""

from collections.abc import Callable

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from buildfarm.master.pb.limits import PRE_LOGIN_MAX_MESSAGES, PBLimits

log = Logger()

_PLAIN_ARGUMENT_TAGS = (b"unicode", b"remote")  # jelly's text and references to the peer's objects
# PB's login, as Twisted's (and so every Buildbot) client sends it: method -> (object, arguments)
_LOGIN_CALLS = {b"login": (bytes, 1), b"respond": (int, 2)}


class LoginGate:
    """Deadlines and a count of the connections that have not logged in yet."""

    def __init__(self, clock: IReactorTime, limits: Callable[[], PBLimits]):
        """``limits`` is read when it is needed, so a reconfig applies to new connections."""
        self._clock = clock
        self._limits = limits
        self._pending: dict[object, list] = {}  # broker -> [deadline DelayedCall, messages]
        self._refused = 0

    @property
    def pending(self) -> int:
        """How many connections have not logged in yet."""
        return len(self._pending)

    def has_room(self) -> bool:
        """Whether one more connection may wait for its login; counts the refusals."""
        limit = self._limits().max_pending_logins
        if len(self._pending) < limit:
            return True
        if not self._refused:
            log.warn("slave port: {n} connections have not logged in; closing new ones until"
                     " some log in or time out (c['protocols']['pb']['max_pending_logins'])", n=limit)
        self._refused += 1
        return False

    def entered(self, broker) -> None:
        """A connection was accepted: its login deadline starts."""
        timeout = self._limits().login_timeout
        deadline = self._clock.callLater(timeout, self._timed_out, broker, timeout)
        self._pending[broker] = [deadline, 0]

    def message(self, broker) -> bool:
        """Count one message before login; False once the connection has sent too many."""
        entry = self._pending.get(broker)
        if entry is None:
            return True
        entry[1] += 1
        return entry[1] <= PRE_LOGIN_MAX_MESSAGES

    def left(self, broker) -> None:
        """The connection logged in or closed: it no longer counts."""
        entry = self._pending.pop(broker, None)
        if entry is None:
            return
        deadline: IDelayedCall = entry[0]
        if deadline.active():
            deadline.cancel()
        if self._refused and len(self._pending) < self._limits().max_pending_logins:
            log.info("slave port: accepting connections again ({n} closed while full)",
                     n=self._refused)
            self._refused = 0

    def _timed_out(self, broker, timeout: float) -> None:
        self._pending.pop(broker, None)
        log.warn("slave port: {peer} did not log in within {timeout} s; dropping it",
                 peer=describe_peer(broker.transport), timeout=timeout)
        broker.drop()


def pre_login_problem(broker, sexp) -> str | None:
    """Why a PB message may not come before login; None for a step of PB's login."""
    if not isinstance(sexp, list) or not sexp:
        return "a message that is not a PB command"
    command, args = sexp[0], sexp[1:]
    if command == b"version" and len(args) == 1:
        return None
    if command == b"decref" and len(args) == 1 and type(args[0]) in (int, bytes) \
            and args[0] in broker.localObjects:
        return None
    if command == b"message" and len(args) == 6:
        _request, target, method, _answer, arguments, keywords = args
        expected = _LOGIN_CALLS.get(method) if type(method) is bytes else None
        if expected is not None and type(_request) is int and _is_login_target(target, expected[0]) \
                and _plain_arguments(arguments, expected[1]) and keywords == [b"dictionary"]:
            return None
        return f"a call of {_short(method)} before login"
    return f"a PB {_short(command)} before login"


def _is_login_target(target, kind: type) -> bool:
    return target == b"root" if kind is bytes else type(target) is int


def _plain_arguments(arguments, count: int) -> bool:
    """A jellied tuple of ``count`` byte strings, texts or references to the peer's objects."""
    return (isinstance(arguments, list) and len(arguments) == count + 1
            and arguments[0] == b"tuple" and all(_plain(a) for a in arguments[1:]))


def _plain(argument) -> bool:
    if type(argument) is bytes or argument == [b"None"]:
        return True
    if not (isinstance(argument, list) and len(argument) == 2
            and argument[0] in _PLAIN_ARGUMENT_TAGS):
        return False
    if argument[0] == b"remote":
        return type(argument[1]) is int
    try:
        argument[1].decode("utf-8")
    except (AttributeError, UnicodeDecodeError):
        return False
    return True


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe_peer(transport) -> str:
    """``host:port`` of the connection's peer, or ``?``."""
    try:
        peer = transport.getPeer()
        return f"{peer.host}:{peer.port}"
    except Exception:
        return "?"
