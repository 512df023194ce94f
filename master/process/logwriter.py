"""``LogWriter``: batches a step log's text into database chunks off the reactor thread.

Output arrives in many small updates; writing each would flood the database.  The writer
buffers text and flushes it as one chunk when ``FLUSH_BYTES`` have gathered or
``FLUSH_DELAY_S`` after the first unflushed text, whichever comes first.  Flushes are
chained so chunks land in order even when the database has several threads.
"""

from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

log = Logger()

FLUSH_BYTES = 64 * 1024
FLUSH_DELAY_S = 0.2


class LogWriter:
    """Writes one log of one step; ``finish`` flushes the rest and marks it complete."""

    def __init__(self, db, logid: int, clock: IReactorTime,
                 written: Callable[[str], None] = lambda text: None):
        self.db = db
        self.written = written  # told of each chunk as it is queued for the database (metrics)
        self.logid = logid
        self.clock = clock
        self._buffer: list[str] = []
        self._buffered = 0
        self._timer = None
        self._writes: defer.Deferred = defer.succeed(None)

    def add_header(self, text: str) -> None:
        """A line the slave or master wrote about the command (not its output)."""
        self._add(text)

    def add_stdout(self, text: str) -> None:
        """Output of the command on its standard output."""
        self._add(text)

    def add_stderr(self, text: str) -> None:
        """Output of the command on its standard error."""
        self._add(text)

    def _add(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if self._buffered >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        """Queue the buffered text as one chunk behind the writes already queued."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if not self._buffer:
            return
        text = "".join(self._buffer)
        self._buffer, self._buffered = [], 0
        self.written(text)
        self._writes.addCallback(lambda _: defer.ensureDeferred(self.db.logs.append(self.logid, text)))
        self._writes.addErrback(lambda f: log.failure("writing log {id} failed", f, id=self.logid))

    async def finish(self) -> None:
        """Write everything buffered and mark the log complete."""
        self.flush()
        done: defer.Deferred = defer.Deferred()
        self._writes.addBoth(lambda result: (done.callback(None), result)[1])
        await done
        await self.db.logs.finish(self.logid)
