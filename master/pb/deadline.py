"""Remote calls with deadlines: nothing that crosses the network may wait forever."""

from twisted.internet.interfaces import IReactorTime

from buildfarm.common.deadline import with_deadline


class DeadlineExceeded(Exception):
    """A remote call got no answer within its deadline."""


async def call_with_deadline(clock: IReactorTime, seconds: float, remote, method: str, *args):
    """``remote.callRemote(method, *args)``, failing with DeadlineExceeded after ``seconds``."""
    return await with_deadline(remote.callRemote(method, *args), seconds, clock,
                               lambda: DeadlineExceeded(f"{method} got no answer within {seconds:g} s"))


def remote_failure_is(failure_or_error, *names: str) -> bool:
    """Whether a remote error is of one of the named types (PB sends type names as str or bytes)."""
    value = getattr(failure_or_error, "value", failure_or_error)
    remote_type = getattr(value, "remoteType", None) or getattr(failure_or_error, "type", None)
    if isinstance(remote_type, bytes):
        remote_type = remote_type.decode("utf-8", "replace")
    text = str(remote_type or type(value).__name__)
    return any(text.endswith(name) for name in names)
