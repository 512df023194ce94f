"""The Queue service (master/queue/): its tasks, their groups and their dependencies.

Revision ID: 0011_queue
Revises: 0010_roles
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_queue"
down_revision = "0010_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "queue_tasks",
        sa.Column("task_id", sa.String(22), nullable=False),
        sa.Column("task_group_id", sa.String(22), nullable=False),
        sa.Column("scheduler_id", sa.String(76), nullable=False),
        sa.Column("task_queue_id", sa.String(76), nullable=False),
        sa.Column("definition", sa.Text, nullable=False),
        sa.Column("requires", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("runs", sa.Text, nullable=False, server_default="[]"),
        sa.Column("retries_left", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("deadline", sa.Float, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("engine_task_id", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("task_id", name="pk_queue_tasks"),
    )
    op.create_index("ix_queue_tasks_group", "queue_tasks", ["task_group_id", "task_id"])
    op.create_index("ix_queue_tasks_state", "queue_tasks", ["state", "task_queue_id"])
    op.create_index("ix_queue_tasks_engine_task_id", "queue_tasks", ["engine_task_id"])
    op.create_table(
        "queue_task_groups",
        sa.Column("task_group_id", sa.String(22), nullable=False),
        sa.Column("scheduler_id", sa.String(76), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("sealed", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("task_group_id", name="pk_queue_task_groups"),
    )
    op.create_table(
        "queue_dependencies",
        sa.Column("task_id", sa.String(22), nullable=False),
        sa.Column("dependency_id", sa.String(22), nullable=False),
        sa.Column("satisfied", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("task_id", "dependency_id", name="pk_queue_dependencies"),
        sa.ForeignKeyConstraint(["task_id"], ["queue_tasks.task_id"],
                                name="fk_queue_dependencies_task_id_queue_tasks"),
    )
    op.create_index("ix_queue_dependencies_dependency", "queue_dependencies", ["dependency_id", "task_id"])


def downgrade() -> None:
    op.drop_table("queue_dependencies")
    op.drop_table("queue_task_groups")
    op.drop_table("queue_tasks")
