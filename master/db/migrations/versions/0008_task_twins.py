"""Tasks: an idempotent task attached to its in-flight twin (``task_results.twin_of``).

Revision ID: 0008_task_twins
Revises: 0007_tasks
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_task_twins"
down_revision = "0007_tasks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("task_results") as batch:
        batch.add_column(sa.Column("twin_of", sa.BigInteger, nullable=True))
        batch.create_index("ix_task_results_twin_of", ["twin_of"])


def downgrade() -> None:
    with op.batch_alter_table("task_results") as batch:
        batch.drop_index("ix_task_results_twin_of")
        batch.drop_column("twin_of")
