"""What a model's detector publishes, and what receives it.

Every closed window gives one :data:`Result`: an
:class:`~detectors.evaluation.Evaluation` (drift, data quality, latency) of a traffic
window, or a :class:`~detectors.performance.PerformanceResult` of a window of labelled
predictions. Both carry ``window_seq``, the window's number in its stream, and
``to_dict()``. A :class:`ResultSink` (the store, the metrics, the alert engine) receives
each one once, in the order the windows closed.
"""

from __future__ import annotations

from typing import Protocol

from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult

Result = Evaluation | PerformanceResult


class ResultSink(Protocol):
    def publish(self, model: str, reference_version: str, result: Result) -> None: ...
