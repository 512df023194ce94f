"""Tasks (master/tasks): requests, slices, secrets, tags, results, tries, output chunks, bots.

Revision ID: 0007_tasks
Revises: 0006_reports
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_tasks"
down_revision = "0006_reports"
branch_labels = None
depends_on = None

REQUESTS_FK = "task_requests.id"


def upgrade() -> None:
    op.create_table(
        "task_requests",
        sa.Column("id", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("username", sa.String(255), nullable=False, server_default=""),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("request_uuid", sa.String(255), nullable=True),
        sa.Column("parent_task_id", sa.String(32), nullable=True),
        sa.Column("expiration_at", sa.Float, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_task_requests"),
        sa.UniqueConstraint("username", "request_uuid", name="uq_task_requests_username_request_uuid"),
    )
    op.create_table(
        "task_slices",
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("slice_index", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("properties_hash", sa.String(64), nullable=False),
        sa.Column("idempotent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expiration_secs", sa.Integer, nullable=False),
        sa.Column("queue_key", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "slice_index", name="pk_task_slices"),
        sa.ForeignKeyConstraint(["request_id"], [REQUESTS_FK],
                                name="fk_task_slices_request_id_task_requests"),
    )
    op.create_table(
        "task_secrets",
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("slice_index", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("secret_bytes", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "slice_index", name="pk_task_secrets"),
        sa.ForeignKeyConstraint(["request_id"], [REQUESTS_FK],
                                name="fk_task_secrets_request_id_task_requests"),
    )
    op.create_table(
        "task_tags",
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("tag", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("request_id", "tag", name="pk_task_tags"),
        sa.ForeignKeyConstraint(["request_id"], [REQUESTS_FK],
                                name="fk_task_tags_request_id_task_requests"),
    )
    op.create_index("ix_task_tags_tag", "task_tags", ["tag"])
    op.create_table(
        "task_results",
        sa.Column("request_id", sa.BigInteger, nullable=False, autoincrement=False),
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
        sa.Column("slave", sa.String(255), nullable=True),
        sa.Column("outputs_ref", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("completed_at", sa.Float, nullable=True),
        sa.Column("abandoned_at", sa.Float, nullable=True),
        sa.Column("modified_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_task_results"),
        sa.ForeignKeyConstraint(["request_id"], [REQUESTS_FK],
                                name="fk_task_results_request_id_task_requests"),
    )
    op.create_index("ix_task_results_state_priority_created_at", "task_results",
                    ["state", "priority", "created_at"])
    op.create_index("ix_task_results_state_queue_key_priority_created_at", "task_results",
                    ["state", "queue_key", "priority", "created_at"])
    op.create_index("ix_task_results_properties_hash_completed_at", "task_results",
                    ["properties_hash", "completed_at"])
    op.create_table(
        "task_runs",
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("slice_index", sa.Integer, nullable=False),
        sa.Column("slave", sa.String(255), nullable=False),
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
        sa.PrimaryKeyConstraint("request_id", "try_number", name="pk_task_runs"),
        sa.ForeignKeyConstraint(["request_id"], [REQUESTS_FK],
                                name="fk_task_runs_request_id_task_requests"),
    )
    op.create_index("ix_task_runs_slave_started_at", "task_runs", ["slave", "started_at"])
    op.create_table(
        "task_output_chunks",
        sa.Column("request_id", sa.BigInteger, nullable=False),
        sa.Column("try_number", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("start", sa.BigInteger, nullable=False, autoincrement=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("request_id", "try_number", "start", name="pk_task_output_chunks"),
        sa.ForeignKeyConstraint(["request_id", "try_number"],
                                ["task_runs.request_id", "task_runs.try_number"],
                                name="fk_task_output_chunks_run"),
    )
    op.create_table(
        "bots",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("dimensions", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.Text, nullable=False, server_default="{}"),
        sa.Column("version", sa.String(64), nullable=True),
        sa.Column("quarantined", sa.Text, nullable=True),
        sa.Column("maintenance", sa.Text, nullable=True),
        sa.Column("task_id", sa.String(32), nullable=True),
        sa.Column("first_seen_at", sa.Float, nullable=False),
        sa.Column("last_seen_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_bots"),
    )


def downgrade() -> None:
    for table in ("bots", "task_output_chunks", "task_runs", "task_results", "task_tags", "task_secrets",
                  "task_slices", "task_requests"):
        op.drop_table(table)
