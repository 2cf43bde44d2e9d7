"""Engines for the store: SQLite set up so several processes can share one file; PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Connection, Engine, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_S = 30.0
# Execution option marking a connection that will write (SQLite then takes the lock at BEGIN).
WRITE_OPTION = "llmgw_write"


def normalize_url(url: str | URL) -> URL:
    """The URL as given, with a bare `postgresql://` (or `postgres://`) using psycopg 3,
    the PostgreSQL driver llmgw installs."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def upsert_statement(conn: Connection, table: Table) -> Any:
    """An INSERT on `table` that takes `.on_conflict_do_nothing` / `.on_conflict_do_update`:
    the one place that knows both supported dialects spell it alike."""
    dialects = {"postgresql": postgresql, "sqlite": sqlite}
    if conn.dialect.name not in dialects:
        raise ValueError(f"llmgw's store runs on SQLite or PostgreSQL, not {conn.dialect.name}")
    return dialects[conn.dialect.name].insert(table)


def create_engine(url: URL) -> Engine:
    """An engine for `url`; SQLite in WAL mode with a busy timeout and write-locking BEGIN."""
    if url.get_backend_name() != "sqlite":
        return sqlalchemy.create_engine(url, pool_pre_ping=True)
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    }
    if in_memory:
        options["poolclass"] = StaticPool
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sqlalchemy.create_engine(url, **options)
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN, instead of pysqlite's implicit one.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    # In WAL mode NORMAL survives process crashes; only an OS crash can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql(
        "BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN"
    )
