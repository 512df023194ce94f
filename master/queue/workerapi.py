"""``WorkerRoutes``: the Queue's worker interface (docs/taskcluster.md, "HTTP workers"), so that
any Taskcluster worker, or a script using the official client, takes work from buildfarm.

A taskQueueId that ``c['queue']['task_queues']`` maps to PB slaves is run by the task engine;
every other one is served here:

- ``claimWork`` (POST ``/claim-work/<taskQueueId>``, ``{workerGroup, workerId, tasks}``; scopes
  ``queue:claim-work:<taskQueueId>`` and ``queue:worker-id:<workerGroup>/<workerId>``): a long poll
  that answers as soon as it claimed a task, else ``{"tasks": []}`` after ``CLAIM_WORK_TIMEOUT_S``;
  it waits on the service's ``waiters`` (woken when a task of the queue becomes pending on this
  master) and claims again every ``RECHECK_S`` (what another master made pending);
- ``claimTask`` (the older call, one given run), ``reclaimTask``, ``reportCompleted``,
  ``reportFailed`` and ``reportException`` (scopes ``queue:reclaim-task:<taskId>/<runId>`` and
  ``queue:resolve-task:<taskId>/<runId>``, which each claim's temporary credentials hold).

Each claim is ``{status, runId, workerGroup, workerId, takenUntil, task, credentials}``; the
store code is master/queue/claims.py, the credentials master/queue/claimcreds.py.  ``QueueAPI``
(queue/api.py) inherits this mixin, so the routes land in the one ``queue`` reference.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.logger import Logger

from buildfarm.master.auth.interfaces import iso
from buildfarm.master.http.body import json_object, read_body
from buildfarm.master.http.routes import request_identity
from buildfarm.master.http.tcservice import json_answer
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.claimcreds import IssuerUnavailable
from buildfarm.master.queue.claims import EXCEPTION_REASONS, Claim, UnknownRun
from buildfarm.master.queue.model import COMPLETED, EXCEPTION, FAILED, IDENTIFIER, TASK_QUEUE_ID
from buildfarm.master.queue.routing import PREFIX, QueueAPIError, api_entry, routes, task_id_arg

log = Logger()

CLAIM_WORK_TIMEOUT_S = 20.0  # Taskcluster's: claimWork answers no task after this long
RECHECK_S = 5.0  # a waiting claimWork claims again this often (tasks made pending by other masters)
MAX_CLAIM_TASKS = 32
MAX_WORKER_BODY_BYTES = 4096
CATEGORY = "Worker Interface"


class WorkerRoutes:
    """The worker interface's routes (see the module); needs ``master`` (its ``queue`` service:
    ``claims``, ``waiters``, ``issuer``; ``auth``; ``config.queue``) and ``clock``."""

    # -- helpers ---------------------------------------------------------------------------

    def _worker(self, request, count: bool) -> tuple[str, str, int]:
        """``(workerGroup, workerId, tasks)`` of the body; 400 with what is wrong."""
        body = json_object(read_body(request, MAX_WORKER_BODY_BYTES))
        allowed = {"workerGroup", "workerId", "tasks"} if count else {"workerGroup", "workerId"}
        problems = [f"unknown property {k!r}" for k in sorted(set(body) - allowed)]
        for key in ("workerGroup", "workerId"):
            if not isinstance(body.get(key), str) or not IDENTIFIER.match(body[key]):
                problems.append(f"{key} is required: 1 to 38 of [a-zA-Z0-9-_]")
        tasks = body.get("tasks", 1)
        if count and (isinstance(tasks, bool) or not isinstance(tasks, int)
                      or not 1 <= tasks <= MAX_CLAIM_TASKS):
            problems.append(f"tasks must be an integer from 1 to {MAX_CLAIM_TASKS}, not {tasks!r}")
        if problems:
            raise QueueAPIError(400, "; ".join(problems), {"problems": problems})
        return body["workerGroup"], body["workerId"], tasks

    def _http_queue(self, task_queue_id: str) -> None:
        if not TASK_QUEUE_ID.match(task_queue_id):
            raise QueueAPIError(400, "taskQueueId must be '<provisionerId>/<workerType>', not "
                                     f"{task_queue_id!r}")
        if task_queue_id in self.master.config.queue.task_queues:
            raise QueueAPIError(400, f"task queue {task_queue_id} is run by buildfarm's PB slaves "
                                     "(c['queue']['task_queues']): HTTP workers cannot claim its tasks")

    def _require_worker(self, request, worker_group: str, worker_id: str) -> None:
        self.master.auth.require(request_identity(request), f"queue:worker-id:{worker_group}/{worker_id}")

    async def _issuer_token(self) -> str:
        try:
            return await self.master.queue.issuer.token()
        except IssuerUnavailable as e:
            raise QueueAPIError(503, str(e)) from None

    def _claim_json(self, claim: Claim, token: str, with_task: bool = True) -> dict:
        run = claim.run
        body = {"status": claim.task.status(), "runId": claim.run_id, "workerGroup": run["workerGroup"],
                "workerId": run["workerId"], "takenUntil": iso(claim.taken_until),
                "credentials": self.master.queue.issuer.credentials(
                    token, claim.task.task_id, claim.run_id, run["workerGroup"], run["workerId"],
                    claim.taken_until, claim.task.body["scopes"])}
        if with_task:
            body["task"] = claim.task.body
        return body

    def _claim_timeout(self) -> int:
        return self.master.config.queue.claim_timeout_secs

    async def _poll(self, request, task_queue_id: str, worker_group: str, worker_id: str,
                    count: int) -> list[Claim]:
        """Claim until something is claimed, the caller left, or ``CLAIM_WORK_TIMEOUT_S`` passed."""
        waiters, claims = self.master.queue.waiters, self.master.queue.claims
        waiting: list[defer.Deferred] = []
        gone: list[bool] = []

        def hung_up(failure) -> None:  # stop waiting at once: a claim now would be lost
            gone.append(True)
            for d in waiting:
                d.cancel()

        request.notifyFinish().addErrback(hung_up)
        end = self.clock.seconds() + CLAIM_WORK_TIMEOUT_S
        while not gone:
            claimed = await claims.claim_work(task_queue_id, worker_group, worker_id, count,
                                              self.clock.seconds(), self._claim_timeout())
            left = end - self.clock.seconds()
            if claimed or left <= 0:
                return claimed
            waiting[:] = [waiters.wait(task_queue_id, min(RECHECK_S, left))]
            try:
                await waiting[0]
            except defer.CancelledError:
                pass
        return []

    @staticmethod
    def _run_id(runId: str) -> int:  # noqa: N803 - Taskcluster's name
        if not runId.isdigit() or int(runId) > 1000:
            raise QueueAPIError(400, f"runId must be a whole number, not {runId!r}")
        return int(runId)

    async def _report(self, request, taskId: str, runId: str, state: str, reason: str) -> bytes:  # noqa: N803
        try:
            task = await self.master.queue.claims.report(task_id_arg(taskId), self._run_id(runId), state,
                                                         reason, self.clock.seconds())
        except UnknownRun as e:
            raise QueueAPIError(404, str(e)) from None
        return json_answer(request, {"status": task.status()})

    # -- routes ------------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/claim-work/<path:taskQueueId>", "POST", scope="queue:claim-work:{taskQueueId}",
                  api=api_entry("claimWork", "Claim Work",
                                "Claim up to `tasks` pending tasks of a task queue that buildfarm's PB "
                                "slaves do not serve (400 for one they do), the highest priority first, "
                                "then the oldest. A long poll: answers as soon as a task is claimed, else "
                                "`{\"tasks\": []}` after 20 s. Each claim carries temporary credentials "
                                "for its run, valid until `takenUntil`. Also needs "
                                "`queue:worker-id:<workerGroup>/<workerId>`.", CATEGORY,
                                input=ref.CLAIM_WORK, output=ref.CLAIMED_WORK))
    async def claim_work(self, request, taskQueueId):  # noqa: N803
        """``claimWork``: ``{workerGroup, workerId, tasks}`` -> ``{"tasks": [claim, ...]}``."""
        self._http_queue(taskQueueId)
        worker_group, worker_id, count = self._worker(request, count=True)
        self._require_worker(request, worker_group, worker_id)
        token = await self._issuer_token()
        self.master.queue.watch_claims()  # a master HTTP workers poll expires claims and deadlines
        claimed = await self._poll(request, taskQueueId, worker_group, worker_id, count)
        for claim in claimed:
            log.info("Queue task {task} run {run} claimed by {group}/{worker}", task=claim.task.task_id,
                     run=claim.run_id, group=worker_group, worker=worker_id)
        return json_answer(request, {"tasks": [self._claim_json(c, token) for c in claimed]})

    async def _claim_task_values(self, request, taskId, runId) -> dict:  # noqa: N803
        task = await self.store.get(task_id_arg(taskId))
        return {"provisionerId": task.body["provisionerId"], "workerType": task.body["workerType"],
                "taskQueueId": task.body["taskQueueId"]}

    @routes.route(f"{PREFIX}/task/<taskId>/runs/<runId>/claim", "POST",
                  scope="queue:claim-task:{provisionerId}/{workerType}", resolve=_claim_task_values,
                  api=api_entry("claimTask", "Claim Task",
                                "Claim run `runId` of a task (the older, single-task call; prefer "
                                "claimWork). 409 when the run is not pending or is past the deadline. Also "
                                "needs `queue:worker-id:<workerGroup>/<workerId>`.", CATEGORY,
                                input=ref.CLAIM_TASK, output=ref.CLAIMED_TASK))
    async def claim_task(self, request, taskId, runId):  # noqa: N803
        """``claimTask``: ``{workerGroup, workerId}`` -> a claim."""
        task = await self.store.get(task_id_arg(taskId))
        self._http_queue(task.body["taskQueueId"])
        worker_group, worker_id, _ = self._worker(request, count=False)
        self._require_worker(request, worker_group, worker_id)
        token = await self._issuer_token()
        try:
            claim = await self.master.queue.claims.claim_task(
                taskId, self._run_id(runId), worker_group, worker_id, self.clock.seconds(),
                self._claim_timeout())
        except UnknownRun as e:
            raise QueueAPIError(404, str(e)) from None
        self.master.queue.watch_claims()
        return json_answer(request, self._claim_json(claim, token))

    @routes.route(f"{PREFIX}/task/<taskId>/runs/<runId>/reclaim", "POST",
                  scope="queue:reclaim-task:{taskId}/{runId}",
                  api=api_entry("reclaimTask", "Reclaim task",
                                "Move the claim's `takenUntil` on by the claim timeout "
                                "(`c['queue']['claim_timeout_secs']`) and answer new credentials, to use "
                                "in place of the claim's. 409 when the run is resolved (canceled, its "
                                "claim expired...): the worker stops the task and reports nothing.",
                                CATEGORY, output=ref.RECLAIMED))
    async def reclaim_task(self, request, taskId, runId):  # noqa: N803
        """``reclaimTask``: -> ``{status, runId, workerGroup, workerId, takenUntil, credentials}``."""
        token = await self._issuer_token()
        try:
            claim = await self.master.queue.claims.reclaim(task_id_arg(taskId), self._run_id(runId),
                                                           self.clock.seconds(), self._claim_timeout())
        except UnknownRun as e:
            raise QueueAPIError(404, str(e)) from None
        self.master.queue.watch_claims()
        return json_answer(request, self._claim_json(claim, token, with_task=False))

    @routes.route(f"{PREFIX}/task/<taskId>/runs/<runId>/completed", "POST",
                  scope="queue:resolve-task:{taskId}/{runId}",
                  api=api_entry("reportCompleted", "Report Run Completed",
                                "Resolve the running run `completed` (its dependents are scheduled in the "
                                "same transaction). 409 when it is not the current running run.",
                                CATEGORY, output=ref.STATUS))
    async def report_completed(self, request, taskId, runId):  # noqa: N803
        """``reportCompleted``: -> ``{"status": ...}``."""
        return await self._report(request, taskId, runId, COMPLETED, COMPLETED)

    @routes.route(f"{PREFIX}/task/<taskId>/runs/<runId>/failed", "POST",
                  scope="queue:resolve-task:{taskId}/{runId}",
                  api=api_entry("reportFailed", "Report Run Failed",
                                "Resolve the running run `failed`: the task's own code failed. 409 when it "
                                "is not the current running run.", CATEGORY, output=ref.STATUS))
    async def report_failed(self, request, taskId, runId):  # noqa: N803
        """``reportFailed``: -> ``{"status": ...}``."""
        return await self._report(request, taskId, runId, FAILED, FAILED)

    @routes.route(f"{PREFIX}/task/<taskId>/runs/<runId>/exception", "POST",
                  scope="queue:resolve-task:{taskId}/{runId}",
                  api=api_entry("reportException", "Report Task Exception",
                                "Resolve the running run `exception` for `reason`; `worker-shutdown` and "
                                "`intermittent-task` give the task a new pending run while it has "
                                "`retriesLeft`. 409 when it is not the current running run.", CATEGORY,
                                input=ref.EXCEPTION, output=ref.STATUS))
    async def report_exception(self, request, taskId, runId):  # noqa: N803
        """``reportException``: ``{reason}`` -> ``{"status": ...}``."""
        body = json_object(read_body(request, MAX_WORKER_BODY_BYTES))
        reason = body.get("reason")
        if reason not in EXCEPTION_REASONS or set(body) != {"reason"}:
            raise QueueAPIError(400, f"the body must be {{\"reason\": one of {list(EXCEPTION_REASONS)}}}, "
                                     f"not {body!r}"[:400])
        return await self._report(request, taskId, runId, EXCEPTION, reason)
