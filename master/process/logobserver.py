"""Log observers, as Buildbot's ``buildbot.process.logobserver``: a step's
``addLogObserver(logname, observer)`` feeds the observer each piece of that log's text as it
arrives (``outReceived``, ``errReceived``, ``headerReceived``) and ``finishReceived`` when the
log is complete.  ``LogLineObserver`` cuts the text into lines."""


class LogObserver:
    """Sees the text of one log of one step; override the ``...Received`` methods."""

    # Kept private (read as ``self.step``, ``self.log``) so that comparing configurations,
    # which walks public attributes, does not loop from step to observer and back.
    _step = None
    _log = None

    @property
    def step(self):
        return self._step

    @property
    def log(self):
        return self._log

    def setStep(self, step) -> None:  # noqa: N802 - Buildbot's names
        self._step = step

    def setLog(self, loog) -> None:  # noqa: N802
        self._log = loog

    def gotData(self, stream: str | None, data: str) -> None:  # noqa: N802
        """Text of ``stream`` ("o", "e", "h", or None for a log without streams)."""
        if stream in ("o", None):
            self.outReceived(data)
        elif stream == "e":
            self.errReceived(data)
        elif stream == "h":
            self.headerReceived(data)

    def finishReceived(self) -> None:  # noqa: N802
        pass

    def outReceived(self, data: str) -> None:  # noqa: N802
        pass

    def errReceived(self, data: str) -> None:  # noqa: N802
        pass

    def headerReceived(self, data: str) -> None:  # noqa: N802
        pass


class LogLineObserver(LogObserver):
    """Calls ``outLineReceived``/``errLineReceived``/``headerLineReceived`` once per complete
    line (without its newline); a last line without a newline comes when the log finishes.
    Lines longer than ``max_length`` characters are dropped, as in Buildbot."""

    stdoutDelimiter = "\n"  # noqa: N815 - Buildbot's names
    stderrDelimiter = "\n"  # noqa: N815
    headerDelimiter = "\n"  # noqa: N815

    def __init__(self):
        self.max_length = 16384
        self._partial: dict[str, str] = {}

    def setMaxLineLength(self, max_length: int) -> None:  # noqa: N802
        self.max_length = max_length

    def _lines(self, stream: str, data: str, delimiter: str, received) -> None:
        partial = getattr(self, "_partial", None)
        if partial is None:  # a subclass that did not call our __init__
            partial = self._partial = {}
        *lines, rest = (partial.pop(stream, "") + data).split(delimiter)
        if rest:
            partial[stream] = rest
        for line in lines:
            if len(line) <= getattr(self, "max_length", 16384):
                received(line)

    def outReceived(self, data: str) -> None:  # noqa: N802
        self._lines("o", data, self.stdoutDelimiter, self.outLineReceived)

    def errReceived(self, data: str) -> None:  # noqa: N802
        self._lines("e", data, self.stderrDelimiter, self.errLineReceived)

    def headerReceived(self, data: str) -> None:  # noqa: N802
        self._lines("h", data, self.headerDelimiter, self.headerLineReceived)

    def finishReceived(self) -> None:  # noqa: N802
        for stream, received in (("o", self.outLineReceived), ("e", self.errLineReceived),
                                 ("h", self.headerLineReceived)):
            rest = getattr(self, "_partial", {}).pop(stream, None)
            if rest:
                received(rest)

    def outLineReceived(self, line: str) -> None:  # noqa: N802
        """A complete line of stdout; override it."""

    def errLineReceived(self, line: str) -> None:  # noqa: N802
        """A complete line of stderr; override it."""

    def headerLineReceived(self, line: str) -> None:  # noqa: N802
        """A complete line of the header; override it."""


class LineConsumerLogObserver(LogLineObserver):
    """Feeds ``(stream, line)`` pairs (stream "o", "e" or "h") to the generator that
    ``consumerFunction()`` returns, started at the first line and closed at the end."""

    def __init__(self, consumerFunction):  # noqa: N803
        super().__init__()
        self.generator = None
        self.consumerFunction = consumerFunction

    def feed(self, item: tuple[str, str]) -> None:
        if self.generator is None:
            self.generator = self.consumerFunction()
            next(self.generator)
        self.generator.send(item)

    def outLineReceived(self, line: str) -> None:  # noqa: N802
        self.feed(("o", line))

    def errLineReceived(self, line: str) -> None:  # noqa: N802
        self.feed(("e", line))

    def headerLineReceived(self, line: str) -> None:  # noqa: N802
        self.feed(("h", line))

    def finishReceived(self) -> None:  # noqa: N802
        super().finishReceived()
        if self.generator is not None:
            self.generator.close()


class BufferLogObserver(LogObserver):
    """Keeps the log's stdout (and, with ``wantStderr``, its stderr) for the step to read."""

    def __init__(self, wantStdout: bool = True, wantStderr: bool = False):  # noqa: N803
        self.stdout: list[str] | None = [] if wantStdout else None
        self.stderr: list[str] | None = [] if wantStderr else None

    def outReceived(self, data: str) -> None:  # noqa: N802
        if self.stdout is not None:
            self.stdout.append(data)

    def errReceived(self, data: str) -> None:  # noqa: N802
        if self.stderr is not None:
            self.stderr.append(data)

    def getStdout(self) -> str:  # noqa: N802
        return "".join(self.stdout or [])

    def getStderr(self) -> str:  # noqa: N802
        return "".join(self.stderr or [])
