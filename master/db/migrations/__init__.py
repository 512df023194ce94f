"""Alembic migrations of the master's schema (``env.py``, ``versions/``)."""
