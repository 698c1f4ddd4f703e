"""The store facade: :class:`Store`, the only place the rest of the service touches the
database. It holds the monitored models and the persisted record counts itself, and mixes
in one class per concern: dead letters (:mod:`.dead_letters`), references and results
(:mod:`.results`), alerts (:mod:`.alerts`), the webhook outbox (:mod:`.outbox`) and the
Kafka checkpoints (:mod:`.kafka_checkpoints`).

Its methods are synchronous, short and thread-safe (each takes a pooled connection for one
transaction). Any SQLAlchemy URL works; the default is a SQLite file in WAL mode, and the
same Alembic migrations (``monitor/store/migrations``) run on PostgreSQL
(``postgresql+psycopg://...``). Migrations run in code (:mod:`.migrate`): no alembic.ini.
The tables themselves are in :mod:`monitor.store.tables`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError

from monitor.store import tables as t
from monitor.store.alerts import AlertsStore
from monitor.store.counts import CountDeltas, add_count_rows, count_rows
from monitor.store.dead_letters import DeadLettersStore
from monitor.store.engine import (
    CONFLICT_ATTEMPTS,
    TRANSIENT_ATTEMPTS,
    TRANSIENT_BACKOFF_SECONDS,
    StoreError,
    StoreUnavailable,
    is_transient,
    make_engine,
    write_transaction,
)
from monitor.store.histograms import HistogramsStore
from monitor.store.instance_checkpoints import InstanceCheckpointStore
from monitor.store.kafka_checkpoints import CheckpointStore
from monitor.store.migrate import upgrade
from monitor.store.outbox import OutboxStore
from monitor.store.results import ResultsStore

if TYPE_CHECKING:
    from monitor.settings import StorageConfig

log = logging.getLogger(__name__)


class Store(
    ResultsStore, AlertsStore, OutboxStore, CheckpointStore, InstanceCheckpointStore, DeadLettersStore, HistogramsStore
):
    """Typed access to the service's tables. Create one per process and share it between threads.

    References and detector results: see :class:`monitor.store.results.ResultsStore`; alerts:
    :class:`monitor.store.alerts.AlertsStore`; webhook deliveries:
    :class:`monitor.store.outbox.OutboxStore`."""

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
                with write_transaction(self._engine) as conn:
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
