"""The fleet and the queue over time (master/samples.py): a small table of samples.

Revision ID: 0016_samples
Revises: 0015_leases
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_samples"
down_revision = "0015_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("series", sa.String(255), nullable=False),
        sa.Column("resolution", sa.Integer, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
    )
    op.create_index("ix_samples_series", "samples", ["resolution", "series", "at"])


def downgrade() -> None:
    op.drop_index("ix_samples_series", table_name="samples")
    op.drop_table("samples")
