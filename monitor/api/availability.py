"""What the service does while its database is unreachable.

The store marks itself down when a write fails for want of the database (after its
transient-error retries) or a ping fails, and up again when a ping or write succeeds; the
housekeeping loop in :mod:`monitor.api.app` pings it every ``storage.flush_interval_seconds``.

- :func:`require_store`: a FastAPI dependency on the ingestion routes. While the store is
  down they answer 503 with ``Retry-After`` instead of accepting records whose counts,
  dead letters and results could not be kept (Kafka keeps its records until checkpointed).
- :class:`RetryBuffer`: writes that failed because the database was unreachable (dead
  letters, detector results, alert transitions) wait here, bounded, in order, and the
  housekeeping loop writes them once the database answers. What the bound drops is counted.
- :func:`add_store_error_handlers`: a read that finds the database unreachable answers 503
  with ``Retry-After`` too, not 500.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from fastapi import FastAPI, HTTPException, Request
from prometheus_client import CollectorRegistry, Counter, Gauge
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from monitor.api.responses import JSONResponse
from monitor.store.database import Store
from monitor.store.engine import StoreUnavailable, is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")

UNAVAILABLE_DETAIL = "the store is unreachable: nothing was accepted; retry later"
KINDS = ("dead_letters", "results", "alerts")
# For the OpenAPI description of the routes behind require_store.
STORE_UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "The store is unreachable: nothing was accepted; retry after Retry-After seconds",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}},
        "content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "string"}}}}},
    }
}


def retry_after_seconds(app: FastAPI) -> int:
    """The housekeeping loop pings the store this often: the soonest a retry can succeed."""
    return max(1, math.ceil(app.state.settings.storage.flush_interval_seconds))


def _unavailable(app: FastAPI) -> HTTPException:
    return HTTPException(503, UNAVAILABLE_DETAIL, headers={"Retry-After": str(retry_after_seconds(app))})


async def require_store(request: Request) -> None:
    """503 with ``Retry-After`` while the store is marked down."""
    # async: a plain def would run in the thread pool on every ingestion request.
    if not request.app.state.store.available:
        raise _unavailable(request.app)


def add_store_error_handlers(app: FastAPI) -> None:
    """A route whose query finds the database unreachable answers 503 + Retry-After."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if not is_transient(exc):  # a real bug: the usual 500, logged with its traceback
            log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        request.app.state.store.mark_down(exc)
        problem = _unavailable(request.app)
        return JSONResponse({"detail": problem.detail}, status_code=503, headers=problem.headers)

    for error in (StoreUnavailable, DBAPIError, PoolTimeoutError):
        app.add_exception_handler(error, handler)


class StoreMetrics:
    """``monitor_store_up``, ``monitor_store_writes_pending{kind}``, ``monitor_store_writes_dropped_total{kind}``."""

    def __init__(self, registry: CollectorRegistry, store: Store):
        self.up = Gauge("monitor_store_up", "1 while the store answers, 0 while it is marked unreachable.",
                        registry=registry)  # fmt: skip
        self.up.set_function(lambda: 1.0 if store.available else 0.0)
        self.pending = Gauge(
            "monitor_store_writes_pending",
            "Writes waiting in memory for the store to answer again (dead letters, result rows, alert updates).",
            ["kind"],
            registry=registry,
        )
        self.dropped = Counter(
            "monitor_store_writes_dropped_total",
            "Writes lost: the retry buffer was full while the store was unreachable, or the store refused them.",
            ["kind"],
            registry=registry,
        )
        for kind in KINDS:
            self.pending.labels(kind)
            self.dropped.labels(kind)


class RetryBuffer(Generic[T]):
    """Writes of one kind that could not be made because the database was unreachable.

    :meth:`submit` writes at once while the store is up and nothing is waiting; otherwise,
    or when that write finds the database unreachable, the items wait here, in order. At
    most ``max_items`` wait: beyond, the oldest are dropped and counted. :meth:`flush`
    (the housekeeping loop) writes everything waiting in one ``write`` call. Errors that
    are not about reaching the database are raised by :meth:`submit` (the caller's usual
    handling) and, in :meth:`flush`, logged and counted as dropped: such a batch would
    never succeed and must not block the ones behind it."""

    def __init__(
        self,
        kind: str,
        write: Callable[[list[T]], None],
        store: Store,
        metrics: StoreMetrics,
        *,
        max_items: int,
        on_drop: Callable[[int], None] | None = None,
    ):
        self.kind = kind
        self._write = write
        self._store = store
        self._metrics = metrics
        self._max_items = max_items
        self._on_drop = on_drop
        self._lock = threading.Lock()  # guards _pending and _seq
        self._flushing = threading.Lock()  # one flush at a time, so batches go in order
        self._pending: deque[tuple[int, T]] = deque()
        self._seq = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, items: Sequence[T]) -> None:
        if not items:
            return
        with self._lock:
            if self._pending or not self._store.available:
                self._keep(items)
                return
        try:
            self._write(list(items))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("store unreachable: %d %s kept for a retry (%s)", len(items), self.kind, type(exc).__name__)
            with self._lock:
                self._keep(items)

    def flush(self) -> bool:
        """Write what waits, oldest first; True when nothing is left waiting."""
        with self._flushing:
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return True
            try:
                self._write([item for _, item in batch])
            except Exception as exc:
                if is_transient(exc):
                    return False
                log.exception("the store refused %d waiting %s; they are dropped", len(batch), self.kind)
                self._count_dropped(len(batch))
            last = batch[-1][0]
            with self._lock:
                while self._pending and self._pending[0][0] <= last:
                    self._pending.popleft()
                self._metrics.pending.labels(self.kind).set(len(self._pending))
                left = len(self._pending)
            if left == 0:
                log.info("store reachable: the waiting %s were written", self.kind)
            return left == 0

    def _keep(self, items: Sequence[T]) -> None:
        for item in items:
            self._seq += 1
            self._pending.append((self._seq, item))
        overflow = len(self._pending) - self._max_items
        if overflow > 0:
            for _ in range(overflow):
                self._pending.popleft()
            log.error(
                "the %s retry buffer is full (%d): the %d oldest are dropped", self.kind, self._max_items, overflow
            )
            self._count_dropped(overflow)
        self._metrics.pending.labels(self.kind).set(len(self._pending))

    def _count_dropped(self, n: int) -> None:
        self._metrics.dropped.labels(self.kind).inc(n)
        if self._on_drop is not None:
            self._on_drop(n)
