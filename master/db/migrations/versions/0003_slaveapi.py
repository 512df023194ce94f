"""The SlaveAPI: per-slave settings (enabled, environment, notes), action results, audit.

Revision ID: 0003
Revises: 0002
Create Date: 2025-03-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAME = sa.String(255)


def _fk(owner: str, column: str, table: str) -> sa.Column:
    """A nullable integer column referring to ``table.id``, named as model.py names it."""
    fk = sa.ForeignKey(f"{table}.id", name=f"fk_{owner}_{column}_{table}")
    return sa.Column(column, sa.Integer, fk, nullable=True)


def _timestamp(name: str) -> sa.Column:
    return sa.Column(name, sa.Integer, nullable=False, server_default="0")


def upgrade() -> None:
    op.create_table(
        "slave_settings",
        sa.Column("name", NAME, nullable=False),
        sa.Column("enabled", sa.Integer, nullable=False, server_default="1"),
        sa.Column("environment", NAME, nullable=True),
        sa.Column("disabled_reason", sa.Text, nullable=True),
        sa.Column("disabled_by", NAME, nullable=True),
        sa.Column("disabled_at", sa.Integer, nullable=True),
        sa.Column("notes", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("name", name="pk_slave_settings"),
    )
    op.create_table(
        "slaveapi_results",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("slave", NAME, nullable=False),
        sa.Column("action", NAME, nullable=False),
        sa.Column("args", sa.Text, nullable=False, server_default="{}"),
        sa.Column("state", sa.Integer, nullable=False, server_default="0"),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("data", sa.Text, nullable=True),
        sa.Column("requested_by", NAME, nullable=False),
        sa.Column("requested_from", NAME, nullable=False),
        _fk("slaveapi_results", "masterid", "masters"),
        _timestamp("request_timestamp"),
        _timestamp("start_timestamp"),
        _timestamp("finish_timestamp"),
        sa.PrimaryKeyConstraint("id", name="pk_slaveapi_results"),
    )
    op.create_index("ix_slaveapi_results_slave_action", "slaveapi_results", ["slave", "action"])
    op.create_index("ix_slaveapi_results_masterid_state", "slaveapi_results", ["masterid", "state"])
    op.create_table(
        "slaveapi_audit",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("timestamp", sa.Integer, nullable=False),
        sa.Column("username", NAME, nullable=False),
        sa.Column("peer", NAME, nullable=False),
        sa.Column("slave", NAME, nullable=False),
        sa.Column("action", NAME, nullable=False),
        _fk("slaveapi_audit", "requestid", "slaveapi_results"),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_slaveapi_audit"),
    )
    op.create_index("ix_slaveapi_audit_slave", "slaveapi_audit", ["slave"])
    op.create_index("ix_slaveapi_audit_requestid", "slaveapi_audit", ["requestid"])


def downgrade() -> None:
    op.drop_table("slaveapi_audit")
    op.drop_table("slaveapi_results")
    op.drop_table("slave_settings")
