"""``LogWriter``: batches a step log's text into database chunks off the reactor thread.

Output arrives in many small updates; writing each would flood the database.  The writer
buffers text and writes it when ``FLUSH_BYTES`` have gathered or ``FLUSH_DELAY_S`` after the
first unwritten text, whichever comes first.  At most one write of a log is in flight: text
that arrives meanwhile gathers in the buffer and goes out, as chunks of at most
``CHUNK_CHARS``, in the next write (one transaction).  So a fast stream costs one commit per
write rather than one per 64 KiB, chunks land in order, and the text waiting in the master is
what arrives during one commit, instead of a queue of writes that grows whenever the
database is slower than the slave (that queue was the master's RSS growth while a 50 MB log
streamed).  When even that buffer passes ``PAUSE_BYTES`` (the slave sends faster than the
database stores), the writer pauses its producer -- the slave's connection, given by
``throttle`` -- until the write in flight is done, so the text waits in the socket and the
slave rather than in the master.

A write the database refuses is tried again, on the database's backoff (0.5 s doubling to
10 s) for up to ``WRITE_RETRY_S``, with later text waiting behind it (so the log keeps its
order); a connection error has already been retried that long by the connector.  Text that
still cannot be written is not dropped without a word: the log gets a line saying how much
was lost and why, and so does the master's twistd.log.

Every piece of text passes the build's ``SecretRedactor`` (``redactor``, optional) on its way
in, whether header, stdout or stderr: a secret value the build rendered is stored, published
and shown as ``<name>`` (master/secrets/redactor.py).  This is the one place a build's log
text enters the master, so every log of every build is redacted here, once.

Text the database stored is published on the master's ``LogBus`` (``bus``, optional), from
which live viewers in this master get it without reading the database (master/process/logbus.py).
"""

from collections.abc import Callable

from twisted.internet import defer, task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from buildfarm.master.db.retry import backoff_delays, is_connection_error
from buildfarm.master.pb.remotecommand import OutputOnlyLog
from buildfarm.master.process.logbus import LogBus
from buildfarm.master.secrets.redactor import RedactingStream, SecretRedactor

log = Logger()

FLUSH_BYTES = 64 * 1024
FLUSH_DELAY_S = 0.2
CHUNK_CHARS = 256 * 1024  # the largest chunk row one write stores
PAUSE_BYTES = 1024 * 1024  # buffered text (while a write is in flight) that pauses the producer
# How long a refused write is tried again before its text is reported lost.
WRITE_RETRY_S = 60.0


def lost_text_notice(chars: int, error: BaseException) -> str:
    """The line a log gets in place of ``chars`` characters the database would not store."""
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    return (f"\n[buildfarm: {chars} characters of this log are missing here: the database "
            f"refused them ({why})]\n")


class LogWriter(OutputOnlyLog):
    """Writes one log of one step; ``finish`` writes the rest and marks it complete.

    ``on_write`` (optional) is called with each chunk of text once the database stored it;
    ``bus`` (optional) gets each such chunk published, and the log closed by ``finish``;
    ``redactor`` (optional, the build's) replaces the secrets' values in the text."""

    def __init__(self, db, logid: int, clock: IReactorTime,
                 on_write: Callable[[str], None] | None = None, bus: LogBus | None = None,
                 redactor: SecretRedactor | None = None):
        self.db = db
        self._redacting = RedactingStream(redactor) if redactor is not None else None
        self.logid = logid
        self.clock = clock
        self.on_write = on_write
        self.bus = bus
        if bus is not None:
            bus.open(logid)
        self._buffer: list[str] = []
        self._buffered = 0
        self._timer = None
        self._writing = False
        self._flushWanted = False
        self._idle: list[defer.Deferred] = []
        self._producer = None
        self._paused = False

    def throttle(self, producer) -> None:
        """Pause ``producer`` (an ``IPushProducer``, e.g. the slave connection's transport)
        while more than ``PAUSE_BYTES`` wait for the database."""
        self._producer = producer

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
        if self._redacting is not None:
            text = self._redacting.feed(text)
        self._buffer_text(text)

    def _buffer_text(self, text: str) -> None:
        if not text:
            return
        self._buffer.append(text)
        self._buffered += len(text)
        if self._writing:
            # the write in flight starts the next one when it is done
            if self._buffered >= PAUSE_BYTES and self._producer is not None and not self._paused:
                self._paused = True
                self._producer.pauseProducing()
            return
        if self._buffered >= FLUSH_BYTES:
            self.flush()
        elif self._timer is None:
            self._timer = self.clock.callLater(FLUSH_DELAY_S, self.flush)

    def flush(self) -> None:
        """Write the buffered text now, or as soon as the write in flight is done."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._writing:
            self._flushWanted = True
            return
        if not self._buffer:
            self._wakeIdle()
            return
        text = "".join(self._buffer)
        self._buffer, self._buffered, self._flushWanted = [], 0, False
        chunks = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]
        del text
        self._writing = True
        d = defer.ensureDeferred(self._write(chunks))
        d.addErrback(lambda f: log.failure("writing log {id} failed", f, id=self.logid))
        d.addBoth(self._written)

    async def _write(self, chunks: list[str]) -> list[str]:
        """Store ``chunks``; what was stored (a notice in place of text that was lost)."""
        error = await self._store_with_retries(chunks)
        if error is not None:
            lost = sum(len(chunk) for chunk in chunks)
            log.error("log {id}: {lost} characters could not be written and are lost: {why}",
                      id=self.logid, lost=lost, why=str(error) or type(error).__name__)
            chunks = [lost_text_notice(lost, error)]
            await self._store(chunks)  # a failure here reaches the errback in flush
        if self.on_write is not None:
            for chunk in chunks:
                self.on_write(chunk)
        return chunks

    async def _store(self, chunks: list[str]) -> None:
        if len(chunks) == 1:
            await self.db.logs.append(self.logid, chunks[0])
        else:
            await self.db.logs.append_many([(self.logid, chunk) for chunk in chunks])

    async def _store_with_retries(self, chunks: list[str]) -> BaseException | None:
        """Store ``chunks``, trying again on the database's backoff; the last error if the
        database still refuses them after ``WRITE_RETRY_S``, else None."""
        give_up_at = self.clock.seconds() + WRITE_RETRY_S
        delays = backoff_delays()
        while True:
            try:
                await self._store(chunks)
                return None
            except Exception as e:  # noqa: BLE001 - every refusal is retried, then reported
                delay = next(delays)
                if is_connection_error(e) or self.clock.seconds() + delay > give_up_at:
                    return e
                log.warn("log {id}: the database refused a write ({why}); trying again in {delay} s",
                         id=self.logid, why=str(e) or type(e).__name__, delay=delay)
                await task.deferLater(self.clock, delay, lambda: None)

    def _written(self, stored: list[str] | None) -> None:
        self._writing = False
        if self._paused:
            self._paused = False
            self._resume()
        wanted = self._flushWanted or self._idle or self._buffered >= FLUSH_BYTES
        if wanted and self._buffer:
            # The next write goes to the database thread first; the live viewers are served
            # while it runs, rather than holding it up.
            self.flush()
            self._publish(stored)
            return
        self._publish(stored)  # before ``finish`` (waiting in _idle) closes the log on the bus
        if wanted:
            self.flush()  # (``finish`` waiting in _idle wants the rest now)
        elif self._buffer:
            if self._timer is None:
                self._timer = self.clock.callLater(FLUSH_DELAY_S, self.flush)
        else:
            self._wakeIdle()

    def _publish(self, stored: list[str] | None) -> None:
        if self.bus is not None:
            for chunk in stored or ():
                self.bus.publish(self.logid, chunk)

    def _resume(self) -> None:
        try:
            self._producer.resumeProducing()
        except Exception:  # a connection that is gone cannot be resumed, nor needs to be
            log.failure("resuming the producer of log {id} failed", id=self.logid)

    def _wakeIdle(self) -> None:
        waiting, self._idle = self._idle, []
        for d in waiting:
            d.callback(None)

    async def flushed(self) -> None:
        """Write everything buffered now; return once it is stored (and published)."""
        if self._redacting is not None:
            self._buffer_text(self._redacting.release())
        while self._buffer or self._writing:
            done: defer.Deferred = defer.Deferred()
            self._idle.append(done)
            self.flush()
            await done

    async def finish(self) -> None:
        """Write everything buffered and mark the log complete."""
        try:
            await self.flushed()
            await self.db.logs.finish(self.logid)
        finally:
            if self.bus is not None:
                self.bus.close(self.logid)
