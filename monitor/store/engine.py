"""The store's database engine: connections with the store's settings (SQLite pragmas, a
PostgreSQL pool), the errors it raises, and which errors mean "unreachable for now"."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5_000  # how long a SQLite writer waits for the write lock before "database is locked"
CONNECT_TIMEOUT_SECONDS = 5  # so /readyz answers promptly when a PostgreSQL host is unreachable
CONFLICT_ATTEMPTS = 5
# A write that fails because the database is unreachable (a restart, a dropped connection,
# a deadlock) is tried this many times in all, waiting these many seconds before each rerun.
TRANSIENT_ATTEMPTS = 3
TRANSIENT_BACKOFF_SECONDS = (0.1, 0.5)
# Connection pool of a database server (PostgreSQL); StorageConfig has the same defaults.
POOL_SIZE = 5
POOL_MAX_OVERFLOW = 10
POOL_TIMEOUT_SECONDS = 10.0
POOL_RECYCLE_SECONDS = 1800.0
WRITE_OPTION = "monitor_write"  # execution option: the transaction will write (SQLite: BEGIN IMMEDIATE)


class StoreError(RuntimeError):
    """The database could not be migrated or a write kept conflicting; the message names the URL."""


class StoreUnavailable(StoreError):
    """The database could not be reached (after the transient-error retries): the write was
    not made, and the caller should keep what it wanted to write and try again later."""


def is_transient(exc: BaseException) -> bool:
    """True for errors that say the database is (for now) unreachable or busy rather than
    that the statement is wrong: lost or refused connections, a server shutting down or
    starting up, deadlocks and serialisation failures, an exhausted pool, a locked SQLite file."""
    if isinstance(exc, (StoreUnavailable, sa.exc.TimeoutError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    if not isinstance(exc, (OperationalError, InterfaceError)):
        return False
    if isinstance(exc.orig, sqlite3.Error):  # SQLite also says "no such table" with an OperationalError
        message = str(exc.orig).lower()
        return any(word in message for word in ("locked", "busy", "unable to open", "disk i/o"))
    return True


def make_engine(
    url: str | sa.URL,
    *,
    pool_size: int = POOL_SIZE,
    max_overflow: int = POOL_MAX_OVERFLOW,
    pool_timeout: float = POOL_TIMEOUT_SECONDS,
    pool_recycle: float = POOL_RECYCLE_SECONDS,
) -> Engine:
    """An engine for ``url`` with the store's settings (SQLite: WAL and friends on every
    connection; a server such as PostgreSQL: a QueuePool of ``pool_size`` connections plus
    ``max_overflow``, each checked with a ping before use, so connections broken by a
    database restart are replaced instead of failing a transaction). JSON columns are
    written with orjson."""
    parsed = sa.make_url(url)
    options: dict[str, Any] = {"json_serializer": _json_dumps}
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        # No pre-ping: a SQLite file has no server to drop the connection, and the ping
        # would cost a SELECT 1 on every checkout.
        _create_sqlite_folder(parsed)
    else:
        # LIFO: the connections beyond what the load needs stay idle and get recycled.
        options.update(
            poolclass=sa.pool.QueuePool, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=pool_timeout,
            pool_recycle=pool_recycle if pool_recycle > 0 else -1, pool_use_lifo=True, pool_pre_ping=True,
        )  # fmt: skip
    if parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_SECONDS}
    engine = sa.create_engine(parsed, **options)
    if backend == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _json_dumps(value: Any) -> str:
    # Several times faster than the json module, which SQLAlchemy would use: a window's
    # results carry a JSON detail each. What orjson refuses (integers beyond 64 bits,
    # non-string keys, lone surrogates, other types) is left to the json module as before.
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(value)


def _create_sqlite_folder(url: sa.URL) -> None:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or url.query.get("uri"):
        return
    try:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        # Not fatal here: connecting fails with the driver's own error, and ping() says False.
        log.warning("cannot create the folder of SQLite database %s: %s", database, exc)


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The sqlite3 module's legacy mode skips BEGIN before SELECT and DDL (so migrations
    # would not be atomic); turn it off and emit BEGIN ourselves in _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # first: WAL below may wait for a lock
        _set_wal(cursor)  # readers never block the writer
        cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a crash loses at most the last commits
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _set_wal(cursor: Any) -> None:
    """Switch a new database file to WAL. Two processes creating the same file at once can
    get "database is locked" here without the busy timeout applying, so retry briefly."""
    for attempt in range(50):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == 49:
                raise
            time.sleep(0.02 * (1 + attempt % 5))


def _sqlite_on_begin(connection: Connection) -> None:
    # A writer takes the lock up front: a deferred transaction that reads first and writes
    # later fails at once with "database is locked" in WAL mode instead of waiting.
    immediate = connection.get_execution_options().get(WRITE_OPTION, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def engine_for(engine_or_url: Engine | str | sa.URL) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        with conn.begin():
            yield conn
