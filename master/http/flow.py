"""Writing a long response in pieces without outrunning the client.

``FlowControl`` is a streaming producer registered on the request: the transport pauses it
while the client's socket buffer is full, and ``wait_until_wanted`` waits for the resume.
``write_pieces`` writes what an async iterator yields, each piece once the client took the
previous one, so a huge answer (a whole log) never piles up in the master's memory.
"""

from collections.abc import AsyncIterator

from twisted.internet import defer


class FlowControl:
    """A streaming producer for a response written in pieces (see the module docstring)."""

    def __init__(self) -> None:
        self._resumed: defer.Deferred | None = None

    @property
    def paused(self) -> bool:
        return self._resumed is not None

    def pauseProducing(self) -> None:  # noqa: N802 - IPushProducer
        if self._resumed is None:
            self._resumed = defer.Deferred()

    def resumeProducing(self) -> None:  # noqa: N802
        resumed, self._resumed = self._resumed, None
        if resumed is not None:
            resumed.callback(None)

    def stopProducing(self) -> None:  # noqa: N802 - the client went away: stop waiting
        self.resumeProducing()

    async def wait_until_wanted(self) -> None:
        if self._resumed is not None:
            await self._resumed


async def write_pieces(request, pieces: AsyncIterator[bytes]) -> None:
    """Write each piece of ``pieces`` once the client took the previous one; stop when the
    client goes away."""
    flow = FlowControl()
    request.registerProducer(flow, True)
    try:
        async for piece in pieces:
            if getattr(request, "_disconnected", False):
                return
            if piece:
                request.write(piece)
                await flow.wait_until_wanted()
    finally:
        if request.channel is not None:  # None once the client went away
            request.unregisterProducer()


async def text_in_batches(read_range, end_line: int, batch_lines: int) -> AsyncIterator[bytes]:
    """Lines 0 .. ``end_line`` (the last one may be unfinished) read with ``read_range(first,
    last)`` (a Deferred or coroutine of text) ``batch_lines`` at a time, as UTF-8."""
    first = 0
    while first <= end_line:
        last = min(first + batch_lines - 1, end_line)
        text = await read_range(first, last)
        yield text.encode("utf-8")
        first = last + 1


def safe_filename(name: str) -> str:
    """``name`` with anything but letters, digits, ``-_.`` replaced by ``_`` (a header value)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)


async def send_text(request, read_range, end_line: int, batch_lines: int,
                    filename: str | None = None) -> bytes:
    """Send lines 0 .. ``end_line`` of a text (a log) as ``text/plain``, with flow control; as
    an attachment named ``filename`` when given.  The JSON API's and the pages' log downloads."""
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"x-content-type-options", b"nosniff")
    if filename is not None:
        disposition = f'attachment; filename="{safe_filename(filename)}"'
        request.setHeader(b"content-disposition", disposition.encode())
    await write_pieces(request, text_in_batches(read_range, end_line, batch_lines))
    return b""
