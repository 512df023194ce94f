"""Slave connection history: one row per attach, closed by its detach.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slave_connections",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("slaveid", sa.Integer,
                  sa.ForeignKey("slaves.id", name="fk_slave_connections_slaveid_slaves"), nullable=False),
        sa.Column("masterid", sa.Integer,
                  sa.ForeignKey("masters.id", name="fk_slave_connections_masterid_masters"), nullable=True),
        sa.Column("peer", sa.String(255), nullable=True),
        sa.Column("connected_at", sa.Float, nullable=False),
        sa.Column("disconnected_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_slave_connections"),
    )
    op.create_index("ix_slave_connections_slaveid_connected_at", "slave_connections",
                    ["slaveid", "connected_at"])
    op.create_index("ix_slave_connections_masterid_disconnected_at", "slave_connections",
                    ["masterid", "disconnected_at"])


def downgrade() -> None:
    op.drop_table("slave_connections")
