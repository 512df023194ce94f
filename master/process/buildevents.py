"""``BuildEvents``: the master's build-state events (a build or step started or finished).

The build code (master/process/build.py) publishes each change of a build's state here once
it is in the database; in this master, the live build pages (through the ``LogBus``'s
``build_changed``) and the reporters (master/reporters/) subscribe to it.  Events are about
builds of this master only: another master's builds reach its own bus.
"""

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet import defer
from twisted.logger import Logger

log = Logger()

BUILD_STARTED = "build_started"
BUILD_FINISHED = "build_finished"
STEP_STARTED = "step_started"
STEP_FINISHED = "step_finished"
KINDS = (BUILD_STARTED, BUILD_FINISHED, STEP_STARTED, STEP_FINISHED)


@dataclass(frozen=True)
class BuildEvent:
    """One change: ``kind`` (one of ``KINDS``), the build, the step for step events, and the
    results for finished ones."""

    kind: str
    buildid: int
    stepid: int | None = None
    results: int | None = None


Listener = Callable[[BuildEvent], object]


class BuildEvents:
    """Listeners of the build-state events, called in the order they subscribed."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(BuildEvent)`` for each event from now on; returns the function that
        unsubscribes it.  A listener's error (raised, or a Deferred that fails) is logged,
        never propagated to the build."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def publish(self, event: BuildEvent) -> None:
        """Tell every listener about ``event`` (it is in the database already)."""
        for listener in list(self._listeners):
            try:
                result = listener(event)
            except Exception:
                log.failure("build event listener {listener!r} failed on {event}",
                            listener=listener, event=event)
                continue
            if isinstance(result, defer.Deferred):
                result.addErrback(lambda f, ev=event, li=listener: log.failure(
                    "build event listener {listener!r} failed on {event}", f, listener=li, event=ev))

    def listeners(self) -> int:
        """How many listeners are subscribed."""
        return len(self._listeners)
