"""What a model's records contain: its features and their kinds, its prediction, and the
*channels* (each feature, plus :data:`PREDICTION` and :data:`LATENCY`) that references,
windows and results are keyed by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NUMERIC = "numeric"
CATEGORICAL = "categorical"
PREDICTION = "__prediction__"
LATENCY = "__latency_ms__"

_PREDICTION_KINDS = ("binary", "multiclass", "regression")


@dataclass(frozen=True)
class Schema:
    """What a model's records contain.

    ``features`` maps feature name -> 'numeric' | 'categorical'.
    ``prediction_kind`` is None (no prediction channel), 'binary', 'multiclass'
    or 'regression'. Binary predictions are scores in [0, 1] when
    ``binary_output='score'`` (a class->probability mapping yields the
    probability of ``positive_class``, or of the greatest key as a string when
    it is None: '1' > '0', 'true' > 'false', 'yes' > 'no') and class labels when
    ``binary_output='label'``. Multiclass predictions are labels (a mapping
    yields its arg-max class). ``*_column`` names are only used for flat tables
    (reference files, DataFrames); records always use the keys ``prediction``,
    ``latency_ms`` and ``timestamp``. The latency channel (profiled, with
    data-quality counts) exists iff ``latency_column`` is not None; records'
    ``latency_ms`` becomes ``Batch.latency_ms`` either way.
    """

    features: Mapping[str, str]
    prediction_kind: str | None = None
    binary_output: str = "score"
    positive_class: str | None = None
    prediction_column: str = "prediction"
    latency_column: str | None = None
    timestamp_column: str = "timestamp"

    def __post_init__(self) -> None:
        feats = dict(self.features)
        for name, kind in feats.items():
            if not isinstance(name, str) or not name:
                raise ValueError(f"feature names must be non-empty strings, got {name!r}")
            if name in (PREDICTION, LATENCY):
                raise ValueError(f"feature name {name!r} is reserved")
            if kind not in (NUMERIC, CATEGORICAL):
                raise ValueError(f"features[{name!r}] must be 'numeric' or 'categorical', got {kind!r}")
        if self.prediction_kind is not None and self.prediction_kind not in _PREDICTION_KINDS:
            raise ValueError(
                f"prediction_kind must be one of {_PREDICTION_KINDS} or None, got {self.prediction_kind!r}"
            )
        if self.binary_output not in ("score", "label"):
            raise ValueError(f"binary_output must be 'score' or 'label', got {self.binary_output!r}")
        object.__setattr__(self, "features", feats)

    @property
    def prediction_type(self) -> str | None:
        """'numeric', 'categorical' or None: how the prediction channel is profiled."""
        if self.prediction_kind is None:
            return None
        if self.prediction_kind == "regression" or (self.prediction_kind == "binary" and self.binary_output == "score"):
            return NUMERIC
        return CATEGORICAL

    def channels(self) -> dict[str, str]:
        """Channel name -> 'numeric' | 'categorical', features first, then prediction, latency."""
        out = dict(self.features)
        if self.prediction_type is not None:
            out[PREDICTION] = self.prediction_type
        if self.latency_column is not None:
            out[LATENCY] = NUMERIC
        return out

    def to_dict(self) -> dict[str, Any]:
        # features as pairs: JSON writers may sort object keys, and order matters
        return {
            "features": [[k, v] for k, v in self.features.items()],
            "prediction_kind": self.prediction_kind,
            "binary_output": self.binary_output,
            "positive_class": self.positive_class,
            "prediction_column": self.prediction_column,
            "latency_column": self.latency_column,
            "timestamp_column": self.timestamp_column,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        d = dict(d)
        feats = d.pop("features")
        return cls(features=dict(feats) if isinstance(feats, Mapping) else {k: v for k, v in feats}, **d)


def channel_name(channel: str) -> str:
    """How a channel is named to people (metric labels, API rows): features by their
    name, the reserved channels as ``prediction`` and ``latency_ms``."""
    return {PREDICTION: "prediction", LATENCY: "latency_ms"}.get(channel, channel)
