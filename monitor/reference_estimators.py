"""Fitting a model's estimators (performance before labels come, multivariate drift) on
the reference file it is given: at start-up (``reference.file``), on an upload and with
``monitor reference set``.

What is fitted follows the model's ``estimation:`` config (:class:`EstimationConfig`):
CBPE for classifiers or direct loss estimation for regressors when the file has the label
column (and ``estimation.performance``), PCA reconstruction error when
``estimation.multivariate`` (a file without labels still gets it), the domain classifier
when ``estimation.domain_classifier``. The prediction settings are the model's own:
``performance.threshold`` and ``positive_class``, ``prediction.classes``.

A reference that cannot be fitted (too few labelled rows, scores outside [0, 1], ...)
is still a good reference for drift: the failure is a warning in the log and the
``estimation`` entry of the reference's summary (shown by ``GET /v1/models``), never an
error of the upload or of start-up.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from detectors.estimation.fitting import fit_estimators
from detectors.estimation.window import Estimators
from detectors.profiles import ReferenceProfile
from monitor.detection import schema_for
from monitor.reference_files import build_reference, parse_table
from monitor.settings import ModelConfig

log = logging.getLogger(__name__)

# The estimators are fitted with this seed (chunk resampling, the domain classifier's folds,
# the loss model's trees): the same file gives the same estimators everywhere.
SEED = 0
_WITH_LABELS = ("binary", "multiclass", "regression")
# A categorical feature enters the multivariate methods as this many one-hot columns at
# most (plus other): the most frequent categories carry the correlations worth watching,
# and each column costs PCA and the domain classifier as a numeric feature does.
MAX_CATEGORIES = 10


def fit_reference_estimators(
    data: bytes,
    fmt: str,
    config: ModelConfig,
    *,
    model: str,
    prediction_column: str | None = None,
    label_column: str | None = None,
) -> tuple[Estimators | None, dict[str, Any]]:
    """The estimators of a reference file's rows (already read and profiled successfully
    by :func:`monitor.reference_files.build_reference`) and what to show about them:
    ``{"methods": [...], "label_column": ..., "error": ...}``. ``label_column`` defaults to
    the config's ``reference.label_column``. (None, status) when nothing is to be fitted
    or the fit failed."""
    options = config.estimation
    label = label_column or config.reference.label_column
    status: dict[str, Any] = {"methods": [], "label_column": None, "error": None}
    if not (options.performance or options.multivariate or options.domain_classifier):
        return None, status
    try:
        schema = schema_for(config, prediction_column=prediction_column)
        frame = _frame(data, fmt).drop(columns=[schema.timestamp_column], errors="ignore")
        labelled = (
            options.performance and label is not None and label in frame.columns
            and schema.prediction_kind in _WITH_LABELS and schema.prediction_type is not None
        )  # fmt: skip
        estimators = fit_estimators(
            frame, schema, label_column=label if labelled else None, threshold=config.performance.threshold,
            positive_class=config.performance.positive_class or "1", classes=config.prediction.classes,
            proba_prefix=options.proba_prefix, multivariate=options.multivariate,
            domain_classifier=options.domain_classifier, chunk_size=options.chunk_size, band=options.band, seed=SEED,
            # within the profile's top-K, so that windows tell the same categories apart
            max_categories=min(MAX_CATEGORIES, config.reference.top_k),
        )  # fmt: skip
    except Exception as exc:  # any failure leaves the reference usable for drift
        status["error"] = f"{type(exc).__name__}: {exc}"[:500]
        log.warning("model %s: no estimates before labels: fitting on the reference failed: %s", model, exc)
        return None, status
    status["label_column"] = label if labelled else None
    status["methods"] = estimators.methods
    if not estimators.methods:
        return None, status
    log.info("model %s: estimators fitted on the reference: %s", model, ", ".join(estimators.methods))
    return estimators, status


def restore_estimators(data: bytes | None, model: str) -> Estimators | None:
    """The estimators stored with a reference; None (and a warning) when they do not load."""
    if data is None:
        return None
    try:
        return Estimators.from_bytes(data)
    except Exception as exc:  # e.g. written by a newer version: drift detection goes on without them
        log.warning("model %s: the stored estimators could not be restored (%s): no estimates", model, exc)
        return None


def _frame(data: bytes, fmt: str) -> pd.DataFrame:
    """The file's rows as one table (JSONL records flattened: inputs become columns), as
    :func:`monitor.reference_files.parse_table` reads them."""
    table = parse_table(data, fmt)
    if isinstance(table, list):
        return pd.DataFrame(
            [{**(row.get("inputs") or {}), **{k: v for k, v in row.items() if k != "inputs"}} for row in table]
        )
    return table


def build_with_estimators(
    data: bytes,
    fmt: str,
    config: ModelConfig,
    *,
    model: str,
    prediction_column: str | None = None,
    latency_column: str | None = None,
    label_column: str | None = None,
) -> tuple[ReferenceProfile, dict[str, Any], Estimators | None]:
    """:func:`monitor.reference_files.build_reference` (its errors: ReferenceDataError),
    then the estimators fitted on the same rows; the summary's ``estimation`` says which
    (or why none). Slow for a large file: call it off the event loop."""
    profile, summary = build_reference(
        data, fmt, config, prediction_column=prediction_column, latency_column=latency_column,
        label_column=label_column,
    )  # fmt: skip
    estimators, summary["estimation"] = fit_reference_estimators(
        data, fmt, config, model=model, prediction_column=prediction_column, label_column=label_column
    )
    return profile, summary, estimators
