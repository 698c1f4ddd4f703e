"""The record schema and its validation.

A record is one observation of one model, keyed by ``(model, id)``: what the model saw
(``inputs``), what it said (``prediction``), how long it took (``latency_ms``) and, often
hours later, what was true (``label``). Partial records (inputs only, prediction only,
label only) are joined by the pipeline.

Validation is hand-written rather than a pydantic model because it runs for every item
on the ingestion hot path (a 25-feature record validates in a few microseconds) and
because each rejection must name the field path and the reason in our own words.
Wrong-typed feature *values* (a string where a number is expected) are not rejected:
they are what the model saw, and the data-quality checks count them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.settings import LimitsConfig

RECORD_FIELDS = ("model", "version", "id", "timestamp", "inputs", "prediction", "latency_ms", "label", "segment")
# The largest epoch-seconds timestamp accepted (2100-01-01): a larger one is almost always
# milliseconds sent by mistake, and saying so beats silently placing it in year 50,000.
MAX_EPOCH_SECONDS = 4_102_444_800.0
MAX_MODEL_NAME = 128
# Feature values the fast path accepts by exact type (str is checked for length apart).
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})


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


class Invalid(Exception):
    """Raised inside validation; turned into a Rejection by :func:`validate_item`."""

    def __init__(self, path: str, reason: str, message: str):
        super().__init__(message)
        self.path, self.reason, self.message = path, reason, message


@dataclass
class Validator:
    """Validates raw JSON-decoded items against the limits and the known models.

    ``known_models`` is consulted on every item; ``accept_unknown`` lets items of other
    models through (the pipeline then registers them).
    """

    limits: LimitsConfig
    known_models: Any  # a container of model names (a dict or set, kept live by the caller)
    accept_unknown: bool = False
    _field_set: frozenset[str] = field(default=frozenset(RECORD_FIELDS), init=False)

    def validate(self, item: Any, index: int, received_at: float) -> Record | Rejection:
        """One item: a Record, or a Rejection naming the field path and reason."""
        try:
            return self._record(item, received_at)
        except Invalid as exc:
            model = item.get("model") if isinstance(item, dict) else None
            return Rejection(index, exc.path, exc.reason, exc.message, item, model if isinstance(model, str) else None)

    def _record(self, item: Any, received_at: float) -> Record:
        if type(item) is not dict:
            if not isinstance(item, dict):
                raise Invalid("", Reason.NOT_AN_OBJECT, f"a record must be a JSON object, got {json_type(item)}")
        if not self._field_set.issuperset(item):
            name = sorted(item.keys() - self._field_set)[0]
            raise Invalid(
                name, Reason.UNKNOWN_FIELD, f"unknown field {name!r}; record fields are {', '.join(RECORD_FIELDS)}"
            )
        get = item.get
        model = get("model")
        if type(model) is not str or model not in self.known_models:  # the common case skips the checks
            model = self._model(model)
        limit = self.limits.max_id_length
        record_id = get("id")
        if record_id is not None and not (type(record_id) is str and len(record_id) <= limit):
            record_id = self._text(record_id, "id", limit, allow_number=True)
        version = get("version")
        if version is not None:
            version = self._text(version, "version", limit, allow_number=True)
        stamp = get("timestamp")
        timestamp = received_at if stamp is None else parse_timestamp(stamp, "timestamp")
        inputs = get("inputs")
        if inputs is not None:
            inputs = self._inputs(inputs)
        prediction = get("prediction")
        has_prediction = prediction is not None
        if has_prediction and not (
            type(prediction) is int or (type(prediction) is float and math.isfinite(prediction))
        ):
            prediction = self._prediction(prediction, "prediction")  # the slow path words the errors
        label = get("label")
        has_label = label is not None
        if has_label:
            label = self._prediction(label, "label")
        latency = get("latency_ms")
        if latency is not None:
            if not _is_number(latency) or latency < 0:
                raise Invalid(
                    "latency_ms",
                    Reason.INVALID_VALUE,
                    f"must be a non-negative number of milliseconds, got {latency!r}",
                )
            latency = float(latency)
        segment = get("segment")
        if segment is not None:
            segment = self._segment(segment)
        if inputs is None and not has_prediction and not has_label:
            raise Invalid("", Reason.MISSING_FIELD, "a record needs at least one of inputs, prediction or label")
        if record_id is None and (inputs is None or not has_prediction):
            raise Invalid("id", Reason.MISSING_FIELD, "id is required for a partial record (it joins the parts)")
        return Record(
            model, record_id, version, timestamp, inputs, prediction, latency, label, segment, has_prediction, has_label
        )

    def _model(self, value: Any) -> str:
        if value is None:
            raise Invalid("model", Reason.MISSING_FIELD, "model is required")
        if not isinstance(value, str) or not value:
            raise Invalid("model", Reason.WRONG_TYPE, f"must be a non-empty string, got {json_type(value)}")
        if len(value) > MAX_MODEL_NAME:
            raise Invalid("model", Reason.TOO_LONG, f"must be at most {MAX_MODEL_NAME} characters, got {len(value)}")
        if value not in self.known_models:
            if not self.accept_unknown:
                raise Invalid(
                    "model",
                    Reason.UNKNOWN_MODEL,
                    f"model {value!r} is not configured (add it under models:, or set unknown_models: register)",
                )
            if len(self.known_models) >= self.limits.max_models:
                # Each model adds metric series and state: registration from traffic is capped.
                raise Invalid(
                    "model",
                    Reason.UNKNOWN_MODEL,
                    f"model {value!r} is not configured and the limit of {self.limits.max_models} models is reached (limits.max_models)",
                )
        return value

    def _text(self, value: Any, path: str, limit: int, allow_number: bool = False) -> str | None:
        if value is None:
            return None
        if allow_number and isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise Invalid(path, Reason.WRONG_TYPE, f"must be a string, got {json_type(value)}")
        if len(value) > limit:
            raise Invalid(path, Reason.TOO_LONG, f"must be at most {limit} characters, got {len(value)}")
        return value

    def _timestamp(self, value: Any, received_at: float) -> float:
        if value is None:
            return received_at
        return parse_timestamp(value, "timestamp")

    def _inputs(self, inputs: Any) -> dict[str, Any]:
        if type(inputs) is dict and len(inputs) <= self.limits.max_inputs_per_record:
            # Fast path (every valid record): one pass over the values by exact type.
            max_len = self.limits.max_string_length
            for value in inputs.values():
                kind = type(value)
                if kind is str:
                    if len(value) > max_len:
                        break
                elif kind not in _PLAIN_SCALARS:
                    break
            else:
                if not inputs or max(map(len, inputs)) <= max_len:
                    return inputs
        return self._inputs_problem(inputs)

    def _inputs_problem(self, inputs: Any) -> dict[str, Any]:
        """The precise error for inputs the fast path refused (or the inputs, for an odd
        but valid subclass such as a number type the JSON parser does not produce)."""
        if not isinstance(inputs, dict):
            raise Invalid(
                "inputs", Reason.WRONG_TYPE, f"must be an object of feature -> value, got {json_type(inputs)}"
            )
        if len(inputs) > self.limits.max_inputs_per_record:
            raise Invalid(
                "inputs", Reason.TOO_MANY, f"at most {self.limits.max_inputs_per_record} features, got {len(inputs)}"
            )
        max_len = self.limits.max_string_length
        for name, value in inputs.items():
            if value is None or isinstance(value, (int, float)):  # bool is an int; the JSON parser refuses NaN/inf
                continue
            if isinstance(value, str):
                if len(value) > max_len:
                    message = f"string values must be at most {max_len} characters, got {len(value)}"
                    raise Invalid(f"inputs.{name}", Reason.TOO_LONG, message)
                continue
            message = f"must be a number, string, boolean or null, got {json_type(value)}"
            raise Invalid(f"inputs.{name}", Reason.WRONG_TYPE, message)
        for name in inputs:
            if len(name) > max_len:
                message = f"feature names must be at most {max_len} characters, got {len(name)}"
                raise Invalid("inputs", Reason.TOO_LONG, message)
        return inputs

    def _prediction(self, value: Any, path: str) -> Any:
        if isinstance(value, (int, float)):
            if not math.isfinite(value):
                raise Invalid(path, Reason.INVALID_VALUE, f"must be finite, got {value!r}")
            return value
        if isinstance(value, str):
            if len(value) > self.limits.max_string_length:
                raise Invalid(
                    path,
                    Reason.TOO_LONG,
                    f"must be at most {self.limits.max_string_length} characters, got {len(value)}",
                )
            return value
        if isinstance(value, dict) and path == "prediction":
            # class -> probability
            if len(value) > self.limits.max_inputs_per_record:
                raise Invalid(
                    path, Reason.TOO_MANY, f"at most {self.limits.max_inputs_per_record} classes, got {len(value)}"
                )
            for name, prob in value.items():
                if not _is_number(prob) or not 0.0 <= prob <= 1.0:
                    raise Invalid(
                        f"{path}.{name}",
                        Reason.INVALID_VALUE,
                        f"class probabilities must be numbers in [0, 1], got {prob!r}",
                    )
            return value
        expected = (
            "a number, string, boolean or object of class -> probability"
            if path == "prediction"
            else "a number, string or boolean"
        )
        raise Invalid(path, Reason.WRONG_TYPE, f"must be {expected}, got {json_type(value)}")

    def _segment(self, segment: Any) -> dict[str, str]:
        if not isinstance(segment, dict):
            raise Invalid("segment", Reason.WRONG_TYPE, f"must be an object of tag -> string, got {json_type(segment)}")
        if len(segment) > 16:
            raise Invalid("segment", Reason.TOO_MANY, f"at most 16 tags, got {len(segment)}")
        for name, value in segment.items():
            if not isinstance(value, str):
                raise Invalid(f"segment.{name}", Reason.WRONG_TYPE, f"must be a string, got {json_type(value)}")
            if len(value) > self.limits.max_string_length:
                raise Invalid(
                    f"segment.{name}", Reason.TOO_LONG, f"must be at most {self.limits.max_string_length} characters"
                )
        return segment


def parse_timestamp(value: Any, path: str) -> float:
    """Epoch seconds from a number of seconds or an ISO 8601 string (naive means UTC)."""
    if _is_number(value):
        seconds = float(value)
        if not 0.0 <= seconds <= MAX_EPOCH_SECONDS:
            hint = " (milliseconds? send seconds)" if seconds > MAX_EPOCH_SECONDS else ""
            raise Invalid(
                path,
                Reason.INVALID_VALUE,
                f"epoch seconds must be between 0 and {MAX_EPOCH_SECONDS:.0f}, got {value!r}{hint}",
            )
        return seconds
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise Invalid(
                path, Reason.INVALID_VALUE, f"must be epoch seconds or an ISO 8601 time, got {value[:64]!r}"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    raise Invalid(path, Reason.WRONG_TYPE, f"must be epoch seconds or an ISO 8601 string, got {json_type(value)}")


def _is_number(value: Any) -> bool:
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
