"""Clients: the Taskcluster-style clients made through the Auth API (``clients``).

Revision ID: 0009_clients
Revises: 0008_task_twins
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_clients"
down_revision = "0008_task_twins"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("access_token", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("delete_on_expiration", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last_modified", sa.Float, nullable=False),
        sa.Column("last_date_used", sa.Float, nullable=False),
        sa.Column("last_rotated", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_clients"),
    )


def downgrade() -> None:
    op.drop_table("clients")
