"""HTTP workers' claims on the Queue's tasks (master/queue/claims.py): each task's priority rank
(claimWork takes the highest first, then the oldest) and its running run's ``takenUntil``.

Revision ID: 0012_queue_claims
Revises: 0011_queue
Create Date: 2026-12-05
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0012_queue_claims"
down_revision = "0011_queue"
branch_labels = None
depends_on = None

# Taskcluster's ranks (master/queue/model.py PRIORITY_RANKS), frozen here as this migration knew them
RANKS = {"highest": 7, "very-high": 6, "high": 5, "medium": 4, "low": 3, "very-low": 2, "lowest": 1,
         "normal": 0}


def upgrade() -> None:
    with op.batch_alter_table("queue_tasks") as batch:
        batch.add_column(sa.Column("priority_rank", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("taken_until", sa.Float, nullable=True))
    op.create_index("ix_queue_tasks_claim", "queue_tasks",
                    ["task_queue_id", "state", "priority_rank", "created"])
    op.create_index("ix_queue_tasks_taken_until", "queue_tasks", ["taken_until"])
    tasks = sa.table("queue_tasks", sa.column("task_id", sa.String), sa.column("definition", sa.Text),
                     sa.column("priority_rank", sa.Integer))
    conn = op.get_bind()
    for task_id, definition in conn.execute(sa.select(tasks.c.task_id, tasks.c.definition)).all():
        rank = RANKS.get(json.loads(definition).get("priority"), 0)
        conn.execute(sa.update(tasks).where(tasks.c.task_id == task_id).values(priority_rank=rank))


def downgrade() -> None:
    op.drop_index("ix_queue_tasks_taken_until", "queue_tasks")
    op.drop_index("ix_queue_tasks_claim", "queue_tasks")
    with op.batch_alter_table("queue_tasks") as batch:
        batch.drop_column("taken_until")
        batch.drop_column("priority_rank")
