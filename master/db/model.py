"""The master's tables (SQLAlchemy Core).

Times are float epoch seconds; JSON columns hold text written with ``json.dumps``.
The schema itself is created and changed only by the alembic migrations in
``migrations/versions``; ``tests/unit/test_db_migrate.py`` checks that they agree with
these tables.
"""

import sqlalchemy as sa

NAME_LENGTH = 255
SLUG_LENGTH = 255
VERSION_LENGTH = 64
REVISION_LENGTH = 255
REPOSITORY_LENGTH = 512

# Named constraints so that later migrations (SQLite batch mode included) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

masters = sa.Table(
    "masters",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False, unique=True),
    sa.Column("active", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_active", sa.Float, nullable=False, server_default="0"),
)

builders = sa.Table(
    "builders",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False, unique=True),
)

slaves = sa.Table(
    "slaves",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False, unique=True),
    sa.Column("info", sa.Text, nullable=False, server_default="{}"),
    sa.Column("version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("connected_masterid", sa.Integer, sa.ForeignKey("masters.id"), nullable=True),
    sa.Column("last_connected_at", sa.Float, nullable=True),
    sa.Column("last_disconnected_at", sa.Float, nullable=True),
)

# Each connection of a slave to a master: opened when it attaches, closed when it detaches
# (or when its master starts again after a crash).
slave_connections = sa.Table(
    "slave_connections",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slaveid", sa.Integer, sa.ForeignKey("slaves.id"), nullable=False),
    sa.Column("masterid", sa.Integer, sa.ForeignKey("masters.id"), nullable=True),
    sa.Column("peer", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("connected_at", sa.Float, nullable=False),
    sa.Column("disconnected_at", sa.Float, nullable=True),
    sa.Index(None, "slaveid", "connected_at"),
    sa.Index(None, "masterid", "disconnected_at"),
)

# A scheduler's decision to build one set of properties on several builders: one build
# request per builder, complete when they all are, with the worst of their results.
buildsets = sa.Table(
    "buildsets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("scheduler", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
    sa.Column("complete_at", sa.Float, nullable=True),
    sa.Column("results", sa.Integer, nullable=True),
    sa.Column("parent_buildid", sa.Integer, sa.ForeignKey("builds.id"), nullable=True),
)

buildrequests = sa.Table(
    "buildrequests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("builderid", sa.Integer, sa.ForeignKey("builders.id"), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
    sa.Column("submitted_at", sa.Float, nullable=False),
    sa.Column("claimed_by_masterid", sa.Integer, sa.ForeignKey("masters.id"), nullable=True),
    sa.Column("claimed_at", sa.Float, nullable=True),
    sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
    sa.Column("results", sa.Integer, nullable=True),
    sa.Column("complete_at", sa.Float, nullable=True),
    # use_alter: buildsets -> builds -> buildrequests -> buildsets is a cycle, and this
    # constraint is the one added (by migration 0002) after the tables exist.
    sa.Column(
        "buildsetid", sa.Integer, sa.ForeignKey("buildsets.id", use_alter=True), nullable=True
    ),
    sa.Index(None, "builderid", "complete", "claimed_by_masterid"),
    sa.Index(None, "buildsetid"),
)

builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("builderid", sa.Integer, sa.ForeignKey("builders.id"), nullable=False),
    sa.Column("buildrequestid", sa.Integer, sa.ForeignKey("buildrequests.id"), nullable=False),
    sa.Column("slaveid", sa.Integer, sa.ForeignKey("slaves.id"), nullable=False),
    sa.Column("masterid", sa.Integer, sa.ForeignKey("masters.id"), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("complete_at", sa.Float, nullable=True),
    sa.Column("state_string", sa.Text, nullable=False, server_default=""),
    sa.Column("results", sa.Integer, nullable=True),
    sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
    sa.UniqueConstraint("builderid", "number"),
    sa.Index(None, "buildrequestid"),
    sa.Index(None, "masterid", "complete_at"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("buildid", sa.Integer, sa.ForeignKey("builds.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("complete_at", sa.Float, nullable=True),
    sa.Column("state_string", sa.Text, nullable=False, server_default=""),
    sa.Column("results", sa.Integer, nullable=True),
    sa.UniqueConstraint("buildid", "number"),
)

logs = sa.Table(
    "logs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("stepid", sa.Integer, sa.ForeignKey("steps.id"), nullable=False),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("slug", sa.String(SLUG_LENGTH), nullable=False),
    sa.Column("type", sa.String(1), nullable=False, server_default="s"),
    sa.Column("num_lines", sa.Integer, nullable=False, server_default="0"),
    sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("stepid", "slug"),
)

# ``id`` orders chunks that start on the same line (a chunk that ended mid-line and the
# chunk that finishes that line).
logchunks = sa.Table(
    "logchunks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("logid", sa.Integer, sa.ForeignKey("logs.id"), nullable=False),
    sa.Column("first_line", sa.Integer, nullable=False),
    sa.Column("last_line", sa.Integer, nullable=False),
    sa.Column("content", sa.Text, nullable=False),
    sa.Index(None, "logid", "first_line"),
)

# A change to the code in a repository, as reported by a change source; ``files`` is a
# JSON list of paths, ``properties`` a JSON object.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("author", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("committer", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("comments", sa.Text, nullable=False, server_default=""),
    sa.Column("branch", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("revision", sa.String(REVISION_LENGTH), nullable=True),
    sa.Column("repository", sa.String(REPOSITORY_LENGTH), nullable=False, server_default=""),
    sa.Column("project", sa.String(NAME_LENGTH), nullable=False, server_default=""),
    sa.Column("codebase", sa.String(NAME_LENGTH), nullable=False, server_default=""),
    sa.Column("category", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("when_timestamp", sa.Float, nullable=False),
    sa.Column("files", sa.Text, nullable=False, server_default="[]"),
    sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.Float, nullable=False),
)

# What each scheduler keeps across restarts (the last change it saw, ...), a JSON value
# per key.
scheduler_state = sa.Table(
    "scheduler_state",
    metadata,
    sa.Column("scheduler", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("key", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

# The SlaveAPI (master/slaveapi): per-slave settings the API changes (``enabled`` says whether
# the slave may take new builds), keyed by slave name because a slave may be managed before
# it ever attached.  Times in these three tables are integer epoch seconds.
slave_settings = sa.Table(
    "slave_settings",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
    sa.Column("environment", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("disabled_by", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("disabled_at", sa.Integer, nullable=True),
    sa.Column("notes", sa.Text, nullable=False, server_default=""),
)

# One row per action requested of a slave (the row id is the result's ``requestid``);
# ``state`` is an ``ActionState`` (master/fleet.py): PENDING=0, RUNNING=1, SUCCESS=2,
# FAILURE=3; ``args`` a JSON object, ``data`` the JSON value an action answers beside its
# ``text`` (an uptime, a last activity).
slaveapi_results = sa.Table(
    "slaveapi_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("slave", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("action", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("args", sa.Text, nullable=False, server_default="{}"),
    sa.Column("state", sa.Integer, nullable=False, server_default="0"),
    sa.Column("text", sa.Text, nullable=False, server_default=""),
    sa.Column("data", sa.Text, nullable=True),
    sa.Column("requested_by", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("requested_from", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("masterid", sa.Integer, sa.ForeignKey("masters.id"), nullable=True),
    sa.Column("request_timestamp", sa.Integer, nullable=False, server_default="0"),
    sa.Column("start_timestamp", sa.Integer, nullable=False, server_default="0"),
    sa.Column("finish_timestamp", sa.Integer, nullable=False, server_default="0"),
    sa.Index(None, "slave", "action"),
    sa.Index(None, "masterid", "state"),
)

# Who asked the SlaveAPI for what, from where, and how it ended (refusals included).
slaveapi_audit = sa.Table(
    "slaveapi_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("timestamp", sa.Integer, nullable=False),
    sa.Column("username", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("peer", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("slave", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("action", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("requestid", sa.Integer, sa.ForeignKey("slaveapi_results.id"), nullable=True),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index(None, "slave"),
    sa.Index(None, "requestid"),
)

# Every write asked of an HTTP surface (JSON API, pages, change hook, SlaveAPI): who, from
# where, what, and how it ended (done, refused, failed) with the HTTP status answered.
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("timestamp", sa.Integer, nullable=False),
    sa.Column("surface", sa.String(32), nullable=False),
    sa.Column("username", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("peer", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("scope", sa.String(NAME_LENGTH), nullable=False, server_default=""),
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index(None, "username"),
)

# Reporters (master/reporters): each report a reporter owes, recorded before it is sent, so a
# master that dies sends it after its restart.  ``event`` names what the report is about
# ("build:12:finished"): one row per (reporter, event), so a report is recorded once; the
# master that recorded it (``masterid``) is the one that sends it.  ``state`` is "pending",
# "sent" or "failed" (given up: rejected by the endpoint, or out of attempts).
reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("reporter", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("event", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("masterid", sa.Integer, nullable=False),
    sa.Column("reports", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.Float, nullable=False),
    sa.Column("done_at", sa.Float, nullable=True),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.UniqueConstraint("reporter", "event"),
    sa.Index(None, "reporter", "masterid", "state"),
)

# Tasks (master/tasks, docs/tasks.md).  A request's id is Swarming's 63-bit request id (its
# hex with a trailing 0 is the task id); the request itself is stored as its v1 JSON
# (``request``), which never changes, beside the columns searched.  ``username`` is "" for an
# anonymous request so that (username, request_uuid) is unique for it too; a NULL request_uuid
# is never unique-checked.
task_requests = sa.Table(
    "task_requests",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("username", sa.String(NAME_LENGTH), nullable=False, server_default=""),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("request_uuid", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("parent_task_id", sa.String(32), nullable=True),
    sa.Column("expiration_at", sa.Float, nullable=False),
    sa.Column("request", sa.Text, nullable=False),
    sa.UniqueConstraint("username", "request_uuid"),
)

# Each slice of a request: its properties hash (the dedup key) and the queue its dimensions
# name (master/tasks/dimensions.py queue_key).
task_slices = sa.Table(
    "task_slices",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.ForeignKey("task_requests.id"), primary_key=True),
    sa.Column("slice_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("properties_hash", sa.String(64), nullable=False),
    sa.Column("idempotent", sa.Integer, nullable=False, server_default="0"),
    sa.Column("expiration_secs", sa.Integer, nullable=False),
    sa.Column("queue_key", sa.String(32), nullable=False),
)

# A slice's secret bytes, apart from the request that is shown.
task_secrets = sa.Table(
    "task_secrets",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.ForeignKey("task_requests.id"), primary_key=True),
    sa.Column("slice_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("secret_bytes", sa.LargeBinary, nullable=False),
)

# The request's tags, one row each, for tasks/list?tags=k:v.
task_tags = sa.Table(
    "task_tags",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.ForeignKey("task_requests.id"), primary_key=True),
    sa.Column("tag", sa.String(1024), primary_key=True),
    sa.Index(None, "tag"),
)

# The task's summary (one per request): its state and, once it ran, its last try's result.
# ``properties_hash`` is set only while the task may be reused by a later idempotent twin
# (idempotent, COMPLETED, exit 0, not itself deduplicated); ``priority`` is the request's and
# ``queue_key`` its current slice's, copied so that a slave's pending tasks are found by index.
task_results = sa.Table(
    "task_results",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.ForeignKey("task_requests.id"), primary_key=True,
              autoincrement=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("priority", sa.Integer, nullable=False),
    sa.Column("current_slice", sa.Integer, nullable=False, server_default="0"),
    sa.Column("queue_key", sa.String(32), nullable=False),
    sa.Column("try_number", sa.Integer, nullable=True),
    sa.Column("deduped_from", sa.String(32), nullable=True),
    sa.Column("properties_hash", sa.String(64), nullable=True),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("internal_failure", sa.Integer, nullable=False, server_default="0"),
    sa.Column("slave", sa.String(NAME_LENGTH), nullable=True),
    sa.Column("outputs_ref", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("abandoned_at", sa.Float, nullable=True),
    sa.Column("modified_at", sa.Float, nullable=False),
    # An idempotent task attached to its in-flight twin (the summary's request id): it runs
    # nothing and ends with the twin's result (migration 0008).
    sa.Column("twin_of", sa.BigInteger, nullable=True),
    sa.Index(None, "state", "priority", "created_at"),
    sa.Index(None, "state", "queue_key", "priority", "created_at"),
    sa.Index(None, "properties_hash", "completed_at"),
    sa.Index(None, "twin_of"),
)

# Each try of a task (Swarming's run result), named by the run id.
task_runs = sa.Table(
    "task_runs",
    metadata,
    sa.Column("request_id", sa.BigInteger, sa.ForeignKey("task_requests.id"), primary_key=True),
    sa.Column("try_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("slice_index", sa.Integer, nullable=False),
    sa.Column("slave", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("duration", sa.Float, nullable=True),
    sa.Column("internal_failure", sa.Integer, nullable=False, server_default="0"),
    sa.Column("outputs_ref", sa.Text, nullable=True),
    sa.Column("stdout_size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("completed_at", sa.Float, nullable=True),
    sa.Column("abandoned_at", sa.Float, nullable=True),
    sa.Column("modified_at", sa.Float, nullable=False),
    sa.Index(None, "slave", "started_at"),
)

# A try's output, in chunks as they arrived, each at its byte offset (Swarming's
# ``output_chunk_start``); bytes, since a chunk may end inside a UTF-8 character.
task_output_chunks = sa.Table(
    "task_output_chunks",
    metadata,
    sa.Column("request_id", sa.BigInteger, primary_key=True),
    sa.Column("try_number", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("content", sa.LargeBinary, nullable=False),
    sa.ForeignKeyConstraint(["request_id", "try_number"], ["task_runs.request_id", "task_runs.try_number"],
                            name="fk_task_output_chunks_run"),
)

# Swarming's bots: each slave's dimensions (a JSON {key: [values]}), its state (JSON), and
# what an admin or the slave set (quarantine, maintenance: a message, or NULL when off).
bots = sa.Table(
    "bots",
    metadata,
    sa.Column("name", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("dimensions", sa.Text, nullable=False, server_default="{}"),
    sa.Column("state", sa.Text, nullable=False, server_default="{}"),
    sa.Column("version", sa.String(VERSION_LENGTH), nullable=True),
    sa.Column("quarantined", sa.Text, nullable=True),
    sa.Column("maintenance", sa.Text, nullable=True),
    sa.Column("task_id", sa.String(32), nullable=True),
    sa.Column("first_seen_at", sa.Float, nullable=False),
    sa.Column("last_seen_at", sa.Float, nullable=False),
)

# Taskcluster-style clients made through the Auth API (master/auth/clients.py); master.cfg's
# clients are not stored.  ``access_token`` is the token encrypted with a key derived from the
# master's clients key (never the token itself); ``scopes`` a JSON list (the client's own,
# before role expansion).
clients = sa.Table(
    "clients",
    metadata,
    sa.Column("client_id", sa.String(NAME_LENGTH), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("access_token", sa.Text, nullable=False),
    sa.Column("scopes", sa.Text, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("delete_on_expiration", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_modified", sa.Float, nullable=False),
    sa.Column("last_date_used", sa.Float, nullable=False),
    sa.Column("last_rotated", sa.Float, nullable=False),
)

# Taskcluster roles made through the Auth API (master/auth/roles.py; master.cfg's c['roles'] are
# not stored): ``scopes`` is a JSON list of the role's own scopes, before expansion.
ROLE_ID_LENGTH = 1000
roles = sa.Table(
    "roles",
    metadata,
    sa.Column("role_id", sa.String(ROLE_ID_LENGTH), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("scopes", sa.Text, nullable=False, server_default="[]"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("last_modified", sa.Float, nullable=False),
)

# The Queue service's tasks (master/queue/, docs/taskcluster.md "The Queue service"): a task's
# definition as created (canonical JSON, compared by the idempotent createTask), and its status
# (``state``, ``runs`` a JSON list of Taskcluster's run objects).  ``queue_dependencies`` holds one
# row per (task, task it depends on); ``satisfied`` is set in the transaction that resolves the
# dependency, which also makes the task pending when its last one is satisfied.
QUEUE_ID_LENGTH = 22  # a slugid
QUEUE_NAME_LENGTH = 76  # a taskQueueId (provisionerId/workerType) or a schedulerId
queue_tasks = sa.Table(
    "queue_tasks",
    metadata,
    sa.Column("task_id", sa.String(QUEUE_ID_LENGTH), primary_key=True),
    sa.Column("task_group_id", sa.String(QUEUE_ID_LENGTH), nullable=False),
    sa.Column("scheduler_id", sa.String(QUEUE_NAME_LENGTH), nullable=False),
    sa.Column("task_queue_id", sa.String(QUEUE_NAME_LENGTH), nullable=False),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("requires", sa.String(16), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("runs", sa.Text, nullable=False, server_default="[]"),
    sa.Column("retries_left", sa.Integer, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.Column("deadline", sa.Float, nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    # the task engine's task (task_requests.id) running the current run, until the run is resolved
    # and that task ended (master/queue/service.py)
    sa.Column("engine_task_id", sa.BigInteger, nullable=True),
    # HTTP workers' claims (master/queue/claims.py, migration 0012): the priority's rank (claims
    # take the highest first, then the oldest) and when the running run's claim expires
    sa.Column("priority_rank", sa.Integer, nullable=False, server_default="0"),
    sa.Column("taken_until", sa.Float, nullable=True),
    sa.Index("ix_queue_tasks_group", "task_group_id", "task_id"),
    sa.Index("ix_queue_tasks_state", "state", "task_queue_id"),
    sa.Index("ix_queue_tasks_engine_task_id", "engine_task_id"),
    sa.Index("ix_queue_tasks_claim", "task_queue_id", "state", "priority_rank", "created"),
    sa.Index("ix_queue_tasks_taken_until", "taken_until"),
)
# A task group: the schedulerId every task of it has, and when it was sealed (no new task).
queue_task_groups = sa.Table(
    "queue_task_groups",
    metadata,
    sa.Column("task_group_id", sa.String(QUEUE_ID_LENGTH), primary_key=True),
    sa.Column("scheduler_id", sa.String(QUEUE_NAME_LENGTH), nullable=False),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("sealed", sa.Float, nullable=True),
)
queue_dependencies = sa.Table(
    "queue_dependencies",
    metadata,
    sa.Column("task_id", sa.String(QUEUE_ID_LENGTH), sa.ForeignKey("queue_tasks.task_id"),
              nullable=False),
    sa.Column("dependency_id", sa.String(QUEUE_ID_LENGTH), nullable=False),
    sa.Column("satisfied", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.PrimaryKeyConstraint("task_id", "dependency_id", name="pk_queue_dependencies"),
    sa.Index("ix_queue_dependencies_dependency", "dependency_id", "task_id"),
)

# The Object service (master/objectservice/, docs/taskcluster.md "Artifacts and the Object
# service"): an object is a name -> the CAS entry holding its bytes (``digest``, the SHA-256 of
# the content, in the store's ``sha256-flat`` namespace), its projectId, its expiry and the hashes
# its uploader declared (JSON).  ``upload_id`` is set while the upload is unfinished (then null);
# ``received`` is what the master measured of the bytes it took (JSON ``{sha256, sha512, size}``).
OBJECT_NAME_LENGTH = 1100  # "t/<taskId>/<runId>/<artifact name of up to 1024>"
PROJECT_ID_LENGTH = 500
objects = sa.Table(
    "objects",
    metadata,
    sa.Column("name", sa.String(OBJECT_NAME_LENGTH), primary_key=True),
    sa.Column("project_id", sa.String(PROJECT_ID_LENGTH), nullable=False),
    sa.Column("upload_id", sa.String(QUEUE_ID_LENGTH), nullable=True),
    sa.Column("upload_expires", sa.Float, nullable=True),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("content_type", sa.String(NAME_LENGTH), nullable=False, server_default=""),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("hashes", sa.Text, nullable=False, server_default="{}"),
    sa.Column("received", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created", sa.Float, nullable=False),
    sa.Index("ix_objects_expires", "expires"),
)

# The Queue's artifacts (master/queue/artifacts.py): one row per (task, run, name);
# ``storage_type`` object, reference, link or error; ``details`` JSON (the object's uploadId
# until finished, a reference's url, a link's artifact, an error's reason and message);
# ``present`` once an object artifact is finished (the other types at once).
ARTIFACT_NAME_LENGTH = 1024
queue_artifacts = sa.Table(
    "queue_artifacts",
    metadata,
    sa.Column("task_id", sa.String(QUEUE_ID_LENGTH), nullable=False),
    sa.Column("run_id", sa.Integer, nullable=False),
    sa.Column("name", sa.String(ARTIFACT_NAME_LENGTH), nullable=False),
    sa.Column("storage_type", sa.String(16), nullable=False),
    sa.Column("content_type", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("content_length", sa.BigInteger, nullable=True),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("present", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("expires", sa.Float, nullable=False),
    sa.Column("created", sa.Float, nullable=False),
    sa.PrimaryKeyConstraint("task_id", "run_id", "name", name="pk_queue_artifacts"),
    sa.Index("ix_queue_artifacts_expires", "expires"),
)

# Messages for the broker not yet confirmed by it (c['mq'] amqp): written in the transaction of
# the state change they announce (buildfarm.master.db.outbox.add), deleted by the publisher once
# the broker confirmed them (master/mq/publisher.py); sent in ``id`` order.
mq_outbox = sa.Table(
    "mq_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("exchange", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("routing_key", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
)

# The fleet and the queue over time (master/samples.py, db/samples.py): a value per series
# (``slaves.idle``, ``queue.pending``, ``slaveapi.success``, ...) and time, every minute
# (``resolution`` 60) for a day, rolled up per hour (3600) for eight days; older rows go.
samples = sa.Table(
    "samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("series", sa.String(NAME_LENGTH), nullable=False),
    sa.Column("resolution", sa.Integer, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_samples_series", "resolution", "series", "at"),
)

# Leases (master/db/leases.py): the master that runs each singleton job (``name``: a timed
# scheduler, a change poller, the CAS janitor) until ``expires`` (epoch seconds of the
# holder's clock); ``masterid`` NULL when nobody holds it.  Taken and renewed with one
# conditional UPDATE; a dead master's are released by its reclaim.
LEASE_NAME_LENGTH = 300  # "poller:" and a poller's state name of up to 255
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(LEASE_NAME_LENGTH), primary_key=True),
    sa.Column("masterid", sa.Integer, nullable=True),
    sa.Column("expires", sa.Float, nullable=False, server_default="0"),
    sa.Index("ix_leases_masterid", "masterid"),
)

# Hawk nonces shared by the masters of one database (master/db/nonces.py, master/auth/nonces.py,
# with c['multiMaster']): one row per (client, nonce, timestamp) received, ``key`` its SHA-256
# (hex), kept until ``expires_at`` (the timestamp plus the skew window: an older request fails
# the skew check anyway); the unique key refuses the same request received a second time, by
# any master.
NONCE_KEY_LENGTH = 64
hawk_nonces = sa.Table(
    "hawk_nonces",
    metadata,
    sa.Column("key", sa.String(NONCE_KEY_LENGTH), primary_key=True),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Index("ix_hawk_nonces_expires_at", "expires_at"),
)
