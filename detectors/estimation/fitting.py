"""Fitting a model's estimators on its labelled reference table, with the same column
encoding the windows use (:meth:`detectors.columns.Batch.from_frame`).

* CBPE, binary: the prediction column holds the positive class's score; labels are
  normalised as for realized performance (:func:`detectors.performance.binary_label`:
  1, "1", True, "yes" are positive). Multiclass: one probability column per class, named
  ``proba_prefix + class`` (e.g. ``y_pred_proba_a``), or a prediction column of
  ``{class: probability}`` mappings (as in JSONL records).
* Regression: direct loss estimation (:mod:`detectors.estimation.loss`) on the numeric
  features and the prediction, labels as numbers.
* PCA reconstruction error and the domain classifier: on the numeric features and the
  categorical ones one-hot encoded by their ``max_categories`` most frequent reference
  categories plus other (:func:`detectors.estimation.window.one_hot`).

Rows whose label is missing are left out of CBPE (they cannot calibrate anything).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from detectors.columns import Batch
from detectors.estimation.cbpe import CBPE
from detectors.estimation.loss import DirectLossEstimator
from detectors.estimation.multivariate import DomainClassifier, PCAReconstruction
from detectors.estimation.window import Estimators, one_hot
from detectors.performance import binary_label
from detectors.schema import CATEGORICAL, NUMERIC, Schema


def fit_estimators(
    frame: pd.DataFrame,
    schema: Schema,
    *,
    label_column: str | None = None,
    threshold: float = 0.5,
    positive_class: str | int | bool = "1",
    classes: Sequence[str] | None = None,
    proba_prefix: str | None = None,
    multivariate: bool = True,
    domain_classifier: bool = False,
    chunk_size: int = 5_000,
    band: float = 3.0,
    seed: int = 0,
    max_categories: int = 10,
) -> Estimators:
    """CBPE (when ``label_column`` is given and the model classifies), direct loss estimation
    (a labelled regressor) and the multivariate methods (``multivariate``; the domain
    classifier only when asked: it refits per window)."""
    cbpe = None
    if label_column is not None:
        if label_column not in frame.columns:
            raise ValueError(f"the reference has no label column {label_column!r}; columns: {list(frame.columns)}")
        labelled = frame[frame[label_column].notna()]
        if schema.prediction_kind == "binary":
            cbpe = _fit_binary(labelled, schema, label_column, threshold, positive_class, chunk_size, band, seed)
        elif schema.prediction_kind == "multiclass":
            if not classes:
                raise ValueError("a multiclass CBPE needs the classes (prediction.classes)")
            probas = class_probabilities(labelled, schema.prediction_column, classes, proba_prefix)
            labels = [str(v) for v in labelled[label_column].tolist()]
            cbpe = CBPE.fit_multiclass(probas, labels, classes, chunk_size=chunk_size, band=band, seed=seed)
        elif schema.prediction_kind != "regression":
            raise ValueError(f"performance is estimated for classifiers and regressors, not {schema.prediction_kind!r}")
    columns = [name for name, kind in schema.features.items() if kind == NUMERIC]
    loss = None
    if label_column is not None and schema.prediction_kind == "regression":
        batch = Batch.from_frame(labelled, schema, default_timestamp=0.0)
        assert batch.prediction is not None  # a regression schema has a prediction channel
        rows = np.column_stack([*(np.asarray(batch.inputs[c], dtype=np.float64) for c in columns), batch.prediction])
        truth = pd.to_numeric(labelled[label_column], errors="coerce").to_numpy(dtype=np.float64)
        loss = DirectLossEstimator(rows, truth, chunk_size=chunk_size, band=band, seed=seed)
    pca = domain = None
    categorical: dict[str, tuple[str, ...]] = {}
    if multivariate or domain_classifier:
        batch = Batch.from_frame(frame, schema, default_timestamp=0.0)
        parts = [np.asarray(batch.inputs[c], dtype=np.float64)[:, None] for c in columns]
        names = list(columns)
        for name in (k for k, kind in schema.features.items() if kind == CATEGORICAL):
            counts = pd.Series(batch.inputs[name]).value_counts(dropna=True, sort=False)
            # most frequent first, ties by name: the same categories from the same file everywhere
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))[:max_categories]
            categorical[name] = tuple(str(c) for c, _ in ranked)
            parts.append(one_hot(batch.inputs[name], categorical[name]))
            names += [*(f"{name}={c}" for c in categorical[name]), f"{name}=(other)"]
        if len(names) >= 2:
            rows = np.hstack(parts)
            rows = rows[~np.isnan(rows).all(axis=1)]
            pca = PCAReconstruction.fit(rows, columns=names) if multivariate else None
            domain = DomainClassifier(rows, seed=seed) if domain_classifier else None
    used = pca is not None or domain is not None
    return Estimators(
        cbpe=cbpe, pca=pca, domain=domain, columns=tuple(columns) if used or loss is not None else (), loss=loss,
        categorical=categorical if used else {},
    )  # fmt: skip


def _fit_binary(
    frame: pd.DataFrame,
    schema: Schema,
    label: str,
    threshold: float,
    positive: Any,
    chunk_size: int,
    band: float,
    seed: int,
) -> CBPE:
    batch = Batch.from_frame(frame, schema, default_timestamp=0.0)
    assert batch.prediction is not None  # a binary schema has a prediction channel
    scores = np.asarray(batch.prediction, dtype=np.float64)
    want = binary_label(positive)
    positives = np.array([binary_label(v) == want for v in frame[label].tolist()])
    usable = np.isfinite(scores)
    return CBPE.fit_binary(
        scores[usable], positives[usable], threshold=threshold, chunk_size=chunk_size, band=band, seed=seed
    )


def class_probabilities(
    frame: pd.DataFrame, prediction_column: str, classes: Sequence[str], proba_prefix: str | None
) -> np.ndarray:
    """n x K class probabilities: from ``proba_prefix + class`` columns, or from a column of
    ``{class: probability}`` mappings (a class missing from a mapping has probability 0)."""
    if proba_prefix is not None:
        missing = [f"{proba_prefix}{c}" for c in classes if f"{proba_prefix}{c}" not in frame.columns]
        if missing:
            raise ValueError(f"the reference has no probability columns {missing}")
        return frame[[f"{proba_prefix}{c}" for c in classes]].to_numpy(dtype=np.float64)
    out = np.zeros((len(frame), len(classes)))
    for i, value in enumerate(frame[prediction_column].tolist()):
        if not isinstance(value, Mapping):
            raise ValueError(
                f"row {i}: column {prediction_column!r} must hold {{class: probability}} mappings "
                f"(or name proba_prefix columns), got {value!r}"
            )
        out[i] = [float(value.get(c, 0.0)) for c in classes]
    return out
