"""Schema migrations, run synchronously by the ``buildmaster`` CLI (never on the reactor).

The connector uses :func:`connection_is_current` from its thread pool to refuse to start
on a database that ``buildmaster upgrade-master`` has not brought to the alembic head; an
in-memory SQLite database (``sqlite://``) is created by the connector itself, with
:func:`upgrade_connection`, since it lives only as long as the master process.
"""

import os

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from buildfarm.master.db import migrations
from buildfarm.master.db.engine import create_engine, resolve_db_url

__all__ = [
    "alembic_config",
    "connection_is_current",
    "resolve_db_url",
    "schema_is_current",
    "upgrade_connection",
    "upgrade_database",
]


def alembic_config() -> Config:
    """An alembic configuration pointing at the migrations package; no alembic.ini needed."""
    config = Config()
    location = os.path.dirname(os.path.abspath(migrations.__file__))
    # Config values go through ConfigParser interpolation, where "%" is special.
    config.set_main_option("script_location", location.replace("%", "%%"))
    return config


def upgrade_database(db_url: str, basedir: str, revision: str = "head") -> None:
    """Create the schema, or upgrade it to the newest revision (or to ``revision``), in
    one transaction."""
    engine = create_engine(db_url, basedir)
    try:
        with engine.begin() as conn:
            upgrade_connection(conn, revision)
    finally:
        engine.dispose()


def upgrade_connection(conn: sa.Connection, revision: str = "head") -> None:
    """Create or upgrade the schema of the database behind ``conn``, in its transaction."""
    config = alembic_config()
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def schema_is_current(db_url: str, basedir: str) -> bool:
    """Whether the database exists at the newest revision of the migrations."""
    engine = create_engine(db_url, basedir)
    try:
        with engine.begin() as conn:
            return connection_is_current(conn)
    finally:
        engine.dispose()


def connection_is_current(conn: sa.Connection) -> bool:
    """Whether the database behind ``conn`` is at the migrations' head revision(s)."""
    current = set(MigrationContext.configure(conn).get_current_heads())
    return current == set(ScriptDirectory.from_config(alembic_config()).get_heads())
