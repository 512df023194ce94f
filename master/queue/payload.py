"""A Queue task's ``payload``, in generic-worker's shape, as a request of the task engine.

``{"command": [[argv...], ...], "env": {name: value}, "maxRunTime": seconds}``: the commands run
one after the other in one shell on the slave (``/bin/sh -c``, each quoted; the first to fail
ends the run with its exit code), under ``env``, for at most ``maxRunTime`` seconds (the run is
then killed and resolves ``failed``).  The request asks for the dimensions ``c['queue']`` gives
the task's queue, waits for a slave at most until the task's ``deadline``
(``wait_for_capacity``: no slave attached is not an end), and is tagged with the Queue task and
run it stands for.  Its ``request_uuid`` is the run's, so a retried submission finds the first.

Files (docs/taskcluster.md, "Artifacts and the Object service"), on issue 19's task inputs and
outputs: ``mounts`` (``[{content: {sha256}, file: path}]``, a CAS item of the ``sha256-flat``
namespace, or ``[{content: {sha256}, directory: path}]``, the tree of an ``.isolated`` there)
become one ``.isolated`` tree the slave maps into the run directory before the command
(``prepare_inputs``); ``artifacts`` (``[{type: file|directory, path, name?, expires?}]``) are the
task's ``outputs``, archived by the slave after the run in the same namespace, and registered
as the run's ``object`` artifacts (``collect_artifacts``): a file or every file under a
directory (``<name>/<path inside it>``), or an ``error`` artifact (``file-missing-on-worker``)
for one the run did not make.  A task with either runs in an empty run directory
(``run_isolated``); one with neither in the slave's ``_tasks/build`` (``shell``).
"""

from __future__ import annotations

import mimetypes
import shlex
from dataclasses import dataclass

from buildfarm.common import isolated as isolated_format
from buildfarm.master.cas.interfaces import NotStored
from buildfarm.master.objectservice.content import NAMESPACE, measure_stored, stored_size
from buildfarm.master.queue.model import parse_date
from buildfarm.master.queue.store import StoredTask
from buildfarm.master.tasks.model import (
    MAX_NAME_CHARS,
    InputsRef,
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


MAX_FILES = 1000  # mounts, and artifacts, of one payload
ARTIFACT_TYPES = ("file", "directory")
ISOLATED_ALGO = "sha-256"  # the .isolated of the sha256-flat namespace
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ArtifactSpec:
    """One entry of ``payload.artifacts``."""

    type: str  # file or directory
    path: str  # in the run directory
    name: str
    expires: float | None = None


@dataclass(frozen=True)
class MountSpec:
    """One entry of ``payload.mounts``: the CAS item ``digest`` at ``path`` (a file), or the
    tree of the ``.isolated`` ``digest`` under ``path`` (a directory)."""

    digest: str
    path: str
    directory: bool


def payload_files(payload: dict) -> tuple[list[MountSpec], list[ArtifactSpec]]:
    """The mounts and artifacts of ``payload``; ``MalformedPayload`` says what is wrong."""
    mounts, artifacts = payload.get("mounts", []), payload.get("artifacts", [])
    if not isinstance(mounts, list) or not isinstance(artifacts, list) or len(mounts) > MAX_FILES \
            or len(artifacts) > MAX_FILES:
        raise MalformedPayload(f"payload.mounts and payload.artifacts must be lists of at most {MAX_FILES}")
    return [_mount(i, m) for i, m in enumerate(mounts)], [_artifact(i, a) for i, a in enumerate(artifacts)]


def _path(value, where: str) -> str:
    try:
        return isolated_format.normalise_path(value)
    except isolated_format.IsolatedFormatError as e:
        raise MalformedPayload(f"{where}: {e} (a path relative to the task's directory)") from None


def _mount(index: int, mount) -> MountSpec:
    where = f"payload.mounts[{index}]"
    content = mount.get("content") if isinstance(mount, dict) else None
    digest = content.get("sha256") if isinstance(content, dict) else None
    if not isinstance(digest, str):
        raise MalformedPayload(f"{where}: content must be {{sha256: <digest of a CAS item of the sha256-flat "
                               "namespace>}} (url, raw, base64 and artifact contents are not served)")
    try:
        NAMESPACE.check_digest(digest)
    except ValueError as e:
        raise MalformedPayload(f"{where}: {e}") from None
    if mount.get("format") not in (None, "isolated"):
        raise MalformedPayload(f"{where}: format {mount.get('format')!r} is not served: a directory mount is "
                               "the tree of an .isolated (no format, or 'isolated')")
    if ("file" in mount) == ("directory" in mount):
        raise MalformedPayload(f"{where}: give file or directory (the path to mount at)")
    directory = "directory" in mount
    return MountSpec(digest, _path(mount["directory" if directory else "file"], where), directory)


def _artifact(index: int, artifact) -> ArtifactSpec:
    where = f"payload.artifacts[{index}]"
    if not isinstance(artifact, dict) or artifact.get("type") not in ARTIFACT_TYPES:
        raise MalformedPayload(f"{where}: type must be one of {', '.join(ARTIFACT_TYPES)}")
    path = _path(artifact.get("path"), where)
    name = artifact.get("name", path)
    if not isinstance(name, str) or not name or not name.isascii() or len(name) > 900:
        raise MalformedPayload(f"{where}: name must be printable ASCII (at most 900 characters)")
    expires = None
    if "expires" in artifact:
        problems: list[str] = []
        expires = parse_date(artifact["expires"], f"{where}.expires", problems)
        if problems:
            raise MalformedPayload(problems[0])
    return ArtifactSpec(artifact["type"], path, name, expires)


async def prepare_inputs(cas, mounts: list[MountSpec], artifacts: list[ArtifactSpec]) -> InputsRef | None:
    """The input tree of a payload with mounts or artifacts, stored in ``cas`` (the
    ``CASService``): one ``.isolated`` of the ``sha256-flat`` namespace holding each file mount
    and each directory mount's tree under its path (empty for artifacts alone: it puts the
    outputs in that namespace); None for a payload with neither."""
    if not mounts and not artifacts:
        return None
    files: dict[str, isolated_format.FileEntry] = {}
    for index, mount in enumerate(mounts):
        where = f"payload.mounts[{index}]"
        if not mount.directory:
            try:
                size = await stored_size(cas, mount.digest)
            except NotStored:
                raise MalformedPayload(f"{where}: {mount.digest} is not in the store (namespace "
                                       f"{NAMESPACE.name})") from None
            files[mount.path] = isolated_format.FileEntry(digest=mount.digest, size=size, mode=0o644)
            continue
        try:
            tree = await isolated_format.resolve(mount.digest, lambda d: _fetch(cas, d), ISOLATED_ALGO)
        except (NotStored, isolated_format.IsolatedFormatError) as e:
            raise MalformedPayload(f"{where}: {mount.digest} is not an .isolated tree in the store: "
                                   f"{e}") from None
        for path, entry in tree.files.items():
            files[f"{mount.path}/{path}"] = entry
    document = isolated_format.serialise(isolated_format.Isolated(algo=ISOLATED_ALGO, files=files))
    digest = isolated_format.digest_of(document, ISOLATED_ALGO)
    await cas.store.put(NAMESPACE, digest, len(document), document)
    return InputsRef(digest, "", NAMESPACE.name)


async def _fetch(cas, digest: str) -> bytes:
    data, _ = await cas.store.get(NAMESPACE, digest)
    return data


@dataclass(frozen=True)
class CollectedArtifact:
    """An artifact a run's outputs gave: an object (``digest``, ``received``) or, when the
    run did not make it, an error."""

    name: str
    expires: float | None
    content_type: str = DEFAULT_CONTENT_TYPE
    digest: str | None = None
    received: dict | None = None
    missing: str | None = None  # the error's message


async def collect_artifacts(cas, outputs_ref: dict | None,
                            artifacts: list[ArtifactSpec]) -> list[CollectedArtifact]:
    """What the run's outputs (``outputs_ref``: the out directory's ``.isolated`` in
    ``sha256-flat``) hold for each of ``artifacts``, each file measured in ``cas``."""
    files: dict = {}
    if outputs_ref and outputs_ref.get("isolated") and outputs_ref.get("namespace") == NAMESPACE.name:
        tree = await isolated_format.resolve(outputs_ref["isolated"], lambda d: _fetch(cas, d), ISOLATED_ALGO)
        files = dict(tree.files)
    found: list[CollectedArtifact] = []
    for spec in artifacts:
        if spec.type == "file":
            matches = [(spec.name, files[spec.path])] if spec.path in files else []
        else:
            prefix = spec.path + "/"
            matches = [(f"{spec.name}/{p[len(prefix):]}", e) for p, e in sorted(files.items())
                       if p.startswith(prefix)]
        if not matches:
            found.append(CollectedArtifact(spec.name, spec.expires, missing=f"the run made no {spec.type} "
                                                                               f"{spec.path!r}"))
        for name, entry in matches:
            if entry.is_link:
                continue
            received = await measure_stored(cas, entry.digest)
            content_type = mimetypes.guess_type(name)[0] or DEFAULT_CONTENT_TYPE
            found.append(CollectedArtifact(name, spec.expires, content_type, entry.digest, received))
    return found


def engine_request(task: StoredTask, dimensions: dict[str, list[str]], now: float,
                   min_timeout_s: int, inputs_ref: InputsRef | None = None) -> TaskRequest:
    """The engine's request for ``task``'s current run (``inputs_ref``: its mounts, from
    ``prepare_inputs``); ``MalformedPayload`` says what is wrong."""
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
        inputs_ref=inputs_ref,
        outputs=tuple(dict.fromkeys(spec.path for spec in payload_files(payload)[1])),
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
