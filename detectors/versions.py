"""Champion vs challenger: how differently two versions of one model predict over the same
period, and how often they agree on the requests both scored.

* **Divergence**: the two versions' predictions in one period (a closed window of the
  whole population) compared as two samples with the model's prediction-drift settings:
  the same test, effect size and threshold as prediction drift, the champion's
  predictions standing for the reference (:func:`compare`). ``drift`` is the verdict:
  significant *and* at least the minimum effect.
* **Agreement**: over the ids both versions scored in the period (shadow traffic: one
  request sent to both), the share on which they agree: the same class (categorical
  predictions), the same side of ``threshold`` (binary scores), or within ``tolerance``
  (regression). A hand count: ``agreed / pairs``; None without pairs.

Pure computation: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.decision import CategoricalEvidence, DriftSettings, FeatureDrift, NumericEvidence, decide_prediction
from detectors.stats.result import json_float

# Quantile bins of the champion's predictions, for effects that read bin counts (PSI, JS, ...).
BINS = 10


@dataclass(frozen=True)
class VersionDivergence:
    """The champion and challenger of one model over one whole-population window."""

    window_seq: int
    window_start: float
    window_end: float
    reference_version: str
    champion: str
    challenger: str
    n_champion: int
    n_challenger: int
    verdict: FeatureDrift  # the two-sample test and effect; ``insufficient`` with too few predictions
    pairs: int  # ids both versions scored in the window
    agreed: int

    @property
    def drift(self) -> bool:
        return self.verdict.drift

    @property
    def agreement_rate(self) -> float | None:
        return None if self.pairs == 0 else self.agreed / self.pairs

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": "version_divergence",
            "window_seq": self.window_seq,
            "window_start": json_float(self.window_start),
            "window_end": json_float(self.window_end),
            "reference_version": self.reference_version,
            "champion": self.champion,
            "challenger": self.challenger,
            "n_champion": self.n_champion,
            "n_challenger": self.n_challenger,
            "divergence": self.verdict.to_dict(),
            "drift": self.drift,
            "pairs": self.pairs,
            "agreed": self.agreed,
            "agreement_rate": self.agreement_rate,
        }


def divergence(champion: np.ndarray, challenger: np.ndarray, settings: DriftSettings) -> FeatureDrift:
    """The prediction-drift decision with ``champion``'s predictions as the reference sample:
    numeric (float arrays, NaN dropped) or categorical (class names, None dropped)."""
    if champion.dtype.kind == "f" and challenger.dtype.kind == "f":
        ref = np.sort(champion[~np.isnan(champion)])
        cur = challenger[~np.isnan(challenger)]
        counts: tuple[Any, Any] = (None, None)
        if ref.size and cur.size:
            edges = np.unique(np.quantile(ref, np.linspace(0, 1, BINS + 1)[1:-1]))
            counts = (
                np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1).astype(np.float64),
                np.bincount(np.searchsorted(edges, cur, side="right"), minlength=edges.size + 1).astype(np.float64),
            )
        spread = float(np.std(ref)) if ref.size > 1 else None
        return decide_prediction(NumericEvidence(ref, cur, *counts, reference_spread=spread or None), settings)
    ref_labels = [str(v) for v in champion.tolist() if v is not None and v == v]
    cur_labels = [str(v) for v in challenger.tolist() if v is not None and v == v]
    classes = sorted(set(ref_labels) | set(cur_labels))
    index = {c: i for i, c in enumerate(classes)}

    def count(labels: list[str]) -> np.ndarray:
        return np.bincount([index[c] for c in labels], minlength=len(classes)).astype(np.float64)

    return decide_prediction(CategoricalEvidence(count(ref_labels), count(cur_labels)), settings)


def agree(a: Any, b: Any, *, threshold: float | None, tolerance: float) -> bool:
    """Whether two predictions of one request agree (see the module docstring)."""
    if isinstance(a, float) and isinstance(b, float):
        if a != a or b != b:
            return False
        if threshold is not None:
            return (a >= threshold) == (b >= threshold)
        return abs(a - b) <= tolerance
    return a == b


def compare(
    champion: tuple[str, np.ndarray],
    challenger: tuple[str, np.ndarray],
    pairs: list[tuple[Any, Any]],
    window: tuple[int, float, float, str],
    settings: DriftSettings,
    *,
    threshold: float | None = None,
    tolerance: float = 0.0,
) -> VersionDivergence:
    """The result for one window: ``champion`` and ``challenger`` are (version, predictions),
    ``pairs`` the (champion, challenger) predictions of the ids both scored, ``window``
    (seq, start, end, reference version)."""
    agreed = sum(agree(a, b, threshold=threshold, tolerance=tolerance) for a, b in pairs)
    (name_a, a), (name_b, b) = champion, challenger
    seq, start, end, reference = window
    return VersionDivergence(
        seq, start, end, reference, name_a, name_b, int(a.size), int(b.size),
        divergence(a, b, settings), len(pairs), int(agreed),
    )  # fmt: skip
