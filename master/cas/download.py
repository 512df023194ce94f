"""``stream_to``: an item's bytes written to an HTTP response as they are read, for the
content URLs, so a 1 GiB item costs the master a few chunks of memory, not a GiB.

Each chunk is read on the thread pool (a disk read or an S3 body read blocks), written to the
request, and the next one waits while the client is slow: the request's transport pauses this
push producer when its buffer fills and resumes it when it drains.  A client that goes away
stops it (klein cancels the handler); the reader is closed either way.
"""

from collections.abc import Callable

from twisted.internet import defer, threads
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

CHUNK_BYTES = 256 * 1024


@implementer(IPushProducer)
class _Gate:
    """Open while the transport wants more bytes."""

    def __init__(self) -> None:
        self.closed: defer.Deferred | None = None
        self.stopped = False

    def pauseProducing(self) -> None:  # noqa: N802 - Twisted's names
        if self.closed is None:
            self.closed = defer.Deferred()

    def resumeProducing(self) -> None:  # noqa: N802
        closed, self.closed = self.closed, None
        if closed is not None:
            closed.callback(None)

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True
        self.resumeProducing()


async def stream_to(request, reader, reactor, pool, on_sent: Callable[[int], None],
                    chunk_bytes: int = CHUNK_BYTES) -> None:
    """Write what ``reader`` holds to ``request`` (chunks read on ``pool``), telling ``on_sent``
    the size of each chunk written (so a client that leaves half way is counted right)."""
    gate = _Gate()
    request.registerProducer(gate, True)
    try:
        while not gate.stopped:
            if gate.closed is not None:
                await gate.closed
                continue
            chunk = await threads.deferToThreadPool(reactor, pool, reader.read, chunk_bytes)
            if not chunk:
                break
            request.write(chunk)
            on_sent(len(chunk))
    finally:
        # not awaited: the client may have everything and be gone, which cancels this handler
        closed = threads.deferToThreadPool(reactor, pool, reader.close)
        closed.addErrback(lambda f: log.failure("closing a CAS item after sending it failed", f))
        if request.channel is not None:  # None once the client has gone
            request.unregisterProducer()
