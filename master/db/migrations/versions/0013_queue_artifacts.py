"""The Object service's objects and the Queue's artifacts (master/objectservice/,
master/queue/artifacts.py).

Revision ID: 0013_queue_artifacts
Revises: 0012_queue_claims
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_queue_artifacts"
down_revision = "0012_queue_claims"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "objects",
        sa.Column("name", sa.String(1100), nullable=False),
        sa.Column("project_id", sa.String(500), nullable=False),
        sa.Column("upload_id", sa.String(22), nullable=True),
        sa.Column("upload_expires", sa.Float, nullable=True),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False, server_default=""),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("hashes", sa.Text, nullable=False, server_default="{}"),
        sa.Column("received", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_objects"),
    )
    op.create_index("ix_objects_expires", "objects", ["expires"])
    op.create_table(
        "queue_artifacts",
        sa.Column("task_id", sa.String(22), nullable=False),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(1024), nullable=False),
        sa.Column("storage_type", sa.String(16), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("content_length", sa.BigInteger, nullable=True),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("present", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("task_id", "run_id", "name", name="pk_queue_artifacts"),
    )
    op.create_index("ix_queue_artifacts_expires", "queue_artifacts", ["expires"])


def downgrade() -> None:
    op.drop_table("queue_artifacts")
    op.drop_table("objects")
