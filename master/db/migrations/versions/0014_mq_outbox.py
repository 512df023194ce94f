"""The outbox of the messages for the broker (c['mq'] amqp; master/mq/, master/db/outbox.py).

Revision ID: 0014_mq_outbox
Revises: 0013_queue_artifacts
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_mq_outbox"
down_revision = "0013_queue_artifacts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mq_outbox",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("exchange", sa.String(255), nullable=False),
        sa.Column("routing_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_mq_outbox"),
    )


def downgrade() -> None:
    op.drop_table("mq_outbox")
