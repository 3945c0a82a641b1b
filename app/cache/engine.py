"""Creating the cache's SQLAlchemy engine from LINSTOR_NAMES_CACHE_URL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

# Seconds a SQLite writer waits for another writer's lock before failing (busy_timeout).
SQLITE_BUSY_TIMEOUT = 10.0
# Execution option that marks a connection as about to write: SQLite then takes the write lock at BEGIN.
WRITE_OPTION = "linstor_names_write"


def normalize_url(url: str) -> URL:
    """The SQLAlchemy URL of a cache URL; PostgreSQL URLs without a driver get psycopg 3 (the one we ship)."""
    if url.strip().lower() == "none":
        raise ValueError("the cache URL is 'none': the service runs without a cache")
    # 'postgres://' is what libpq and many hosting providers hand out
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"unsupported cache database {backend!r}: use a SQLite file or PostgreSQL")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        # every connection of an in-memory database sees its own empty database
        raise ValueError("the SQLite cache needs a file: sqlite:///path/to/cache.db")
    return parsed


def create_cache_engine(url: str, *, pool_size: int = 8, autocommit: bool = False) -> Engine:
    """An engine for the cache: SQLite in WAL mode with a busy timeout, or a PostgreSQL pool."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        if autocommit:
            # set at creation, not per checkout: switching per checkout cost ~100 µs a read (measured)
            return sa.create_engine(
                parsed, pool_size=pool_size, max_overflow=pool_size, isolation_level="AUTOCOMMIT"
            )
        # no pool_pre_ping: a round trip per checkout would double a lookup's cost; the store retries a
        # read once on a connection found dead instead (a restarted server invalidates the whole pool)
        return sa.create_engine(parsed, pool_size=pool_size, max_overflow=pool_size)
    engine = sa.create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
        pool_size=pool_size,
        max_overflow=pool_size,
    )
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (SQLAlchemy's documented
    # recipe); the cache's raw read connection then runs each SELECT in autocommit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough for a cache that LINSTOR can rebuild
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A deferred transaction that reads and then writes fails with SQLITE_BUSY at once when another
    # writer committed in between; writers take the lock up front instead (and wait busy_timeout for it).
    write = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
