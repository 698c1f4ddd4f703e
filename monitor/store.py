"""The service's database: monitored models, dead letters, persisted record counts, and
(through :mod:`monitor.store_results`) reference profiles and detector results.

:class:`Store` is the only place the rest of the service touches the database. Its
methods are synchronous, short and thread-safe (each takes a pooled connection for one
transaction). Any SQLAlchemy URL works; the default is a SQLite file in WAL mode, and the
same Alembic migrations (``monitor/migrations``) run on PostgreSQL
(``postgresql+psycopg://...``). Migrations run in code: :func:`upgrade` needs no
alembic.ini. The tables themselves are in :mod:`monitor.store_tables`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from monitor import store_tables as t
from monitor.store_alerts import AlertsStore
from monitor.store_checkpoints import CheckpointStore
from monitor.store_counts import CountDeltas, add_count_rows, count_rows
from monitor.store_outbox import OutboxStore
from monitor.store_results import ResultsStore
from monitor.store_tables import DeadLetter, dead_letter_filters, dead_letter_row, parse_raw

if TYPE_CHECKING:
    from monitor.settings import StorageConfig

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
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
_WRITE = "monitor_write"  # execution option: the transaction will write (SQLite: BEGIN IMMEDIATE)
_PG_MIGRATION_LOCK = 0x6D6F6E69  # advisory lock key; any constant shared by all workers


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
    immediate = connection.get_execution_options().get(_WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def _engine_for(engine_or_url: Engine | str | sa.URL) -> Iterator[Engine]:
    if isinstance(engine_or_url, Engine):
        yield engine_or_url
        return
    engine = make_engine(engine_or_url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _write(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection  # env.py runs the migrations on it
    return config


def upgrade(engine_or_url: Engine | str | sa.URL, revision: str = "head") -> None:
    """Migrate the database up to ``revision`` in one transaction; a no-op when already there."""
    _migrate(engine_or_url, revision, command.upgrade, "upgrade")


def downgrade(engine_or_url: Engine | str | sa.URL, revision: str) -> None:
    """Migrate the database down to ``revision`` ("base" drops every table). Loses data."""
    _migrate(engine_or_url, revision, command.downgrade, "downgrade")


def _migrate(
    engine_or_url: Engine | str | sa.URL, revision: str, run: Callable[[Config, str], None], verb: str
) -> None:
    with _engine_for(engine_or_url) as engine:
        where = engine.url.render_as_string(hide_password=True)
        try:
            with _write(engine) as conn:
                if conn.dialect.name == "postgresql":
                    # Workers start together: one migrates, the others wait here, then find nothing to do.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
                run(_alembic_config(conn), revision)
        except (DBAPIError, CommandError) as exc:
            raise StoreError(f"cannot {verb} database {where} to revision {revision!r}: {exc}") from exc


def current_revision(engine_or_url: Engine | str | sa.URL) -> str | None:
    """The database's migration revision, or None when it was never migrated."""
    with _engine_for(engine_or_url) as engine, engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str:
    """The newest migration revision shipped with this code."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


class Store(ResultsStore, AlertsStore, OutboxStore, CheckpointStore):
    """Typed access to the service's tables. Create one per process and share it between threads.

    References and detector results: see :class:`monitor.store_results.ResultsStore`; alerts:
    :class:`monitor.store_alerts.AlertsStore`; webhook deliveries:
    :class:`monitor.store_outbox.OutboxStore`."""

    def __init__(self, url: str, *, migrate: bool = True, **pool: Any) -> None:
        """``pool``: ``pool_size``, ``max_overflow``, ``pool_timeout``, ``pool_recycle`` (see :func:`make_engine`)."""
        self._engine = make_engine(url, **pool)
        self.url = self._engine.url.render_as_string(hide_password=True)  # for logs and errors
        # Availability as last seen: a write that failed for want of the database (after its
        # retries) or a failed ping marks it down; a ping or write that succeeds, up again.
        self._availability = threading.Lock()
        self._down_since: float | None = None
        if migrate:
            try:
                upgrade(self._engine)
            except BaseException:
                self._engine.dispose()
                raise

    @classmethod
    def from_settings(cls, config: StorageConfig) -> Store:
        return cls(
            config.url, migrate=config.auto_migrate, pool_size=config.pool_size, max_overflow=config.pool_max_overflow,
            pool_timeout=config.pool_timeout_seconds, pool_recycle=config.pool_recycle_seconds,
        )  # fmt: skip

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def ping(self) -> bool:
        """True when the database answers a ``SELECT 1`` (for /readyz); marks the store up or down."""
        try:
            with self._engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except (DBAPIError, sa.exc.TimeoutError) as exc:
            log.debug("database %s did not answer: %s", self.url, exc)
            self.mark_down(exc)
            return False
        self.mark_up()
        return True

    # -- availability ---------------------------------------------------------------

    @property
    def available(self) -> bool:
        """False from a failed ping or unreachable-database write until a ping or write succeeds."""
        return self._down_since is None

    @property
    def down_since(self) -> float | None:
        """When the store was marked down (``time.monotonic()``), or None while it is up."""
        return self._down_since

    def mark_down(self, cause: BaseException | str) -> None:
        with self._availability:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        log.error("database %s is unreachable: %s", self.url, first_line)

    def mark_up(self) -> None:
        if self._down_since is None:  # the usual case: no lock
            return
        with self._availability:
            since, self._down_since = self._down_since, None
        if since is not None:
            log.warning("database %s is reachable again after %.1f s", self.url, time.monotonic() - since)

    # -- dead letters ---------------------------------------------------------------

    def add_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Insert ``letters`` in one transaction (one executemany)."""
        if not letters:
            return
        rows = [dead_letter_row(letter) for letter in letters]

        def work(conn: Connection) -> None:
            conn.execute(t.dead_letters.insert(), rows)

        # Called on the ingestion path: one attempt, no sleeping; on StoreUnavailable the
        # caller keeps the letters and tries again later (monitor.availability.RetryBuffer).
        self._write_retrying(work, f"adding {len(rows)} dead letters", transient_attempts=1)

    def dead_letters(
        self, model: str | None = None, reason: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> list[dict[str, Any]]:
        """Newest first; page on with ``before_id`` = the smallest ``id`` of the previous page."""
        if limit < 1:
            raise ValueError(f"dead_letters: limit must be at least 1, got {limit}")
        c = t.dead_letters.c
        query = sa.select(t.dead_letters).where(*dead_letter_filters(model, reason)).order_by(c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(c.id < before_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{**row, "raw": parse_raw(row["raw"])} for row in rows]

    def count_dead_letters(self, model: str | None = None, reason: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(t.dead_letters).where(*dead_letter_filters(model, reason))
        with self._engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def trim_dead_letters(self, max_rows: int) -> int:
        """Delete all but the ``max_rows`` newest dead letters; returns how many went."""
        if max_rows < 0:
            raise ValueError(f"trim_dead_letters: max_rows must not be negative, got {max_rows}")
        c = t.dead_letters.c
        # The id of the newest row that must go (NULL when there are few enough rows).
        cutoff = sa.select(c.id).order_by(c.id.desc()).offset(max_rows).limit(1).scalar_subquery()
        deleted: list[int] = []

        def work(conn: Connection) -> None:
            deleted[:] = [int(conn.execute(sa.delete(t.dead_letters).where(c.id <= cutoff)).rowcount)]

        self._write_retrying(work, "trimming dead letters")
        return deleted[0]

    # -- models ---------------------------------------------------------------------

    def upsert_model(self, name: str, config: dict[str, Any], source: str) -> None:
        """Add the model, or replace its config and source (``created_at`` is kept)."""
        if source not in t.MODEL_SOURCES:
            raise ValueError(f"model {name!r}: source must be one of {', '.join(t.MODEL_SOURCES)}, got {source!r}")
        try:
            json.dumps(config, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model {name!r}: config is not JSON-serialisable: {exc}") from None
        now = time.time()

        def work(conn: Connection) -> None:
            c = t.models.c
            row = {"name": name, "created_at": now, "config": config, "source": source}
            if t.upsert(conn, t.models, row, ("name",), t.replace_model):
                return
            updated = conn.execute(sa.update(t.models).where(c.name == name).values(config=config, source=source))
            if updated.rowcount == 0:
                conn.execute(sa.insert(t.models).values(name=name, created_at=now, config=config, source=source))

        self._write_retrying(work, f"upsert of model {name!r}")

    def models(self) -> list[dict[str, Any]]:
        """Every stored model as ``{name, created_at, config, source}``, by name."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.models).order_by(t.models.c.name)).mappings().all()
        return [dict(row) for row in rows]

    # -- record counts --------------------------------------------------------------

    def add_counts(self, deltas: CountDeltas) -> None:
        """Add increments to the counters of each ``(model, source)`` in one transaction."""
        rows = count_rows(deltas)
        if not rows:
            return
        now = time.time()
        self._write_retrying(
            lambda conn: add_count_rows(conn, rows, now), f"adding record counts for {len(rows)} (model, source) keys"
        )

    def counts(self) -> dict[tuple[str, str], dict[str, int]]:
        """Every ``(model, source)`` with its counters."""
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(t.record_counts)).mappings().all()
        return {(row["model"], row["source"]): {name: int(row[name]) for name in t.COUNT_COLUMNS} for row in rows}

    def _write_retrying(
        self, work: Callable[[Connection], None], what: str, *, transient_attempts: int = TRANSIENT_ATTEMPTS
    ) -> None:
        """Run ``work`` in a write transaction; again from scratch if a concurrent insert of
        the same key won (UPDATE found no row, INSERT then hit the primary key), or if the
        database could not be reached (:func:`is_transient`: up to ``transient_attempts``
        in all, with a short backoff; a single attempt while the store is marked down).
        When the database stays unreachable: marks the store down, raises StoreUnavailable.

        A rerun after a connection lost at COMMIT can apply a transaction twice if the
        commit had reached the database; short of that, every change is applied once."""
        conflicts = transient = 0
        while True:
            try:
                with _write(self._engine) as conn:
                    work(conn)
            except IntegrityError as exc:
                # The whole transaction rolled back, so a rerun applies every change once.
                conflicts += 1
                if conflicts == CONFLICT_ATTEMPTS:
                    raise StoreError(f"{what} in {self.url} failed {conflicts} times: {exc.orig}") from exc
                continue
            except Exception as exc:
                if not is_transient(exc):
                    raise
                transient += 1
                if transient >= (transient_attempts if self.available else 1):
                    self.mark_down(exc)
                    cause = getattr(exc, "orig", None) or exc
                    raise StoreUnavailable(
                        f"{what} in {self.url} failed: the database is unreachable ({transient} attempt(s)): {cause}"
                    ) from exc
                delay = TRANSIENT_BACKOFF_SECONDS[min(transient, len(TRANSIENT_BACKOFF_SECONDS)) - 1]
                log.warning("%s in %s failed (%s); retrying in %.1f s", what, self.url, type(exc).__name__, delay)
                time.sleep(delay)
                continue
            self.mark_up()
            return
