"""Hawk nonces shared by the masters of one database: a request replayed to another master is
refused (master/db/nonces.py, master/auth/nonces.py).

Revision ID: 0017_hawk_nonces
Revises: 0016_samples
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0017_hawk_nonces"
down_revision = "0016_samples"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hawk_nonces",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_hawk_nonces"),
    )
    op.create_index("ix_hawk_nonces_expires_at", "hawk_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_table("hawk_nonces")
