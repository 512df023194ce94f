"""``QueueService``: the service ``queue`` that runs the Queue's tasks on the task engine.

One engine, three faces: a pending Queue task of a queue named in ``c['queue']['task_queues']``
becomes a task of the task engine (master/tasks/engine.py) asking for that queue's dimensions
(master/queue/payload.py), tagged with its taskId and runId; the engine runs it on a PB slave
like any Swarming task.  The reconciler (every ``RECONCILE_INTERVAL_S`` on the master's clock
while ``c['queue']`` names a task queue, and at once when the engine records the end of a try)
then, in order:

1. ends the wait of unscheduled and pending tasks past their deadline (``deadline-exceeded``);
   a running task is not cut: ``maxRunTime`` bounds the run (docs/taskcluster.md);
2. follows each task that has an engine task: a try started marks the run running (its
   ``workerId`` the slave), a try ended resolves it (``_outcome``), and resolving satisfies
   the dependents in the same transaction (master/queue/store.py); a run the Queue resolved
   first (cancelTask, its deadline) has its engine task canceled, killing it if it runs;
3. submits the pending tasks without an engine task, the new dependents of step 2 included.

HTTP workers (master/queue/workerapi.py) take the tasks of every other taskQueueId with
claimWork.  The service holds what they share: ``waiters`` (claimWork's long polls, woken when
the store makes a task pending), ``claims`` (master/queue/claims.py) and ``issuer`` (each claim's
credentials, master/queue/claimcreds.py).  Every ``CLAIM_EXPIRY_INTERVAL_S``, whatever
``c['queue']`` says, a second loop resolves the claims whose ``takenUntil`` passed
(``claim-expired``, retried while retries are left) and ends the wait of the tasks past their
deadline.  It runs once HTTP workers poll the master (``watch_claims``), or from its start
when the database holds claims: a master no HTTP worker talks to polls nothing for them.

Everything is in the database, so a master that restarts, or another master, carries on.
"""

from __future__ import annotations

import random

from twisted.application import service
from twisted.internet import defer, task
from twisted.logger import Logger

from buildfarm.master.objectservice.objects import ObjectStore
from buildfarm.master.queue.artifacts import ArtifactStore, register_collected
from buildfarm.master.queue.claimcreds import ClaimIssuer
from buildfarm.master.queue.claims import ClaimStore
from buildfarm.master.queue.interfaces import IQueueMaster
from buildfarm.master.queue.model import COMPLETED, EXCEPTION, FAILED, PENDING, RESOLVED, RUNNING
from buildfarm.master.queue.payload import (
    MalformedPayload,
    collect_artifacts,
    engine_request,
    payload_files,
    prepare_inputs,
)
from buildfarm.master.queue.store import QueueStore, StoredTask
from buildfarm.master.queue.waiters import PendingWaiters
from buildfarm.master.tasks import ids, records
from buildfarm.master.tasks.interfaces import UnknownTask
from buildfarm.master.tasks.model import State

log = Logger()

RECONCILE_INTERVAL_S = 1.0
CLAIM_EXPIRY_INTERVAL_S = 5.0  # how late past its takenUntil a claim may be found expired
SUBMIT_LIMIT = 500  # tasks submitted per pass
WORKER_GROUP = "buildfarm"  # a run's workerGroup; its workerId is the slave's name


def outcome(state: State, exit_code: int | None) -> tuple[str, str, bool]:
    """An ended engine task as a Queue resolution: ``(state, reasonResolved, retry)``."""
    if state is State.COMPLETED:
        return (COMPLETED, "completed", False) if exit_code == 0 else (FAILED, "failed", False)
    if state is State.TIMED_OUT:  # maxRunTime exceeded: the task failed, as generic-worker says
        return FAILED, "failed", False
    if state in (State.KILLED, State.CANCELED):
        return EXCEPTION, "canceled", False
    if state is State.EXPIRED:
        return EXCEPTION, "deadline-exceeded", False
    if state is State.BOT_DIED:  # Taskcluster retries a worker lost while retries are left
        return EXCEPTION, "worker-shutdown", True
    return EXCEPTION, "internal-error", False


class QueueService(service.Service):
    """Runs the Queue's tasks on the task engine (see the module)."""

    name = "queue"

    def __init__(self, master: IQueueMaster):
        self.master = master
        self.waiters = PendingWaiters(master.reactor)
        self.store = QueueStore(master.db, on_pending=self.waiters.wake, mq=master.mq)
        self.claims = ClaimStore(self.store)
        self.issuer = ClaimIssuer(master.auth.clients, master.reactor)
        self._loop: task.LoopingCall | None = None
        self._expiry: task.LoopingCall | None = None
        self._running: defer.Deferred | None = None
        self._again = False
        self._random = random.SystemRandom()

    @property
    def clock(self):
        return self.master.reactor

    def startService(self):  # noqa: N802
        super().startService()
        self.master.tasks.add_end_listener(self._engine_task_ended)
        self._set_reconciling(self.master.config)
        return defer.ensureDeferred(self._watch_held_claims())

    async def _watch_held_claims(self) -> None:
        if await self.claims.held():
            self.watch_claims()

    def watch_claims(self) -> None:
        """Expire claims from now on (every ``CLAIM_EXPIRY_INTERVAL_S``): HTTP workers poll this
        master (master/queue/workerapi.py), or the database holds claims."""
        if self._expiry is None and self.running:
            self._expiry = task.LoopingCall(self._expire)
            self._expiry.clock = self.clock
            self._expiry.start(CLAIM_EXPIRY_INTERVAL_S, now=False)

    def reconfigService(self, config) -> None:  # noqa: N802 - Twisted's name
        """Reconcile only while ``c['queue']`` names a task queue: a master without one runs no
        Queue task (its Queue stores them; another master of the database may run them)."""
        self._set_reconciling(config)

    def _set_reconciling(self, config) -> None:
        wanted = bool(config.queue.task_queues)
        if wanted and self._loop is None:
            self._loop = task.LoopingCall(self.poke)
            self._loop.clock = self.clock
            self._loop.start(RECONCILE_INTERVAL_S, now=True)
        elif not wanted and self._loop is not None:
            if self._loop.running:
                self._loop.stop()
            self._loop = None

    async def _stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        self._expiry = None
        self._again = False
        if self._running is not None:
            await self._running

    def stopService(self):  # noqa: N802
        super().stopService()
        return defer.ensureDeferred(self._stop())

    def _expire(self) -> defer.Deferred:
        """One pass of the expiry loop (see the module); never fails (the loop goes on)."""
        d = defer.ensureDeferred(self.expire())
        d.addErrback(lambda f: log.failure("expiring the Queue's claims failed", f))
        return d

    async def expire(self) -> None:
        """Resolve the claims past their ``takenUntil``, and end the wait of the tasks past their
        deadline."""
        now = self.clock.seconds()
        await self.claims.expire(now)
        await self.store.expire_deadlines(now)

    def _engine_task_ended(self, engine_task_id: int) -> None:
        self.poke()

    def poke(self) -> defer.Deferred:
        """Reconcile now, or once more after the pass under way; fires when that pass ends."""
        if self._running is not None:
            self._again = True
            return self._running
        self._running = defer.ensureDeferred(self._passes())
        return self._running

    async def _passes(self) -> None:
        try:
            while True:
                self._again = False
                try:
                    await self.reconcile()
                except Exception:  # noqa: BLE001 - the next pass tries again
                    log.failure("reconciling the Queue failed")
                if not (self._again and self.running):
                    return
        finally:
            self._running = None

    async def reconcile(self) -> None:
        """One pass: claims and deadlines, the engine tasks followed, the pending tasks submitted."""
        await self.expire()
        for queued in await self.store.in_flight():
            await self._follow(queued)
        queues = self.master.config.queue.task_queues
        for queued in await self.store.unsubmitted(sorted(queues), SUBMIT_LIMIT):
            await self._submit(queued, queues[queued.body["taskQueueId"]])

    async def _follow(self, queued: StoredTask) -> None:
        engine_id = queued.engine_task_id
        result = await self.master.db.tasks.get_result(engine_id)
        if result is None:
            await self.store.detach(queued.task_id, engine_id)
            return
        state = State(result["state"])
        if queued.state in RESOLVED:  # resolved by the Queue first: stop its engine task
            if not state.is_final:
                try:
                    await self.master.tasks.cancel(engine_id, True)
                except UnknownTask:
                    pass
                result = await self.master.db.tasks.get_result(engine_id)
                if result is None or not State(result["state"]).is_final:
                    return  # killed: forgotten once its try ends
            await self.store.detach(queued.task_id, engine_id)
            return
        now = self.clock.seconds()
        if queued.state == PENDING and result.get("started_at") is not None:
            queued = await self.store.started(queued.task_id, queued.run_id, WORKER_GROUP,
                                              result["slave"] or "", result["started_at"])
        if state.is_final and queued.state in (PENDING, RUNNING):
            await self._collect_artifacts(queued, result, now)
            resolved, reason, retry = outcome(state, result.get("exit_code"))
            await self.store.resolve(queued.task_id, queued.run_id, resolved, reason, now, retry=retry)
            await self.store.detach(queued.task_id, engine_id)

    async def _collect_artifacts(self, queued: StoredTask, result: dict, now: float) -> None:
        """The payload's ``artifacts`` from the run's outputs, before the run resolves (a
        failure is logged: the resolution goes on)."""
        try:
            _, specs = payload_files(queued.body["payload"])
            if not specs:
                return
            collected = await collect_artifacts(self.master.cas, result.get("outputs_ref"), specs)
            artifacts = ArtifactStore(self.master.db, self.master.mq)
            objects = ObjectStore(self.master.db)
            await register_collected(artifacts, objects, queued, queued.run_id, collected, now)
        except Exception:  # noqa: BLE001 - the run resolves all the same
            log.failure("collecting the artifacts of Queue task {id} failed", id=queued.task_id)

    async def _submit(self, queued: StoredTask, dimensions: dict[str, list[str]]) -> None:
        now = self.clock.seconds()
        try:
            mounts, artifacts = payload_files(queued.body["payload"])
            inputs = await prepare_inputs(self.master.cas, mounts, artifacts)
            request = engine_request(queued, dimensions, now, self.master.config.tasks.min_timeout_secs,
                                     inputs)
        except MalformedPayload as e:
            log.info("Queue task {id}: {problem}", id=queued.task_id, problem=str(e))
            await self.store.resolve(queued.task_id, queued.run_id, EXCEPTION, "malformed-payload", now)
            return
        request_id = ids.new_request_id(self.clock, self._random.getrandbits)
        engine_id, _ = await self.master.db.tasks.create(records.new_task(request, request_id, now))
        if not await self.store.attach(queued.task_id, queued.run_id, engine_id):
            current = await self.store.get(queued.task_id)
            if current.engine_task_id != engine_id:  # the run changed (canceled) while submitted
                await self.master.tasks.cancel(engine_id, True)
            return
        await self.master.tasks.submitted(engine_id)
