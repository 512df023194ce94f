"""Engine creation shared by the connector (in its thread pool) and the CLI's migrations.

SQLite gets WAL, foreign keys and a busy timeout on every connection, and explicit
transactions: pysqlite's own implicit ``BEGIN`` is turned off and every SQLAlchemy
transaction starts with ``BEGIN IMMEDIATE``, so a read-then-write transaction (build
numbers, find-or-create) takes the write lock up front instead of failing with
``SQLITE_BUSY`` when it upgrades a read lock, and SAVEPOINTs work as documented.

PostgreSQL goes through psycopg 3 (a bare ``postgresql://`` URL means
``postgresql+psycopg://``) with a pool of ``pool_size`` connections, each checked with a
ping before use so that connections left over from before a server restart are replaced.
"""

import os

import sqlalchemy as sa
from sqlalchemy.engine import Engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_MEMORY_NAMES = ("", ":memory:")
# A server that does not answer at all fails the connection attempt (to be retried) after
# this long instead of holding a pool thread for the operating system's TCP timeout.
SERVER_CONNECT_TIMEOUT_S = 10
# Driver used for URLs that name PostgreSQL without one ("postgresql://", "postgres://").
POSTGRESQL_DRIVERNAME = "postgresql+psycopg"
_BARE_POSTGRESQL_NAMES = ("postgresql", "postgres")


def resolve_db_url(db_url: str, basedir: str) -> str:
    """The URL with a relative SQLite file path made absolute against ``basedir``, and
    psycopg named as the driver of a PostgreSQL URL that names none."""
    url = sa.engine.make_url(db_url)
    if url.drivername in _BARE_POSTGRESQL_NAMES:
        return url.set(drivername=POSTGRESQL_DRIVERNAME).render_as_string(hide_password=False)
    if url.get_backend_name() != "sqlite" or url.database in (None, *SQLITE_MEMORY_NAMES):
        return db_url
    if url.database.startswith("file:") or os.path.isabs(url.database):
        return db_url
    path = os.path.join(os.path.abspath(basedir), url.database)
    return url.set(database=path).render_as_string(hide_password=False)


def is_sqlite(db_url: str) -> bool:
    """Whether the URL names a SQLite database."""
    return sa.engine.make_url(db_url).get_backend_name() == "sqlite"


def is_in_memory(db_url: str) -> bool:
    """Whether the URL names a SQLite database held in memory (``sqlite://``,
    ``sqlite:///:memory:``): it lives as long as its one connection, in one process."""
    url = sa.engine.make_url(db_url)
    return url.get_backend_name() == "sqlite" and url.database in (None, *SQLITE_MEMORY_NAMES)


def create_engine(db_url: str, basedir: str, pool_size: int = 1) -> Engine:
    """An engine for the (resolved) URL: SQLite with the settings above, or a database
    server with a pool of ``pool_size`` connections (no overflow: the connector's thread
    pool, of the same size, is the only user)."""
    url = resolve_db_url(db_url, basedir)
    if is_in_memory(url):
        # One connection for the life of the engine, shared by whichever pool thread runs a
        # query (the connector runs one at a time): a second connection would see another,
        # empty, database.
        engine = sa.create_engine(url, poolclass=sa.pool.StaticPool,
                                  connect_args={"check_same_thread": False})
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    if is_sqlite(url):
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _configure_sqlite_connection)
        sa.event.listen(engine, "begin", _begin_immediate)
        return engine
    connect_args = {}
    if "connect_timeout" not in sa.engine.make_url(url).query:
        connect_args["connect_timeout"] = SERVER_CONNECT_TIMEOUT_S
    return sa.create_engine(
        url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, connect_args=connect_args
    )


def _configure_sqlite_connection(dbapi_connection, connection_record) -> None:
    # Autocommit at the driver level: SQLAlchemy's "begin" hook below owns BEGIN.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL never corrupts the database and loses nothing when the master
        # process dies (kill -9 included); only an OS crash or power loss may roll back the
        # last commits.  FULL would fsync every one of the dozen commits a build makes.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _begin_immediate(conn: sa.Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
