"""``RemoteCommand``: one command run on a slave, seen from the master.

The master passes the ``RemoteCommand`` (a ``pb.Referenceable``) to the slave's
``startCommand``; the slave calls ``update`` with batches of ``[update_dict, 0]`` and then
``complete`` exactly once.  Output goes to the step's log; ``rc`` and the other keys are
kept for the step to read.  A slave lost mid-command ends the command with ``SlaveLost``.
"""

from typing import Protocol

from twisted.internet import defer
from twisted.spread import pb

from buildfarm.common.decoding import as_text
from buildfarm.common.redaction import redact_log_header

OUTPUT_KEYS = ("header", "stdout", "stderr")


class StepLog(Protocol):
    """Where a running step writes one of its logs (a command's output goes there).

    Defined here, with the command that writes to it, so that pb needs nothing of process.
    """

    def add_header(self, text: str) -> None: ...
    def add_stdout(self, text: str) -> None: ...
    def add_stderr(self, text: str) -> None: ...
    def add_named_log(self, name: str, text: str) -> None: ...  # a watched logfile's text
    def throttle(self, producer) -> None: ...  # pause ``producer`` while writes are behind


class OutputOnlyLog:
    """The part of a StepLog that a log keeping only a command's own output shares: it takes
    no named logs (a ``logfiles`` update is dropped) and never pauses the slave."""

    def add_named_log(self, name: str, text: str) -> None:
        pass

    def throttle(self, producer) -> None:
        pass


class SlaveLost(Exception):
    """The slave's connection went away while it was running something for us."""


class RemoteCommandFailed(Exception):
    """The command itself broke on the slave (bad arguments, a spawn error)."""


class CommandInterrupted(Exception):
    """The command was interrupted and the slave did not confirm it in time."""



class RemoteCommand(pb.Referenceable):
    """A command the master asked a slave to run, collecting its updates."""

    def __init__(self, name: str, args: dict, log: StepLog | None):
        self.name = name
        self.args = args
        self.log = log
        self.rc: int | None = None
        self.updates: dict = {}
        self.interrupted: str | None = None
        self._done: defer.Deferred = defer.Deferred()
        self._builder_ref = None
        self._command_id: str | None = None
        self._deadline = None

    async def run(self, builder_ref, command_id: str) -> dict:
        """Start the command on the slave and wait for ``complete``; return the last updates."""

        def lost(*_):
            if not self._done.called:
                self._done.errback(SlaveLost(f"slave lost while running {self.name}"))

        self._builder_ref, self._command_id = builder_ref, command_id
        builder_ref.notifyOnDisconnect(lost)
        transport = getattr(getattr(builder_ref, "broker", None), "transport", None)
        if transport is not None and self.log is not None:
            self.log.throttle(transport)  # a log the database cannot keep up with pauses the slave
        try:
            try:
                await builder_ref.callRemote("startCommand", self, command_id, self.name, self.args)
            except (pb.PBConnectionLost, pb.DeadReferenceError) as e:
                raise SlaveLost(f"slave lost while starting {self.name}") from e
            await self._done
        finally:
            builder_ref.dontNotifyOnDisconnect(lost)
            if self._deadline is not None and self._deadline.active():
                self._deadline.cancel()
        return dict(self.updates, rc=self.rc)

    def interrupt(self, why: str, clock, deadline_s: float) -> None:
        """Ask the slave to kill the command; end it ourselves if it has not in ``deadline_s``."""
        if self._done.called or self.interrupted:
            return
        self.interrupted = why
        if self._builder_ref is not None:
            d = self._builder_ref.callRemote("interruptCommand", self._command_id, why)
            d.addErrback(lambda _: None)  # a slave that cannot answer meets the deadline
        self._deadline = clock.callLater(deadline_s, self._give_up, deadline_s)

    def _give_up(self, deadline_s: float) -> None:
        if not self._done.called:
            self._done.errback(CommandInterrupted(
                f"the slave did not end the interrupted {self.name} within {deadline_s:g} s"))

    def remote_update(self, updates) -> None:
        """A batch of ``[update_dict, 0]`` pairs (a bare dict is accepted too)."""
        for item in updates:
            update = item[0] if isinstance(item, list | tuple) else item
            for key, value in dict(update).items():
                self._apply(as_text(key), value)

    def _apply(self, key: str, value) -> None:
        if key in OUTPUT_KEYS and self.log is not None:
            text = as_text(value)
            if key == "header":  # stock Buildbot workers log their whole environment there
                text = redact_log_header(text)
            {"header": self.log.add_header, "stdout": self.log.add_stdout,
             "stderr": self.log.add_stderr}[key](text)
        elif key == "log" and self.log is not None and isinstance(value, list | tuple):
            name, text = value  # a watched logfile's text (``logfiles``) goes to its own log
            self.log.add_named_log(as_text(name), as_text(text))
        elif key == "rc":
            self.rc = int(value)
        else:
            self.updates[key] = value

    def remote_complete(self, failure=None) -> None:
        """The command is over: ``None`` when it ran (its ``rc`` says how), else why not."""
        if self._done.called:
            return
        if failure is None:
            self._done.callback(None)
        else:
            reason = getattr(failure, "value", failure)
            self._done.errback(RemoteCommandFailed(as_text(reason)))
