"""Estimates of one closed window: CBPE on its prediction scores and multivariate drift on
its joint rows, both read from the window's row reservoir.

The reservoir (:class:`~detectors.windows.state.WindowState`) keeps one uniform sample of
whole rows over every numeric channel (one RNG draw per row), the prediction score
included. What else the estimators need is asked of the window's layout
(:attr:`Estimators.extra_numeric`, :attr:`Estimators.coded_categorical`) and sampled in
the same rows: a multiclass model's class probabilities (K more numeric columns, read from
the batch's :func:`proba_channel` inputs, which :func:`class_probability_columns` makes of
the records' ``{class: probability}`` predictions), and each categorical feature's slot
code (one column per feature: the reference's top-K index, other, unseen or null). All is
bounded by the window's ``sample_size`` and in every checkpoint, so a restored window gives
the same estimates. With a window no larger than ``sample_size`` the sample is the window
itself and CBPE's estimate is exact; beyond it CBPE works on a uniform sample (its
expected confusion matrix is then an unbiased estimate of the window's, with sampling
error ``~ sqrt(p (1 - p) / sample_size)`` for accuracy).

Categorical features enter the multivariate methods one-hot encoded: one column per
category of :attr:`Estimators.categorical` (the reference's most frequent, at most
``max_categories``), one for every other value, all NaN for a null (imputed by PCA, a
missing value to the domain classifier). One-hot rather than ordinal codes: a code's order
means nothing, and PCA would read distances into it. The codes, not the one-hot columns,
are sampled (one column per feature), and expanded at evaluation on the bounded sample.
A category must be in the window layout's top-K to be told apart there (the fit takes at
most ``max_categories`` <= the reference's ``top_k``); otherwise it counts as other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from detectors.estimation.cbpe import CBPE, EstimatedPerformance
from detectors.estimation.loss import DirectLossEstimator
from detectors.estimation.multivariate import DomainClassifier, MultivariateDrift, PCAReconstruction
from detectors.profiles import CategoricalProfile
from detectors.schema import PREDICTION
from detectors.sketches import pack, unpack
from detectors.windows.state import WindowState

FORMAT_VERSION = 1
Estimate = EstimatedPerformance | MultivariateDrift
PROBA_PREFIX = "__proba__:"  # batch inputs holding one class's probability (not a feature)
_OTHER = "\x00other"  # a category name no value can have: a window's other and unseen slots


def proba_channel(name: str) -> str:
    """The batch input that carries class ``name``'s probability for the window's sample."""
    return f"{PROBA_PREFIX}{name}"


def class_probability_columns(predictions: Sequence[Any], classes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per class, its probability in each prediction (a ``{class: probability}`` mapping; a
    class missing from a mapping has probability 0, as in the reference); NaN in every class
    for a prediction that is no mapping or holds a value that is no number."""
    names = [str(c) for c in classes]
    rows = [[p.get(c, 0.0) for c in names] if isinstance(p, Mapping) else None for p in predictions]
    out = np.full((len(rows), len(names)), np.nan)
    try:
        filled = [i for i, r in enumerate(rows) if r is not None]
        if filled:
            out[filled] = np.array([rows[i] for i in filled], dtype=np.float64)
    except (TypeError, ValueError):  # a value that is no number: row by row
        for i, r in enumerate(rows):
            try:
                out[i] = np.array(r, dtype=np.float64) if r is not None else np.nan
            except (TypeError, ValueError):
                out[i] = np.nan
    return {proba_channel(c): out[:, k].copy() for k, c in enumerate(names)}


def one_hot(values: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """n x (k + 1): a column per category, the last for any other value; NaN rows for nulls."""
    v = np.asarray(values, dtype=object)
    out = np.column_stack([v == c for c in categories] + [np.zeros(v.size, dtype=bool)]).astype(np.float64)
    out[:, -1] = 1.0 - out[:, :-1].sum(axis=1)
    out[np.array([x is None for x in v.tolist()], dtype=bool)] = np.nan
    return out


@dataclass(frozen=True)
class Estimators:
    """What was fitted on a model's reference; each part optional. ``columns`` names the
    numeric features the multivariate methods and the loss model were fitted on, in their
    column order (the loss model takes the prediction as one more, last, column)."""

    cbpe: CBPE | None = None
    pca: PCAReconstruction | None = None
    domain: DomainClassifier | None = None
    columns: Sequence[str] = field(default_factory=tuple)
    loss: DirectLossEstimator | None = None
    # Categorical features of the multivariate methods (after ``columns``), each with the
    # categories it is one-hot encoded by.
    categorical: Mapping[str, Sequence[str]] = field(default_factory=dict)

    # Each part packed on its own, so a restore needs nothing else (no reference file).
    _PARTS = ("cbpe", "pca", "domain", "loss")

    def to_bytes(self) -> bytes:
        """Every fitted part: CBPE and PCA as fitted, the domain classifier with its bounded
        reference rows, the loss model with its bounded training rows (refitted on restore,
        identically: :mod:`detectors.estimation.loss`)."""
        arrays = {}
        for name in self._PARTS:
            part = getattr(self, name)
            if part is not None:
                arrays[name] = np.frombuffer(part.to_bytes(), np.uint8)
        # As pairs: pack sorts a mapping's keys, and their order is the columns' order.
        categorical = [[k, list(v)] for k, v in self.categorical.items()]
        header = {"kind": "estimators", "format_version": FORMAT_VERSION, "columns": list(self.columns)}
        return pack({**header, "categorical": categorical}, arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> Estimators:
        h, a = unpack(data)
        if h.get("kind") != "estimators" or h.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not estimators of format {FORMAT_VERSION}: kind={h.get('kind')!r}")
        return cls(
            cbpe=CBPE.from_bytes(a["cbpe"].tobytes()) if "cbpe" in a else None,
            pca=PCAReconstruction.from_bytes(a["pca"].tobytes()) if "pca" in a else None,
            domain=DomainClassifier.from_bytes(a["domain"].tobytes()) if "domain" in a else None,
            columns=tuple(h["columns"]),
            loss=DirectLossEstimator.from_bytes(a["loss"].tobytes()) if "loss" in a else None,
            categorical={k: tuple(v) for k, v in h.get("categorical", [])},
        )

    @property
    def extra_numeric(self) -> tuple[str, ...]:
        """What the window must sample besides its numeric channels: a multiclass CBPE's
        class probabilities (:func:`proba_channel`)."""
        cbpe = self.cbpe
        return tuple(proba_channel(c) for c in cbpe.classes or ()) if cbpe and cbpe.kind == "multiclass" else ()

    @property
    def coded_categorical(self) -> tuple[str, ...]:
        """The categorical channels whose codes the window must sample."""
        return tuple(self.categorical) if self.pca is not None or self.domain is not None else ()

    @property
    def methods(self) -> list[str]:
        """The names of the fitted methods, as results name them: ``cbpe`` or
        ``direct_loss`` (kind ``estimated_performance``), ``pca_reconstruction`` and
        ``domain_classifier`` (kind ``multivariate_drift``)."""
        names = {"cbpe": "cbpe", "loss": "direct_loss", "pca": "pca_reconstruction", "domain": "domain_classifier"}
        return [label for part, label in names.items() if getattr(self, part) is not None]


def window_rows(
    window: WindowState, columns: Sequence[str], categorical: Mapping[str, Sequence[str]] | None = None
) -> np.ndarray:
    """The window's sampled rows of ``columns`` (NaN where a value was missing), then the
    ``categorical`` channels one-hot encoded (:func:`one_hot`)."""
    layout = window.layout
    index = layout.sample_index
    missing = [c for c in [*columns, *(categorical or {})] if c not in index]
    if missing:
        raise ValueError(f"the window samples no column {missing}: the estimators were fitted on other features")
    sample = window.reservoir.sample
    parts = [sample[:, [index[c] for c in columns]]]
    for name, categories in (categorical or {}).items():
        # The layout's slots (detectors.windows.state): top-K, other, unseen, null.
        profile = layout.reference.channels[name]
        assert isinstance(profile, CategoricalProfile)  # coded_categorical holds categorical channels only
        names = np.array([*profile.categories, _OTHER, _OTHER, None], dtype=object)
        parts.append(one_hot(names[sample[:, index[name]].astype(np.intp)], categories))
    return np.hstack(parts)


def estimate_window(window: WindowState, estimators: Estimators) -> list[Estimate]:
    """Every estimate the estimators can give for the window (none under their minimum rows)."""
    start = window.start if np.isfinite(window.start) else window.min_ts
    end = window.end if np.isfinite(window.end) else window.max_ts
    meta = {
        "window_seq": window.seq,
        "window_start": float(start) if np.isfinite(start) else None,
        "window_end": float(end) if np.isfinite(end) else None,
        "reference_version": str(window.layout.reference.version),
    }
    out: list[Estimate] = []
    if estimators.extra_numeric and set(estimators.extra_numeric) <= set(window.layout.sample_index):
        probas = window_rows(window, estimators.extra_numeric)
        probas = probas[((probas >= 0.0) & (probas <= 1.0)).all(axis=1)]  # no mapping or not probabilities: out
        estimate = estimators.cbpe.estimate(probas, **meta)  # type: ignore[union-attr, arg-type]
        if estimate is not None:
            out.append(estimate)
    elif estimators.cbpe is not None and estimators.cbpe.kind == "binary" and PREDICTION in window.layout.num_index:
        scores = window.sample(PREDICTION)
        scores = scores[(scores >= 0.0) & (scores <= 1.0)]  # out-of-range scores are a quality finding
        estimate = estimators.cbpe.estimate(scores, **meta)  # type: ignore[arg-type]
        if estimate is not None:
            out.append(estimate)
    if estimators.pca is not None or estimators.domain is not None:
        rows = window_rows(window, estimators.columns, estimators.categorical)
        rows = rows[~np.isnan(rows).all(axis=1)]
        for method in (estimators.pca, estimators.domain):
            if method is not None and rows.shape[0]:
                verdict = method.evaluate(rows, **meta)  # type: ignore[arg-type]
                if verdict is not None:
                    out.append(verdict)
    if estimators.loss is not None and PREDICTION in window.layout.num_index:
        rows = window_rows(window, [*estimators.columns, PREDICTION])
        rows = rows[np.isfinite(rows[:, -1])]  # a row without a prediction has no error to estimate
        estimate = estimators.loss.estimate(rows, **meta)  # type: ignore[arg-type]
        if estimate is not None:
            out.append(estimate)
    return out
