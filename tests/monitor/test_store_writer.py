"""The retry buffer's writer thread and byte bound, on a real SQLite store: on an event loop
``submit`` hands the rows over and returns while another connection holds the write lock;
the writer thread writes them once the lock is released; what waits is bounded in bytes,
the oldest dropped and counted."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support import metric, wait_for

from monitor.metrics import StoreMetrics
from monitor.store.database import Store
from monitor.store.dead_letters import DeadLetter, dead_letter_row
from monitor.store.retry_buffer import BackgroundWriter, RetryBuffer


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    with Store(f"sqlite:///{tmp_path / 'monitor.db'}") as store:
        yield store


def rows(n: int, pad: int = 100) -> list[dict[str, Any]]:
    return [
        dead_letter_row(DeadLetter(1.0, "http", "m", i, "x", "unknown_field", "not a field", {"pad": "p" * pad}))
        for i in range(n)
    ]


def stored_size(row: dict[str, Any]) -> int:
    return int(row["stored_bytes"])


def test_on_the_event_loop_submit_returns_while_the_database_is_locked(sqlite_store: Store, tmp_path: Path) -> None:
    registry = CollectorRegistry()
    writer = BackgroundWriter()
    buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
        "dead_letters", sqlite_store.add_dead_letter_rows, sqlite_store, StoreMetrics(registry, sqlite_store),
        max_items=1000, writer=writer,
    )  # fmt: skip
    holder = sqlite3.connect(tmp_path / "monitor.db", isolation_level=None, timeout=60)
    holder.execute("BEGIN IMMEDIATE")
    returned = threading.Event()

    async def route() -> None:  # what an ingestion route does
        buffer.submit(rows(25))
        returned.set()

    try:
        asyncio.run(route())
        # Returned with the lock still held, nothing written yet: the write waits on the thread.
        assert returned.is_set() and buffer.pending == 25
        assert metric(registry, "monitor_store_writes_pending", kind="dead_letters") == 25
        assert holder.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The writer thread's write goes through once the lock is gone (had it given up first,
    # the rows still wait, and the housekeeping loop's flush - this one - writes them).
    wait_for(lambda: buffer.flush() and sqlite_store.count_dead_letters() == 25, 30, "the rows written")
    assert buffer.pending == 0 and metric(registry, "monitor_store_writes_dropped_total", kind="dead_letters") == 0
    writer.stop()
    # Off the event loop (a Kafka thread), submit writes at once, as before.
    buffer.submit(rows(3))
    assert sqlite_store.count_dead_letters() == 28 and buffer.pending == 0


def test_what_waits_is_bounded_in_bytes_the_oldest_dropped_and_counted(sqlite_store: Store) -> None:
    registry = CollectorRegistry()
    dropped: list[int] = []
    batch = rows(10, pad=1000)
    size = max(map(stored_size, batch))
    buffer: RetryBuffer[dict[str, Any]] = RetryBuffer(
        "dead_letters", sqlite_store.add_dead_letter_rows, sqlite_store, StoreMetrics(registry, sqlite_store),
        max_items=1000, on_drop=dropped.append, max_bytes=4 * size, size=stored_size,
    )  # fmt: skip
    sqlite_store.mark_down("a test says so")
    buffer.submit(batch[:3])
    buffer.submit(batch[3:])
    assert buffer.pending == 4 and buffer.pending_bytes <= 4 * size and dropped == [6]
    assert metric(registry, "monitor_store_writes_dropped_total", kind="dead_letters") == 6
    sqlite_store.mark_up()
    assert buffer.flush() and buffer.pending == 0 and buffer.pending_bytes == 0
    assert [row["item_index"] for row in sqlite_store.dead_letters()] == [9, 8, 7, 6]  # the newest kept
