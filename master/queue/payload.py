"""A Queue task's ``payload``, in generic-worker's shape, as a request of the task engine.

``{"command": [[argv...], ...], "env": {name: value}, "maxRunTime": seconds}``: the commands run
one after the other in one shell on the slave (``/bin/sh -c``, each quoted; the first to fail
ends the run with its exit code), under ``env``, for at most ``maxRunTime`` seconds (the run is
then killed and resolves ``failed``).  The request asks for the dimensions ``c['queue']`` gives
the task's queue, waits for a slave at most until the task's ``deadline``
(``wait_for_capacity``: no slave attached is not an end), and is tagged with the Queue task and
run it stands for.  Its ``request_uuid`` is the run's, so a retried submission finds the first.
"""

from __future__ import annotations

import shlex

from buildfarm.master.queue.store import StoredTask
from buildfarm.master.tasks.model import (
    MAX_NAME_CHARS,
    TaskProperties,
    TaskRequest,
    TaskSlice,
    TaskValidationError,
    validate_request,
)

MAX_RUN_TIME_S = 86400  # generic-worker's bound on maxRunTime
ENGINE_USER = "queue"  # the engine task's user: its request_uuid is unique per (user, uuid)
# Taskcluster's priorities as the engine's (lower runs first)
ENGINE_PRIORITIES = {"highest": 20, "very-high": 40, "high": 60, "medium": 80, "normal": 100, "low": 100,
                     "very-low": 120, "lowest": 140}
SHELL = "/bin/sh"


class MalformedPayload(ValueError):
    """A payload the PB slaves cannot run: the run resolves ``exception``/``malformed-payload``."""


def engine_request(task: StoredTask, dimensions: dict[str, list[str]], now: float,
                   min_timeout_s: int) -> TaskRequest:
    """The engine's request for ``task``'s current run; ``MalformedPayload`` says what is wrong."""
    payload = task.body["payload"]
    commands, env, max_run_time = payload.get("command"), payload.get("env", {}), payload.get("maxRunTime")
    problems = []
    if not isinstance(commands, list) or not commands or not all(
            isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv) for argv in commands):
        problems.append("payload.command must be a non-empty list of commands, each a non-empty list of "
                        "strings")
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in env.items()):
        problems.append("payload.env must be an object of strings")
    if isinstance(max_run_time, bool) or not isinstance(max_run_time, int) \
            or not 1 <= max_run_time <= MAX_RUN_TIME_S:
        problems.append(f"payload.maxRunTime is required: whole seconds from 1 to {MAX_RUN_TIME_S}")
    if problems:
        raise MalformedPayload("; ".join(problems))
    script = "set -e\n" + "\n".join(shlex.join(argv) for argv in commands)
    props = TaskProperties(
        command=(SHELL, "-c", script),
        dimensions=tuple(sorted((k, tuple(v)) for k, v in dimensions.items())),
        env=tuple(sorted(env.items())),
        execution_timeout_secs=max(max_run_time, min_timeout_s),
        io_timeout_secs=0,
    )
    wait = max(int(task.deadline - now), min_timeout_s)
    request = TaskRequest(
        name=task.body["metadata"]["name"][:MAX_NAME_CHARS] or task.task_id,
        task_slices=(TaskSlice(props, expiration_secs=wait, wait_for_capacity=True),),
        user=ENGINE_USER,
        priority=ENGINE_PRIORITIES[task.body["priority"]],
        tags=(f"queue_task_id:{task.task_id}", f"queue_run_id:{task.run_id}",
              f"task_queue_id:{task.body['taskQueueId']}", f"task_group_id:{task.body['taskGroupId']}"),
        request_uuid=f"{task.task_id}/{task.run_id}",
    )
    try:
        validate_request(request, min_timeout_s)
    except TaskValidationError as e:
        raise MalformedPayload("; ".join(e.problems)) from None
    return request
