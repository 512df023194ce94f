"""``QueueSettings``: ``c['queue']`` as the Queue service reads it (master/config.py checks it).

``c['queue'] = {'task_queues': {'<provisionerId>/<workerType>': {'pool': 'ci', 'os': 'Linux'}}}``:
each taskQueueId whose tasks the master's PB slaves run, and the dimensions a slave must have
to run them (a task of that queue becomes a task of the task engine asking for them).  Every
other taskQueueId is served to HTTP workers (``claimWork``, master/queue/workerapi.py).

``c['queue']['claim_timeout_secs']`` (default 1200, Taskcluster's): how long an HTTP worker's
claim lasts (``takenUntil``) before the worker must ``reclaimTask`` it; a claim left to expire
resolves its run ``exception``/``claim-expired``.
"""

from dataclasses import dataclass, field

from buildfarm.master.queue.model import TASK_QUEUE_ID
from buildfarm.master.tasks.dimensions import slave_dimensions_problems

QUEUE_KEYS = frozenset({"task_queues", "claim_timeout_secs"})
DEFAULT_CLAIM_TIMEOUT_S = 1200  # Taskcluster's queue.task_claim_timeout
MIN_CLAIM_TIMEOUT_S = 30  # a worker reclaims well before expiry: less leaves it no time
MAX_CLAIM_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class QueueSettings:
    """``c['queue']``: see the module.  ``task_queues``: taskQueueId -> {key: [values]}."""

    task_queues: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    claim_timeout_secs: int = DEFAULT_CLAIM_TIMEOUT_S


def validate_queue_config(raw: dict) -> tuple[QueueSettings, list[tuple[str, str]]]:
    """The ``QueueSettings`` of ``raw['queue']`` and the ``(key, message)`` problems found."""
    queue = raw.get("queue", {})
    example = "c['queue'] = {'task_queues': {'proj/linux': {'pool': 'ci'}}}"
    if not isinstance(queue, dict):
        return QueueSettings(), [("queue", f"c['queue'] must be a dict like {example}")]
    unknown = sorted(set(queue) - QUEUE_KEYS, key=str)
    problems = [("queue", f"unknown c['queue'] key {key!r}") for key in unknown]
    claim_timeout = queue.get("claim_timeout_secs", DEFAULT_CLAIM_TIMEOUT_S)
    if isinstance(claim_timeout, bool) or not isinstance(claim_timeout, int) \
            or not MIN_CLAIM_TIMEOUT_S <= claim_timeout <= MAX_CLAIM_TIMEOUT_S:
        problems.append(("queue", f"c['queue']['claim_timeout_secs'] must be whole seconds from "
                                  f"{MIN_CLAIM_TIMEOUT_S} to {MAX_CLAIM_TIMEOUT_S}, not {claim_timeout!r}"))
        claim_timeout = DEFAULT_CLAIM_TIMEOUT_S
    given = queue.get("task_queues", {})
    if not isinstance(given, dict):
        return QueueSettings(claim_timeout_secs=claim_timeout), [
            *problems, ("queue", f"c['queue']['task_queues'] must be a dict like {example}")]
    task_queues = {}
    for queue_id, dims in given.items():
        where = f"c['queue']['task_queues'][{queue_id!r}]"
        if not isinstance(queue_id, str) or not TASK_QUEUE_ID.match(queue_id):
            problems.append(("queue", f"{where}: a taskQueueId is '<provisionerId>/<workerType>', "
                                      "1 to 38 of [a-zA-Z0-9-_] each"))
            continue
        found = slave_dimensions_problems(dims, where)
        if not found and not dims:
            found = [f"{where}: name at least one dimension (e.g. {{'pool': 'ci'}})"]
        if found:
            problems += [("queue", p) for p in found]
            continue
        task_queues[queue_id] = {k: [v] if isinstance(v, str) else list(v) for k, v in dims.items()}
    return QueueSettings(task_queues, claim_timeout), problems
