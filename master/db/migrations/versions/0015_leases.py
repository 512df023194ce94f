"""Leases: which master runs each singleton job (a timed scheduler, a change poller, the CAS
janitor) when several share the database (master/db/leases.py, master/cluster/leases.py).

Revision ID: 0015_leases
Revises: 0014_mq_outbox
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_leases"
down_revision = "0014_mq_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("masterid", sa.Integer, nullable=True),
        sa.Column("expires", sa.Float, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_index("ix_leases_masterid", "leases", ["masterid"])


def downgrade() -> None:
    op.drop_table("leases")
