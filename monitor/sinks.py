"""The store as a result sink: every evaluated window becomes rows of the results table."""

from __future__ import annotations

from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from monitor.detection import evaluation_rows, performance_rows
from monitor.store import Store


class StoreSink:
    def __init__(self, store: Store):
        self.store = store

    def publish(self, model: str, reference_version: str, result: Evaluation | PerformanceResult) -> None:
        if isinstance(result, PerformanceResult):
            rows = performance_rows(model, result, reference_version)
        else:
            rows = evaluation_rows(model, result)
        self.store.add_results(rows)
