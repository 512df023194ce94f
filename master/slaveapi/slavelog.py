"""What a slave's ``twistd.log`` says: when its lines were written, whether its buildslave
stopped, whether a command is running.

Our slave writes (as any twistd application) lines like::

    2026-11-27T17:08:40+0000 [-] Loading buildbot.tac...
    2026-11-27T17:08:40+0000 [twisted.scripts._twistd_unix.UnixAppLogger#info] twistd 26.10.0 starting up.
    2026-11-27T17:09:02+0000 [buildfarm.slave.builder#info] runtests: starting command 3 (shell)
    2026-11-27T17:09:03+0000 [buildfarm.slave.builder#info] runtests: command 3 done
    2026-11-27T17:10:40+0000 [buildfarm.slave.service#info] master requested shutdown; stopping
    2026-11-27T17:10:40+0000 [twisted.internet.base#info] Main loop terminated.
    2026-11-27T17:10:40+0000 [twisted.scripts._twistd_unix.UnixAppLogger#info] Server Shut Down.

(older twistd versions write ``2026-11-27 17:08:40+0000 [-] ...``; both are read).
"""

import re
from dataclasses import dataclass
from datetime import datetime

TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:[.,]\d+)?(?P<tz>Z|[+-]\d{2}:?\d{2})?\s")
# A twistd process ending: the last two lines it writes.
STOP_MARKERS = ("Server Shut Down.", "Main loop terminated.")
START_MARKERS = ("Loading buildbot.tac", " starting up.")
SHUTDOWN_ANNOUNCEMENTS = ("master requested shutdown", "SIGHUP received: shutting down",
                          "shutdown.stamp touched", "Received SIGTERM", "Received SIGINT")
COMMAND_STARTED = re.compile(r": starting command (?P<id>\S+)")
COMMAND_DONE = re.compile(r": command (?P<id>\S+) done")

STOPPED, READY, RUNNING_COMMAND = "stopped", "ready", "running_command"


@dataclass(frozen=True)
class LogLine:
    """One line of the log with its time (epoch seconds), when it has one."""

    when: float | None
    text: str


def parse_line(line: str) -> LogLine:
    """The line with its timestamp read (a line without one, a traceback's, has None)."""
    match = TIMESTAMP.match(line)
    if match is None:
        return LogLine(None, line)
    tz = (match.group("tz") or "").replace("Z", "+0000").replace(":", "")
    stamp = f"{match.group('date')} {match.group('time')}{tz}"
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S%z" if tz else "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return LogLine(None, line)
    return LogLine(moment.timestamp(), line)  # without an offset: the master's local time


def timestamped_lines(text: str) -> list[LogLine]:
    return [parsed for line in text.splitlines() if (parsed := parse_line(line)).when is not None]


def last_stop(text: str) -> LogLine | None:
    """The line saying the buildslave stopped, when no start follows it in ``text``."""
    stop = None
    for line in timestamped_lines(text):
        if any(marker in line.text for marker in START_MARKERS):
            stop = None
        elif any(line.text.rstrip().endswith(marker) for marker in STOP_MARKERS):
            if stop is None or "Server Shut Down." in line.text:
                stop = line
    return stop


def shutdown_announcement(text: str) -> LogLine | None:
    """The last line where the slave said why it is stopping."""
    found = [line for line in timestamped_lines(text)
             if any(word in line.text for word in SHUTDOWN_ANNOUNCEMENTS)]
    return found[-1] if found else None


@dataclass(frozen=True)
class LogState:
    """What the tail of a twistd.log says the buildslave is doing, as of its last line."""

    state: str     # STOPPED, READY or RUNNING_COMMAND
    last: LogLine  # the last timestamped line


def log_state(text: str) -> LogState | None:
    """The buildslave's state from the tail of its log; None when no line has a timestamp."""
    lines = timestamped_lines(text)
    if not lines:
        return None
    if last_stop(text) is not None:
        return LogState(STOPPED, lines[-1])
    running: set[str] = set()
    for line in lines:
        if any(marker in line.text for marker in START_MARKERS):
            running.clear()
        elif started := COMMAND_STARTED.search(line.text):
            running.add(started.group("id"))
        elif done := COMMAND_DONE.search(line.text):
            running.discard(done.group("id"))
    return LogState(RUNNING_COMMAND if running else READY, lines[-1])
