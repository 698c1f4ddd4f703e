"""A cap on the metric series each model can create.

Per-feature families (drift scores, p-values, quality ratios) multiply a model's feature
count by methods and checks. Feature names come from the config, but a model registered
from traffic, or a config with thousands of features, must not be able to flood
Prometheus: past ``max_series`` label sets per model, new series are not created and each
refusal is counted in ``monitor_metric_series_dropped_total{model}``. Series that exist
keep updating.
"""

from __future__ import annotations

import threading
from typing import Any

from prometheus_client import Counter


class CardinalityGuard:
    def __init__(self, max_series: int, dropped: Counter):
        if max_series < 1:
            raise ValueError(f"max_series must be at least 1, got {max_series}")
        self.max_series = max_series
        self._dropped = dropped
        self._series: dict[str, set[tuple[str, tuple[str, ...]]]] = {}
        self._lock = threading.Lock()

    def labels(self, family: Any, model: str, *rest: str) -> Any | None:
        """The child of ``family`` for ``(model, *rest)``, or None when the model is at its cap."""
        key = (family._name, rest)
        with self._lock:
            seen = self._series.setdefault(model, set())
            if key not in seen:
                if len(seen) >= self.max_series:
                    self._dropped.labels(model).inc()
                    return None
                seen.add(key)
        return family.labels(model, *rest)

    def release(self, family: Any, model: str, *rest: str) -> None:
        """Give back the slot of a series that was removed (a retired model version's)."""
        with self._lock:
            self._series.get(model, set()).discard((family._name, rest))

    def series(self, model: str) -> int:
        with self._lock:
            return len(self._series.get(model, ()))
