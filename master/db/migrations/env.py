"""Alembic environment: migrate the connection that ``buildfarm.master.db.migrate`` passes in.

The master runs migrations programmatically with the connection in
``config.attributes["connection"]``.  A developer running the ``alembic`` command (for
``alembic revision --autogenerate``) sets ``sqlalchemy.url`` instead.
"""

from alembic import context

from buildfarm.master.db import model
from buildfarm.master.db.engine import create_engine


def run_migrations(connection) -> None:
    """Run the pending migrations on ``connection``, inside its transaction if it has one."""
    context.configure(
        connection=connection,
        target_metadata=model.metadata,
        render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies tables
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_migrations(connection)
        return
    engine = create_engine(context.config.get_main_option("sqlalchemy.url"), ".")
    try:
        with engine.begin() as conn:
            run_migrations(conn)
    finally:
        engine.dispose()


main()
