"""Slave commands: argument checks, output batching, and the update/complete sequence a
SlaveBuilder sends to the master's RemoteCommand."""

import os
import threading

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task, threads
from twisted.spread import pb

from buildfarm.slave.builder import UNANSWERED_HIGH_CHARS, UNANSWERED_LOW_CHARS, SlaveBuilder, _CommandChannel
from buildfarm.slave.commands.base import (
    FLUSH_DELAY_S,
    MAX_CHUNK_CHARS,
    CommandContext,
    CommandError,
    UnknownCommand,
    UpdateBatcher,
)
from buildfarm.slave.commands.logfiles import POLL_INTERVAL_S as LOG_POLL_INTERVAL_S
from buildfarm.slave.commands.logfiles import READ_STEP_BYTES, LogFileWatcher
from buildfarm.slave.commands.registry import defaultRegistry
from buildfarm.slave.commands.shell import SILENCE_TIMEOUT_S, ShellCommand
from buildfarm.slave.runtime import SlaveRuntime
from fixtures.polling import wait_for

BANANA_LIMIT = 640 * 1024
WAIT_DEADLINE_S = 10.0
POLL_S = 0.02


class RecordingCommandRef:
    """Stands in for the master's RemoteCommand reference: records every callRemote."""

    def __init__(self):
        self.calls = []

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        self.calls.append((name, *args))
        return defer.succeed(None)

    def updates(self):
        """Every update dict, in order."""
        return [entry[0] for name, *args in self.calls if name == "update" for entry in args[0]]

    def completes(self):
        return [args for name, *args in self.calls if name == "complete"]

    def text(self, key):
        return "".join(u[key] for u in self.updates() if key in u)


def shellArgs(**overrides):
    """The arguments the buildfarm master sends for a shell step."""
    args = {
        "workdir": "build", "command": ["echo", "hello"], "env": {}, "want_stdout": True,
        "want_stderr": True, "logEnviron": True, "timeout": 1200, "maxTime": None,
        "sigtermTime": None, "interruptSignal": "KILL", "usePTY": False, "logfiles": {},
        "initial_stdin": None,
    }
    args.update(overrides)
    return args


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def runtime(tmp_path, clock):
    return SlaveRuntime(str(tmp_path), defaultRegistry(), reactor, clock, lambda: None)


@pytest.fixture
def builder(runtime):
    builder = SlaveBuilder("linux", "linux-build", runtime)
    os.makedirs(builder.basedir)
    return builder


def makeShell(tmp_path, clock, **overrides):
    context = CommandContext(str(tmp_path / "builder"), str(tmp_path), reactor, clock)
    return ShellCommand(context, "1", shellArgs(**overrides), lambda entries: None)


async def waitFor(predicate, what):
    await wait_for(predicate, what, WAIT_DEADLINE_S, POLL_S)


# Arguments


def test_missing_command_is_refused_naming_it(tmp_path, clock):
    args = shellArgs()
    del args["command"]
    context = CommandContext(str(tmp_path), str(tmp_path), reactor, clock)

    with pytest.raises(CommandError, match="missing required argument 'command'"):
        ShellCommand(context, "1", args, lambda entries: None)


def test_non_string_env_value_is_refused_naming_the_variable(tmp_path, clock):
    with pytest.raises(CommandError, match="argument 'env'.*'JOBS'"):
        makeShell(tmp_path, clock, env={"JOBS": 4})


def test_wrongly_typed_timeout_is_refused(tmp_path, clock):
    with pytest.raises(CommandError, match="argument 'timeout'"):
        makeShell(tmp_path, clock, timeout="soon")


def test_absent_timeout_defaults_to_twenty_minutes_and_none_means_no_limit(tmp_path, clock):
    args = shellArgs()
    del args["timeout"]
    context = CommandContext(str(tmp_path), str(tmp_path), reactor, clock)

    assert ShellCommand(context, "1", args, lambda e: None).args["timeout"] == SILENCE_TIMEOUT_S
    assert makeShell(tmp_path, clock, timeout=None).args["timeout"] is None


def test_argument_names_may_arrive_as_bytes(tmp_path, clock):
    args = {k.encode(): v for k, v in shellArgs(command=b"echo hi").items()}
    context = CommandContext(str(tmp_path), str(tmp_path), reactor, clock)

    assert ShellCommand(context, "1", args, lambda e: None).args["command"] == "echo hi"


@pytest.mark.parametrize("workdir", ["../../outside", "/etc"])
def test_workdir_escaping_the_basedir_is_refused(tmp_path, clock, workdir):
    command = makeShell(tmp_path, clock, workdir=workdir)

    with pytest.raises(CommandError, match="outside the slave's basedir"):
        command.resolvePath(workdir)


def test_workdir_is_relative_to_the_builder_directory(tmp_path, clock):
    command = makeShell(tmp_path, clock)

    assert command.resolvePath("build") == str(tmp_path / "builder" / "build")


ALL_COMMANDS = {"shell", "uploadFile", "uploadDirectory", "downloadFile", "mkdir", "rmdir",
                "cpdir", "stat", "glob", "listdir", "rmfile", "run_isolated", "isolate_archive"}


def test_registry_reports_every_command_at_the_4x_version():
    assert defaultRegistry().versions() == {name: "3.3" for name in ALL_COMMANDS}


def test_unknown_command_name_is_refused_with_the_known_ones():
    with pytest.raises(UnknownCommand, match="unknown command 'teleport'.*shell"):
        defaultRegistry().lookup("teleport")


# Output batching


class Batches:
    def __init__(self, clock):
        self.sent = []
        self.batcher = UpdateBatcher(self.sent.append, clock)

    def strings(self):
        return [v for entries in self.sent for update, _ in entries for v in update.values()
                if isinstance(v, str)]


def test_first_header_is_sent_at_once(clock):
    batches = Batches(clock)

    batches.batcher.add({"header": "make all\n"})

    assert batches.sent == [[[{"header": "make all\n"}, 0]]]


def test_output_is_held_briefly_then_sent_together(clock):
    batches = Batches(clock)
    batches.batcher.add({"header": "make\n"})

    batches.batcher.add({"stdout": "a\n"})
    batches.batcher.add({"stdout": "b\n"})
    assert len(batches.sent) == 1

    clock.advance(FLUSH_DELAY_S)
    assert batches.sent[-1] == [[{"stdout": "a\nb\n"}, 0]]


def test_stream_change_flushes_keeping_the_order(clock):
    batches = Batches(clock)
    batches.batcher.add({"header": "make\n"})

    batches.batcher.add({"stdout": "out\n"})
    batches.batcher.add({"stderr": "err\n"})
    batches.batcher.add({"rc": 0})

    assert batches.sent[1:] == [[[{"stdout": "out\n"}, 0]],
                                [[{"stderr": "err\n"}, 0], [{"rc": 0}, 0]]]


def test_large_output_never_makes_a_string_near_the_banana_limit(clock):
    batches = Batches(clock)
    batches.batcher.add({"header": "cat big\n"})

    batches.batcher.add({"stdout": "x" * (3 * 1024 * 1024 + 17)})
    batches.batcher.flush()

    strings = batches.strings()
    assert max(len(s.encode()) for s in strings) <= MAX_CHUNK_CHARS < BANANA_LIMIT
    assert sum(len(s) for s in strings[1:]) == 3 * 1024 * 1024 + 17


def test_buffer_is_sent_when_it_reaches_64_kib_without_waiting(clock):
    batches = Batches(clock)
    batches.batcher.add({"header": "make\n"})

    batches.batcher.add({"stdout": "y" * MAX_CHUNK_CHARS})

    assert batches.sent[-1] == [[{"stdout": "y" * MAX_CHUNK_CHARS}, 0]]


# The update/complete sequence through a SlaveBuilder


@pytest_twisted.ensureDeferred
async def test_echo_sends_headers_output_rc_then_one_complete(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs())
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    updates = ref.updates()
    assert updates[0] == {"header": "echo hello\n"}
    assert ref.text("stdout") == "hello\n"
    headers = ref.text("header")
    assert " in dir " + os.path.join(builder.basedir, "build") in headers
    assert " argv: ['echo', 'hello']" in headers and " using PTY: False" in headers
    assert "program finished with exit code 0" in headers and "elapsedTime=" in headers
    assert updates[-1] == {"rc": 0}
    assert isinstance(updates[-2]["elapsed"], float)
    assert ref.calls[-1] == ("complete", None) and len(ref.completes()) == 1


@pytest_twisted.ensureDeferred
async def test_string_command_runs_through_the_shell_with_the_environment(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command="echo $GREETING | tr a-z A-Z", env={"GREETING": "hi"}))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    assert ref.text("stdout") == "HI\n"
    assert "  GREETING=hi\n" in ref.text("header")


@pytest_twisted.ensureDeferred
async def test_unwanted_stderr_is_not_sent(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command="echo out; echo err >&2", want_stderr=False))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    assert ref.text("stdout") == "out\n" and ref.text("stderr") == ""


def test_bad_arguments_complete_with_a_failure_pb_can_send(builder, clock):
    ref = RecordingCommandRef()

    assert builder.remote_startCommand(ref, "1", "shell", shellArgs(env={"N": 1})) is None
    clock.advance(0)

    [(failure,)] = ref.completes()
    assert isinstance(failure, pb.CopyableFailure)
    assert "argument 'env'" in failure.getErrorMessage()
    assert builder.command is None


def test_workdir_outside_the_basedir_completes_with_a_failure(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(workdir="../../../etc"))
    clock.advance(0)

    [(failure,)] = ref.completes()
    assert "outside the slave's basedir" in failure.getErrorMessage()


def test_unknown_command_is_refused_at_start(builder):
    with pytest.raises(UnknownCommand):
        builder.remote_startCommand(RecordingCommandRef(), "1", "teleport", {})


@pytest_twisted.ensureDeferred
async def test_second_command_while_one_runs_is_refused(builder, clock):
    ref = RecordingCommandRef()
    builder.remote_startCommand(ref, "1", "shell", shellArgs(command=["sleep", "60"]))
    clock.advance(0)
    try:
        with pytest.raises(pb.Error, match="already running command '1'"):
            builder.remote_startCommand(RecordingCommandRef(), "2", "shell", shellArgs())
    finally:
        builder.remote_interruptCommand("1", "test over")
        await waitFor(lambda: ref.completes(), "complete")


@pytest_twisted.ensureDeferred
async def test_interrupt_kills_the_command_which_still_completes(builder, clock):
    ref = RecordingCommandRef()
    builder.remote_startCommand(ref, "7", "shell", shellArgs(command=["sleep", "60"]))
    clock.advance(0)

    builder.remote_interruptCommand("7", "stopped by user")
    await waitFor(lambda: ref.completes(), "complete")

    assert "command interrupted: stopped by user, attempting to kill" in ref.text("header")
    assert ref.updates()[-1] == {"rc": -1}
    assert ref.calls[-1] == ("complete", None)
    assert builder.command is None


@pytest_twisted.ensureDeferred
async def test_silence_timeout_reports_its_failure_reason(builder, clock):
    ref = RecordingCommandRef()
    builder.remote_startCommand(ref, "1", "shell", shellArgs(command=["sleep", "60"], timeout=30))
    clock.advance(0)

    clock.advance(30)
    await waitFor(lambda: ref.completes(), "complete")

    updates = ref.updates()
    assert {"failure_reason": "timeout_without_output"} in updates
    assert updates[-1] == {"rc": -1}


@pytest_twisted.ensureDeferred
async def test_lost_master_kills_the_command_and_sends_nothing_more(builder, clock):
    ref = RecordingCommandRef()
    builder.remote_startCommand(ref, "1", "shell", shellArgs(command=["sleep", "60"]))
    clock.advance(0)
    sentBefore = len(ref.calls)

    builder.stopCommand("lost connection to master")
    await waitFor(lambda: builder.command is None, "the command to end")

    assert len(ref.calls) == sentBefore


# Watched logfiles and max_lines


@pytest_twisted.ensureDeferred
async def test_a_large_watched_log_is_read_in_a_thread_in_bounded_steps(tmp_path, clock):
    path = tmp_path / "big.log"
    size = READ_STEP_BYTES * 3 + 10
    received, steps, reader_threads = [], [], set()

    def in_thread(read):
        def recorded():
            reader_threads.add(threading.get_ident())
            data = read()
            steps.append(len(data))
            return data
        return threads.deferToThread(recorded)

    watcher = LogFileWatcher(str(path), False, received.append, clock, in_thread)
    path.write_bytes(b"x" * size)
    watcher.start()
    clock.advance(LOG_POLL_INTERVAL_S)
    await waitFor(lambda: sum(map(len, received)) == size, "the whole log")
    await watcher.stop()

    assert steps[:4] == [READ_STEP_BYTES, READ_STEP_BYTES, READ_STEP_BYTES, 10]
    assert threading.get_ident() not in reader_threads  # never on the reactor thread


@pytest_twisted.ensureDeferred
async def test_watched_logfile_text_is_sent_as_log_updates_every_two_seconds(builder, clock):
    ref = RecordingCommandRef()
    workdir = os.path.join(builder.basedir, "build")
    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command=["sleep", "60"], logfiles={"app": "app.log"}))
    clock.advance(0)
    await waitFor(lambda: builder.command is not None and builder.command.runner is not None,
                  "the process to start")

    with open(os.path.join(workdir, "app.log"), "w") as f:
        f.write("first line\n")
    clock.advance(LOG_POLL_INTERVAL_S)
    await waitFor(lambda: clock.advance(FLUSH_DELAY_S) or {"log": ("app", "first line\n")} in ref.updates(),
                  "the log update")

    try:
        assert {"log": ("app", "first line\n")} in ref.updates()
    finally:
        builder.remote_interruptCommand("1", "test over")
        await waitFor(lambda: ref.completes(), "complete")


@pytest_twisted.ensureDeferred
async def test_text_written_just_before_exit_is_sent_before_rc(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command="echo done > out.log", logfiles={"out": {"filename": "out.log"}}))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    updates = ref.updates()
    assert updates.index({"log": ("out", "done\n")}) < updates.index({"rc": 0})


@pytest_twisted.ensureDeferred
async def test_follow_sends_only_text_appended_after_the_start(builder, clock):
    ref = RecordingCommandRef()
    workdir = os.path.join(builder.basedir, "build")
    os.makedirs(workdir)
    with open(os.path.join(workdir, "app.log"), "w") as f:
        f.write("stale line from an earlier build\n")

    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command="echo fresh >> app.log", logfiles={"app": {"filename": "app.log",
                                                           "follow": True}}))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    assert [u["log"] for u in ref.updates() if "log" in u] == [("app", "fresh\n")]


@pytest_twisted.ensureDeferred
async def test_watched_log_output_resets_the_silence_timer(builder, clock):
    ref = RecordingCommandRef()
    workdir = os.path.join(builder.basedir, "build")
    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        command=["sleep", "60"], timeout=3, logfiles={"app": "app.log"}))
    clock.advance(0)
    await waitFor(lambda: builder.command is not None and builder.command.runner is not None,
                  "the process to start")

    with open(os.path.join(workdir, "app.log"), "w") as f:
        f.write("still busy\n")
    clock.advance(LOG_POLL_INTERVAL_S)  # t=2: the poll finds text; silence now ends at t=5
    await waitFor(lambda: builder.command.runner._timers["silence"].getTime() == 5,
                  "the text read in the thread")
    clock.advance(2)  # t=4: past the original t=3 deadline

    try:
        assert builder.command is not None and not ref.completes()
        assert "timed out" not in ref.text("header")
    finally:
        builder.remote_interruptCommand("1", "test over")
        await waitFor(lambda: ref.completes(), "complete")


@pytest_twisted.ensureDeferred
async def test_logfile_outside_the_basedir_is_refused(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(
        logfiles={"secrets": "../../../../etc/shadow"}))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    [(failure,)] = ref.completes()
    assert "logfiles['secrets']" in failure.getErrorMessage()
    assert "outside the slave's basedir" in failure.getErrorMessage()


@pytest.mark.parametrize("logfiles", [["app.log"], {"app": 3}, {"app": {"follow": True}}])
def test_malformed_logfiles_are_refused(tmp_path, clock, logfiles):
    with pytest.raises(CommandError, match="argument 'logfiles'"):
        makeShell(tmp_path, clock, logfiles=logfiles)


@pytest_twisted.ensureDeferred
async def test_max_lines_kills_the_command_with_its_failure_reason(builder, clock):
    ref = RecordingCommandRef()

    builder.remote_startCommand(ref, "1", "shell", shellArgs(command=["yes"], max_lines=100))
    clock.advance(0)
    await waitFor(lambda: ref.completes(), "complete")

    updates = ref.updates()
    assert "command exceeds max lines" in ref.text("header")
    assert {"failure_reason": "max_lines_failure"} in updates
    assert updates[-1] == {"rc": -1}


def test_wrongly_typed_max_lines_is_refused(tmp_path, clock):
    with pytest.raises(CommandError, match="argument 'max_lines'"):
        makeShell(tmp_path, clock, max_lines="many")


# Back-pressure: the master is behind on a command's updates


class SlowCommandRef(RecordingCommandRef):
    """A master that answers updates only when the test says so."""

    def __init__(self):
        super().__init__()
        self.unanswered = []

    def callRemote(self, name, *args):  # noqa: N802 - the PB name
        self.calls.append((name, *args))
        answer = defer.Deferred()
        self.unanswered.append(answer)
        return answer

    def answerAll(self):
        while self.unanswered:
            self.unanswered.pop(0).callback(None)


def test_a_command_pauses_while_too_much_output_awaits_answers_and_resumes_after():
    ref = SlowCommandRef()
    channel = _CommandChannel(ref, "1")
    pressure = []
    channel.onPressure = pressure.append
    quarter = "x" * (UNANSWERED_HIGH_CHARS // 4)
    for _ in range(4):
        channel.update([[{"stdout": quarter}, 0]])
    assert pressure == []  # at the mark, not past it
    channel.update([[{"log": ("build.log", quarter)}, 0]])  # watched logs count too
    assert pressure == [True]
    answers = list(ref.unanswered)
    while channel.unanswered - len(quarter) > UNANSWERED_LOW_CHARS:
        answers.pop(0).callback(None)
        assert pressure == [True]  # still above the low mark
    answers.pop(0).errback(pb.PBConnectionLost("gone"))  # a failed call counts as answered
    assert channel.unanswered <= UNANSWERED_LOW_CHARS
    assert pressure == [True, False]


def test_a_lost_connection_releases_a_paused_command():
    ref = SlowCommandRef()
    channel = _CommandChannel(ref, "1")
    pressure = []
    channel.onPressure = pressure.append
    channel.update([[{"stdout": "x" * (UNANSWERED_HIGH_CHARS + 1)}, 0]])
    channel.detach()
    assert pressure == [True, False]
    channel.update([[{"stdout": "more"}, 0]])  # ignored once detached
    assert pressure == [True, False]


@pytest_twisted.ensureDeferred
async def test_a_fast_process_waits_for_a_slow_master_instead_of_filling_the_slaves_memory(
        builder, clock):
    ref = SlowCommandRef()
    size = 8 * 1024 * 1024
    command = ["python3", "-c", f"import sys; sys.stdout.write('y' * {size})"]
    builder.remote_startCommand(ref, "1", "shell", shellArgs(command=command))
    clock.advance(0)
    await waitFor(lambda: builder.command is not None and builder.command.runner is not None
                  and builder.command.runner._outputPaused, "the output to be paused")
    waiting = builder._channel.unanswered
    assert UNANSWERED_HIGH_CHARS < waiting < UNANSWERED_HIGH_CHARS + MAX_CHUNK_CHARS * 2
    assert not ref.completes()
    while not ref.completes():  # the master catches up, a little at a time
        ref.answerAll()
        clock.advance(FLUSH_DELAY_S)
        await task.deferLater(reactor, POLL_S, lambda: None)
    assert ref.text("stdout") == "y" * size
    assert {"rc": 0} in ref.updates()
