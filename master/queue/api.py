"""Taskcluster's Queue service at ``/api/queue/v1/`` (docs/taskcluster.md, "The Queue service"),
in Taskcluster's shapes so that the official client's ``taskcluster.Queue`` drives it.

Each route is declared once with its scope and its ``APIEntry`` (the ``queue`` reference).
``createTask`` needs Taskcluster's scopes: ``queue:create-task:<priority>:<taskQueueId>`` (the
route's, from the body), then, in the handler, ``queue:scheduler-id:<schedulerId>``, the task's
own ``scopes`` and ``queue:route:<route>`` for each of its ``routes``.  Reading a task, its
status and the lists is public, as in Taskcluster.  A refusal answers Taskcluster's error
shape, ``{"code", "message", "requestInfo"}`` (the Auth API's, master/authapi/api.py).
"""


from twisted.logger import Logger

from buildfarm.master.auth.issuer import IssuerUnavailable
from buildfarm.master.auth.scopes import ALL_OF
from buildfarm.master.http.body import json_object, read_body
from buildfarm.master.http.routes import PUBLIC, request_identity
from buildfarm.master.http.tcservice import add_taskcluster_error_handlers, error_answer, json_answer
from buildfarm.master.queue import apireference as ref
from buildfarm.master.queue.artifactapi import ArtifactRoutes
from buildfarm.master.queue.faces import Faces, refuse_change
from buildfarm.master.queue.metaapi import MetaRoutes
from buildfarm.master.queue.model import TaskDefinitionError, check_definition
from buildfarm.master.queue.routing import (
    PREFIX,
    TASK_SCOPE_ARGS,
    QueueAPIError,
    api_entry,
    app,
    page_args,
    routes,
    task_id_arg,
    task_page,
)
from buildfarm.master.queue.store import (
    QueueConflict,
    QueueInputError,
    UnknownQueueTask,
)
from buildfarm.master.queue.workerapi import WorkerRoutes

log = Logger()

MAX_BODY_BYTES = 1024 * 1024


class QueueAPI(WorkerRoutes, ArtifactRoutes, MetaRoutes):
    """The Queue's routes over ``master.db`` (its ``QueueStore``); ``master`` gives ``auth``,
    ``db``, ``reactor`` and ``config`` (the builders and ``c['queue']`` of the faces and the
    task-queue metadata: faces.py, metaapi.py)."""

    app = app
    routes = routes

    def __init__(self, master):
        self.master = master
        self.clock = master.reactor
        self.store = master.queue.store  # the service's: its changes wake claimWork
        self.faces = Faces(master)  # build requests and Swarming tasks as read-only tasks
        self.started = self.clock.seconds()

    def resource(self):
        return self.app.resource()

    # -- errors, in Taskcluster's shape ----------------------------------------------------

    @app.handle_errors(QueueAPIError)
    def _api_error(self, request, failure):
        return self._error(request, failure.value.status, failure.value.message, failure.value.extra)

    @app.handle_errors(TaskDefinitionError)
    def _bad_definition(self, request, failure):
        return self._error(request, 400, str(failure.value), {"problems": failure.value.problems})

    @app.handle_errors(QueueInputError)
    def _bad_input(self, request, failure):
        return self._error(request, 400, str(failure.value))

    @app.handle_errors(QueueConflict)
    def _conflict(self, request, failure):
        return self._error(request, 409, str(failure.value))

    @app.handle_errors(IssuerUnavailable)
    def _no_issuer(self, request, failure):
        return self._error(request, 503, str(failure.value))

    @app.handle_errors(UnknownQueueTask)
    def _unknown(self, request, failure):
        return self._error(request, 404, f"no task {failure.value.args[0]}")

    add_taskcluster_error_handlers(app, "Queue API", lambda api: api.clock)

    def _error(self, request, status: int, message: str, extra: dict | None = None) -> bytes:
        return error_answer(request, status, message, self.clock.seconds(), extra)

    # -- scope values, resolved before the route's scope is checked ---------------------------

    async def _definition_values(self, request, taskId) -> dict:  # noqa: N803 - Taskcluster's name
        definition = self._definition(request, taskId)
        return {"priority": definition.body["priority"], "taskQueueId": definition.task_queue_id}

    def _definition(self, request, task_id: str):
        cached = getattr(request, "_queue_definition", None)
        if cached is None:
            refuse_change(task_id)
            body = json_object(read_body(request, MAX_BODY_BYTES))
            cached = request._queue_definition = check_definition(task_id, body, self.clock.seconds())
            refuse_change(cached.task_group_id, "task group")  # a buildset takes no Queue task
        return cached

    async def _group_values(self, request, taskGroupId) -> dict:  # noqa: N803
        refuse_change(taskGroupId, "task group")
        group = await self.store.group(task_id_arg(taskGroupId, "taskGroupId"))
        return {"schedulerId": group["schedulerId"]}

    async def _task_values(self, request, taskId) -> dict:  # noqa: N803
        refuse_change(taskId)
        task = await self.store.get(task_id_arg(taskId))
        return {"schedulerId": task.body["schedulerId"], "taskGroupId": task.body["taskGroupId"]}

    # -- routes ------------------------------------------------------------------------------

    @routes.route(f"{PREFIX}/ping", "GET", scope=PUBLIC,
                  api=api_entry("ping", "Ping the server", "`{alive, uptime}`.", "Ping Server",
                                output=ref.PING))
    def ping(self, request):
        """``ping``: ``{"alive": true, "uptime": seconds}``."""
        return json_answer(request, {"alive": True, "uptime": self.clock.seconds() - self.started})

    @routes.route(f"{PREFIX}/task/<taskId>", "PUT", scope="queue:create-task:{priority}:{taskQueueId}",
                  resolve=_definition_values,
                  api=api_entry("createTask", "Create new task",
                           "Create a task (idempotent: the same definition again answers its status; a "
                           "different one 409). Needs `queue:create-task:<priority>:<taskQueueId>`, "
                           "`queue:scheduler-id:<schedulerId>`, the task's `scopes` and "
                           "`queue:route:<route>` for each route. A task with dependencies not yet "
                           "satisfied is `unscheduled`; one whose dependency does not exist or expires "
                           "before its deadline is refused.", "Tasks",
                           input=ref.CREATE_TASK, output=ref.STATUS))
    async def create_task(self, request, taskId):  # noqa: N803
        """``createTask``: a task definition -> ``{"status": ...}``."""
        definition = self._definition(request, taskId)
        required = [f"queue:scheduler-id:{definition.scheduler_id}", *definition.body["scopes"],
                    *(f"queue:route:{route}" for route in definition.body["routes"])]
        self.master.auth.require(request_identity(request), {ALL_OF: list(dict.fromkeys(required))})
        task, _ = await self.store.create(definition, self.clock.seconds())
        return json_answer(request, {"status": task.status()})

    @routes.route(f"{PREFIX}/task/<taskId>", "GET", scope=PUBLIC,
                  api=api_entry("task", "Get task definition",
                           "The task's definition, with Taskcluster's defaults filled in.", "Tasks",
                           output=ref.TASK))
    async def task(self, request, taskId):  # noqa: N803
        """``task``: the definition as stored."""
        return json_answer(request, (await self._task_or_face(request, taskId)).body)

    @routes.route(f"{PREFIX}/task/<taskId>/status", "GET", scope=PUBLIC,
                  api=api_entry("status", "Get task status", "The task's state and runs.", "Tasks",
                           output=ref.STATUS))
    async def status(self, request, taskId):  # noqa: N803
        """``status``: ``{"status": ...}``."""
        return json_answer(request, {"status": (await self._task_or_face(request, taskId)).status()})

    async def _task_or_face(self, request, task_id: str):
        """The Queue's task, else the build request's or Swarming task's face (faces.py)."""
        try:
            return await self.store.get(task_id_arg(task_id))
        except UnknownQueueTask:
            return await self.faces.task(self._identity(request), task_id)

    def _identity(self, request):
        """The caller of a public route (anonymous when its credentials were refused: the route
        table identified it without failing the call)."""
        try:
            return request_identity(request)
        except AttributeError:
            return self.master.auth.anonymous()

    @routes.route(f"{PREFIX}/task-group/<taskGroupId>/list", "GET", scope=PUBLIC,
                  api=api_entry("listTaskGroup", "List task group",
                           "The tasks of a group by taskId, each `{status, task}`; paged with "
                           "`continuationToken` (at most 1000 a page).", "Task Groups",
                           query=ref.PAGE_QUERY, output=ref.TASK_GROUP))
    async def list_task_group(self, request, taskGroupId):  # noqa: N803
        """``listTaskGroup``: ``{"taskGroupId", "tasks": [{status, task}], "continuationToken"?}``."""
        limit, after = page_args(request)
        found = await self.store.list_group(task_id_arg(taskGroupId, "taskGroupId"), after, limit + 1)
        if not found and self.faces.is_face(taskGroupId):
            found = await self.faces.group(self._identity(request), taskGroupId, after, limit + 1)
        return json_answer(request, task_page({"taskGroupId": taskGroupId}, found, limit))

    @routes.route(f"{PREFIX}/task-group/<taskGroupId>", "GET", scope=PUBLIC,
                  api=api_entry("getTaskGroup", "Get task group",
                           "`{taskGroupId, schedulerId, expires, sealed?}` of a group that has tasks.",
                           "Task Groups", output=ref.TASK_GROUP_INFO))
    async def get_task_group(self, request, taskGroupId):  # noqa: N803
        """``getTaskGroup``."""
        try:
            group = await self.store.group(task_id_arg(taskGroupId, "taskGroupId"))
        except UnknownQueueTask:
            group = await self.faces.group_info(self._identity(request), taskGroupId)
        return json_answer(request, group)

    @routes.route(f"{PREFIX}/task-group/<taskGroupId>/seal", "POST",
                  scope="queue:seal-task-group:{schedulerId}/{taskGroupId}", resolve=_group_values,
                  api=api_entry("sealTaskGroup", "Seal task group",
                           "No task may be created in the group from now on (createTask answers 409).",
                           "Task Groups", output=ref.TASK_GROUP_INFO))
    async def seal_task_group(self, request, taskGroupId):  # noqa: N803
        """``sealTaskGroup``: the group, ``sealed`` set."""
        return json_answer(request, await self.store.seal_group(taskGroupId, self.clock.seconds()))

    @routes.route(f"{PREFIX}/task-group/<taskGroupId>/cancel", "POST",
                  scope="queue:cancel-task-group:{schedulerId}/{taskGroupId}", resolve=_group_values,
                  api=api_entry("cancelTaskGroup", "Cancel task group",
                           "Cancel every unresolved task of the group, as cancelTask does (in one "
                           "transaction); seal the group first to stop new tasks joining it.",
                           "Task Groups", output=ref.GROUP_CANCELED))
    async def cancel_task_group(self, request, taskGroupId):  # noqa: N803
        """``cancelTaskGroup``: ``{taskGroupId, taskGroupSize, cancelledCount, taskIds}``."""
        size, canceled = await self.store.cancel_group(taskGroupId, self.clock.seconds())
        return json_answer(request, {"taskGroupId": taskGroupId, "taskGroupSize": size,
                               "cancelledCount": len(canceled), "taskIds": canceled})

    @routes.route(f"{PREFIX}/task/<taskId>/dependents", "GET", scope=PUBLIC,
                  api=api_entry("listDependentTasks", "List dependent tasks",
                           "The tasks that depend on this one, each `{status, task}`; paged with "
                           "`continuationToken`.", "Tasks", query=ref.PAGE_QUERY, output=ref.DEPENDENTS))
    async def list_dependent_tasks(self, request, taskId):  # noqa: N803
        """``listDependentTasks``: ``{"taskId", "tasks": [{status, task}], "continuationToken"?}``."""
        limit, after = page_args(request)
        try:
            found = await self.store.list_dependents(task_id_arg(taskId), after, limit + 1)
        except UnknownQueueTask:
            await self.faces.task(self._identity(request), taskId)  # no Queue task depends on a face
            found = []
        return json_answer(request, task_page({"taskId": taskId}, found, limit))

    @routes.route(f"{PREFIX}/task/<taskId>/cancel", "POST", scope=f"queue:cancel-task:{TASK_SCOPE_ARGS}",
                  resolve=_task_values,
                  api=api_entry("cancelTask", "Cancel task",
                           "Resolve the task `exception` with reason `canceled` (a resolved task is left "
                           "as it is); its dependents are updated at once.", "Tasks", output=ref.STATUS))
    async def cancel_task(self, request, taskId):  # noqa: N803
        """``cancelTask``: ``{"status": ...}``."""
        task = await self.store.cancel(taskId, self.clock.seconds())
        return json_answer(request, {"status": task.status()})

    @routes.route(f"{PREFIX}/task/<taskId>/schedule", "POST",
                  scope=f"queue:schedule-task:{TASK_SCOPE_ARGS}", resolve=_task_values,
                  api=api_entry("scheduleTask", "Schedule defined task",
                           "Make an `unscheduled` task pending whatever its dependencies.", "Tasks",
                           output=ref.STATUS))
    async def schedule_task(self, request, taskId):  # noqa: N803
        """``scheduleTask``: ``{"status": ...}``; 409 past the deadline."""
        task = await self.store.schedule(taskId, self.clock.seconds())
        return json_answer(request, {"status": task.status()})

    @routes.route(f"{PREFIX}/task/<taskId>/rerun", "POST", scope=f"queue:rerun-task:{TASK_SCOPE_ARGS}",
                  resolve=_task_values,
                  api=api_entry("rerunTask", "Rerun a resolved task",
                           "Give a resolved task a new pending run (at most 50 runs; not past its "
                           "deadline).", "Tasks", output=ref.STATUS))
    async def rerun_task(self, request, taskId):  # noqa: N803
        """``rerunTask``: ``{"status": ...}``; 409 for an unscheduled task or past the deadline."""
        task = await self.store.rerun(taskId, self.clock.seconds())
        return json_answer(request, {"status": task.status()})
