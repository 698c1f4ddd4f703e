"""The store as a result sink: every evaluated window becomes rows of the results table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.performance import PerformanceResult
from detectors.results import Result
from monitor.detection import evaluation_rows, performance_rows
from monitor.store.database import Store

if TYPE_CHECKING:
    from monitor.store.retry_buffer import RetryBuffer


class StoreSink:
    """Writes each result's rows; with ``buffer``, rows that find the store unreachable wait
    there (bounded, counted when dropped) and are written when it answers again."""

    def __init__(self, store: Store, buffer: RetryBuffer[dict[str, Any]] | None = None):
        self.store = store
        self.buffer = buffer

    def publish(self, model: str, reference_version: str, result: Result) -> None:
        if isinstance(result, PerformanceResult):
            rows = performance_rows(model, result, reference_version)
        else:
            rows = evaluation_rows(model, result)
        if self.buffer is not None:
            self.buffer.submit(rows)
        else:
            self.store.add_results(rows)
