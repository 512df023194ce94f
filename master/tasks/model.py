"""The task model: what a request asks (immutable), its states, validation and the
Swarming v1 JSON shapes.

A ``TaskRequest`` says who, when and why; it holds 1 to ``MAX_SLICES`` ``TaskSlice``s, tried in
order, each with the ``TaskProperties`` saying what runs.  Limits follow Swarming's server
(docs/tasks.md lists them).  :func:`request_from_json` parses the body of ``tasks/new``;
:func:`request_to_json` gives it back (int64 as strings, as Cloud Endpoints did).
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import json
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from buildfarm.master.tasks import ids
from buildfarm.master.tasks.dimensions import (
    DimensionsError,
    normalize_task_dimensions,
)

MIN_PRIORITY, MAX_PRIORITY = 0, 255
DEFAULT_PRIORITY = 200
MAX_SLICES = 8
MIN_EXPIRATION_S = 30
MAX_EXPIRATION_S = 7 * 24 * 3600
MIN_EXECUTION_TIMEOUT_S = 30
MAX_EXECUTION_TIMEOUT_S = 3 * 24 * 3600
MIN_IO_TIMEOUT_S = 30  # or 0: no I/O timeout
MAX_IO_TIMEOUT_S = MAX_EXECUTION_TIMEOUT_S
MAX_GRACE_PERIOD_S = 3600
DEFAULT_GRACE_PERIOD_S = 30
MAX_COMMAND_ARGS = 128
MAX_ENV_KEYS = 64
MAX_ENV_VALUE_CHARS = 1024
MAX_CACHES = 32
MAX_CACHE_NAME_CHARS = 128
MAX_OUTPUTS = 4096
MAX_PATH_CHARS = 512
MAX_SECRET_BYTES = 20 * 1024
MAX_TAGS = 256
MAX_TAG_CHARS = 1024
MAX_NAME_CHARS = 1000
MAX_USER_CHARS = 255
MAX_REQUEST_UUID_CHARS = 128

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CACHE_NAME = re.compile(r"[a-z0-9_]{1,128}")
DIGEST = re.compile(r"[0-9a-f]{40,128}")
NAMESPACE = re.compile(r"[a-zA-Z0-9._-]{1,128}")


class TaskValidationError(ValueError):
    """A request Swarming's server would refuse: ``problems`` holds one message per problem,
    each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


class State(enum.Enum):
    """The state of a task (its summary) or of one try."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"
    EXPIRED = "EXPIRED"
    CANCELED = "CANCELED"
    KILLED = "KILLED"
    BOT_DIED = "BOT_DIED"
    NO_RESOURCE = "NO_RESOURCE"

    @property
    def is_final(self) -> bool:
        """Whether nothing more happens to a task in this state."""
        return self not in (State.PENDING, State.RUNNING)

    @property
    def is_internal_failure(self) -> bool:
        """Swarming's ``internal_failure``: the fleet failed, not the task."""
        return self is State.BOT_DIED


def is_failure(state: State, exit_code: int | None) -> bool:
    """Whether a final task failed: every end but COMPLETED, and COMPLETED with a non-zero exit."""
    return state.is_final and (state is not State.COMPLETED or exit_code != 0)


@dataclass(frozen=True)
class InputsRef:
    """An input tree in the content-addressed store: an ``.isolated`` hash, where, which namespace."""

    isolated: str
    isolatedserver: str = ""
    namespace: str = "default-gzip"


@dataclass(frozen=True)
class Cache:
    """A named cache kept on the slave across tasks, mapped at ``path`` in the run dir."""

    name: str
    path: str


@dataclass(frozen=True)
class TaskProperties:
    """What runs: the part of a request whose hash is the dedup key.

    ``dimensions`` is ``((key, (value, ...)), ...)`` sorted, OR terms (``a|b``) sorted inside
    each value; ``env`` ``((key, value), ...)`` and ``env_prefixes`` ``((key, (path, ...)), ...)``
    sorted by key (the order of a key's prefixes is kept: it is the PATH order).
    """

    command: tuple[str, ...] = ()
    extra_args: tuple[str, ...] = ()
    relative_cwd: str = ""
    dimensions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    env_prefixes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    inputs_ref: InputsRef | None = None
    caches: tuple[Cache, ...] = ()
    outputs: tuple[str, ...] = ()
    execution_timeout_secs: int = 3600
    io_timeout_secs: int = 1200
    grace_period_secs: int = DEFAULT_GRACE_PERIOD_S
    idempotent: bool = False
    secret_bytes: bytes | None = field(default=None, repr=False)

    def dimensions_dict(self) -> dict[str, list[str]]:
        return {key: list(values) for key, values in self.dimensions}

    @property
    def pool(self) -> str:
        return dict(self.dimensions).get("pool", ("",))[0]

    def canonical(self) -> dict[str, Any]:
        """Everything that can change the output, as plain JSON (secret bytes excepted: they
        are hashed beside it, never shown)."""
        return {
            "command": list(self.command),
            "extra_args": list(self.extra_args),
            "relative_cwd": self.relative_cwd,
            "dimensions": {key: list(values) for key, values in self.dimensions},
            "env": dict(self.env),
            "env_prefixes": {key: list(paths) for key, paths in self.env_prefixes},
            "inputs_ref": None if self.inputs_ref is None else {
                "isolated": self.inputs_ref.isolated,
                "isolatedserver": self.inputs_ref.isolatedserver,
                "namespace": self.inputs_ref.namespace,
            },
            "caches": [{"name": c.name, "path": c.path} for c in self.caches],
            "outputs": list(self.outputs),
            "execution_timeout_secs": self.execution_timeout_secs,
            "io_timeout_secs": self.io_timeout_secs,
            "grace_period_secs": self.grace_period_secs,
            "idempotent": self.idempotent,
        }

    def properties_hash(self) -> str:
        """The dedup key: hex SHA-256 of the canonical JSON (sorted keys, compact), then the
        secret bytes.  Two properties that run the same thing hash the same."""
        digest = hashlib.sha256(canonical_json(self.canonical()))
        if self.secret_bytes:
            digest.update(self.secret_bytes)
        return digest.hexdigest()


@dataclass(frozen=True)
class TaskSlice:
    """One way to run the task: its properties and how long to wait for a slave."""

    properties: TaskProperties
    expiration_secs: int = 3600
    wait_for_capacity: bool = False


@dataclass(frozen=True)
class TaskRequest:
    """Who asked, when and why, and the slices tried in order.  ``user`` None is anonymous."""

    name: str
    task_slices: tuple[TaskSlice, ...]
    user: str | None = None
    priority: int = DEFAULT_PRIORITY
    tags: tuple[str, ...] = ()
    request_uuid: str | None = None
    parent_task_id: str | None = None

    @property
    def expiration_secs(self) -> int:
        """How long the task may stay PENDING: the sum of its slices' expirations."""
        return sum(s.expiration_secs for s in self.task_slices)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- validation ------------------------------------------------------------------------------

def validate_request(request: TaskRequest, min_timeout_s: int = MIN_EXECUTION_TIMEOUT_S) -> None:
    """Raise TaskValidationError listing every problem of ``request`` (nothing when valid);
    ``min_timeout_s`` is the least expiration, hard and (non-zero) I/O timeout (``c['tasks']``)."""
    problems: list[str] = []
    if not request.name:
        problems.append("name is required")
    elif len(request.name) > MAX_NAME_CHARS:
        problems.append(f"name must be at most {MAX_NAME_CHARS} characters")
    if request.user is not None and len(request.user) > MAX_USER_CHARS:
        problems.append(f"user must be at most {MAX_USER_CHARS} characters")
    if not _int_in(request.priority, MIN_PRIORITY, MAX_PRIORITY):
        problems.append(f"priority must be an integer {MIN_PRIORITY}..{MAX_PRIORITY}, "
                        f"not {request.priority!r}")
    if len(request.tags) > MAX_TAGS:
        problems.append(f"tags: at most {MAX_TAGS}, not {len(request.tags)}")
    for tag in request.tags:
        key, sep, _ = tag.partition(":")
        if not sep or not key or len(tag) > MAX_TAG_CHARS:
            problems.append(f"tags: {tag!r} must be key:value, at most {MAX_TAG_CHARS} characters")
    if request.request_uuid is not None and not 0 < len(request.request_uuid) <= MAX_REQUEST_UUID_CHARS:
        problems.append(f"request_uuid must be 1 to {MAX_REQUEST_UUID_CHARS} characters")
    if request.parent_task_id:
        try:
            ids.parse_task_id(request.parent_task_id)
        except ids.BadTaskId as e:
            problems.append(f"parent_task_id: {e}")
    if not 1 <= len(request.task_slices) <= MAX_SLICES:
        problems.append(f"task_slices: 1 to {MAX_SLICES} slices, not {len(request.task_slices)}")
    many = len(request.task_slices) > 1
    for index, task_slice in enumerate(request.task_slices):
        where = f"task_slices[{index}]." if many else ""
        problems.extend(where + p for p in _slice_problems(task_slice, min_timeout_s))
    if problems:
        raise TaskValidationError(problems)


def _slice_problems(task_slice: TaskSlice, min_timeout_s: int = MIN_EXPIRATION_S) -> list[str]:
    problems = []
    if not _int_in(task_slice.expiration_secs, min_timeout_s, MAX_EXPIRATION_S):
        problems.append(f"expiration_secs must be {min_timeout_s}..{MAX_EXPIRATION_S} "
                        f"({min_timeout_s} s to 7 days), not {task_slice.expiration_secs!r}")
    return problems + ["properties." + p for p in properties_problems(task_slice.properties, min_timeout_s)]


def properties_problems(props: TaskProperties, min_timeout_s: int = MIN_EXECUTION_TIMEOUT_S) -> list[str]:
    """Every problem of ``props``, one message each, naming the field."""
    problems = []
    if not props.command and props.inputs_ref is None:
        problems.append("command: a command or inputs_ref.isolated is required")
    if len(props.command) > MAX_COMMAND_ARGS:
        problems.append(f"command: at most {MAX_COMMAND_ARGS} arguments, not {len(props.command)}")
    if props.extra_args and props.command:
        problems.append("extra_args: only with inputs_ref and no command (put them in command)")
    if props.extra_args and len(props.command) + len(props.extra_args) > MAX_COMMAND_ARGS:
        problems.append(f"extra_args: command and extra_args together at most {MAX_COMMAND_ARGS}")
    if props.relative_cwd:
        problem = _relative_path_problem(props.relative_cwd)
        if problem:
            problems.append(f"relative_cwd: {problem}")
    try:
        normalize_task_dimensions(props.dimensions_dict())
    except DimensionsError as e:
        problems.extend(f"dimensions: {p}" for p in e.problems)
    problems += _env_problems("env", [(k, [v]) for k, v in props.env])
    problems += _env_problems("env_prefixes", [(k, list(v)) for k, v in props.env_prefixes])
    for key, paths in props.env_prefixes:
        for path in paths:
            problem = _relative_path_problem(path)
            if problem:
                problems.append(f"env_prefixes: {key}: {path!r}: {problem}")
    if props.inputs_ref is not None:
        if not DIGEST.fullmatch(props.inputs_ref.isolated):
            problems.append(f"inputs_ref.isolated must be a hex digest, not {props.inputs_ref.isolated!r}")
        if not NAMESPACE.fullmatch(props.inputs_ref.namespace):
            problems.append(f"inputs_ref.namespace: {props.inputs_ref.namespace!r} is not a namespace")
    problems += _caches_problems(props.caches)
    if len(props.outputs) > MAX_OUTPUTS:
        problems.append(f"outputs: at most {MAX_OUTPUTS}, not {len(props.outputs)}")
    for output in props.outputs:
        problem = _relative_path_problem(output)
        if problem:
            problems.append(f"outputs: {output!r}: {problem}")
    if not _int_in(props.execution_timeout_secs, min_timeout_s, MAX_EXECUTION_TIMEOUT_S):
        problems.append(f"execution_timeout_secs must be {min_timeout_s}.."
                        f"{MAX_EXECUTION_TIMEOUT_S} ({min_timeout_s} s to 3 days), "
                        f"not {props.execution_timeout_secs!r}")
    if not (props.io_timeout_secs == 0 or _int_in(props.io_timeout_secs, min_timeout_s, MAX_IO_TIMEOUT_S)):
        problems.append(f"io_timeout_secs must be 0 (none) or {min_timeout_s}..{MAX_IO_TIMEOUT_S}, "
                        f"not {props.io_timeout_secs!r}")
    if not _int_in(props.grace_period_secs, 0, MAX_GRACE_PERIOD_S):
        problems.append(f"grace_period_secs must be 0..{MAX_GRACE_PERIOD_S}, not {props.grace_period_secs!r}")
    if props.secret_bytes is not None and len(props.secret_bytes) > MAX_SECRET_BYTES:
        problems.append(f"secret_bytes: at most {MAX_SECRET_BYTES} bytes, not {len(props.secret_bytes)}")
    return problems


def _env_problems(name: str, items: list[tuple[str, list[str]]]) -> list[str]:
    problems = []
    if len(items) > MAX_ENV_KEYS:
        problems.append(f"{name}: at most {MAX_ENV_KEYS} keys, not {len(items)}")
    for key, values in items:
        if not ENV_KEY.fullmatch(key):
            problems.append(f"{name}: key {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
        if any(len(v) > MAX_ENV_VALUE_CHARS for v in values):
            problems.append(f"{name}: {key}: a value is over {MAX_ENV_VALUE_CHARS} characters")
    return problems


def _caches_problems(caches: tuple[Cache, ...]) -> list[str]:
    problems = []
    if len(caches) > MAX_CACHES:
        problems.append(f"caches: at most {MAX_CACHES}, not {len(caches)}")
    names, paths = set(), set()
    for cache in caches:
        if not CACHE_NAME.fullmatch(cache.name):
            problems.append(f"caches: name {cache.name!r} must be 1 to {MAX_CACHE_NAME_CHARS} of [a-z0-9_]")
        problem = _relative_path_problem(cache.path)
        if problem:
            problems.append(f"caches: {cache.name}: path {cache.path!r}: {problem}")
        if cache.name in names:
            problems.append(f"caches: name {cache.name!r} is given twice")
        if cache.path in paths:
            problems.append(f"caches: path {cache.path!r} is given twice")
        names.add(cache.name)
        paths.add(cache.path)
    return problems


def _relative_path_problem(path: str) -> str | None:
    if not path:
        return "must not be empty"
    if len(path) > MAX_PATH_CHARS:
        return f"must be at most {MAX_PATH_CHARS} characters"
    if "\\" in path or posixpath.isabs(path) or re.match(r"[A-Za-z]:", path):
        return "must be a relative path with / separators"
    if ".." in path.split("/"):
        return "must not contain '..'"
    return None


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


# -- Swarming v1 JSON --------------------------------------------------------------------------

def request_from_json(body: Any, min_timeout_s: int = MIN_EXECUTION_TIMEOUT_S) -> TaskRequest:
    """The request in a ``tasks/new`` body, validated; TaskValidationError names each problem.

    Accepts what Swarming's clients send: int64 as numbers or strings, ``null`` for unset,
    ``dimensions``/``env`` as ``[{key, value}]``, ``secret_bytes`` in base64, and the old form
    with one ``properties`` and ``expiration_secs`` at the top instead of ``task_slices``.
    Unknown fields are ignored.
    """
    request = _parse_request(body)
    validate_request(request, min_timeout_s)
    return request


def _parse_request(body: Any) -> TaskRequest:
    """The request in ``body``, its types checked (TaskValidationError), its limits not."""
    reader = _Reader()
    if not isinstance(body, Mapping):
        raise TaskValidationError(["the request must be a JSON object"])
    raw_slices = body.get("task_slices")
    if raw_slices is None and body.get("properties") is not None:
        raw_slices = [{"properties": body["properties"], "expiration_secs": body.get("expiration_secs"),
                       "wait_for_capacity": body.get("wait_for_capacity")}]
    if not isinstance(raw_slices, list) or not raw_slices:
        reader.problems.append("task_slices: at least one slice is required")
        raw_slices = []
    many = len(raw_slices) > 1
    slices = []
    for index, raw in enumerate(raw_slices):
        reader.prefix = f"task_slices[{index}]." if many else ""
        slices.append(reader.task_slice(raw))
    reader.prefix = ""
    request = TaskRequest(
        name=reader.string(body, "name", default=""),
        task_slices=tuple(slices),
        user=reader.string(body, "user", default=None),
        priority=reader.integer(body, "priority", DEFAULT_PRIORITY),
        tags=tuple(reader.strings(body, "tags")),
        request_uuid=reader.string(body, "request_uuid", default=None) or None,
        parent_task_id=reader.string(body, "parent_task_id", default=None) or None,
    )
    if reader.problems:
        raise TaskValidationError(reader.problems)
    return request


class _Reader:
    """Reads fields of the JSON body, collecting type problems instead of raising at the first."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.prefix = ""

    def _bad(self, name: str, expected: str, value: Any) -> None:
        self.problems.append(f"{self.prefix}{name} must be {expected}, not {json.dumps(value)[:80]}")

    def string(self, obj: Mapping, name: str, default: Any) -> Any:
        value = obj.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            self._bad(name, "a string", value)
            return default
        return value

    def integer(self, obj: Mapping, name: str, default: int) -> int:
        value = obj.get(name)
        if value is None:
            return default
        if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,19}", value.strip()):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        self._bad(name, "an integer (a number or a string of digits)", value)
        return default

    def boolean(self, obj: Mapping, name: str) -> bool:
        value = obj.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            self._bad(name, "true or false", value)
            return False
        return value

    def strings(self, obj: Mapping, name: str) -> list[str]:
        value = obj.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(name, "a list of strings", value)
            return []
        return value

    def pairs(self, obj: Mapping, name: str, many_values: bool) -> list[tuple[str, Any]]:
        """``[{key, value}]`` as ``[(key, value)]``; ``value`` a string, or a list of them."""
        value = obj.get(name)
        if value is None:
            return []
        expected = "a list of {key, value" + (": [strings]}" if many_values else ": string}")
        pairs = []
        for item in value if isinstance(value, list) else [None]:
            if not (isinstance(item, Mapping) and isinstance(item.get("key"), str)):
                self._bad(name, expected, value)
                return []
            v = item.get("value")
            ok = (isinstance(v, list) and all(isinstance(x, str) for x in v)) if many_values \
                else isinstance(v, str)
            if not ok:
                self._bad(name, expected, value)
                return []
            pairs.append((item["key"], v))
        return pairs

    def task_slice(self, raw: Any) -> TaskSlice:
        if not isinstance(raw, Mapping):
            self._bad("task slice", "an object", raw)
            return TaskSlice(TaskProperties())
        props = raw.get("properties")
        if not isinstance(props, Mapping):
            self._bad("properties", "an object", props)
            props = {}
        return TaskSlice(properties=self.properties(props),
                         expiration_secs=self.integer(raw, "expiration_secs", 6 * 3600),
                         wait_for_capacity=self.boolean(raw, "wait_for_capacity"))

    def properties(self, raw: Mapping) -> TaskProperties:
        outer, self.prefix = self.prefix, self.prefix + "properties."
        try:
            dimensions: dict[str, list[str]] = {}
            for key, value in self.pairs(raw, "dimensions", many_values=False):
                dimensions.setdefault(key, []).append(value)
            env = self.pairs(raw, "env", many_values=False)
            env_prefixes = self.pairs(raw, "env_prefixes", many_values=True)
            return TaskProperties(
                command=tuple(self.strings(raw, "command")),
                extra_args=tuple(self.strings(raw, "extra_args")),
                relative_cwd=self.string(raw, "relative_cwd", ""),
                dimensions=_sorted_dimensions(dimensions),
                env=tuple(sorted(dict(env).items())),
                env_prefixes=tuple(sorted((k, tuple(v)) for k, v in dict(env_prefixes).items())),
                inputs_ref=self.inputs_ref(raw.get("inputs_ref")),
                caches=tuple(sorted(self.caches(raw.get("caches")), key=lambda c: c.name)),
                outputs=tuple(sorted(set(self.strings(raw, "outputs")))),
                execution_timeout_secs=self.integer(raw, "execution_timeout_secs", 3600),
                io_timeout_secs=self.integer(raw, "io_timeout_secs", 1200),
                grace_period_secs=self.integer(raw, "grace_period_secs", DEFAULT_GRACE_PERIOD_S),
                idempotent=self.boolean(raw, "idempotent"),
                secret_bytes=self.secret(raw.get("secret_bytes")),
            )
        finally:
            self.prefix = outer

    def inputs_ref(self, raw: Any) -> InputsRef | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping) or not isinstance(raw.get("isolated"), str):
            self._bad("inputs_ref", "{isolated, isolatedserver, namespace}", raw)
            return None
        return InputsRef(isolated=raw["isolated"],
                         isolatedserver=self.string(raw, "isolatedserver", ""),
                         namespace=self.string(raw, "namespace", "default-gzip") or "default-gzip")

    def caches(self, raw: Any) -> list[Cache]:
        if raw is None:
            return []
        if not isinstance(raw, list) or not all(
                isinstance(c, Mapping) and isinstance(c.get("name"), str) and isinstance(c.get("path"), str)
                for c in raw):
            self._bad("caches", "a list of {name, path}", raw)
            return []
        return [Cache(c["name"], c["path"]) for c in raw]

    def secret(self, raw: Any) -> bytes | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            try:
                return base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                pass
        # The value itself is a secret: never repeated in the message.
        self.problems.append(f"{self.prefix}secret_bytes must be base64 text")
        return None


def _sorted_dimensions(dimensions: Mapping[str, list[str]]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Dimensions in canonical order: keys sorted, values sorted, OR terms sorted within a value."""
    return tuple(sorted((key, tuple(sorted({_sorted_alternatives(v) for v in values})))
                        for key, values in dimensions.items()))


def _sorted_alternatives(value: str) -> str:
    """``b|a`` as ``a|b``; a value with an empty alternative is kept as given, for its error."""
    alternatives = value.split("|")
    return value if "" in alternatives else "|".join(sorted(set(alternatives)))


def properties_to_json(props: TaskProperties) -> dict[str, Any]:
    """The Swarming v1 shape of ``props`` (secret bytes never shown: ``secret_bytes`` is
    ``"<REDACTED>"`` when there are some, as Swarming's server answers)."""
    return {
        "command": list(props.command),
        "extra_args": list(props.extra_args),
        "relative_cwd": props.relative_cwd,
        "dimensions": [{"key": key, "value": value} for key, values in props.dimensions for value in values],
        "env": [{"key": key, "value": value} for key, value in props.env],
        "env_prefixes": [{"key": key, "value": list(paths)} for key, paths in props.env_prefixes],
        "inputs_ref": None if props.inputs_ref is None else {
            "isolated": props.inputs_ref.isolated, "isolatedserver": props.inputs_ref.isolatedserver,
            "namespace": props.inputs_ref.namespace},
        "caches": [{"name": c.name, "path": c.path} for c in props.caches],
        "outputs": list(props.outputs),
        "execution_timeout_secs": str(props.execution_timeout_secs),
        "io_timeout_secs": str(props.io_timeout_secs),
        "grace_period_secs": str(props.grace_period_secs),
        "idempotent": props.idempotent,
        "secret_bytes": "<REDACTED>" if props.secret_bytes else None,
    }


def request_to_json(request: TaskRequest) -> dict[str, Any]:
    """The Swarming v1 shape of ``request`` (``task/<id>/request``), int64 as strings."""
    return {
        "name": request.name,
        "user": request.user,
        "priority": str(request.priority),
        "tags": list(request.tags),
        "request_uuid": request.request_uuid,
        "parent_task_id": request.parent_task_id,
        "expiration_secs": str(request.expiration_secs),
        "task_slices": [{
            "properties": properties_to_json(s.properties),
            "expiration_secs": str(s.expiration_secs),
            "wait_for_capacity": s.wait_for_capacity,
        } for s in request.task_slices],
    }


def request_to_storage(request: TaskRequest) -> dict[str, Any]:
    """``request`` as stored in the database: the v1 shape without the secret bytes (they are
    stored apart); :func:`request_from_storage` reads it back."""
    stored = request_to_json(request)
    for s in stored["task_slices"]:
        s["properties"]["secret_bytes"] = None
    return stored


def request_from_storage(stored: Mapping[str, Any],
                         secrets: Mapping[int, bytes] | None = None) -> TaskRequest:
    """The request stored by :func:`request_to_storage`, with each slice's secret bytes put back.
    It is not validated again: a request accepted once stays readable when limits change."""
    request = _parse_request(stored)
    if not secrets:
        return request
    slices = tuple(
        TaskSlice(_with_secret(s.properties, secrets.get(index)), s.expiration_secs, s.wait_for_capacity)
        for index, s in enumerate(request.task_slices))
    return TaskRequest(request.name, slices, request.user, request.priority, request.tags,
                       request.request_uuid, request.parent_task_id)


def _with_secret(props: TaskProperties, secret: bytes | None) -> TaskProperties:
    return replace(props, secret_bytes=secret) if secret else props
