"""Per-model config: features, prediction kind, reference, windows and each detector's knobs.

Split from ``monitor/settings.py``, which holds the service-wide sections, reads the
file and builds ``Settings`` from both.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

# A boolean feature is a categorical channel of the values "true" and "false" whatever the
# client's spelling (true/false in any case, 1/0); other values are refused (monitor.validation).
FEATURE_TYPES = ("numeric", "categorical", "boolean")
PREDICTION_KINDS = ("binary", "multiclass", "regression")


class Strict(BaseModel):
    """Base for config sections: unknown keys are errors (a typo must not pass silently)."""

    model_config = ConfigDict(extra="forbid")


class DriftConfig(Strict):
    """Drift decision knobs; unset keys keep the detectors' documented defaults
    (``detectors.decision.DriftSettings``). At feature level only the per-feature knobs
    apply (``correction`` and ``dataset_drift_share`` are model-wide)."""

    alpha: float | None = None
    correction: str | None = None
    min_effect_numeric: float | None = None
    min_effect_categorical: float | None = None
    numeric_test: str | None = None
    numeric_effect: str | None = None
    categorical_test: str | None = None
    categorical_effect: str | None = None
    debias_js: bool | None = None
    min_samples: int | None = None
    dataset_drift_share: float | None = None

    @model_validator(mode="after")
    def _valid_for_detectors(self) -> DriftConfig:
        from detectors.decision import DriftSettings

        DriftSettings(**self.given())  # raises ValueError naming the knob and the value
        return self

    def given(self) -> dict[str, Any]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class QualityConfig(Strict):
    """Data-quality thresholds (rates in [0, 1]); unset keys keep the detectors' defaults
    (``detectors.quality.QualitySettings``)."""

    # A rate turns a check on with that threshold; ``false`` turns it off; unset keeps the default.
    out_of_range: float | Literal[False] | None = None
    null_increase: float | Literal[False] | None = None
    null_alpha: float | Literal[False] | None = None
    non_finite: float | Literal[False] | None = None
    wrong_type: float | Literal[False] | None = None
    unseen: float | Literal[False] | None = None
    min_samples: int | None = None

    @model_validator(mode="after")
    def _valid_for_detectors(self) -> QualityConfig:
        from detectors.quality import QualitySettings

        QualitySettings(**self.given())
        return self

    def given(self) -> dict[str, Any]:
        """The keys set in the file, ``false`` meaning "check off" (None to the detectors)."""
        return {k: (None if v is False else v) for k, v in self.model_dump().items() if v is not None}


class FeatureConfig(Strict):
    """One model input. ``min``/``max`` bound the range checks of the detectors (default:
    the reference's range widened by a margin)."""

    type: str = "numeric"
    min: float | None = None
    max: float | None = None
    drift: DriftConfig | None = None
    quality: QualityConfig | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in FEATURE_TYPES:
            raise ValueError(f"must be one of {', '.join(FEATURE_TYPES)}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _ordered_bounds(self) -> FeatureConfig:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        if self.type == "boolean" and (self.min is not None or self.max is not None):
            raise ValueError("a boolean feature has no min or max (they bound numeric features)")
        return self


class PredictionConfig(Strict):
    """What the model outputs.

    ``classes`` names the columns of a probability vector (V2 ``[N, C]`` outputs, V1
    lists of probabilities); ``output`` picks the V2 output tensor when there are several.
    """

    kind: str = "binary"
    classes: list[str] | None = None
    output: str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in PREDICTION_KINDS:
            raise ValueError(f"must be one of {', '.join(PREDICTION_KINDS)}, got {value!r}")
        return value


# models:/NAME/VERSION, models:/NAME@ALIAS, or the template models:/NAME/{version} (a
# version's number filled in: monitor/mlflow_references.py).
MLFLOW_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@{}]+)(?:/(?P<version>[0-9]+|\{version\})|@(?P<alias>[\w-]+))$")


class MlflowReferenceConfig(Strict):
    """A reference from an MLflow model registry (README "MLflow"): the artifact
    ``artifact_path`` (CSV, Parquet or JSONL) of the registered model version ``model_uri``
    names, fetched in the background, retried after ``retry_seconds``, doubling up to
    ``max_retry_seconds``; one attempt waits at most ``attempt_timeout_seconds`` on the
    registry. ``tracking_uri`` defaults to the MLFLOW_TRACKING_URI environment variable.
    An alias (``models:/NAME@ALIAS``) is resolved again every ``refresh_seconds`` (0: only
    at start-up); when it names another version, that version's artifact becomes the
    reference. A URI naming a version or a template never moves: it is not checked again."""

    model_uri: str
    artifact_path: str
    tracking_uri: str | None = None
    retry_seconds: float = Field(default=5.0, gt=0, le=3600)
    max_retry_seconds: float = Field(default=300.0, gt=0, le=86_400)
    attempt_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    refresh_seconds: float = Field(default=300.0, ge=0, le=86_400)

    @field_validator("model_uri")
    @classmethod
    def _registry_uri(cls, value: str) -> str:
        if not MLFLOW_MODEL_URI.match(value):
            raise ValueError(
                "must be models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME/{version}, got " + repr(value)
            )
        return value

    @field_validator("artifact_path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        parts = value.split("/")
        if not value or value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"must be a relative path inside the model version's artifacts, got {value!r}")
        return value

    @field_validator("max_retry_seconds")
    @classmethod
    def _not_below_first_wait(cls, value: float, info: ValidationInfo) -> float:
        first = info.data.get("retry_seconds")  # absent when it failed its own check
        if first is not None and value < first:
            raise ValueError(f"must not be below retry_seconds ({first}), got {value}")
        return value

    @property
    def per_version(self) -> bool:
        """A template: the reference of each model version, none for the model itself."""
        return "{version}" in self.model_uri

    @property
    def alias(self) -> str | None:
        """The registered model alias the URI names (resolved again every ``refresh_seconds``), if any."""
        match = MLFLOW_MODEL_URI.match(self.model_uri)
        return None if match is None else match["alias"]


class ReferenceConfig(Strict):
    """Where the model's reference comes from when none is stored yet: a file (CSV,
    Parquet, JSONL) read at start-up, an MLflow registry (fetched in the background), or
    the first N records after start-up. One source per model."""

    file: str | None = None
    mlflow: MlflowReferenceConfig | None = None
    prediction_column: str = "prediction"
    latency_column: str | None = None
    label_column: str | None = None
    from_first_records: int = Field(default=0, ge=0, le=10_000_000)
    bins: int = Field(default=10, ge=2, le=1000)
    top_k: int = Field(default=50, ge=1, le=10_000)
    sample_size: int = Field(default=10_000, ge=100, le=1_000_000)

    @model_validator(mode="after")
    def _one_source(self) -> ReferenceConfig:
        # Two sources would need a precedence nobody can guess from the file: refuse.
        if self.mlflow is not None and self.file:
            raise ValueError("file and mlflow are two sources of the reference: set one")
        if self.mlflow is not None and self.from_first_records:
            raise ValueError("from_first_records and mlflow are two sources of the reference: set one")
        return self


class WindowConfig(Strict):
    """How traffic is cut into windows. ``count``: tumbling, ``size`` records each.
    ``time``: tumbling, ``seconds`` of event time, extended until ``min_records``.
    ``sliding``: ``panes`` panes of ``size / panes`` records (or ``seconds / panes``)."""

    kind: Literal["count", "time", "sliding"] = "count"
    size: int = Field(default=10_000, ge=1)
    seconds: float | None = Field(default=None, gt=0)
    min_records: int = Field(default=1_000, ge=1)
    panes: int = Field(default=5, ge=1, le=1000)
    sample_size: int = Field(default=10_000, ge=100, le=1_000_000)
    range_margin: float = Field(default=0.1, ge=0)
    # Time windows close when the latest event time seen minus this passes their end.
    allowed_lateness_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _seconds_for_time(self) -> WindowConfig:
        if self.kind == "time" and self.seconds is None:
            raise ValueError("a time window needs seconds")
        if self.allowed_lateness_seconds:  # the detectors' rule, which words the error
            from detectors.windows.policies import WindowPolicy

            WindowPolicy(
                self.kind, seconds=self.seconds, panes=self.panes, allowed_lateness=self.allowed_lateness_seconds
            )
        return self


class LatencyConfig(Strict):
    slo_ms: float | None = Field(default=None, gt=0)
    quantile: float = Field(default=0.99, gt=0, lt=1)


class PerformanceConfig(Strict):
    """Performance once labels arrive: windows of ``window_size`` labelled predictions."""

    window_size: int = Field(default=5_000, ge=1)
    min_labels: int = Field(default=100, ge=1)
    threshold: float = Field(default=0.5, ge=0, le=1)
    positive_class: str | None = None
    max_drop: float = Field(default=0.05, ge=0)


class EstimationConfig(Strict):
    """Before labels come (``detectors.estimation``; README "Without labels"), fitted on the
    reference file. ``performance``: CBPE (classifiers) or direct loss estimation
    (regression), when the file has ``reference.label_column``; ``multivariate``: PCA
    reconstruction error on the numeric and one-hot categorical features; ``domain_classifier``: also a
    reference-vs-window classifier (about 1 s per 5,000-row window). ``band``: sampling
    errors either side of an estimate, and below the reference before an alert.
    ``proba_prefix``: multiclass reference columns ``<prefix><class>``."""

    performance: bool = True
    multivariate: bool = True
    domain_classifier: bool = False
    proba_prefix: str | None = None
    band: float = Field(default=3.0, gt=0, le=10)
    chunk_size: int = Field(default=5_000, ge=100)


class SegmentsConfig(Strict):
    """Segment analysis (detectors.segments): drift per value of these record tag keys
    (``segment: {"region": "eu"}``), each value against its own reference rows when it has
    ``min_reference_rows`` of them; at most ``max_values`` values per key (the rest pooled
    as ``__other__``); a value seen only in traffic takes a free slot after ``admit_rows``
    rows. ``segments: [region]`` is short for ``segments: {keys: [region]}``."""

    keys: list[str] = Field(min_length=1, max_length=16)
    max_values: int = Field(default=20, ge=1, le=1_000)
    min_reference_rows: int = Field(default=500, ge=1)
    admit_rows: int = Field(default=100, ge=1)

    @field_validator("keys")
    @classmethod
    def _plain_keys(cls, value: list[str]) -> list[str]:
        for key in value:
            if not key or ":" in key:
                raise ValueError(f"a segment key must be a non-empty tag name without ':', got {key!r}")
        if len(set(value)) != len(value):
            raise ValueError(f"segment keys must be unique, got {value!r}")
        return value


class VersionsConfig(Strict):
    """Per-version windows (monitor.version_state): records carrying ``version`` are also
    counted into windows of their version, each against the version's own reference (or
    the model's). At most ``max_active`` versions have windows; a new one past that retires
    the least recently seen (its open window dropped, counted). ``champion`` and
    ``challenger``: two versions whose predictions are compared per whole-population window
    (result and alert kind ``version_divergence``)."""

    max_active: int = Field(default=5, ge=1, le=100)
    champion: str | None = Field(default=None, min_length=1, max_length=1024)
    challenger: str | None = Field(default=None, min_length=1, max_length=1024)
    # Regression: two predictions of one id agree within this distance (binary: the same side
    # of performance.threshold; classes: the same class).
    agreement_tolerance: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _two_versions(self) -> VersionsConfig:
        if (self.champion is None) != (self.challenger is None):
            raise ValueError("versions: champion and challenger are given together (or neither)")
        if self.champion is not None and self.champion == self.challenger:
            raise ValueError(f"versions: champion and challenger must differ, both are {self.champion!r}")
        return self


class ModelConfig(Strict):
    """One monitored model. Feature order matters: it maps positional rows (KServe
    ``instances`` lists, V2 ``[N, F]`` tensors) to feature names."""

    features: dict[str, FeatureConfig] = Field(default_factory=dict)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    reference: ReferenceConfig = Field(default_factory=ReferenceConfig)
    window: WindowConfig = Field(default_factory=WindowConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    performance: PerformanceConfig = Field(default_factory=PerformanceConfig)
    estimation: EstimationConfig = Field(default_factory=EstimationConfig)
    segments: SegmentsConfig | None = None
    versions: VersionsConfig | None = None

    @field_validator("segments", mode="before")
    @classmethod
    def _segment_keys(cls, value: Any) -> Any:
        return {"keys": value} if isinstance(value, list) else value

    @field_validator("features", mode="before")
    @classmethod
    def _features_not_null(cls, value: Any) -> Any:
        # `features:` with nothing under it parses as None; treat it as "no features yet".
        return {} if value is None else value

    @property
    def feature_names(self) -> list[str]:
        return list(self.features)

    @property
    def boolean_features(self) -> frozenset[str]:
        """The features declared ``type: boolean`` (README, Records: booleans)."""
        return frozenset(name for name, feature in self.features.items() if feature.type == "boolean")
