"""The retry buffer that keeps writes while the store is unreachable: order, bound, errors."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry
from support import metric

from monitor.metrics import StoreMetrics
from monitor.store.engine import StoreUnavailable
from monitor.store.retry_buffer import RetryBuffer


class FakeStore:
    """What the buffer reads of the Store: whether it is marked up."""

    def __init__(self) -> None:
        self.available = True


class Target:
    """A write that fails while ``down`` (as the Store does) and records what it wrote."""

    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.down = False
        self.refuse = False
        self.written: list[list[int]] = []

    def __call__(self, items: list[int]) -> None:
        if self.down:
            self.store.available = False
            raise StoreUnavailable("down")
        if self.refuse:
            raise ValueError("bad rows")
        self.written.append(items)


def make(max_items: int = 5) -> tuple[RetryBuffer[int], Target, CollectorRegistry, list[int]]:
    store = FakeStore()
    registry = CollectorRegistry()
    target = Target(store)
    dropped: list[int] = []
    buffer: RetryBuffer[int] = RetryBuffer(
        "results", target, store, StoreMetrics(registry, store), max_items=max_items, on_drop=dropped.append
    )  # type: ignore[arg-type]
    return buffer, target, registry, dropped


def test_writes_go_straight_through_while_the_store_is_up() -> None:
    buffer, target, registry, _ = make()
    buffer.submit([1, 2])
    buffer.submit([])
    assert target.written == [[1, 2]] and buffer.pending == 0
    assert metric(registry, "monitor_store_up") == 1


def test_failed_writes_wait_in_order_and_go_in_one_write_when_the_store_is_back() -> None:
    buffer, target, registry, dropped = make()
    target.down = True
    buffer.submit([1, 2])  # fails: kept, and the store is now marked down
    buffer.submit([3])  # the store is down: kept without trying
    assert buffer.pending == 3 and target.written == []
    assert metric(registry, "monitor_store_up") == 0
    assert metric(registry, "monitor_store_writes_pending", kind="results") == 3
    assert buffer.flush() is False and buffer.pending == 3
    target.down, target.store.available = False, True
    buffer.submit([4])  # up, but older writes wait: behind them, never ahead
    assert target.written == [] and buffer.pending == 4
    assert buffer.flush() is True
    assert target.written == [[1, 2, 3, 4]] and buffer.pending == 0 and dropped == []
    assert metric(registry, "monitor_store_writes_pending", kind="results") == 0


def test_beyond_the_bound_the_oldest_are_dropped_and_counted() -> None:
    buffer, target, registry, dropped = make(max_items=5)
    target.down = True
    for i in range(4):
        buffer.submit([2 * i, 2 * i + 1])
    assert buffer.pending == 5 and dropped == [1, 2]
    assert metric(registry, "monitor_store_writes_dropped_total", kind="results") == 3
    target.down, target.store.available = False, True
    assert buffer.flush()
    assert target.written == [[3, 4, 5, 6, 7]]


def test_errors_that_are_not_about_reaching_the_store() -> None:
    buffer, target, registry, dropped = make()
    target.refuse = True
    with pytest.raises(ValueError, match="bad rows"):  # the caller's usual handling
        buffer.submit([1])
    assert buffer.pending == 0
    target.refuse, target.down = False, True
    buffer.submit([2, 3])
    target.down, target.refuse, target.store.available = False, True, True
    assert buffer.flush() is True  # a batch the store refuses would block everything behind it: dropped
    assert buffer.pending == 0 and dropped == [2]
    assert metric(registry, "monitor_store_writes_dropped_total", kind="results") == 2
