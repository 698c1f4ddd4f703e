"""The record schema: what one observation of one model is, and why an item was refused.

A record is one observation of one model, keyed by ``(model, id)``: what the model saw
(``inputs``), what it said (``prediction``), how long it took (``latency_ms``) and, often
hours later, what was true (``label``). Partial records (inputs only, prediction only,
label only) are joined by the pipeline. Items become records in :mod:`monitor.validation`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, final

RECORD_FIELDS = ("model", "version", "id", "timestamp", "inputs", "prediction", "latency_ms", "label", "segment")
MAX_MODEL_NAME = 128
# The model label value that traffic of unknown models counts under (monitor.metrics.UNKNOWN_MODEL):
# no model may take it, or its series would mix with that traffic.
RESERVED_MODEL_NAME = "_unknown"


class Reason:
    """Rejection reasons: a small fixed set, so they can label a Prometheus counter."""

    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    UNKNOWN_FIELD = "unknown_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    TOO_LONG = "too_long"
    TOO_MANY = "too_many"
    UNKNOWN_MODEL = "unknown_model"
    INVALID_EVENT = "invalid_event"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"


# final: the validation loops tell a Record from a Rejection by ``type(x) is Record``,
# which is right only with no subclasses (and which mypy then narrows both ways).
@final
@dataclass(slots=True)
class Record:
    """A validated (possibly partial) record. ``timestamp`` is epoch seconds (UTC)."""

    model: str
    id: str | None = None
    version: str | None = None
    timestamp: float = 0.0
    inputs: dict[str, Any] | None = None
    prediction: Any = None
    latency_ms: float | None = None
    label: Any = None
    segment: dict[str, str] | None = None
    has_prediction: bool = False
    has_label: bool = False

    @property
    def complete(self) -> bool:
        """Inputs and prediction both present: ready for the detectors without a join."""
        return self.inputs is not None and self.has_prediction

    def merge(self, other: Record) -> list[str]:
        """Fill what this partial record lacks from ``other`` (same model and id).

        Returns the parts ``other`` repeated (already present here); the first value wins,
        so a retried log line cannot overwrite what was joined.
        """
        repeated = []
        if other.inputs is not None:
            if self.inputs is None:
                self.inputs = other.inputs
            else:
                repeated.append("inputs")
        if other.has_prediction:
            if self.has_prediction:
                repeated.append("prediction")
            else:
                self.prediction, self.has_prediction = other.prediction, True
        if other.has_label:
            if self.has_label:
                repeated.append("label")
            else:
                self.label, self.has_label = other.label, True
        if self.latency_ms is None:
            self.latency_ms = other.latency_ms
        if self.version is None:
            self.version = other.version
        if self.segment is None:
            self.segment = other.segment
        return repeated


@dataclass(slots=True)
class Rejection:
    """Why item ``index`` of a request was refused; ``raw`` keeps the item for dead letters."""

    index: int
    path: str
    reason: str
    message: str
    raw: Any = None
    model: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "path": self.path, "reason": self.reason, "message": self.message}


@dataclass(slots=True, eq=False)
class RecordColumns:
    """Complete records (inputs and prediction) of one model, validated column by column.

    Row ``j`` is item ``positions[j]`` of the call (its position in the list of items,
    which orders it among the call's other records). ``inputs`` holds one sequence of
    raw values per feature of ``features`` (exactly the features each row's ``inputs``
    had): a tuple, or for a numeric feature whose values are all numbers (none NaN)
    ``np.array`` of them; the other fields are lists with one validated value per row,
    or None when no row had the field. Values are those :meth:`~monitor.validation.Validator.validate` would have put in a
    :class:`Record` (:meth:`record` builds that Record when one is needed).
    """

    model: str
    positions: list[int]
    items: list[dict[str, Any]]
    features: tuple[str, ...]
    inputs: list[Sequence[Any]]
    ids: list[str | None]
    timestamps: list[float]
    predictions: list[Any]
    latencies: list[Any] | None = None
    versions: list[str | None] | None = None
    labels: list[Any] | None = None
    segments: list[dict[str, str] | None] | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def record(self, j: int) -> Record:
        """Row ``j`` as the Record item-by-item validation makes of it."""
        latency = None if self.latencies is None else self.latencies[j]
        label = None if self.labels is None else self.labels[j]
        return Record(
            self.model,
            self.ids[j],
            None if self.versions is None else self.versions[j],
            self.timestamps[j],
            self.items[j]["inputs"],
            self.predictions[j],
            None if latency is None else float(latency),
            label,
            None if self.segments is None else self.segments[j],
            True,
            label is not None,
        )


@dataclass(slots=True, eq=False)
class ValidatedItems:
    """The outcome of :meth:`~monitor.validation.Validator.validate_items` for one call's items.

    ``records`` were validated item by item (partial records, odd values) and
    ``record_positions`` gives each one's position among the items; ``columns`` hold
    the complete records validated column-wise; ``rejections`` are sorted by index.
    """

    records: list[Record]
    record_positions: list[int]
    columns: list[RecordColumns]
    rejections: list[Rejection]

    @property
    def accepted(self) -> int:
        return len(self.records) + sum(len(c) for c in self.columns)


class Invalid(Exception):
    """Raised inside validation; :meth:`~monitor.validation.Validator.validate` turns it into a Rejection."""

    def __init__(self, path: str, reason: str, message: str):
        super().__init__(message)
        self.path, self.reason, self.message = path, reason, message


def reserved_model_name(name: str, path: str) -> Invalid:
    """The rejection of a model named like the label of unknown models' traffic."""
    message = f"the model name {name!r} is reserved: it is the metric label value of traffic for unknown models"
    return Invalid(path, Reason.INVALID_VALUE, message)


def shown_name(name: str) -> str:
    """A client-chosen name (class, tag) as it appears in a rejection's path: cut short, so
    a name refused for its length is not echoed whole into every response and dead letter."""
    return name if len(name) <= 64 else f"{name[:64]}..."


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
