"""Live-log viewers for a benchmark: N Server-Sent-Events clients on a build's
``/builds/<id>/events`` stream, as many browsers with the build page open would be.

All of them run on one thread (``selectors``), each reading its stream to the end (the
``done`` event, after which the master closes the connection) and counting what it got: bytes
and log lines (a ``lines`` event carries its text as JSON, where each newline is ``\\n``).
Loopback only, and bounded: a viewer that is not finished by the deadline is cut off and
reported as such.
"""

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field

VIEWERS_DEADLINE_S = 600.0
RECV_BYTES = 256 * 1024
DONE_MARK = b"event: done"
LINE_MARK = b"\\n"  # a newline inside a JSON string


@dataclass
class Viewer:
    """One SSE client's connection and what it read."""

    sock: socket.socket
    bytes_read: int = 0
    lines: int = 0
    done: bool = False
    closed: bool = False
    closed_at: float = 0.0  # time.monotonic() when its stream ended
    _tail: bytes = field(default=b"")

    def took(self, data: bytes) -> None:
        joined = self._tail + data
        self.bytes_read += len(data)
        # count marks that start in the new data or straddle the boundary, once each
        self.lines += joined.count(LINE_MARK) - self._tail.count(LINE_MARK)
        self.done = self.done or DONE_MARK in joined
        self._tail = joined[-len(DONE_MARK):]


class Viewers:
    """``count`` viewers of build ``buildid`` on the master at 127.0.0.1:``port``, read on a
    thread from ``start()`` until each stream ended or ``deadline_s`` passed."""

    def __init__(self, port: int, buildid: int, count: int, deadline_s: float = VIEWERS_DEADLINE_S):
        self.port = port
        self.buildid = buildid
        self.count = count
        self.deadline_s = deadline_s
        self.viewers: list[Viewer] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Viewers":
        request = (f"GET /builds/{self.buildid}/events HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                   "Accept: text/event-stream\r\nConnection: close\r\n\r\n").encode()
        for _ in range(self.count):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.sendall(request)
            sock.setblocking(False)
            self.viewers.append(Viewer(sock))
        self._thread.start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.deadline_s
        with selectors.DefaultSelector() as selector:
            for viewer in self.viewers:
                selector.register(viewer.sock, selectors.EVENT_READ, viewer)
            open_count = len(self.viewers)
            while open_count and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=1.0):
                    viewer = key.data
                    try:
                        data = viewer.sock.recv(RECV_BYTES)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        viewer.took(data)
                    else:
                        selector.unregister(viewer.sock)
                        viewer.closed, viewer.closed_at = True, time.monotonic()
                        open_count -= 1
        for viewer in self.viewers:
            viewer.sock.close()

    def wait(self) -> list[Viewer]:
        """Wait until every viewer finished (or the deadline cut them off)."""
        self._thread.join(self.deadline_s + 10)
        return self.viewers
