"""What a window's distribution looked like, in the reference's own bins or categories.

A :class:`FeatureHistogram` is the drawing data of one channel in one evaluated window: the
reference's and the window's counts, aligned, with what each slot means (numeric: the
interior bin edges; categorical: the top-K categories and ``"other"``). It is bounded by
the reference's layout (its bin count and top-K), never by traffic, so a window's
histograms can be stored and drawn long after the window closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors.profiles import NumericProfile
from detectors.windows.state import WindowState

# A category label is kept to this many characters: the drawing needs a name, not a
# 256-character key, and it bounds the bytes a window stores per feature.
MAX_LABEL_CHARS = 80
OTHER = "(other)"


@dataclass(frozen=True, slots=True)
class FeatureHistogram:
    """One channel's counts in one window. ``edges`` (numeric) are the interior cut points:
    slot ``i`` is ``(edges[i-1], edges[i]]`` with open ends; ``categories`` (categorical)
    name the slots, the last being every category outside the reference's top-K."""

    feature: str
    kind: str  # "numeric" or "categorical"
    edges: tuple[float, ...]
    categories: tuple[str, ...]
    reference: tuple[int, ...]
    current: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "edges": list(self.edges),
            "categories": list(self.categories),
            "reference": list(self.reference),
            "current": list(self.current),
        }


def window_histogram(window: WindowState, channel: str) -> FeatureHistogram:
    """The aligned reference and window counts of ``channel``."""
    profile = window.layout.reference.channels[channel]
    reference = tuple(int(c) for c in window.reference_counts(channel))
    current = tuple(int(c) for c in window.counts(channel))
    if isinstance(profile, NumericProfile):
        edges = tuple(float(e) for e in np.asarray(profile.edges, dtype=np.float64))
        return FeatureHistogram(channel, "numeric", edges, (), reference, current)
    labels = tuple(c[:MAX_LABEL_CHARS] for c in profile.categories) + (OTHER,)
    return FeatureHistogram(channel, "categorical", (), labels, reference, current)
