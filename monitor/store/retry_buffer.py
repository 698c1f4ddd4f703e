"""Writes that wait while the database is unreachable.

Dead letters, detector results and alert transitions that could not be written because
the database was unreachable wait in a :class:`RetryBuffer`, bounded, in order, and the
housekeeping loop writes them once the database answers. What the bound drops is counted.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from monitor.metrics import StoreAvailability, StoreMetrics
from monitor.store.engine import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")


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
        store: StoreAvailability,
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
