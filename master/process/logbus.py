"""``LogBus``: new log lines pushed from the ``LogWriter`` to live viewers in the same master.

A viewer of a running build (the build page's event stream, master/www/ui/logstream.py) used
to read the database twice a second, per viewer, through the thread pool the ``LogWriter``
needs to store the text.  Now the writer publishes each batch of text here once it is
stored, and the viewers in this master get it from memory; they read the database only to
catch up (what was written before they came, or what they missed while slow).

Text is published as complete lines with their line numbers (``LogLines``): the bus keeps
each log's unfinished last line until its newline arrives (or the log is finished), so a
viewer can tell exactly which lines it already has.  Line numbers count ``"\\n"`` from 0, as
the database does (master/db/logs.py), and every line published is already in the database.

Viewers that catch up read the database through ``SharedReads``: several viewers behind at
the same place (say, twenty that opened the page as the build started and cannot keep up
with it) read each range once, and its JSON is encoded once.

A viewer subscribes with ``watch(buildid)`` and ``Watch.follow(logid)`` *before* reading the
database, then reads up to ``LogFeed.end`` from the database and takes the pushed batches
after that, skipping lines it has (no gap, no duplicate).  Each feed holds at most
``MAX_PENDING_CHARS`` of pushed text: a viewer that does not keep up loses the batches (the
text itself is shared by all viewers, so many viewers cost little more than one) and reads
what it missed from the database when it is ready for more.

``build_changed(buildid)`` tells the build's watchers that its steps or logs changed (a step
started or finished, a log was added, the build ended), so they read them again.
"""

import json
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

# Pushed text one viewer may hold before it loses it and reads the database instead.
MAX_PENDING_CHARS = 1024 * 1024
# Text read from the database for viewers catching up, kept for others behind at the same place.
MAX_SHARED_READ_CHARS = 2 * 1024 * 1024
# The longest unfinished line kept; a longer one is not pushed (viewers read it from the database).
MAX_PARTIAL_CHARS = 1024 * 1024
# Lines of one ``LogLines`` at most (the event stream sends at most this many per event).
MAX_BATCH_LINES = 2000


class LogLines:
    """Lines ``first_line`` .. ``first_line + count - 1`` of a log, with their newlines (the
    last one of a finished log may lack its newline).  Shared by every viewer: read only."""

    __slots__ = ("logid", "first_line", "count", "text", "_json")

    def __init__(self, logid: int, first_line: int, count: int, text: str):
        self.logid = logid
        self.first_line = first_line
        self.count = count
        self.text = text
        self._json: bytes | None = None

    @property
    def end(self) -> int:
        """The number of the first line after these."""
        return self.first_line + self.count

    def json_bytes(self) -> bytes:
        """``text`` as a JSON string (ASCII), encoded once for all viewers."""
        if self._json is None:
            self._json = json.dumps(self.text).encode("ascii")
        return self._json

    def lines_from(self, line: int) -> str:
        """The text of lines ``line`` .. the last (``line`` within these lines)."""
        skip = line - self.first_line
        if skip <= 0:
            return self.text
        at = -1
        for _ in range(skip):
            at = self.text.find("\n", at + 1)
        return self.text[at + 1:]


def split_lines(logid: int, first_line: int, text: str, final: bool) -> list[LogLines]:
    """``text`` (complete lines, but for the last one of a finished log) as batches of at
    most ``MAX_BATCH_LINES`` lines."""
    count = text.count("\n") + (1 if final and not text.endswith("\n") else 0)
    if count <= MAX_BATCH_LINES:
        return [LogLines(logid, first_line, count, text)]
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()  # the empty string after the last newline
    batches = []
    for start in range(0, len(lines), MAX_BATCH_LINES):
        part = lines[start:start + MAX_BATCH_LINES]
        last = start + len(part) == len(lines)
        body = "\n".join(part) + ("\n" if not last or text.endswith("\n") else "")
        batches.append(LogLines(logid, first_line + start, len(part), body))
    return batches


class LogFeed:
    """What one viewer got pushed of one log: batches waiting (``pending``), and ``end``,
    the number of lines published so far (the line after the last one the database is sure
    to have), ``final`` once the log is finished (``end`` then counts its unfinished last
    line too)."""

    def __init__(self, watch: "Watch", logid: int, end: int, final: bool = False):
        self.watch = watch
        self.logid = logid
        self.end = end
        self.final = final
        self.pending: deque[LogLines] = deque()
        self.pending_chars = 0
        self.dropped = 0  # batches lost because the viewer held too much

    def _push(self, batches: list[LogLines], end: int, final: bool) -> None:
        self.end, self.final = end, final
        for batch in batches:
            self.pending.append(batch)
            self.pending_chars += len(batch.text)
        while self.pending_chars > MAX_PENDING_CHARS:
            self.pending_chars -= len(self.pending.popleft().text)
            self.dropped += 1
        self.watch._wake()

    def take(self) -> LogLines | None:
        """The oldest pushed batch not taken yet, if any."""
        if not self.pending:
            return None
        batch = self.pending.popleft()
        self.pending_chars -= len(batch.text)
        return batch

    def peek(self) -> LogLines | None:
        return self.pending[0] if self.pending else None


class Watch:
    """One viewer's subscription to a build: its changes and the logs it follows."""

    def __init__(self, bus: "LogBus", buildid: int):
        self.bus = bus
        self.buildid = buildid
        self.feeds: dict[int, LogFeed] = {}
        self.changed = False
        self._waiting: defer.Deferred | None = None
        self._woken = False

    def follow(self, logid: int) -> LogFeed:
        """Have new lines of ``logid`` pushed to this viewer (from now on)."""
        if logid not in self.feeds:
            self.feeds[logid] = self.bus._follow(self, logid)
        return self.feeds[logid]

    def unfollow(self, logid: int) -> None:
        feed = self.feeds.pop(logid, None)
        if feed is not None:
            self.bus._unfollow(feed)

    def close(self) -> None:
        """Stop every subscription of this viewer."""
        for logid in list(self.feeds):
            self.unfollow(logid)
        self.bus._unwatch(self)
        self._fire()

    def _wake(self) -> None:
        self._woken = True
        self._fire()

    def _fire(self) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    def wait(self, clock: IReactorTime, timeout_s: float) -> defer.Deferred:
        """Fires when something was pushed or changed since the last ``wait`` (at once if it
        already was), or after ``timeout_s``.  Cancelling it is harmless."""
        if self._woken:
            self._woken = False
            return defer.succeed(None)
        d = defer.Deferred(lambda _: self._forget(d))
        timer = clock.callLater(timeout_s, self._fire)
        d.addBoth(lambda result: (timer.cancel() if timer.active() else None, result)[1])
        self._waiting = d
        d.addCallback(self._consume)
        return d

    def _consume(self, result):
        self._woken = False
        return result

    def _forget(self, d: defer.Deferred) -> None:
        if self._waiting is d:
            self._waiting = None


class _LogTopic:
    """The bus's state of one log: lines published, the unfinished line, the viewers."""

    def __init__(self) -> None:
        self.lines = 0  # complete lines published
        self.partial: list[str] = []  # the unfinished last line, in pieces
        self.partial_chars = 0
        self.partial_dropped = False  # it grew past MAX_PARTIAL_CHARS: not pushed
        self.feeds: set[LogFeed] = set()
        self.writing = False


class _Reading:
    """A database read in flight, and the viewers waiting for it."""

    def __init__(self) -> None:
        self.waiters: list[defer.Deferred] = []


class SharedReads:
    """Lines of logs read from the database for viewers catching up, kept (at most
    ``max_chars`` of them, the least recently used go first) and shared: a range being read
    is not read again for another viewer, who waits for the same answer.  Only ranges the
    database holds for good may be asked for (complete lines, or a finished log's last one)."""

    def __init__(self, max_chars: int = MAX_SHARED_READ_CHARS):
        self.max_chars = max_chars
        self.reads = 0  # database reads made
        self._entries: OrderedDict[tuple[int, int, int], LogLines | _Reading] = OrderedDict()
        self._chars = 0

    def lines(self, logid: int, first: int, last: int,
              read: Callable[[int, int, int], Awaitable[str]]) -> defer.Deferred:
        """A Deferred firing with the ``LogLines`` of lines ``first`` .. ``last`` of ``logid``;
        ``read(logid, first, last)`` reads their text if nobody did.  Cancelling it cancels
        only this viewer's wait."""
        key = (logid, first, last)
        entry = self._entries.get(key)
        if isinstance(entry, LogLines):
            self._entries.move_to_end(key)
            return defer.succeed(entry)
        if entry is None:
            entry = self._entries[key] = _Reading()
            self.reads += 1
            reading = defer.ensureDeferred(read(logid, first, last))
            reading.addBoth(self._read, key, entry)
        mine: defer.Deferred = defer.Deferred()
        entry.waiters.append(mine)
        return mine

    def _read(self, result, key: tuple[int, int, int], entry: _Reading) -> None:
        if isinstance(result, Failure):
            del self._entries[key]
        else:
            logid, first, _ = key
            count = result.count("\n") + (1 if result and not result.endswith("\n") else 0)
            result = self._entries[key] = LogLines(logid, first, count, result)
            self._chars += len(result.text)
            self._evict()
        for waiter in entry.waiters:
            if waiter.called:  # a viewer that went away cancelled its wait
                continue
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    def _evict(self) -> None:
        for key in list(self._entries):
            if self._chars <= self.max_chars:
                return
            entry = self._entries[key]
            if isinstance(entry, LogLines):
                del self._entries[key]
                self._chars -= len(entry.text)

    def held_chars(self) -> int:
        return self._chars


class LogBus:
    """Owned by the master (``master.logbus``): log writers publish, viewers subscribe,
    and viewers catching up share their database reads (``reads``)."""

    def __init__(self) -> None:
        self._topics: dict[int, _LogTopic] = {}
        self._watches: dict[int, set[Watch]] = {}
        self.reads = SharedReads()

    # -- writers ---------------------------------------------------------------------------

    def open(self, logid: int) -> None:
        """A writer starts a new (empty) log."""
        self._topics.setdefault(logid, _LogTopic()).writing = True

    def is_open(self, logid: int) -> bool:
        topic = self._topics.get(logid)
        return topic is not None and topic.writing

    def publish(self, logid: int, text: str) -> None:
        """``text`` was appended to log ``logid`` in the database."""
        topic = self._topics.get(logid)
        if topic is None or not text:
            return
        newline = text.rfind("\n")
        if newline < 0:
            self._keep_partial(topic, text)
            return
        complete = text[:newline + 1]
        if topic.partial and not topic.partial_dropped:
            complete = "".join(topic.partial) + complete
        first, dropped = topic.lines, topic.partial_dropped
        topic.lines += text.count("\n")
        topic.partial, topic.partial_chars, topic.partial_dropped = [], 0, False
        if dropped:  # the line that was too long is left out: viewers read it from the database
            complete = complete[complete.find("\n") + 1:]
            first += 1
        self._keep_partial(topic, text[newline + 1:])
        if topic.feeds and complete:
            self._push(topic, split_lines(logid, first, complete, False), topic.lines, False)

    def close(self, logid: int) -> None:
        """The writer finished log ``logid`` (its last, unfinished line is final now)."""
        topic = self._topics.get(logid)
        if topic is None:
            return
        end = topic.lines + (1 if topic.partial_chars else 0)
        batches = []
        if topic.partial_chars and not topic.partial_dropped:
            batches = split_lines(logid, topic.lines, "".join(topic.partial), True)
        self._push(topic, batches, end, True)
        topic.writing, topic.partial, topic.partial_chars = False, [], 0
        if not topic.feeds:
            del self._topics[logid]

    def _keep_partial(self, topic: _LogTopic, text: str) -> None:
        if not text:
            return
        topic.partial_chars += len(text)
        if topic.partial_dropped:
            return
        if topic.partial_chars > MAX_PARTIAL_CHARS:
            topic.partial, topic.partial_dropped = [], True
        else:
            topic.partial.append(text)

    def _push(self, topic: _LogTopic, batches: list[LogLines], end: int, final: bool) -> None:
        for feed in topic.feeds:
            feed._push(batches, end, final)

    # -- builds ----------------------------------------------------------------------------

    def build_changed(self, buildid: int) -> None:
        """The build's steps or logs changed, or it ended: its viewers read them again."""
        for watch in self._watches.get(buildid, ()):
            watch.changed = True
            watch._wake()

    # -- viewers ---------------------------------------------------------------------------

    def watch(self, buildid: int) -> Watch:
        """A new viewer of ``buildid``; ``close`` it when done."""
        watch = Watch(self, buildid)
        self._watches.setdefault(buildid, set()).add(watch)
        return watch

    def viewers(self, buildid: int) -> int:
        """How many viewers watch ``buildid``."""
        return len(self._watches.get(buildid, ()))

    def held_chars(self) -> int:
        """Pushed text waiting for viewers to take it, summed over viewers (a batch that
        several hold counts for each)."""
        return sum(feed.pending_chars for topic in self._topics.values() for feed in topic.feeds)

    def followed(self) -> int:
        """How many logs the bus keeps state for (writers open or viewers following)."""
        return len(self._topics)

    def _unwatch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.buildid)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.buildid]

    def _follow(self, watch: Watch, logid: int) -> LogFeed:
        topic = self._topics.setdefault(logid, _LogTopic())
        feed = LogFeed(watch, logid, topic.lines)
        topic.feeds.add(feed)
        return feed

    def _unfollow(self, feed: LogFeed) -> None:
        topic = self._topics.get(feed.logid)
        if topic is None:
            return
        topic.feeds.discard(feed)
        if not topic.feeds and not topic.writing:
            del self._topics[feed.logid]


def build_changed(master, buildid: int | None) -> None:
    """Tell the viewers of ``buildid`` in this master that its steps or logs changed (nothing
    before the build has an id)."""
    if buildid is not None:
        master.logbus.build_changed(buildid)
