"""``StreamSlots``: a cap on long-lived responses (live-log streams) open at once."""

from collections.abc import Callable

# What a refused client is told to wait (Retry-After) before it tries again.
RETRY_AFTER_S = 10


class StreamSlots:
    """Counts open streams against a cap read at each ``acquire`` (so a reconfig applies)."""

    def __init__(self, cap: Callable[[], int]):
        self._cap = cap
        self.open = 0

    def acquire(self) -> bool:
        """Take a slot: False when ``cap()`` streams are already open."""
        if self.open >= self._cap():
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1
