"""Roles: the Taskcluster roles made through the Auth API (``/api/auth/v1/roles``).

Revision ID: 0010_roles
Revises: 0009_clients
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_roles"
down_revision = "0009_clients"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roles",
        sa.Column("role_id", sa.String(1000), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("scopes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("last_modified", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("role_id", name="pk_roles"),
    )


def downgrade() -> None:
    op.drop_table("roles")
