"""The initial schema: masters, builders, slaves, build requests, builds, steps, logs.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME = sa.String(255)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer, nullable=False)


def _fk(owner: str, column: str, table: str, nullable: bool = False) -> sa.Column:
    """An integer column referring to ``table.id``, its constraint named as model.py names it."""
    fk = sa.ForeignKey(f"{table}.id", name=f"fk_{owner}_{column}_{table}")
    return sa.Column(column, sa.Integer, fk, nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "masters",
        _id(),
        sa.Column("name", NAME, nullable=False),
        sa.Column("active", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_active", sa.Float, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_masters"),
        sa.UniqueConstraint("name", name="uq_masters_name"),
    )
    op.create_table(
        "builders",
        _id(),
        sa.Column("name", NAME, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_builders"),
        sa.UniqueConstraint("name", name="uq_builders_name"),
    )
    op.create_table(
        "slaves",
        _id(),
        sa.Column("name", NAME, nullable=False),
        sa.Column("info", sa.Text, nullable=False, server_default="{}"),
        sa.Column("version", sa.String(64), nullable=True),
        _fk("slaves", "connected_masterid", "masters", nullable=True),
        sa.Column("last_connected_at", sa.Float, nullable=True),
        sa.Column("last_disconnected_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_slaves"),
        sa.UniqueConstraint("name", name="uq_slaves_name"),
    )
    _create_buildrequests()
    _create_builds()
    _create_steps_and_logs()


def _create_buildrequests() -> None:
    op.create_table(
        "buildrequests",
        _id(),
        _fk("buildrequests", "builderid", "builders"),
        sa.Column("priority", sa.Integer, nullable=False, server_default="0"),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
        sa.Column("submitted_at", sa.Float, nullable=False),
        _fk("buildrequests", "claimed_by_masterid", "masters", nullable=True),
        sa.Column("claimed_at", sa.Float, nullable=True),
        sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
        sa.Column("results", sa.Integer, nullable=True),
        sa.Column("complete_at", sa.Float, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_buildrequests"),
    )
    op.create_index(
        "ix_buildrequests_builderid_complete_claimed_by_masterid",
        "buildrequests",
        ["builderid", "complete", "claimed_by_masterid"],
    )


def _create_builds() -> None:
    op.create_table(
        "builds",
        _id(),
        sa.Column("number", sa.Integer, nullable=False),
        _fk("builds", "builderid", "builders"),
        _fk("builds", "buildrequestid", "buildrequests"),
        _fk("builds", "slaveid", "slaves"),
        _fk("builds", "masterid", "masters"),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("complete_at", sa.Float, nullable=True),
        sa.Column("state_string", sa.Text, nullable=False, server_default=""),
        sa.Column("results", sa.Integer, nullable=True),
        sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
        sa.PrimaryKeyConstraint("id", name="pk_builds"),
        sa.UniqueConstraint("builderid", "number", name="uq_builds_builderid_number"),
    )
    op.create_index("ix_builds_buildrequestid", "builds", ["buildrequestid"])
    op.create_index("ix_builds_masterid_complete_at", "builds", ["masterid", "complete_at"])


def _create_steps_and_logs() -> None:
    op.create_table(
        "steps",
        _id(),
        _fk("steps", "buildid", "builds"),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("name", NAME, nullable=False),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("complete_at", sa.Float, nullable=True),
        sa.Column("state_string", sa.Text, nullable=False, server_default=""),
        sa.Column("results", sa.Integer, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_steps"),
        sa.UniqueConstraint("buildid", "number", name="uq_steps_buildid_number"),
    )
    op.create_table(
        "logs",
        _id(),
        _fk("logs", "stepid", "steps"),
        sa.Column("name", NAME, nullable=False),
        sa.Column("slug", NAME, nullable=False),
        sa.Column("type", sa.String(1), nullable=False, server_default="s"),
        sa.Column("num_lines", sa.Integer, nullable=False, server_default="0"),
        sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("id", name="pk_logs"),
        sa.UniqueConstraint("stepid", "slug", name="uq_logs_stepid_slug"),
    )
    op.create_table(
        "logchunks",
        _id(),
        _fk("logchunks", "logid", "logs"),
        sa.Column("first_line", sa.Integer, nullable=False),
        sa.Column("last_line", sa.Integer, nullable=False),
        sa.Column("content", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_logchunks"),
    )
    op.create_index("ix_logchunks_logid_first_line", "logchunks", ["logid", "first_line"])


def downgrade() -> None:
    dependents_first = (
        "logchunks", "logs", "steps", "builds", "buildrequests", "slaves", "builders", "masters",
    )
    for table in dependents_first:
        op.drop_table(table)
