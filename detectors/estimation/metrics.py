"""Classification metrics from weighted confusion counts, shared by the realized metrics
(weights 0/1: the labels) and the expected ones (weights: calibrated probabilities).

Using one code path for both is what makes an estimate comparable with the realized value
it stands in for: with 0/1 weights every function below is the usual metric (ROC AUC is
the Mann-Whitney statistic, a tie counting half).
"""

from __future__ import annotations

import numpy as np

BINARY_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")
MULTICLASS_METRICS = ("roc_auc", "accuracy", "precision", "recall", "f1")  # macro averages, one-vs-rest AUC


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else float("nan")


def weighted_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC where row ``i`` is positive with weight ``positive[i]`` and negative with
    ``1 - positive[i]``: the share of (positive, negative) weight pairs ordered by score."""
    uniq, inverse = np.unique(scores, return_inverse=True)
    pos = np.bincount(inverse, weights=positive, minlength=uniq.size)
    neg = np.bincount(inverse, weights=1.0 - positive, minlength=uniq.size)
    below = np.cumsum(neg) - neg  # negative weight at strictly lower scores
    return _ratio(float(pos @ (below + 0.5 * neg)), float(pos.sum() * neg.sum()))


def binary_metrics(
    scores: np.ndarray, positive: np.ndarray, threshold: float
) -> tuple[dict[str, float], dict[str, float]]:
    """(metrics, confusion) of scores predicting positive at ``score >= threshold``."""
    predicted = scores >= threshold
    tp = float(positive[predicted].sum())
    fp = float(np.count_nonzero(predicted)) - tp
    fn = float(positive[~predicted].sum())
    tn = float(np.count_nonzero(~predicted)) - fn
    metrics = {
        "roc_auc": weighted_auc(scores, positive),
        "accuracy": _ratio(tp + tn, scores.size),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }
    return metrics, {"tp": tp, "fp": fp, "fn": fn, "tn": tn}


def multiclass_metrics(probas: np.ndarray, membership: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    """(macro metrics, K x K confusion with rows = label, columns = prediction) of the
    arg-max of ``probas`` (n x K scores), ``membership`` (n x K) weighting each row's classes."""
    k = probas.shape[1]
    predicted = np.argmax(probas, axis=1)
    confusion = membership.T @ np.eye(k)[predicted]  # expected count of (label k, prediction j)
    tps = np.diag(confusion)
    fps, fns = confusion.sum(axis=0) - tps, confusion.sum(axis=1) - tps
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
        recall = np.where(tps + fns > 0, tps / (tps + fns), 0.0)
        f1 = np.where(2 * tps + fps + fns > 0, 2 * tps / (2 * tps + fps + fns), 0.0)
    aucs = [weighted_auc(probas[:, c], membership[:, c]) for c in range(k)]
    metrics = {
        "roc_auc": float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan"),
        "accuracy": _ratio(float(tps.sum()), float(confusion.sum())),
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1": float(f1.mean()),
    }
    return metrics, confusion
