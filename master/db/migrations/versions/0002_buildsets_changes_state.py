"""Buildsets (and the build requests' link to theirs), changes, and scheduler state.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NAME = sa.String(255)
REVISION = sa.String(255)
REPOSITORY = sa.String(512)
BUILDSETID_FK = "fk_buildrequests_buildsetid_buildsets"
BUILDSETID_INDEX = "ix_buildrequests_buildsetid"


def upgrade() -> None:
    _create_buildsets()
    _link_buildrequests_to_buildsets()
    _create_changes()
    op.create_table(
        "scheduler_state",
        sa.Column("scheduler", NAME, nullable=False),
        sa.Column("key", NAME, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("scheduler", "key", name="pk_scheduler_state"),
    )


def _create_buildsets() -> None:
    op.create_table(
        "buildsets",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("scheduler", NAME, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
        sa.Column("submitted_at", sa.Float, nullable=False),
        sa.Column("complete", sa.Integer, nullable=False, server_default="0"),
        sa.Column("complete_at", sa.Float, nullable=True),
        sa.Column("results", sa.Integer, nullable=True),
        sa.Column(
            "parent_buildid", sa.Integer,
            sa.ForeignKey("builds.id", name="fk_buildsets_parent_buildid_builds"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("id", name="pk_buildsets"),
    )


def _link_buildrequests_to_buildsets() -> None:
    """Add ``buildrequests.buildsetid`` in place, keeping every existing request.

    SQLite cannot add a constraint to a table, and rebuilding ``buildrequests`` (alembic's
    batch mode) would drop a table that ``builds`` refers to; but it can add a column whose
    inline REFERENCES clause names the constraint, which is what the model describes.
    """
    if op.get_context().dialect.name == "sqlite":
        op.execute(
            f"ALTER TABLE buildrequests ADD COLUMN buildsetid INTEGER "
            f"CONSTRAINT {BUILDSETID_FK} REFERENCES buildsets (id)"
        )
    else:
        op.add_column("buildrequests", sa.Column("buildsetid", sa.Integer, nullable=True))
        op.create_foreign_key(BUILDSETID_FK, "buildrequests", "buildsets", ["buildsetid"], ["id"])
    op.create_index(BUILDSETID_INDEX, "buildrequests", ["buildsetid"])


def _create_changes() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("author", NAME, nullable=False),
        sa.Column("committer", NAME, nullable=True),
        sa.Column("comments", sa.Text, nullable=False, server_default=""),
        sa.Column("branch", NAME, nullable=True),
        sa.Column("revision", REVISION, nullable=True),
        sa.Column("repository", REPOSITORY, nullable=False, server_default=""),
        sa.Column("project", NAME, nullable=False, server_default=""),
        sa.Column("codebase", NAME, nullable=False, server_default=""),
        sa.Column("category", NAME, nullable=True),
        sa.Column("when_timestamp", sa.Float, nullable=False),
        sa.Column("files", sa.Text, nullable=False, server_default="[]"),
        sa.Column("properties", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_changes"),
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        # SQLite can neither drop a column used by a foreign key nor rebuild a table that
        # others refer to while foreign keys are enforced.
        raise NotImplementedError("downgrading a SQLite database is not supported")
    op.drop_table("scheduler_state")
    op.drop_table("changes")
    op.drop_index(BUILDSETID_INDEX, table_name="buildrequests")
    op.drop_constraint(BUILDSETID_FK, "buildrequests", type_="foreignkey")
    op.drop_column("buildrequests", "buildsetid")
    op.drop_table("buildsets")
