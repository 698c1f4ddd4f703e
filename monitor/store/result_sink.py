"""The store as a result sink: every evaluated window becomes rows of the results table,
and its histograms rows of the histograms table (what the web page and reports draw); a
window's estimates before labels come become rows of kinds ``estimated_performance`` and
``multivariate_drift`` (:func:`monitor.store.results.estimate_rows`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors.estimation.cbpe import EstimatedPerformance
from detectors.estimation.multivariate import MultivariateDrift
from detectors.evaluation import Evaluation
from detectors.performance import PerformanceResult
from detectors.results import Estimate, Result
from detectors.schema import channel_name
from detectors.versions import VersionDivergence
from monitor.detection import evaluation_rows, performance_rows
from monitor.store.database import Store
from monitor.store.results import estimate_rows

if TYPE_CHECKING:
    from monitor.store.retry_buffer import RetryBuffer


class StoreSink:
    """Writes each result's rows; with ``buffer``, rows that find the store unreachable wait
    there (bounded, counted when dropped) and are written when it answers again. Histograms
    go through ``histograms`` (a buffer whose writer is :meth:`Store.add_histograms`) when
    given, else straight to the store (which then prunes those older than ``keep_seconds``)."""

    def __init__(
        self,
        store: Store,
        buffer: RetryBuffer[dict[str, Any]] | None = None,
        *,
        histograms: RetryBuffer[dict[str, Any]] | None = None,
        keep_seconds: float | None = None,
    ):
        self.store = store
        self.buffer = buffer
        self.histograms = histograms
        self.keep_seconds = keep_seconds

    def publish(self, model: str, reference_version: str, result: Result | Estimate) -> None:
        if isinstance(result, VersionDivergence):
            rows = divergence_rows(model, result)
        elif isinstance(result, EstimatedPerformance | MultivariateDrift):
            rows = estimate_rows(model, result)
        elif isinstance(result, PerformanceResult):
            rows = performance_rows(model, result, reference_version)
        else:
            rows = evaluation_rows(model, result)
        if self.buffer is not None:
            self.buffer.submit(rows)
        else:
            self.store.add_results(rows)
        if isinstance(result, Evaluation) and result.histograms:
            drawn = histogram_rows(model, result)
            if self.histograms is not None:
                self.histograms.submit(drawn)
            else:
                self.store.add_histograms(drawn, keep_seconds=self.keep_seconds)


def divergence_rows(model: str, result: VersionDivergence) -> list[dict[str, Any]]:
    """Rows of kind ``version_divergence`` (feature ``prediction``) for one window's champion
    vs challenger: the two-sample test (p-value) and the effect (threshold, drift), or one
    ``insufficient`` row; then method ``agreement`` (statistic = agreed / pairs, None
    without pairs; n_current = pairs). ``detail`` names the two versions."""
    d = result.to_dict()
    base = {"model": model, "window_seq": d["window_seq"], "window_start": d["window_start"],
            "window_end": d["window_end"], "reference_version": d["reference_version"],
            "kind": "version_divergence", "feature": "prediction"}  # fmt: skip
    names = {"champion": result.champion, "challenger": result.challenger}
    verdict = result.verdict
    rows: list[dict[str, Any]] = []
    for test in (verdict.test, verdict.effect):
        if test is not None:
            rows.append({**base, "method": test.method, "statistic": test.statistic, "pvalue": test.pvalue,
                         "threshold": test.threshold, "drift": verdict.drift, "n_reference": result.n_champion,
                         "n_current": result.n_challenger,
                         "detail": {**names, "role": "test" if test is verdict.test else "effect"}})  # fmt: skip
    if verdict.insufficient:
        rows.append({**base, "method": "insufficient", "drift": False, "n_reference": result.n_champion,
                     "n_current": result.n_challenger, "detail": {**names, "reason": verdict.detail}})  # fmt: skip
    rows.append({**base, "method": "agreement", "statistic": result.agreement_rate, "drift": False,
                 "n_current": result.pairs, "detail": {**names, "agreed": result.agreed, "pairs": result.pairs}})  # fmt: skip
    return rows


def histogram_rows(model: str, evaluation: Evaluation) -> list[dict[str, Any]]:
    """The rows of the histograms table for one evaluated window."""
    return [
        {
            "model": model,
            "reference_version": evaluation.reference_version,
            "window_seq": evaluation.window_seq,
            "window_end": evaluation.window_end,
            "feature": channel_name(histogram.feature),
            "kind": histogram.kind,
            "data": histogram.to_dict(),
            "segment": evaluation.segment,
        }
        for histogram in evaluation.histograms
    ]
