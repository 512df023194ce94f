"""The master's database layer: SQLAlchemy Core tables, alembic migrations, and the connector."""
