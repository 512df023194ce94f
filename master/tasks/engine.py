"""``TaskEngine``: the service ``tasks`` that runs Swarming tasks on the master's slaves.

It keeps, in memory, each attached slave's dimensions and the queues it can serve
(``QueueCache``), and the slice deadlines of the PENDING tasks it knows.  Everything else is in
the database (``db.tasks``), which is also how it agrees with the API and with other masters:

- a new task (``submitted``, or found by the poll) is decided: answered from a finished
  idempotent twin, attached to an in-flight one, ended NO_RESOURCE, or left PENDING and offered
  to the idle slaves of its queue;
- an idle slave (attached, or a slot freed by a build or a task) reaps the most urgent PENDING
  task of its queues; ``db.tasks.start_run`` gives a task to one slave only;
- a try runs as the slave command ``shell`` (or ``run_isolated`` for a slice with inputs) on
  the slave's task builder, its output streamed into ``db.tasks.append_output`` chunks; it
  ends COMPLETED, TIMED_OUT, KILLED or BOT_DIED (an idempotent task that dies is tried once
  more), and its attached twins end with its result;
- the poll (every ``POLL_INTERVAL_S`` on the injected clock) finds tasks created elsewhere,
  moves PENDING tasks past their slice's expiration to the next slice or ends them EXPIRED.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from twisted.application import service
from twisted.internet import defer, task, threads
from twisted.logger import Logger
from zope.interface import implementer

from buildfarm.common.decoding import as_text
from buildfarm.common.isolated import IsolatedFormatError, from_json
from buildfarm.master.cas import grants
from buildfarm.master.cas.interfaces import NotStored, StoreUnavailable
from buildfarm.master.cas.namespaces import BadNamespace, Namespace, parse_namespace
from buildfarm.master.pb.buildslave import TASKS_BUILDER
from buildfarm.master.pb.remotecommand import (
    CommandInterrupted,
    OutputOnlyLog,
    RemoteCommand,
    RemoteCommandFailed,
    SlaveLost,
)
from buildfarm.master.process.steps.isolate import is_loopback_url, master_address_on, port_number
from buildfarm.master.tasks import ids
from buildfarm.master.tasks.dimensions import (
    QueueCache,
    describe_no_resource,
    nearest_slaves,
    slave_dimensions,
)
from buildfarm.master.tasks.interfaces import ITaskEngine, UnknownBot, UnknownTask
from buildfarm.master.tasks.model import State, TaskProperties, TaskRequest, TaskSlice
from buildfarm.master.tasks.records import new_task, request_of

log = Logger()

BOT_SEEN_INTERVAL_S = 60.0  # how often the attached slaves' last_seen is written (dead after 600 s unseen)
POLL_INTERVAL_S = 5.0  # how often the database is read for tasks created elsewhere, and expiries
POLL_LIMIT = 1000  # PENDING tasks read per poll
REAP_LIMIT = 10  # PENDING tasks a reaping slave tries, most urgent first
BOT_SEEN_WINDOW_S = 600.0  # NO_RESOURCE: only slaves seen this recently count
REUSE_WINDOW_S = 7 * 24 * 3600.0  # an idempotent task reuses results this recent
MASTER_TIMEOUT_MARGIN_S = 60.0  # the master ends a try this long after the slave should have
KILL_DEADLINE_S = 30.0  # after the grace period, how long a killed try may take to end
# A try still RUNNING this long after its hard timeout and grace period has lost the master that
# ran it (that master would have ended it MASTER_TIMEOUT_MARGIN_S + KILL_DEADLINE_S after them).
LOST_TRY_AFTER_S = MASTER_TIMEOUT_MARGIN_S + KILL_DEADLINE_S + 60.0
OUTPUT_CHUNK_MAX_BYTES = 100 * 1024  # one database write of output at most
OUTPUT_BUFFER_MAX_BYTES = 1024 * 1024  # past this much unwritten output the slave is paused
GRANT_MARGIN_S = 600.0  # a run_isolated grant outlives the try's timeouts by this much
# the slave's failure_reason after its hard and its I/O timeout (runprocess.py)
TIMEOUT_REASONS = frozenset({"timeout", "timeout_without_output"})
OUTPUTS_NAMESPACE = "default-gzip"  # where the outputs of a task without inputs go
STORE_CHECK_BATCH = 1000  # digests per ``contains`` call when checking a twin's outputs
MAX_ISOLATED_BYTES = 64 * 1024 * 1024  # an outputs .isolated larger than this is not read
TERMINATE_TAG = "swarming.terminate:1"
TERMINATE_PRIORITY = 0
TERMINATE_EXPIRATION_S = 24 * 3600  # recorded only: a termination is never reaped


@dataclass
class _Pending:
    """A PENDING task the engine knows: its slices' dimensions and absolute deadlines."""

    created_at: float
    slices: list[tuple[dict[str, list[str]], float, str]]  # (dimensions, expires at, queue key)
    request: Any = None  # the parsed TaskRequest (requests never change): a try needs no re-read
    current: int = 0


@dataclass
class _Run:
    """A try this master runs."""

    task_id: int
    try_number: int
    slave: Any
    request: Any = None  # the parsed TaskRequest
    slice_index: int = 0  # the slice this try runs
    command: RemoteCommand | None = None
    ended_as: State | None = None  # KILLED or TIMED_OUT when the master ended it
    deadline: Any = None
    output: _TaskOutput | None = None
    started_at: float = 0.0
    twins: list[int] = field(default_factory=list)
    released: bool = False  # the slave's slot is given back


class _TaskOutput(OutputOnlyLog):
    """A try's stdout and stderr, written to ``db.tasks.append_output`` in order, one write at
    a time, at most ``OUTPUT_CHUNK_MAX_BYTES`` each; past ``OUTPUT_BUFFER_MAX_BYTES`` unwritten
    the slave's connection is paused until the database catches up."""

    def __init__(self, db, task_id: int, try_number: int):
        self.db, self.task_id, self.try_number = db, task_id, try_number
        self.size = 0  # bytes written to the database
        self._buffer = bytearray()
        self._writing: defer.Deferred | None = None
        self._producer = None
        self._paused = False
        self.failed: Exception | None = None

    def add_header(self, text: str) -> None:
        pass  # the command's own headers are not the task's output

    def add_stdout(self, text: str) -> None:
        self._add(text.encode("utf-8"))

    add_stderr = add_stdout

    def throttle(self, producer) -> None:
        self._producer = producer

    def _add(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) > OUTPUT_BUFFER_MAX_BYTES and self._producer is not None and not self._paused:
            self._paused = True
            self._producer.pauseProducing()
        if self._writing is None:
            self._writing = defer.ensureDeferred(self._write_all())

    async def _write_all(self) -> None:
        try:
            while self._buffer and self.failed is None:
                chunk = bytes(self._buffer[:OUTPUT_CHUNK_MAX_BYTES])
                try:
                    self.size = await self.db.tasks.append_output(self.task_id, self.try_number, self.size,
                                                                  chunk)
                except Exception as e:  # noqa: BLE001 - the try goes on; its output is cut here
                    log.failure("storing output of task {id} failed", id=self.task_id)
                    self.failed = e
                del self._buffer[:len(chunk)]
                if self._paused and len(self._buffer) <= OUTPUT_BUFFER_MAX_BYTES // 2:
                    self._paused = False
                    self._producer.resumeProducing()
        finally:
            self._writing = None

    async def flush(self) -> None:
        """Wait until all output received so far is stored."""
        while self._writing is not None:
            await self._writing


def _slice_deadline(stored: dict, slice_index: int) -> float:
    """When slice ``slice_index`` of the stored request expires: its creation plus the
    expirations of the slices up to it."""
    return stored["created_at"] + sum(s["expiration_secs"] for s in stored["slices"][:slice_index + 1])


@implementer(ITaskEngine)
class TaskEngine(service.Service):
    """Matches PENDING tasks to idle slaves, runs them, and ends their tries (see the module)."""

    name = "tasks"

    def __init__(self, master):
        self.master = master
        self.queues = QueueCache()
        self.dimensions: dict[str, dict[str, list[str]]] = {}  # attached slaves' dimensions
        self.pending: dict[int, _Pending] = {}  # PENDING tasks this engine decided, may be reaped
        self.deciding: set[int] = set()  # tasks being decided (dedup, NO_RESOURCE): not reaped yet
        self.runs: dict[int, _Run] = {}  # task id -> its running try on this master
        self.quarantined: dict[str, str] = {}  # attached slave -> why it takes no task
        self.taking: set[int] = set()  # tasks a slave of this master is taking (start_run in flight)
        self.killed_while_taken: set[int] = set()  # killed (kill_running) while being taken
        self._decisions = defer.DeferredLock()  # one twin decision at a time
        self._expiring = defer.DeferredLock()  # one pass over the slice deadlines at a time
        self._expiry = None  # the call at the earliest slice deadline of ``pending``
        self._reaping: set[str] = set()
        self._reap_again: set[str] = set()
        self._poller: task.LoopingCall | None = None
        self._seen: task.LoopingCall | None = None
        self._work: set[defer.Deferred] = set()
        self._terminations: dict[str, int] = {}  # slave name -> its termination task, until it goes
        self._end_listeners: list = []  # told of each recorded end of a try (add_end_listener)

    @property
    def clock(self):
        return self.master.reactor

    @property
    def db(self):
        return self.master.db

    # -- service ---------------------------------------------------------------------------

    def startService(self):  # noqa: N802
        super().startService()
        self.master.botmaster.slave_listeners.append(self)
        for slave in list(self.master.botmaster.slaves.values()):
            self.slave_attached(slave)
        self._set_polling(self.master.config)
        self._seen = task.LoopingCall(self._touch_attached)
        self._seen.clock = self.clock
        self._seen.start(BOT_SEEN_INTERVAL_S, now=False)

    def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Poll only while some slave has a pool: a master without one runs no task; an
        admin's quarantine (``c['tasks']['quarantined']``) changes at once."""
        self._set_polling(config)
        for slave in list(self.master.botmaster.slaves.values()):
            if slave.name in self.dimensions:
                self._spawn(self._quarantine(slave, config), f"quarantining {slave.name}")

    def _set_polling(self, config) -> None:
        wanted = any((getattr(slave, "dimensions", None) or {}).get("pool")
                     for slave in config.slaves.values())
        if wanted and self._poller is None:
            self._poller = task.LoopingCall(self._poll_logged)
            self._poller.clock = self.clock
            self._poller.start(POLL_INTERVAL_S, now=True)
        elif not wanted and self._poller is not None:
            if self._poller.running:
                self._poller.stop()
            self._poller = None

    def stopService(self):  # noqa: N802
        super().stopService()
        if self in self.master.botmaster.slave_listeners:
            self.master.botmaster.slave_listeners.remove(self)
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        self._poller = None
        if self._seen is not None and self._seen.running:
            self._seen.stop()
        self._seen = None
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        for run in self.runs.values():
            if run.deadline is not None and run.deadline.active():
                run.deadline.cancel()
        return defer.DeferredList(list(self._work), consumeErrors=True)

    def _touch_attached(self) -> None:
        """The attached slaves are seen now: a bot is dead for the API and NO_RESOURCE only
        when no master has seen it for ``BOT_DEAD_AFTER_S``, not since it attached."""
        names = [slave.name for slave in self.master.botmaster.slaves.values() if slave.attached]
        # not returned: the LoopingCall keeps its minute whatever the database's pace
        self._spawn(self.db.tasks.touch_bots(names, self.clock.seconds()), "recording the slaves seen")

    def _spawn(self, coro, what: str, waited: bool = True) -> defer.Deferred:
        """Run ``coro``, logging its failure; stopping waits for it when ``waited`` (not for
        running tries: they end when the BotMaster, stopped later, drops their slaves)."""
        d = defer.ensureDeferred(coro)
        if waited:
            self._work.add(d)
        d.addErrback(lambda f: log.failure("{what} failed", f, what=what))
        d.addBoth(lambda r: (self._work.discard(d), r)[1])
        return d

    # -- slaves (the BotMaster's listener calls) -------------------------------------------

    def slave_attached(self, slave) -> None:
        """A slave attached: record its dimensions, then let it reap."""
        self._spawn(self._record_slave(slave), f"recording the dimensions of {slave.name}")

    async def _record_slave(self, slave) -> None:
        config = self.master.config.slaves.get(slave.name)
        dims, warnings = slave_dimensions(slave.name, slave.info, getattr(config, "dimensions", None))
        for warning in warnings:
            log.warn("slave {name}: {warning}", name=slave.name, warning=warning)
        await self.db.tasks.set_bot(slave.name, dims, self.clock.seconds(), version=slave.version,
                                    state={"attached": True})
        if not slave.attached:
            return
        self.dimensions[slave.name] = dims
        await self._quarantine(slave, self.master.config)
        if self.queues.set_slave(slave.name, dims):
            log.info("slave {name} serves tasks with dimensions {dims}", name=slave.name,
                     dims=", ".join(f"{k}:{'|'.join(v)}" for k, v in dims.items()))
        await self._end_lost_tries(slave)
        self.reap(slave)

    async def _end_lost_tries(self, slave) -> None:
        """End BOT_DIED the tries the database says the slave runs but this master does not:
        a slave that attaches runs nothing, so they were lost with the master that ran them
        (killed or restarted) or with the slave's earlier connection."""
        for lost in await self.db.tasks.running_on(slave.name):
            await self._end_lost_try(lost, slave)

    async def end_tries_lost_with_master(self, tries: list[dict]) -> None:
        """End the tries a dead master ran (``db.masters.reclaim`` lists them: ``request_id``,
        ``try_number``, ``slice_index``, ``started_at``, ``slave``) as a lost slave's: BOT_DIED,
        or back to PENDING for an idempotent task's first try (``_end_try``)."""
        for lost in tries:
            await self._end_lost_try(lost, lost["slave"])

    async def _end_lost_try(self, lost: dict, slave) -> None:
        run = self.runs.get(lost["request_id"])
        if run is not None and run.try_number == lost["try_number"]:
            return  # ours: it ends when its command sees the old connection gone
        name = slave if isinstance(slave, str) else slave.name
        log.warn("task {id}: lost with the master or the connection that ran it on {name}",
                 id=ids.run_id(lost["request_id"], lost["try_number"]), name=name)
        run = _Run(lost["request_id"], lost["try_number"], slave, started_at=lost["started_at"])
        stored = await self.db.tasks.get_request(run.task_id)
        await self._end_try(run, stored, lost["slice_index"], State.BOT_DIED, internal_failure=1)

    async def _quarantine(self, slave, config) -> None:
        """Record whether the slave is quarantined (an admin's reason, or too little free disk
        in its basedir as it reported when it attached): a quarantined slave takes no task."""
        settings = config.tasks
        reason = dict(settings.quarantined).get(slave.name)
        free = slave.info.get("disk_free_mb") if isinstance(slave.info, dict) else None
        if reason is None and isinstance(free, int) and not isinstance(free, bool) \
                and free < settings.quarantine_below_free_mb:
            reason = (f"low disk: {free} MB free in the slave's basedir "
                      f"(c['tasks']['quarantine_below_free_mb'] is {settings.quarantine_below_free_mb})")
        if reason == self.quarantined.get(slave.name):
            return
        if reason is None:
            self.quarantined.pop(slave.name, None)
            log.info("slave {name} is out of quarantine", name=slave.name)
        else:
            self.quarantined[slave.name] = reason
            log.warn("slave {name} is quarantined: {reason}", name=slave.name, reason=reason)
        await self.db.tasks.set_bot_flags(slave.name, quarantined=reason)
        if reason is None:
            self.reap(slave)

    def slave_detached(self, slave) -> None:
        """A slave's connection is gone: it serves no queue; its tries end BOT_DIED (their
        commands see the connection lost)."""
        self.dimensions.pop(slave.name, None)
        self.quarantined.pop(slave.name, None)
        self.queues.remove_slave(slave.name)
        self._spawn(self.db.tasks.set_bot_state(slave.name, {"attached": False}),
                    f"marking {slave.name} gone")

    def slot_freed(self, slave) -> None:
        """A build or a task of the slave ended: it may reap."""
        self.reap(slave)

    # -- deciding new tasks ----------------------------------------------------------------

    def submitted(self, task_id: int) -> defer.Deferred:
        return self._spawn(self._submitted(task_id), f"deciding task {task_id}")

    async def _submitted(self, task_id: int) -> dict | None:
        self.deciding.add(task_id)  # from now on: the poll leaves it to this decision
        try:
            result = await self.db.tasks.get_result(task_id)
            if result is None:
                raise UnknownTask(task_id)
            if result["state"] == State.PENDING.name and result["twin_of"] is None:
                await self._decide(task_id, result)
        finally:
            self.deciding.discard(task_id)
        return await self.db.tasks.get_result(task_id)

    async def _decide(self, task_id: int, result: dict) -> None:
        """Answer the task from a twin or end it NO_RESOURCE, else offer it to the slaves.  Until
        the decision is taken no slave reaps it: a slave freed meanwhile would run an
        idempotent task that a finished twin answers."""
        self.deciding.add(task_id)
        try:
            stored = await self.db.tasks.get_request(task_id)
            request = request_of(stored)
            now = self.clock.seconds()
            pending = self._remember(task_id, stored, request)
            slice_row = stored["slices"][pending.current]
            if slice_row["idempotent"]:
                if await self._deduplicate(task_id, slice_row["properties_hash"], now):
                    return
            props: TaskProperties = request.task_slices[pending.current].properties
            # an attached slave that serves the queue settles it without reading the bots
            if (not request.task_slices[pending.current].wait_for_capacity
                    and not self.queues.slaves_for(pending.slices[pending.current][2])):
                if await self._no_resource(task_id, props, now):
                    return
        finally:
            self.deciding.discard(task_id)
        self._offer(pending)

    def _remember(self, task_id: int, stored: dict, request) -> _Pending:
        known = self.pending.get(task_id)
        if known is not None:
            return known
        deadline, slices = stored["created_at"], []
        for task_slice in request.task_slices:
            deadline += task_slice.expiration_secs
            dims = task_slice.properties.dimensions_dict()
            slices.append((dims, deadline, self.queues.add_queue(dims)))
        pending = _Pending(stored["created_at"], slices, request)
        self.pending[task_id] = pending
        self._schedule_expiry(slices[0][1])
        return pending

    async def _deduplicate(self, task_id: int, properties_hash: str, now: float) -> bool:
        """Answer an idempotent task from a finished twin, or attach it to one in flight.  The
        attach is decided in the database (``attach_twin`` serializes the decisions of a hash
        across masters); the lock here only spares this master's own decisions the wait."""
        reusable = await self.db.tasks.find_reusable(properties_hash, now - REUSE_WINDOW_S)
        if reusable is not None and await self._outputs_stored(reusable.get("outputs_ref")):
            ended = await self.db.tasks.end_pending(
                task_id, State.COMPLETED.name, now, deduped_from=ids.summary_id(reusable["request_id"]),
                exit_code=reusable["exit_code"], duration=reusable["duration"],
                outputs_ref=reusable["outputs_ref"], slave=reusable["slave"],
                started_at=reusable["started_at"], try_number=0)
            if ended:
                self.pending.pop(task_id, None)
                log.info("task {id} answered from {twin}", id=ids.summary_id(task_id),
                         twin=ids.summary_id(reusable["request_id"]))
                return True
        async with self._decisions:
            twin = await self.db.tasks.attach_twin(task_id, properties_hash, now)
        if twin is not None:
            self.pending.pop(task_id, None)
            log.info("task {id} attached to its twin {twin} in flight", id=ids.summary_id(task_id),
                     twin=ids.summary_id(twin))
            return True
        return False

    async def _outputs_stored(self, outputs_ref: dict | None) -> bool:
        """Whether every item of a finished twin's outputs is still in the store: its
        ``.isolated``, the ``.isolated`` it includes, and every file they list (read through
        the store, parsed on the CAS pool, checked ``STORE_CHECK_BATCH`` digests a call)."""
        if not outputs_ref or not outputs_ref.get("isolated"):
            return True
        try:
            namespace = parse_namespace(outputs_ref.get("namespace") or OUTPUTS_NAMESPACE)
        except BadNamespace:
            return False
        try:
            return await self._tree_stored(namespace, outputs_ref["isolated"])
        except (NotStored, StoreUnavailable, ValueError, IsolatedFormatError) as e:
            # an unreadable tree, or a store that cannot answer now: the task runs again
            log.info("outputs {digest} cannot be reused: {e}", digest=outputs_ref["isolated"], e=e)
            return False

    async def _tree_stored(self, namespace: Namespace, root: str) -> bool:
        store, seen = self.master.cas.store, set()
        documents, files = [root], set()
        while documents:
            if not await self._all_stored(store, namespace, documents):
                return False
            seen.update(documents)
            included: list[str] = []
            for digest in documents:
                data, _ = await store.get(namespace, digest)
                listed, includes = await threads.deferToThreadPool(
                    self.clock, self.master.cas.pool, _files_and_includes, namespace, data)
                files.update(listed)
                included += [i for i in includes if i not in seen]
            documents = sorted(set(included))
        return await self._all_stored(store, namespace, sorted(files))

    @staticmethod
    async def _all_stored(store, namespace: Namespace, digests: list[str]) -> bool:
        for start in range(0, len(digests), STORE_CHECK_BATCH):
            batch = digests[start:start + STORE_CHECK_BATCH]
            if len(await store.contains(namespace, batch)) != len(set(batch)):
                return False
        return True

    async def _no_resource(self, task_id: int, props: TaskProperties, now: float) -> bool:
        dims = props.dimensions_dict()
        bots = await self.db.tasks.get_bots(seen_since=now - BOT_SEEN_WINDOW_S)
        seen = {bot["name"]: bot["dimensions"] for bot in bots}
        seen.update(self.dimensions)
        near = nearest_slaves(dims, seen)
        if near and not near[0].missing:
            return False
        error = describe_no_resource(dims, near)
        if await self.db.tasks.end_pending(task_id, State.NO_RESOURCE.name, now, error=error):
            self.pending.pop(task_id, None)
            log.info("task {id}: {error}", id=ids.summary_id(task_id), error=error)
        return True

    def _offer(self, pending: _Pending) -> None:
        """Let the idle slaves of the task's queue reap."""
        key = pending.slices[pending.current][2]
        for name in self.queues.slaves_for(key):
            slave = self.master.botmaster.slaves.get(name)
            if slave is not None:
                self.reap(slave)

    # -- reaping ---------------------------------------------------------------------------

    def reap(self, slave) -> None:
        """Give the slave the most urgent PENDING task it can serve, if it has a free slot."""
        if slave.name in self._reaping:
            self._reap_again.add(slave.name)
            return
        self._reaping.add(slave.name)
        self._spawn(self._reap_loop(slave), f"reaping for {slave.name}")

    async def _reap_loop(self, slave) -> None:
        try:
            while True:
                self._reap_again.discard(slave.name)
                started = await self._reap_one(slave)
                if not started and slave.name not in self._reap_again:
                    return
        finally:
            self._reaping.discard(slave.name)

    def _may_start_task(self, slave) -> bool:
        """Whether the slave has a free slot and no task running: its one task builder runs
        one command at a time, in one working directory."""
        return (slave.tasks_running == 0 and slave.name not in self.quarantined
                and self.master.botmaster.slave_accepts_task(slave))

    async def _reap_one(self, slave) -> bool:
        if not self.running or not self._may_start_task(slave):
            return False
        keys = self.queues.queues_for(slave.name)
        if not keys:
            return False
        for row in await self.db.tasks.get_pending(limit=REAP_LIMIT, queue_keys=sorted(keys)):
            pending = self.pending.get(row["request_id"])
            if row["request_id"] in self.deciding or pending is None:
                continue  # not decided yet (here, or by the poll for a task made elsewhere)
            if not self._may_start_task(slave):
                return False
            # only on the slice read here: the try then knows its slice without reading it back
            task_id = row["request_id"]
            self.taking.add(task_id)
            try:
                try_number = await self.db.tasks.start_run(task_id, slave.name, self.clock.seconds(),
                                                           slice_index=row["current_slice"])
                if try_number is None:
                    continue  # another slave or master took it, it ended, or it fell back a slice
                self._start(slave, task_id, try_number, pending.request, row["current_slice"])
            finally:
                self.taking.discard(task_id)
                self.killed_while_taken.discard(task_id)
            return True
        return False

    # -- running a try ---------------------------------------------------------------------

    def _start(self, slave, task_id: int, try_number: int, request, slice_index: int) -> None:
        run = _Run(task_id, try_number, slave, request, slice_index, started_at=self.clock.seconds())
        if task_id in self.killed_while_taken:
            run.ended_as = State.KILLED  # its command is not started (_run)
        self.runs[task_id] = run
        self.pending.pop(task_id, None)
        slave.tasks_running += 1
        d = self._spawn(self._run(run), f"running task {ids.summary_id(task_id)}", waited=False)
        d.addBoth(lambda _: self._ended(run))

    def _ended(self, run: _Run) -> None:
        """Give the try's slot back (once: when the try is recorded, or when ``_run`` fails)."""
        if run.released:
            return
        run.released = True
        run.slave.tasks_running -= 1
        if self.runs.get(run.task_id) is run:
            del self.runs[run.task_id]
        if run.deadline is not None and run.deadline.active():
            run.deadline.cancel()
        self.master.botmaster.maybe_shut_down_slave(run.slave)  # terminate: after its task, as after a build
        self.master.botmaster.slot_freed(run.slave)

    async def _run(self, run: _Run) -> None:
        request = run.request
        props = request.task_slices[run.slice_index].properties
        # the bot shows its task while the command starts (awaited before the try is recorded)
        busy = defer.ensureDeferred(self.db.tasks.set_bot_state(
            run.slave.name, {"attached": True}, task_id=ids.run_id(run.task_id, run.try_number)))
        busy.addErrback(lambda f: log.failure("marking {name} busy failed", f, name=run.slave.name))
        name, args = self._command_for(props, run.slave)
        run.output = _TaskOutput(self.db, run.task_id, run.try_number)
        run.command = RemoteCommand(name, args, run.output)
        hard = props.execution_timeout_secs or 0
        run.deadline = self.clock.callLater(hard + (props.grace_period_secs or 0) + MASTER_TIMEOUT_MARGIN_S,
                                            self._master_timeout, run)
        ref = run.slave.remote_builders.get(TASKS_BUILDER)
        state, fields = State.BOT_DIED, {"internal_failure": 1}
        try:
            if ref is None:
                raise SlaveLost(f"slave {run.slave.name} has no task builder")
            if run.ended_as is State.KILLED:
                raise CommandInterrupted("killed (kill_running) before it started")
            outcome = await run.command.run(ref, f"task-{ids.run_id(run.task_id, run.try_number)}")
            state, fields = self._outcome(run, outcome)
        except SlaveLost as e:
            log.warn("task {id}: {why}", id=ids.run_id(run.task_id, run.try_number), why=e)
        except CommandInterrupted as e:
            state, fields = run.ended_as or State.KILLED, {}
            log.warn("task {id}: {why}", id=ids.run_id(run.task_id, run.try_number), why=e)
        except RemoteCommandFailed as e:
            log.warn("task {id} could not run: {why}", id=ids.run_id(run.task_id, run.try_number), why=e)
        except Exception:  # noqa: BLE001 - the slave refused it (pb.RemoteError), ...: end the try anyway
            log.failure("task {id} could not run", id=ids.run_id(run.task_id, run.try_number))
        await run.output.flush()
        await busy
        await self._end_try(run, None, run.slice_index, state, **fields)
        await self.db.tasks.set_bot_state(run.slave.name, {"attached": bool(run.slave.attached)})

    def _outcome(self, run: _Run, outcome: dict) -> tuple[State, dict]:
        rc = outcome.get("rc")
        fields: dict[str, Any] = {"exit_code": rc}
        output = outcome.get("isolated_output")
        if isinstance(output, str | bytes):
            args = run.command.args
            fields["outputs_ref"] = {"isolated": as_text(output), "isolatedserver": args.get("server"),
                                     "namespace": args.get("namespace")}
        if run.ended_as is not None:
            return run.ended_as, fields
        if as_text(outcome.get("failure_reason") or "") in TIMEOUT_REASONS:
            return State.TIMED_OUT, fields
        return State.COMPLETED, fields

    def _command_for(self, props: TaskProperties, slave=None) -> tuple[str, dict]:
        """The slave command of a try: ``run_isolated`` for a slice with inputs, and for one
        that needs what only it gives (named caches, outputs, secret bytes: then it starts in
        an empty run directory); ``shell`` in ``_tasks/build[/relative_cwd]`` otherwise.  The
        arguments carry the secret bytes: they are never logged (here or on the slave)."""
        env: dict[str, Any] = {key: value for key, value in props.env}
        for key, paths in props.env_prefixes:
            env[key] = [*paths, "${%s}" % key]
        timeouts = {"hard": props.execution_timeout_secs or None, "io": props.io_timeout_secs or None,
                    "grace": props.grace_period_secs or None}
        if props.inputs_ref is not None or props.caches or props.outputs or props.secret_bytes:
            inputs = props.inputs_ref
            namespace = inputs.namespace if inputs is not None else OUTPUTS_NAMESPACE
            server = (inputs.isolatedserver if inputs is not None else "") or self._cas_url(slave)
            cas = self.master.config.cas
            lifetime = (timeouts["hard"] or 0) + (timeouts["grace"] or 0) + GRANT_MARGIN_S
            token = grants.mint(cas.upload_secret, namespace, ("read", "write"), lifetime, self.clock, "task")
            return "run_isolated", {
                "isolated": inputs.isolated if inputs is not None else None, "server": server,
                "namespace": namespace, "auth_header": f"Bearer {token}",
                "command": list(props.command) or None, "extra_args": list(props.extra_args), "env": env,
                "relative_cwd": props.relative_cwd or None,
                "caches": [{"name": c.name, "path": c.path} for c in props.caches],
                "outputs": list(props.outputs), "secret_bytes": props.secret_bytes,
                "hard_timeout": timeouts["hard"], "io_timeout": timeouts["io"],
                "grace_period": timeouts["grace"], "cache_policies": None}
        workdir = "build" if not props.relative_cwd else f"build/{props.relative_cwd}"
        return "shell", {"workdir": workdir, "command": list(props.command) + list(props.extra_args),
                         "env": env or None, "timeout": timeouts["io"], "maxTime": timeouts["hard"],
                         # SIGTERM, then SIGKILL after the grace period (none: SIGKILL at once)
                         "sigtermTime": timeouts["grace"], "interruptSignal": "KILL",
                         "logEnviron": False, "usePTY": False}

    def _cas_url(self, slave) -> str | None:
        """The master's Isolate API as ``slave`` reaches it: ``c['buildbotURL']`` unless it
        names a loopback host, else the master's address on the slave's connection and the
        www port (as the RunIsolated step finds it); None when there is no web port."""
        config = self.master.config
        if config.buildbot_url and not is_loopback_url(config.buildbot_url):
            return config.buildbot_url.rstrip("/")
        port = port_number(config.www_port)
        ref = slave.remote_builders.get(TASKS_BUILDER) if slave is not None else None
        host = master_address_on(ref) or "127.0.0.1"
        return None if port is None else f"http://{host}:{port}"

    def _master_timeout(self, run: _Run) -> None:
        """The slave did not end the try in time: the master ends it TIMED_OUT."""
        if run.command is not None and run.ended_as is None:
            run.ended_as = State.TIMED_OUT
            log.warn("task {id} outlived its timeouts; ending it", id=ids.run_id(run.task_id, run.try_number))
            run.command.interrupt("the master's timeout", self.clock, KILL_DEADLINE_S)

    async def _end_try(self, run: _Run, stored: dict | None, slice_index: int, state: State,
                       **fields) -> None:
        """End the try in ``state`` (``stored``: its stored request, read here when None and
        needed: a try that ran has its parsed request and reads nothing back).  An idempotent
        task's first try lost with its slave (BOT_DIED) goes back to PENDING instead, in the
        same transaction (as Swarming's, no client sees it end), if its slice has not expired;
        otherwise the task's attached twins end with it (KILLED: they are released, and decided
        again).  Nothing more when the try
        was ended already (by a slave attaching again)."""
        if stored is None and (run.request is None or state is State.BOT_DIED):
            stored = await self.db.tasks.get_request(run.task_id)  # a try that ran reads nothing back
        request = run.request or request_of(stored)
        now = self.clock.seconds()
        retry = (state is State.BOT_DIED and run.try_number == 1
                 and request.task_slices[slice_index].properties.idempotent
                 and now < _slice_deadline(stored, slice_index))
        if not await self.db.tasks.finish_run(run.task_id, run.try_number, state.name, now, retry=retry,
                                              duration=now - run.started_at, **fields):
            return
        self._tell_ended(run.task_id)
        if self.runs.get(run.task_id) is run:
            self._ended(run)  # the slave may take its next task while twins are ended or a retry queued
        if retry:
            log.info("task {id} lost its slave; trying it once more", id=ids.summary_id(run.task_id))
            pending = self._remember(run.task_id, stored, request)
            pending.current = slice_index
            self._schedule_expiry(pending.slices[slice_index][1])
            self._offer(pending)
            return
        if state is State.KILLED:
            # its owner killed it; the owners of its attached twins did not: they run on their own
            for twin in await self.db.tasks.release_twins(run.task_id, now):
                self.submitted(twin)
            return
        if any(task_slice.properties.idempotent for task_slice in request.task_slices):
            await self._end_twins(run.task_id)  # only an idempotent slice gets twins (attach_twin)

    def add_end_listener(self, listener) -> None:
        self._end_listeners.append(listener)

    def _tell_ended(self, task_id: int) -> None:
        for listener in self._end_listeners:
            try:
                listener(task_id)
            except Exception:  # noqa: BLE001 - a listener's failure is not the try's
                log.failure("an end listener failed on task {id}", id=ids.summary_id(task_id))

    async def _end_twins(self, task_id: int) -> None:
        result = await self.db.tasks.get_result(task_id)
        now = self.clock.seconds()
        for twin in await self.db.tasks.get_twins(task_id):
            await self.db.tasks.end_pending(
                twin, result["state"], now, deduped_from=ids.summary_id(task_id),
                exit_code=result["exit_code"], duration=result["duration"], outputs_ref=result["outputs_ref"],
                slave=result["slave"], started_at=result["started_at"],
                internal_failure=int(result["internal_failure"]), try_number=0)

    # -- cancel and terminate --------------------------------------------------------------

    def cancel(self, task_id: int, kill_running: bool) -> defer.Deferred:
        return defer.ensureDeferred(self._cancel(task_id, kill_running))

    async def _cancel(self, task_id: int, kill_running: bool) -> tuple[bool, bool]:
        result = await self.db.tasks.get_result(task_id)
        if result is None:
            raise UnknownTask(task_id)
        now = self.clock.seconds()
        if result["state"] == State.PENDING.name:
            if await self.db.tasks.end_pending(task_id, State.CANCELED.name, now):
                self.pending.pop(task_id, None)
                for twin in await self.db.tasks.release_twins(task_id, now):
                    self.submitted(twin)
                return True, False
            result = await self.db.tasks.get_result(task_id)
        if result["state"] != State.RUNNING.name or not kill_running:
            return False, result["state"] == State.RUNNING.name
        run = self.runs.get(task_id)
        if run is None and task_id in self.taking:
            self.killed_while_taken.add(task_id)  # a slave here is taking it: it will not start
            return True, True
        if run is None:
            return False, True  # another master runs it
        run.ended_as = State.KILLED
        if run.command is None:
            return True, True  # its command is not made yet: it will not start (_run)
        request = request_of(await self.db.tasks.get_request(task_id))
        grace = request.task_slices[result["current_slice"]].properties.grace_period_secs or 0
        run.command.interrupt("canceled (kill_running)", self.clock, grace + KILL_DEADLINE_S)
        return True, True

    def terminate_bot(self, name: str) -> defer.Deferred:
        return defer.ensureDeferred(self._terminate_bot(name))

    async def _terminate_bot(self, name: str) -> str:
        """Record the termination as a task the bot runs (``Terminate <bot>``, tagged
        ``swarming.terminate:1``) and ask the slave to shut down after its current work; the
        task ends COMPLETED once the slave has gone idle (BOT_DIED if it was lost with work
        still running).  A bot not attached gets a termination
        that ends EXPIRED at once (there is nothing to shut down).  Asking again while one is
        under way answers the same task."""
        bot = await self.db.tasks.get_bot(name)
        slave = self.master.botmaster.slaves.get(name)
        if bot is None and slave is None:
            raise UnknownBot(name)
        if slave is not None and name in self._terminations:
            return ids.summary_id(self._terminations[name])
        now = self.clock.seconds()
        dims = (bot or {}).get("dimensions") or self.dimensions.get(name) or {}
        request = termination_request(name, dims.get("pool") or [])
        request_id = ids.new_request_id(self.clock, random.SystemRandom().getrandbits)
        if slave is None or not slave.attached:
            await self.db.tasks.create(new_task(request, request_id, now, result={
                "state": State.EXPIRED.name, "abandoned_at": now, "error": f"slave {name} is not attached"}))
            return ids.summary_id(request_id)
        await self.db.tasks.create_running(new_task(request, request_id, now), name, now)
        self._terminations[name] = request_id
        gone_idle = [True]  # whether the slave ran nothing when its connection went

        def connection_lost() -> None:
            gone_idle[0] = not slave.tasks_running and not self.master.botmaster.builds_running_on(slave)

        broker = getattr(slave.mind, "broker", None)
        if broker is not None:
            broker.notifyOnDisconnect(connection_lost)
        slave.wait_detached().addCallback(lambda _: self._spawn(
            self._terminated(name, request_id, now, gone_idle[0]), f"ending the termination of {name}"))
        self.master.botmaster.request_slave_shutdown(name)
        log.info("slave {name} terminates after its current work (task {id})", name=name,
                 id=ids.summary_id(request_id))
        return ids.summary_id(request_id)

    async def _terminated(self, name: str, request_id: int, started_at: float, idle: bool) -> None:
        """The slave is gone: COMPLETED when it went idle (as told), BOT_DIED when it was lost
        with a build or a task still running."""
        if self._terminations.get(name) == request_id:
            del self._terminations[name]
        now = self.clock.seconds()
        if idle:
            await self.db.tasks.finish_run(request_id, 1, State.COMPLETED.name, now, exit_code=0,
                                           duration=now - started_at)
        else:
            await self.db.tasks.finish_run(request_id, 1, State.BOT_DIED.name, now, internal_failure=1,
                                           duration=now - started_at)

    # -- the poll --------------------------------------------------------------------------

    def _poll_logged(self) -> defer.Deferred:
        d = defer.ensureDeferred(self.poll())
        d.addErrback(lambda f: log.failure("polling for tasks failed", f))
        return d

    async def poll(self) -> None:
        """Decide the PENDING tasks created elsewhere; expire slices past their deadline;
        let every idle slave reap."""
        for row in await self.db.tasks.get_pending(limit=POLL_LIMIT):
            task_id = row["request_id"]
            if task_id in self.pending or task_id in self.deciding:
                continue  # known, or being decided (submitted): deciding it twice races
            if row["current_slice"] == 0:
                await self._decide(task_id, row)
            else:
                stored = await self.db.tasks.get_request(task_id)
                self._remember(task_id, stored, request_of(stored)).current = row["current_slice"]
        await self._expire_due_slices()
        await self._end_overdue_tries()
        for slave in list(self.master.botmaster.slaves.values()):
            if slave.name in self.dimensions:
                self.reap(slave)

    async def _end_overdue_tries(self) -> None:
        """End BOT_DIED the tries still RUNNING ``LOST_TRY_AFTER_S`` past their hard timeout and
        grace period that this master does not run: the master that ran them is gone, and their
        slave did not attach again (which would have ended them, ``_end_lost_tries``)."""
        now = self.clock.seconds()
        for row in await self.db.tasks.running_since(now - LOST_TRY_AFTER_S, limit=POLL_LIMIT):
            run = self.runs.get(row["request_id"])
            if run is not None and run.try_number == row["try_number"]:
                continue
            stored = await self.db.tasks.get_request(row["request_id"])
            props = request_of(stored).task_slices[row["slice_index"]].properties
            timeouts = (props.execution_timeout_secs or 0) + (props.grace_period_secs or 0)
            if now < row["started_at"] + timeouts + LOST_TRY_AFTER_S:
                continue
            log.warn("task {id} on {slave} outlived its timeouts with no master running it; ending it",
                     id=ids.run_id(row["request_id"], row["try_number"]), slave=row["slave"])
            run = _Run(row["request_id"], row["try_number"], row["slave"], started_at=row["started_at"])
            await self._end_try(run, stored, row["slice_index"], State.BOT_DIED, internal_failure=1)

    def _schedule_expiry(self, due: float | None = None) -> None:
        """Wake at the earliest slice deadline of the PENDING tasks known (``due``: one more
        deadline, no earlier than that; without it the earliest of all is found): a slice
        expires at its deadline, not at the next poll."""
        if not self.running or not self.pending:
            return
        if due is None:
            due = min(p.slices[p.current][1] for p in self.pending.values())
        if self._expiry is not None and self._expiry.active():
            if self._expiry.getTime() <= due:
                return
            self._expiry.cancel()
        self._expiry = self.clock.callLater(max(0.0, due - self.clock.seconds()), self._expiry_due)

    def _expiry_due(self) -> None:
        self._expiry = None
        self._spawn(self._expire_due_slices(), "expiring pending tasks")

    async def _expire_due_slices(self) -> None:
        """Move each known PENDING task past its slice's deadline to its next slice, or end it
        EXPIRED; then wake again at the next deadline.  One pass at a time: two would both try
        to advance a task, and the loser would forget it."""
        async with self._expiring:
            now = self.clock.seconds()
            for task_id, pending in list(self.pending.items()):
                await self._expire(task_id, pending, now)
        self._schedule_expiry()

    async def _expire(self, task_id: int, pending: _Pending, now: float) -> None:
        while pending.slices[pending.current][1] <= now:
            if pending.current + 1 < len(pending.slices):
                key = pending.slices[pending.current + 1][2]
                if not await self.db.tasks.advance_slice(task_id, pending.current, key, now):
                    self.pending.pop(task_id, None)
                    return
                pending.current += 1
                log.info("task {id} falls back to slice {n}", id=ids.summary_id(task_id), n=pending.current)
                self._offer(pending)
                continue
            self.pending.pop(task_id, None)
            # a task another master attached to a twin meanwhile waits for the twin's result
            if await self.db.tasks.end_pending(task_id, State.EXPIRED.name, now, unattached=True):
                log.info("task {id} expired", id=ids.summary_id(task_id))
                for twin in await self.db.tasks.release_twins(task_id, now):
                    self.submitted(twin)
            return


def termination_request(name: str, pools: list[str]) -> TaskRequest:
    """The request recorded for terminating bot ``name`` (of the pool ``pools`` names)."""
    dimensions = [("id", (name,))] + ([("pool", tuple(pools))] if pools else [])
    return TaskRequest(name=f"Terminate {name}", priority=TERMINATE_PRIORITY,
                       tags=(TERMINATE_TAG, f"id:{name}", *(f"pool:{p}" for p in pools)),
                       task_slices=(TaskSlice(TaskProperties(dimensions=tuple(dimensions)),
                                              TERMINATE_EXPIRATION_S),))


def _files_and_includes(namespace: Namespace, stored: bytes) -> tuple[list[str], list[str]]:
    """The file digests and the included ``.isolated`` of an ``.isolated`` as the store keeps
    it (inflated no further than ``MAX_ISOLATED_BYTES``).  Blocking: a thread."""
    inflater = namespace.decompressor()
    content = inflater.decompress(stored, MAX_ISOLATED_BYTES)
    if getattr(inflater, "unconsumed_tail", b""):
        raise ValueError(f"the .isolated is larger than {MAX_ISOLATED_BYTES} bytes")
    isolated = from_json(json.loads(content.decode("utf-8")))
    files = [entry.digest for entry in isolated.files.values() if entry.digest is not None]
    return files, list(isolated.includes)
