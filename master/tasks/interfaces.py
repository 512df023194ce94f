"""``ITaskEngine``: the task engine as the Swarming API (and the pages, and the CLI through
them) calls it, and ``ITaskMaster``: the master as the engine sees it.

The API and the engine agree through the database (``master/db/tasks.py``): the API creates a
task with ``db.tasks.create`` and reads its results back from there; it tells the engine about
each new PENDING task with ``submitted``.  The engine also polls for PENDING tasks it was not
told about (created by another master or process), so a forgotten call only delays a task.

Every method returns a Deferred; none blocks the reactor.  The engine is the service named
``tasks`` in the master's tree (``master.tasks``).
"""

from zope.interface import Attribute, Interface


class UnknownTask(KeyError):
    """No task has this id."""


class UnknownBot(KeyError):
    """No slave (bot) has this name."""


class ITaskEngine(Interface):
    """Runs the tasks: matches PENDING tasks to idle slaves, runs them, ends their tries."""

    def submitted(task_id):
        """A task was just created (``db.tasks.create``; ``task_id`` is the summary's request
        id, the int ``create`` returned).  The engine decides it: an idempotent task may be
        answered from a finished twin (``deduped_from``) or attached to one in flight; a task
        no slave seen in the last 10 minutes could ever run ends NO_RESOURCE (unless its slice
        has ``wait_for_capacity``); otherwise it stays PENDING and is handed to an idle slave
        now if one can run it.  Fires with the task's result dict (``db.tasks.get_result``) as
        it stands once that decision is stored, so the API can answer with it.  Calling it for
        a task that is no longer PENDING, or twice, is harmless."""

    def cancel(task_id, kill_running):
        """Cancel a task (``task_id``: the summary's request id).  A PENDING task ends CANCELED;
        a RUNNING one is killed (SIGTERM, its grace period, then SIGKILL) and ends KILLED only
        if ``kill_running`` is true.  Fires with ``(ok, was_running)``: ``ok`` is False when the
        task had already ended, or was running and ``kill_running`` was false.  Errbacks with
        ``UnknownTask``."""

    def add_end_listener(listener):
        """Call ``listener(task_id)`` (the summary's request id) each time a try of a task ends
        and is recorded (``db.tasks.finish_run``), after the record; the Queue (master/queue/)
        resolves its runs from there at once.  Other ends (a PENDING task canceled or expired)
        are not told: a listener reads the database for those.  A listener's error is logged."""

    def terminate_bot(name):
        """Shut the slave ``name`` down gracefully after its current task, through the master
        as the SlaveAPI's shutdown does.  Fires with the id (hex string) of the termination
        task recorded for it, which ends COMPLETED once the slave has gone.  Errbacks with
        ``UnknownBot``."""


class ITaskMaster(Interface):
    """The master as the task engine needs it."""

    db = Attribute("The ``DBConnector``: ``db.tasks`` stores every task, try, output chunk and bot.")
    reactor = Attribute("The master's reactor: every timeout, expiry and poll runs on its clock.")
    config = Attribute("The current ``MasterConfig``: each slave's ``dimensions`` and ``max_builds``.")
    botmaster = Attribute("The ``BotMaster``: the attached slaves, and which of them has a free slot.")
    cas = Attribute("The ``CASService``: grants for ``run_isolated`` and whether outputs are still stored.")
