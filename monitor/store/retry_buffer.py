"""Writes that wait while the database is unreachable, and writes the event loop hands over.

Dead letters, detector results and alert transitions that could not be written because
the database was unreachable wait in a :class:`RetryBuffer`, bounded, in order, and the
housekeeping loop writes them once the database answers. What the bound drops is counted.

The same buffer keeps the event loop off the database: called on an event loop (an
ingestion route), :meth:`RetryBuffer.submit` only queues the items and wakes the
:class:`BackgroundWriter` thread, which writes them. A SQLite file locked by another
process, or a slow PostgreSQL, then holds that thread, never the requests (``/healthz``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from monitor.metrics import StoreAvailability, StoreMetrics
from monitor.store.engine import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetryBuffer(Generic[T]):
    """Writes of one kind that could not be made because the database was unreachable.

    :meth:`submit` writes at once while the store is up and nothing is waiting; otherwise,
    or when that write finds the database unreachable, the items wait here, in order. On an
    event loop, with a ``writer``, it never writes: the items wait and the writer thread
    writes them. At most ``max_items`` wait, and at most ``max_bytes`` by ``size`` (an
    estimate of each item's bytes): beyond, the oldest are dropped and counted. :meth:`flush`
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
        max_bytes: int | None = None,
        size: Callable[[T], int] | None = None,
        writer: BackgroundWriter | None = None,
    ):
        self.kind = kind
        self._write = write
        self._store = store
        self._metrics = metrics
        self._max_items = max_items
        self._on_drop = on_drop
        self._max_bytes = max_bytes
        self._size = size if max_bytes is not None else None
        self.writer = writer  # may be set after construction (e.g. the alert persister's buffer)
        self._lock = threading.Lock()  # guards _pending, _bytes and _seq
        self._flushing = threading.Lock()  # one flush at a time, so batches go in order
        self._pending: deque[tuple[int, T, int]] = deque()  # (sequence number, item, its size)
        self._bytes = 0
        self._seq = 0
        self._outage = False  # items wait because the store was unreachable (not just handed over)

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def pending_bytes(self) -> int:
        """The ``size`` of what waits (0 without a byte bound)."""
        return self._bytes

    def submit(self, items: Sequence[T]) -> None:
        if not items:
            return
        writer = self.writer
        if writer is not None and _on_event_loop():
            # Never the database on the event loop: the writer thread makes the write.
            with self._lock:
                self._outage = self._outage or not self._store.available
                self._keep(items)
            if self._store.available:
                writer.wake(self)
            return
        with self._lock:
            if self._pending or not self._store.available:
                self._outage = self._outage or not self._store.available
                self._keep(items)
                if writer is not None and self._store.available:
                    writer.wake(self)  # behind what the loop handed over, not ahead of it
                return
        try:
            self._write(list(items))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("store unreachable: %d %s kept for a retry (%s)", len(items), self.kind, type(exc).__name__)
            with self._lock:
                self._outage = True
                self._keep(items)

    def flush(self) -> bool:
        """Write what waits, oldest first; True when nothing is left waiting."""
        with self._flushing:
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return True
            try:
                self._write([item for _, item, _ in batch])
            except Exception as exc:
                if is_transient(exc):
                    self._outage = True
                    return False
                log.exception("the store refused %d waiting %s; they are dropped", len(batch), self.kind)
                self._count_dropped(len(batch))
            last = batch[-1][0]
            with self._lock:
                while self._pending and self._pending[0][0] <= last:
                    self._bytes -= self._pending.popleft()[2]
                self._metrics.pending.labels(self.kind).set(len(self._pending))
                left = len(self._pending)
                outage, self._outage = self._outage, self._outage and left > 0
            if left == 0 and outage:
                log.info("store reachable: the waiting %s were written", self.kind)
            return left == 0

    def _keep(self, items: Sequence[T]) -> None:
        size = self._size
        for item in items:
            self._seq += 1
            nbytes = 0 if size is None else size(item)
            self._pending.append((self._seq, item, nbytes))
            self._bytes += nbytes
        overflow = 0
        max_bytes = self._max_bytes
        while self._pending and (
            len(self._pending) > self._max_items or (max_bytes is not None and self._bytes > max_bytes)
        ):
            self._bytes -= self._pending.popleft()[2]
            overflow += 1
        if overflow > 0:
            log.error(
                "the %s retry buffer is full (%d items, %s bytes): the %d oldest are dropped",
                self.kind, self._max_items, max_bytes, overflow,
            )  # fmt: skip
            self._count_dropped(overflow)
        self._metrics.pending.labels(self.kind).set(len(self._pending))

    def _count_dropped(self, n: int) -> None:
        self._metrics.dropped.labels(self.kind).inc(n)
        if self._on_drop is not None:
            self._on_drop(n)


class BackgroundWriter:
    """One daemon thread that flushes the retry buffers the event loop woke (see
    :meth:`RetryBuffer.submit`), in the order they were woken. A flush that finds the
    database unreachable leaves its items waiting: the housekeeping loop tries again at its
    next ping, so this thread never spins against a database that is down."""

    def __init__(self, name: str = "monitor-store-writer"):
        self._name = name
        self._wake = threading.Condition()
        self._due: dict[int, RetryBuffer[Any]] = {}  # by id(); dicts keep the order they were woken in
        self._stopped = False
        self._thread: threading.Thread | None = None

    def wake(self, buffer: RetryBuffer[Any]) -> None:
        """Flush ``buffer`` soon (on the writer thread, started on first use)."""
        with self._wake:
            if self._stopped:  # shutting down: Service.stop flushes what waits
                return
            self._due[id(buffer)] = buffer
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._wake.notify()

    def stop(self, timeout: float | None = None) -> None:
        """Finish the flushes already asked for, then end the thread."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._due and not self._stopped:
                    self._wake.wait()
                if not self._due:
                    return
                due = list(self._due.values())
                self._due.clear()
            for buffer in due:
                try:
                    buffer.flush()
                except Exception:  # flush counts what the store refuses; anything else is a bug, logged
                    log.exception("writing the waiting %s failed", buffer.kind)


def _on_event_loop() -> bool:
    """True on a thread that runs an asyncio event loop (where nothing may wait for the database)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
