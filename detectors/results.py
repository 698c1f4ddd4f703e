"""What a model's detector publishes, and what receives it.

Every closed window gives one :data:`Result`: an
:class:`~detectors.evaluation.Evaluation` (drift, data quality, latency) of a traffic
window, or a :class:`~detectors.performance.PerformanceResult` of a window of labelled
predictions, or, from :mod:`detectors.estimation` before labels come, an
:class:`~detectors.estimation.cbpe.EstimatedPerformance` or a
:class:`~detectors.estimation.multivariate.MultivariateDrift` of a traffic window
(:data:`Estimate`). All carry ``window_seq``, the window's number in its stream, and
``to_dict()``. A :class:`ResultSink` (the store, the metrics, the alert engine) receives
each one once, in the order the windows closed.
"""

from __future__ import annotations

from typing import Protocol

from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.multivariate import MultivariateDrift
from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from detectors.versions import VersionDivergence

Result = Evaluation | PerformanceResult
# Before labels come (issue 21): a window's estimated performance and multivariate drift.
# Kept apart from Result: widening Result would make each consumer that narrows it to an
# Evaluation wrong. Sinks receive both (published after the window's Evaluation).
# And champion vs challenger over a window (detectors.versions), published after it too.
Estimate = EstimatedPerformance | MultivariateDrift | VersionDivergence


class ResultSink(Protocol):
    def publish(self, model: str, reference_version: str, result: Result | Estimate) -> None: ...
