"""Glue between the service and the pure ``detectors`` package: schemas and detector
settings from a model's config, records to columnar batches, results to storage rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from detectors.columns import Batch
from detectors.decision import DriftSettings
from detectors.estimation.window import class_probability_columns
from detectors.evaluation import Evaluation, EvaluationSettings
from detectors.latency import LatencySettings
from detectors.model import DetectorSettings
from detectors.performance import Kind, PerformanceResult, PerformanceSettings
from detectors.profiles import ReferenceProfile
from detectors.quality import QualitySettings
from detectors.schema import Schema, channel_name
from detectors.windows.policies import WindowPolicy
from monitor.records import Record, RecordColumns
from monitor.settings import ModelConfig


def schema_for(
    config: ModelConfig, *, prediction_column: str | None = None, latency_column: str | None = None
) -> Schema:
    """The detectors' schema of a model. Column names only matter for flat tables
    (reference files); records always use ``prediction`` and ``latency_ms``."""
    reference = config.reference
    return Schema(
        # A boolean feature is a categorical channel: validation and reference files make its
        # values bools, which the detectors count as the categories "true" and "false".
        {
            name: "categorical" if feature.type == "boolean" else feature.type
            for name, feature in config.features.items()
        },
        prediction_kind=config.prediction.kind,
        positive_class=config.performance.positive_class,
        prediction_column=prediction_column or reference.prediction_column,
        latency_column=latency_column if latency_column is not None else reference.latency_column,
    )


def performance_settings(config: ModelConfig) -> PerformanceSettings:
    p = config.performance
    # cast: a str field, but PredictionConfig's validator admits only PREDICTION_KINDS.
    kind = cast(Kind, config.prediction.kind)
    return PerformanceSettings(
        kind,
        threshold=p.threshold,
        positive_class=p.positive_class or "1",
        classes=config.prediction.classes if kind == "multiclass" else None,
        min_labels=p.min_labels,
        max_drop=None if kind != "binary" else {"accuracy": p.max_drop, "roc_auc": p.max_drop},
    )


def detector_settings(config: ModelConfig, reference_performance: dict[str, float | None] | None) -> DetectorSettings:
    """Everything the model's detector needs, from its config."""
    window = config.window
    model_drift = DriftSettings(**config.drift.given())
    drift_overrides = {
        name: DriftSettings(**{**config.drift.given(), **feature.drift.given()})
        for name, feature in config.features.items()
        if feature.drift is not None
    }
    quality_overrides = {
        name: QualitySettings(**{**config.quality.given(), **feature.quality.given()})
        for name, feature in config.features.items()
        if feature.quality is not None
    }
    bounds = {
        name: (
            feature.min if feature.min is not None else -np.inf,
            feature.max if feature.max is not None else np.inf,
        )
        for name, feature in config.features.items()
        if feature.type == "numeric" and (feature.min is not None or feature.max is not None)
    }
    can_classify = config.prediction.kind != "multiclass" or bool(config.prediction.classes)
    return DetectorSettings(
        policy=WindowPolicy(
            window.kind,
            window.size,
            window.seconds,
            window.min_records,
            window.panes,
            allowed_lateness=window.allowed_lateness_seconds,
        ),  # fmt: skip
        evaluation=EvaluationSettings(
            drift=model_drift,
            drift_overrides=drift_overrides,
            quality=QualitySettings(**config.quality.given()),
            quality_overrides=quality_overrides,
            latency=LatencySettings(config.latency.slo_ms, config.latency.quantile),
        ),
        sample_size=window.sample_size,
        bounds=bounds,
        range_margin=window.range_margin,
        performance=performance_settings(config) if can_classify else None,
        performance_window=max(config.performance.window_size, config.performance.min_labels),
        reference_performance=reference_performance,
    )


def batch_from_records(records: Sequence[Record], schema: Schema, classes: Sequence[str] = ()) -> Batch:
    """Columns of a list of validated records; with ``classes`` (see :func:`probability_classes`)
    also each class's probability, as an input the window's row sample can carry."""
    rows = [
        {"inputs": r.inputs, "prediction": r.prediction, "latency_ms": r.latency_ms, "timestamp": r.timestamp}
        for r in records
    ]
    batch = Batch.from_records(rows, schema)
    if classes:
        batch.inputs.update(class_probability_columns([r.prediction for r in records], classes))
    return batch


def probability_classes(config: ModelConfig) -> list[str]:
    """The classes whose probabilities a multiclass model's batches carry for estimated
    performance (CBPE needs them, not the arg-max class); none for other models. From the
    config alone, so every batch of a model has the same columns."""
    wanted = config.prediction.kind == "multiclass" and config.estimation.performance
    return list(config.prediction.classes or []) if wanted else []


def batch_from_columns(
    columns: RecordColumns, schema: Schema, rows: Sequence[int] | None = None, classes: Sequence[str] = ()
) -> Batch:
    """Columns of records validated column-wise (the same batch :func:`batch_from_records`
    makes of their Records); ``rows`` picks some of them, in that order."""
    inputs = dict(zip(columns.features, columns.inputs, strict=True))
    timestamps, predictions, latencies = columns.timestamps, columns.predictions, columns.latencies
    if rows is not None:
        picked = np.asarray(rows, dtype=np.intp)
        inputs = {
            name: values[picked] if isinstance(values, np.ndarray) else [values[j] for j in rows]
            for name, values in inputs.items()
        }
        timestamps = [timestamps[j] for j in rows]
        predictions = [predictions[j] for j in rows]
        latencies = None if latencies is None else [latencies[j] for j in rows]
    batch = Batch.from_columns(schema, timestamps, inputs, predictions, latencies)
    if classes:
        batch.inputs.update(class_probability_columns(predictions, classes))
    return batch


def prediction_column(predictions: Sequence[Any], schema: Schema) -> np.ndarray:
    """Predictions encoded as the detectors see them (a class -> probability mapping
    becomes the positive score for binary models, the arg-max class for multiclass)."""
    batch = Batch.from_records([{"prediction": p, "timestamp": 0.0} for p in predictions], schema)
    assert batch.prediction is not None
    return batch.prediction


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One batch of all rows (used to build a reference from the first records)."""
    first = batches[0]

    def joined(get: Any) -> np.ndarray | None:
        parts = [get(b) for b in batches]
        return None if parts[0] is None else np.concatenate(parts)

    return Batch(
        timestamps=np.concatenate([b.timestamps for b in batches]),
        inputs={k: np.concatenate([b.inputs[k] for b in batches]) for k in first.inputs},
        prediction=joined(lambda b: b.prediction),
        latency_ms=joined(lambda b: b.latency_ms),
        status={
            k: np.concatenate([b.status[k] for b in batches])
            for k in first.status
            if all(k in b.status for b in batches)
        },
    )


def evaluation_rows(model: str, evaluation: Evaluation) -> list[dict[str, Any]]:
    """The rows of the results table for one evaluated window."""
    base = {
        "model": model,
        "window_seq": evaluation.window_seq,
        "window_start": evaluation.window_start,
        "window_end": evaluation.window_end,
        "reference_version": evaluation.reference_version,
        "segment": evaluation.segment,
        "model_version": evaluation.model_version,
    }
    rows: list[dict[str, Any]] = []
    drift = evaluation.drift
    for feature in [*drift.features, *([evaluation.prediction] if evaluation.prediction else [])]:
        kind = "prediction_drift" if feature is evaluation.prediction else "feature_drift"
        for result in (feature.test, feature.effect):
            if result is None:
                continue
            rows.append(
                {
                    **base, "kind": kind, "feature": feature.feature, "method": result.method,
                    "statistic": result.statistic, "pvalue": result.pvalue, "threshold": result.threshold,
                    "drift": feature.drift, "n_reference": result.n_reference, "n_current": result.n_current,
                    "detail": {"adjusted_pvalue": feature.adjusted_pvalue, "role": "test" if result is feature.test else "effect"},
                }
            )  # fmt: skip
        if feature.insufficient:
            rows.append({**base, "kind": kind, "feature": feature.feature, "method": "insufficient", "drift": False,
                         "detail": {"reason": feature.detail}})  # fmt: skip
    rows.append(
        {**base, "kind": "dataset_drift", "feature": "", "method": "share", "statistic": drift.share,
         "threshold": drift.threshold, "drift": drift.dataset_drift, "n_current": evaluation.n,
         "detail": {"drifted": list(drift.drifted_features), "n_evaluated": drift.n_evaluated}}
    )  # fmt: skip
    for check in evaluation.quality.checks:
        rows.append(
            {**base, "kind": "quality", "feature": channel_name(check.channel), "method": check.check, "statistic": check.rate,
             "threshold": check.threshold, "drift": check.breached, "n_current": check.n,
             "detail": {"count": check.count, "reference_rate": check.reference_rate, "pvalue": check.pvalue}}
        )  # fmt: skip
    if evaluation.latency is not None:
        latency = evaluation.latency
        rows.append(
            {**base, "kind": "latency", "feature": "", "method": f"p{round(latency.quantile * 100):g}",
             "statistic": latency.value, "threshold": latency.slo_ms, "drift": latency.breached, "n_current": latency.n,
             "detail": {"p50": latency.p50, "p95": latency.p95, "p99": latency.p99}}
        )  # fmt: skip
    if evaluation.segment:  # which reference the slice was compared with (its own rows or the whole)
        for row in rows:
            row["detail"]["reference_slice"] = evaluation.reference_slice
    return rows


def performance_rows(model: str, result: PerformanceResult, reference_version: str) -> list[dict[str, Any]]:
    """The rows of the results table for one closed performance window."""
    drops = result.drop or {}
    return [
        {
            "model": model,
            "window_seq": result.window_seq,
            "window_start": result.start,
            "window_end": result.end,
            "reference_version": reference_version,
            "segment": result.segment,
            "kind": "performance",
            "feature": "",
            "method": metric,
            "statistic": value,
            "threshold": result.max_drop.get(metric),
            "drift": metric in result.degraded_metrics,
            "n_current": result.n,
            "detail": {
                "reference": (result.reference or {}).get(metric),
                "drop": drops.get(metric),
                # a slice's: whose reference metrics (its own slice's or the whole's), as for drift
                **({"reference_slice": result.reference_slice} if result.segment else {}),
            },
        }  # fmt: skip
        for metric, value in result.metrics.items()
    ]


def with_version(profile: ReferenceProfile, version: str) -> ReferenceProfile:
    """The same profile labelled with the version the store assigned (the content hash,
    which excludes the label, is unchanged)."""
    return ReferenceProfile(
        profile.schema, profile.channels, version=version, params=profile.params, slices=profile.slices
    )
