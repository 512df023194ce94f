"""``SharedLock``: many holders of the shared side at once, or one of the exclusive side.

The stores' puts take the shared side while they make an item visible or refresh it; the
janitor takes the exclusive side while it checks a batch of items again and deletes them.  So
an item a put has just written or refreshed is never deleted by a janitor that listed it
earlier, while puts never wait for each other.  Held by pool threads, never the reactor."""

import threading
from contextlib import contextmanager


class SharedLock:
    """A readers-writer lock (readers first: the janitor, the writer, can wait)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False

    @contextmanager
    def shared(self):
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self):
        with self._cond:
            while self._exclusive or self._shared:
                self._cond.wait()
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
