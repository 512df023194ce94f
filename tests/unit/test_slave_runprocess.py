"""The slave's process runner: real child processes, timers on an injected clock."""

import os
import signal

import pytest
import pytest_twisted
from twisted.internet import reactor, task

from buildfarm.slave.runprocess import (
    FAILURE_TIMEOUT,
    FAILURE_TIMEOUT_WITHOUT_OUTPUT,
    KILL_BACKSTOP_S,
    BadEnvironment,
    ProcessSpec,
    RunProcess,
    buildEnvironment,
    endRunningProcesses,
    signalNumber,
)

WAIT_DEADLINE_S = 10.0
POLL_S = 0.02


class Run:
    """One RunProcess with its recorded output and its own clock."""

    def __init__(self, tmp_path, argv, **limits):
        self.clock = task.Clock()
        self.output = []
        spec = ProcessSpec(argv=argv, workdir=str(tmp_path), environ=dict(os.environ), **limits)
        self.runner = RunProcess(spec, self._record, reactor, self.clock)
        self.result = None
        self.done = self.runner.start()
        self.done.addCallback(self._finished)

    def _record(self, stream, text):
        self.output.append((stream, text))

    def _finished(self, result):
        self.result = result
        return result

    def text(self, stream):
        return "".join(text for name, text in self.output if name == stream)

    async def waitFor(self, predicate, what):
        """Let the real reactor run until ``predicate()``; fail after WAIT_DEADLINE_S."""
        for _ in range(int(WAIT_DEADLINE_S / POLL_S)):
            if predicate():
                return
            await task.deferLater(reactor, POLL_S, lambda: None)
        pytest.fail(f"timed out waiting for {what}; output so far: {self.output!r}")


def processGone(pid):
    """True once ``pid`` no longer runs (a zombie nobody reaped counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest_twisted.ensureDeferred
async def test_output_streams_and_exit_code_are_reported(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "echo hi; echo err >&2; exit 3"])

    result = await run.done

    assert run.text("stdout") == "hi\n"
    assert run.text("stderr") == "err\n"
    assert result.rc == 3 and result.signal is None and result.failureReason is None


@pytest_twisted.ensureDeferred
async def test_process_runs_in_its_workdir_with_the_given_environment(tmp_path):
    environ = buildEnvironment({"GREETING": "hello"}, os.environ, str(tmp_path))
    clock = task.Clock()
    output = []
    spec = ProcessSpec(argv=["sh", "-c", 'echo "$GREETING"; pwd'], workdir=str(tmp_path),
                       environ=environ)

    result = await RunProcess(spec, lambda s, t: output.append(t), reactor, clock).start()

    assert result.rc == 0
    assert "".join(output) == f"hello\n{os.path.realpath(tmp_path)}\n"


@pytest_twisted.ensureDeferred
async def test_initial_stdin_is_written_then_closed(tmp_path):
    run = Run(tmp_path, ["cat"], initialStdin=b"fed through stdin")

    result = await run.done

    assert result.rc == 0
    assert run.text("stdout") == "fed through stdin"


@pytest_twisted.ensureDeferred
async def test_pty_gives_the_child_a_terminal_and_merges_its_streams(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "test -t 1 && echo on a tty; echo err >&2"], usePTY=True)

    result = await run.done

    assert result.rc == 0
    assert run.text("stdout").replace("\r\n", "\n") == "on a tty\nerr\n"


@pytest_twisted.ensureDeferred
async def test_pty_child_is_killed_with_its_group(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "sleep 60 & echo $!; wait"], usePTY=True)
    await run.waitFor(lambda: run.text("stdout").strip(), "the grandchild's pid")
    grandchild = int(run.text("stdout"))

    run.runner.kill("command interrupted")
    await run.done

    await run.waitFor(lambda: processGone(grandchild), "the grandchild to die")


@pytest_twisted.ensureDeferred
async def test_silence_timeout_kills_the_process_with_rc_minus_one(tmp_path):
    run = Run(tmp_path, ["sleep", "60"], timeout=10)

    run.clock.advance(10)
    result = await run.done

    assert result.rc == -1 and result.signal == signal.SIGKILL
    assert result.failureReason == FAILURE_TIMEOUT_WITHOUT_OUTPUT
    assert "command timed out: 10 seconds without output, attempting to kill" in run.text("header")
    assert "process killed by signal 9" in run.text("header")


@pytest_twisted.ensureDeferred
async def test_output_resets_the_silence_timer(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "sleep 0.2; echo tick; exec sleep 60"], timeout=10)
    run.clock.advance(8)  # before the output arrives

    await run.waitFor(lambda: "tick" in run.text("stdout"), "the output")
    run.clock.advance(8)  # 16 s since the start, 8 s since the output
    assert run.result is None

    run.clock.advance(2)
    result = await run.done
    assert result.failureReason == FAILURE_TIMEOUT_WITHOUT_OUTPUT


@pytest_twisted.ensureDeferred
async def test_max_time_kills_even_a_chatty_process(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "while :; do echo chat; sleep 0.05; done"],
              timeout=None, maxTime=5)
    await run.waitFor(lambda: "chat" in run.text("stdout"), "the first output")

    run.clock.advance(5)
    result = await run.done

    assert result.rc == -1 and result.failureReason == FAILURE_TIMEOUT
    assert "command timed out: 5 seconds elapsed, attempting to kill" in run.text("header")


@pytest_twisted.ensureDeferred
async def test_kill_reaches_grandchildren_through_the_process_group(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "sleep 60 & echo $!; wait"])
    await run.waitFor(lambda: run.text("stdout").strip(), "the grandchild's pid")
    grandchild = int(run.text("stdout"))

    run.runner.kill("command interrupted")
    result = await run.done

    assert result.rc == -1
    await run.waitFor(lambda: processGone(grandchild), "the grandchild to die")


@pytest_twisted.ensureDeferred
async def test_sigterm_first_when_sigterm_time_is_set(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "echo ready; exec sleep 60"], sigtermTime=5)
    await run.waitFor(lambda: "ready" in run.text("stdout"), "the process to run")

    run.runner.kill("command interrupted")
    result = await run.done

    assert result.signal == signal.SIGTERM and result.rc == -1
    assert "command interrupted, attempting to kill" in run.text("header")


@pytest_twisted.ensureDeferred
async def test_interrupt_signal_follows_sigterm_after_sigterm_time(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"], sigtermTime=5)
    await run.waitFor(lambda: "ready" in run.text("stdout"), "the trap to be set")

    run.runner.kill("command interrupted")
    assert run.result is None  # TERM is ignored
    run.clock.advance(5)
    result = await run.done

    assert result.signal == signal.SIGKILL


@pytest_twisted.ensureDeferred
async def test_backstop_fakes_rc_minus_one_when_the_process_survives(tmp_path):
    run = Run(tmp_path, ["sleep", "60"], interruptSignal=signal.SIGCONT)
    pid = run.runner.pid
    try:
        run.runner.kill("command interrupted")
        run.clock.advance(KILL_BACKSTOP_S)
        result = await run.done

        assert result.rc == -1
        assert "giving up" in run.text("header")
    finally:
        os.killpg(pid, signal.SIGKILL)


def test_env_list_values_are_joined_with_pathsep():
    environ = buildEnvironment({"PATH": ["/opt/bin", "/usr/bin"]}, {}, "/w")

    assert environ["PATH"] == "/opt/bin" + os.pathsep + "/usr/bin"


def test_env_none_removes_a_slave_variable():
    environ = buildEnvironment({"SECRET": None}, {"SECRET": "x", "KEEP": "y"}, "/w")

    assert "SECRET" not in environ and environ["KEEP"] == "y"


def test_env_expands_references_from_the_slave_environment():
    environ = buildEnvironment({"PATH": "/opt/bin:${PATH}", "X": "${UNSET}!"},
                               {"PATH": "/usr/bin"}, "/w")

    assert environ["PATH"] == "/opt/bin:/usr/bin"
    assert environ["X"] == "!"


def test_env_pythonpath_keeps_the_slave_value_appended():
    environ = buildEnvironment({"PYTHONPATH": "/mine"}, {"PYTHONPATH": "/slave"}, "/w")

    assert environ["PYTHONPATH"] == "/mine" + os.pathsep + "/slave"


def test_env_pwd_is_the_workdir():
    assert buildEnvironment({}, {"PWD": "/elsewhere"}, "/w")["PWD"] == "/w"


def test_env_non_string_value_is_an_error_naming_the_variable():
    with pytest.raises(BadEnvironment, match="'JOBS'.*not int"):
        buildEnvironment({"JOBS": 4}, {}, "/w")


@pytest.mark.parametrize("name", ["KILL", "SIGKILL", "kill", 9])
def test_signal_names_and_numbers_are_understood(name):
    assert signalNumber(name) == signal.SIGKILL


def test_unknown_signal_name_is_an_error():
    with pytest.raises(ValueError, match="unknown signal"):
        signalNumber("NOPE")


@pytest_twisted.ensureDeferred
async def test_paused_output_is_not_read_and_resumes_whole(tmp_path):
    # 4 MiB: far more than a pipe holds, so the child blocks while its output is not read.
    # The child says "ready" and writes the rest only once told to (by a file appearing), so
    # its pipe is still open when the test pauses it, however busy the machine.
    size = 4 * 1024 * 1024
    go = tmp_path / "go"
    child = (f"import os, sys, time\nsys.stdout.write('ready\\n'); sys.stdout.flush()\n"
             f"deadline = time.monotonic() + 30\n"
             f"while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:\n"
             f"    time.sleep(0.01)\n"
             f"sys.stdout.write('x' * {size})\n")
    run = Run(tmp_path, ["python3", "-c", child], timeout=30)
    await run.waitFor(lambda: run.text("stdout"), "the first output")
    run.runner.pauseOutput()
    go.write_text("")
    stdout_pipe = run.runner._transport.pipes[1]
    assert stdout_pipe not in reactor.getReaders()  # the child blocks on its next write
    assert "silence" not in run.runner._timers  # waiting on the master is not silence
    run.clock.advance(60)  # longer than the silence timeout: no kill while paused
    run.runner.resumeOutput()
    assert stdout_pipe in reactor.getReaders()
    assert run.runner._timers["silence"].getTime() == 60 + 30  # counted from the resume
    result = await run.done
    assert (result.rc, len(run.text("stdout"))) == (0, len("ready\n") + size)


@pytest_twisted.ensureDeferred
async def test_end_running_processes_kills_a_group_that_ignores_sigterm_after_the_grace(tmp_path):
    # A stopping slave (SlaveService.stopService) must not leave a TERM-ignoring command behind.
    run = Run(tmp_path, ["sh", "-c", "trap '' TERM; echo ready; exec sleep 60"], sigtermTime=30)
    await run.waitFor(lambda: "ready" in run.text("stdout"), "the trap to be set")
    pid = run.runner.pid
    run.runner.kill("slave stopping")  # SIGTERM, ignored; SIGKILL would come 30 s later
    stopClock = task.Clock()

    ended = endRunningProcesses(stopClock, 5)
    assert not ended.called
    stopClock.advance(5)
    await ended
    await run.waitFor(lambda: processGone(pid), "the group to be killed")
    result = await run.done

    assert result.signal == signal.SIGKILL


@pytest_twisted.ensureDeferred
async def test_end_running_processes_fires_as_soon_as_the_processes_end(tmp_path):
    run = Run(tmp_path, ["sh", "-c", "echo ready; exec sleep 60"], sigtermTime=30)
    await run.waitFor(lambda: "ready" in run.text("stdout"), "the process to start")
    stopClock = task.Clock()
    ended = endRunningProcesses(stopClock, 5)

    run.runner.kill("slave stopping")  # SIGTERM ends it
    await ended

    assert stopClock.getDelayedCalls() == []  # the grace timer was cancelled
    assert (await run.done).signal == signal.SIGTERM
    assert endRunningProcesses(stopClock, 5).called  # nothing left running
