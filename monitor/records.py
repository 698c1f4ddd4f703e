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
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np

from monitor.settings import LimitsConfig

RECORD_FIELDS = ("model", "version", "id", "timestamp", "inputs", "prediction", "latency_ms", "label", "segment")
# The largest epoch-seconds timestamp accepted (2100-01-01): a larger one is almost always
# milliseconds sent by mistake, and saying so beats silently placing it in year 50,000.
MAX_EPOCH_SECONDS = 4_102_444_800.0
MAX_MODEL_NAME = 128
# Feature values the fast path accepts by exact type (str is checked for length apart).
_PLAIN_SCALARS = frozenset({int, float, bool, type(None)})
_NONE = type(None)
# Batches smaller than this are validated item by item (the columnar set-up does not pay off).
MIN_COLUMNAR = 8


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


@dataclass(slots=True, eq=False)
class RecordColumns:
    """Complete records (inputs and prediction) of one model, validated column by column.

    Row ``j`` is item ``positions[j]`` of the call (its position in the list of items,
    which orders it among the call's other records). ``inputs`` holds one sequence of
    raw values per feature of ``features`` (exactly the features each row's ``inputs``
    had): a tuple, or for a numeric feature whose values are all numbers (none NaN)
    ``np.array`` of them; the other fields are lists with one validated value per row,
    or None when no row had the field. Values are those :meth:`Validator.validate` would have put in a
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
    """The outcome of :meth:`Validator.validate_items` for one call's items.

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

    def validate_items(
        self,
        items: Sequence[Any],
        received_at: float,
        *,
        indices: Sequence[int] | None = None,
        features: Callable[[str], Mapping[str, str] | None] | None = None,
    ) -> ValidatedItems:
        """Every item of one call; the result is what :meth:`validate` gives item by item.

        ``indices[i]`` is item i's index in the request (default: i), used by its
        Rejection. ``features(model)`` gives a configured model's features (name ->
        ``'numeric'`` or ``'categorical'``, in schema order): the complete records of such
        a model whose ``inputs`` has exactly those features are validated column by column
        into :class:`RecordColumns` (no Record, no per-value Python loop); everything
        else, and every item a column check finds fault with, goes through
        :meth:`validate`, so rejections keep their exact path and message.
        """
        columns: list[RecordColumns] = []
        slow: Sequence[int] = range(len(items))
        if features is not None and len(items) >= MIN_COLUMNAR:
            columns, slow = self._columnar(items, received_at, features)
        records: list[Record] = []
        positions: list[int] = []
        rejections: list[Rejection] = []
        validate = self.validate
        for pos in slow:
            outcome = validate(items[pos], pos if indices is None else indices[pos], received_at)
            if type(outcome) is Record:
                records.append(outcome)
                positions.append(pos)
            else:
                rejections.append(outcome)  # type: ignore[arg-type]
        return ValidatedItems(records, positions, columns, rejections)

    # -- columnar validation --------------------------------------------------------------
    def _columnar(
        self, items: Sequence[Any], received_at: float, features: Callable[[str], Mapping[str, str] | None]
    ) -> tuple[list[RecordColumns], list[int]]:
        """Complete records validated per column, and the positions left for :meth:`validate`."""
        n = len(items)
        fields = self._field_set
        # The fields any item has (a dict argument is merged in C without hashing its keys):
        # only those are read column by column.
        all_dicts = set(map(type, items)) == {dict}
        present = set().union(*items) if all_dicts else fields
        if all_dicts and present <= fields:
            positions = list(range(n))
            rows = items if isinstance(items, list) else list(items)
        else:
            present = fields
            positions = [p for p, x in enumerate(items) if type(x) is dict and fields.issuperset(x)]
            rows = [items[p] for p in positions]
        models = list(map(dict.get, rows, repeat("model")))
        groups: list[tuple[str, list[int], list[dict[str, Any]]]]
        if not rows:
            groups = []
        elif models.count(models[0]) == len(models):
            # One model (the usual call): compared by identity or equality, without hashing
            # every row's string (a set would) nor failing on an unhashable value.
            groups = [(models[0], positions, rows)]
        else:
            by_model: dict[Any, list[int]] = {}
            for j, model in enumerate(models):
                by_model.setdefault(model if type(model) is str else None, []).append(j)
            groups = [(m, [positions[j] for j in js], [rows[j] for j in js]) for m, js in by_model.items()]
        columns: list[RecordColumns] = []
        for model, group_positions, group_rows in groups:
            kinds = features(model) if type(model) is str and model in self.known_models else None
            if kinds and self._names_ok(kinds):
                chunk = self._columns(model, kinds, group_positions, group_rows, received_at, present)
                if chunk is not None and len(chunk):
                    columns.append(chunk)
        taken = sum(len(chunk) for chunk in columns)
        if taken == n:
            return columns, []
        done = set()
        for chunk in columns:
            done.update(chunk.positions)
        return columns, [p for p in range(n) if p not in done]

    def _names_ok(self, names: Sequence[str]) -> bool:
        limit = self.limits.max_string_length
        return len(names) <= self.limits.max_inputs_per_record and all(len(name) <= limit for name in names)

    def _columns(
        self,
        model: str,
        kinds: Mapping[str, str],
        positions: list[int],
        rows: list[dict[str, Any]],
        received_at: float,
        present: AbstractSet[str],
    ) -> RecordColumns | None:
        """The rows of one model that pass every column check (the others are left out);
        ``present`` holds every field that any row has."""
        get = dict.get
        names = tuple(kinds)
        width = len(names)
        # Inputs first: they must be dicts with exactly the model's features to be transposed.
        inputs = list(map(get, rows, repeat("inputs")))
        if set(map(type, inputs)) != {dict} or set(map(len, inputs)) != {width}:
            keep = [j for j, d in enumerate(inputs) if type(d) is dict and len(d) == width]
            positions, rows, inputs = _pick(positions, keep), _pick(rows, keep), _pick(inputs, keep)
        if not rows:
            return None
        # One C-level itemgetter per row, then a transpose of the tuples: cheaper than
        # checking that every row has the keys in one order and transposing dict views
        # (tuple iterators are faster than dict ones), and right whatever the key order.
        # It looks up the first row's own key strings: the JSON parser shares one string per
        # key between rows, so each lookup matches by identity instead of comparing the
        # characters of an equal name from the configuration (over twice as fast).
        own_keys = {key: key for key in inputs[0]}
        getter = itemgetter(*[own_keys.get(name, name) for name in names])
        try:
            table = list(map(getter, inputs))
        except KeyError:
            keep = [j for j, d in enumerate(inputs) if all(name in d for name in names)]
            positions, rows, inputs = _pick(positions, keep), _pick(rows, keep), _pick(inputs, keep)
            if not rows:
                return None
            table = list(map(getter, inputs))
        cols: list[Sequence[Any]] = [table] if width == 1 else list(zip(*table, strict=True))
        bad: set[int] = set()
        for k, (name, col) in enumerate(zip(names, cols, strict=True)):
            if kinds[name] == "numeric":
                numbers = _number_array(col)
                if numbers is not None:
                    cols[k] = numbers  # valid, and already what the detector's column needs
                    continue
            self._check_values(col, bad)
        ids = list(map(get, rows, repeat("id")))
        _check_texts(ids, self.limits.max_id_length, bad)
        versions = _optional(rows, "version", present)
        if versions is not None:
            _check_texts(versions, self.limits.max_id_length, bad)
        timestamps = _timestamps(list(map(get, rows, repeat("timestamp"))), received_at, bad)
        predictions = list(map(get, rows, repeat("prediction")))
        self._check_predictions(predictions, bad)
        labels = _optional(rows, "label", present)
        if labels is not None:
            self._check_each(labels, lambda v: self._prediction(v, "label"), bad)
        latencies = _optional(rows, "latency_ms", present)
        if latencies is not None:
            _check_latencies(latencies, bad)
        segments = _optional(rows, "segment", present)
        if segments is not None:
            self._check_each(segments, self._segment, bad)
        if bad:
            keep = [j for j in range(len(rows)) if j not in bad]
            positions, rows = _pick(positions, keep), _pick(rows, keep)
            cols = [col[keep] if isinstance(col, np.ndarray) else _pick(col, keep) for col in cols]
            ids, timestamps, predictions = _pick(ids, keep), _pick(timestamps, keep), _pick(predictions, keep)
            versions = None if versions is None else _pick(versions, keep)
            labels = None if labels is None else _pick(labels, keep)
            latencies = None if latencies is None else _pick(latencies, keep)
            segments = None if segments is None else _pick(segments, keep)
        return RecordColumns(
            model, positions, rows, names, cols, ids, timestamps, predictions, latencies, versions, labels, segments
        )

    def _check_values(self, col: Sequence[Any], bad: set[int]) -> None:
        """Feature values: numbers, booleans, null, or strings within the length limit."""
        kinds = set(map(type, col))
        if kinds <= _PLAIN_SCALARS:
            return
        limit = self.limits.max_string_length
        if kinds <= _PLAIN_SCALARS | {str}:
            strings = col if kinds == {str} else [v for v in col if type(v) is str]
            if max(map(len, strings)) <= limit:
                return
        for j, value in enumerate(col):
            kind = type(value)
            if kind is str:
                if len(value) > limit:
                    bad.add(j)
            elif kind not in _PLAIN_SCALARS:
                bad.add(j)  # item-by-item validation says why (or accepts an odd subclass)

    def _check_predictions(self, predictions: list[Any], bad: set[int]) -> None:
        kinds = set(map(type, predictions))
        if kinds == {int}:
            return
        if kinds <= {int, float}:
            try:
                if all(map(math.isfinite, predictions)):
                    return
            except OverflowError:
                pass
        for j, value in enumerate(predictions):
            if value is None:
                bad.add(j)  # a partial record: joined item by item
            elif not (type(value) is int or (type(value) is float and math.isfinite(value))):
                try:
                    self._prediction(value, "prediction")
                except Invalid:
                    bad.add(j)

    @staticmethod
    def _check_each(values: list[Any], check: Callable[[Any], Any], bad: set[int]) -> None:
        for j, value in enumerate(values):
            if value is not None:
                try:
                    check(value)
                except Invalid:
                    bad.add(j)

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


def _pick(values: Sequence[Any], keep: list[int]) -> list[Any]:
    return [values[j] for j in keep]


def _number_array(values: Sequence[Any]) -> np.ndarray | None:
    """``np.array(values)`` when every value is a number or boolean (so each is a valid
    feature value) and none is NaN (a NaN in a numpy column would read as null); else None."""
    try:
        # A C-level type guard first: numpy would pad every value to the longest string,
        # and a string is not checked against the length limit yet.
        total = sum(values)
    except (TypeError, OverflowError):
        return None
    try:
        arr = np.array(values)
    except (ValueError, OverflowError, TypeError):
        return None
    if arr.ndim != 1 or arr.dtype.kind not in "fiub":
        return None
    # A NaN makes the sum NaN: a finite float sum needs no look at the values.
    if arr.dtype.kind == "f" and not (type(total) is float and math.isfinite(total)) and np.isnan(arr).any():
        return None
    return arr


def _optional(rows: list[dict[str, Any]], name: str, present: AbstractSet[str]) -> list[Any] | None:
    """Every row's field ``name``, or None when no row has it (not null)."""
    if name not in present:  # no pass over the rows for a field no item has
        return None
    values = list(map(dict.get, rows, repeat(name)))
    return None if values.count(None) == len(values) else values


def _check_texts(values: list[Any], limit: int, bad: set[int]) -> None:
    """Ids and versions: strings within ``limit`` pass; None passes; anything else (an
    integer id, which item-by-item validation turns into a string) goes item by item."""
    kinds = set(map(type, values))
    if kinds == {str} and max(map(len, values)) <= limit:
        return
    for j, value in enumerate(values):
        if value is not None and not (type(value) is str and len(value) <= limit):
            bad.add(j)


def _plain_floats(values: list[Any], kinds: set[type]) -> np.ndarray | None:
    """``values`` as float64 when ``kinds`` (their types) are only int and float; None
    otherwise, or when an int is too large for a float."""
    if not kinds <= {int, float}:
        return None
    try:
        return np.array(values, dtype=np.float64)
    except OverflowError:
        return None


def _check_latencies(values: list[Any], bad: set[int]) -> None:
    arr = _plain_floats(values, set(map(type, values)))
    if arr is not None and bool(np.all(arr >= 0.0)) and bool(np.isfinite(arr).all()):
        return
    for j, value in enumerate(values):
        if value is not None and not (_is_number(value) and value >= 0):
            bad.add(j)


@dataclass(frozen=True, slots=True)
class _IsoShape:
    """One ISO 8601 shape: the lowest code allowed at each position and how far above it
    a code may be (so ``(code - low) > span`` finds every wrong character at once, a code
    below ``low`` wrapping around to a large unsigned number), the positions of the digits
    (year, month, day, hour, minute, second, then the fraction) and the fraction digits'
    weights in microseconds."""

    low: np.ndarray
    span: np.ndarray
    digits: np.ndarray
    fraction_weights: tuple[int, ...]


# ISO 8601 shapes parsed column-wise, by length: date, 'T' or ' ', time, optional 3 or 6
# fraction digits, optional 'Z' or '+00:00'; 'd' is a digit. Other shapes are parsed one by one.
_ISO_SHAPES: dict[int, _IsoShape] = {}
for _body in ("dddd-dd-ddTdd:dd:dd", "dddd-dd-ddTdd:dd:dd.ddd", "dddd-dd-ddTdd:dd:dd.dddddd"):
    for _suffix in ("", "Z", "+00:00"):
        _shape = _body + _suffix
        _low = np.array([48 if c == "d" else ord(c) for c in _shape], dtype=np.uint8)
        _high = np.array([57 if c == "d" else ord(c) for c in _shape], dtype=np.uint8)
        _low[10] = ord(" ")  # the separator is checked apart: 'T' or ' '
        _fraction = len(_body) - 20 if "." in _body else 0
        _ISO_SHAPES[len(_shape)] = _IsoShape(
            _low,
            _high - _low,
            np.array([k for k, c in enumerate(_body) if c == "d"], dtype=np.intp),
            tuple(10 ** (5 - k) for k in range(_fraction)),
        )
_ISO_LONGEST = max(_ISO_SHAPES)
_MONTH_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _timestamps(values: list[Any], received_at: float, bad: set[int]) -> list[float]:
    """Epoch seconds per row (``received_at`` for null), as :func:`parse_timestamp` gives
    them; rows it would refuse are added to ``bad``."""
    out: list[Any] | None = None
    iso = _iso_array(values)
    if iso is not None:
        if not np.isnan(iso).any():
            return iso.tolist()
        out = iso.tolist()
    else:
        kinds = set(map(type, values))
        arr = _plain_floats(values, kinds)
        if arr is not None:
            if bool(((arr >= 0.0) & (arr <= MAX_EPOCH_SECONDS)).all()):
                out = arr.tolist()
        elif kinds == {_NONE}:
            return [received_at] * len(values)
        if out is None:
            out = [math.nan] * len(values)
        elif not any(map(math.isnan, out)):
            return out
    for j, value in enumerate(values):
        if out[j] != out[j]:  # NaN: not done column-wise
            try:
                out[j] = received_at if value is None else parse_timestamp(value, "timestamp")
            except Invalid:
                bad.add(j)
                out[j] = 0.0
    return out


def _iso_array(values: list[Any]) -> np.ndarray | None:
    """Epoch seconds of ISO 8601 strings in the shapes of ``_ISO_SHAPES`` (naive = UTC),
    NaN for strings in other shapes or with an out-of-range field; None when the values
    are not all strings. Exactly what ``datetime.fromisoformat(v).timestamp()`` gives:
    integer microseconds divided by 10**6, correctly rounded either way."""
    try:
        joined = "".join(values)  # also the type check: it refuses anything but strings
    except TypeError:
        return None
    n = len(values)
    lengths = set(map(len, values))
    if not lengths:
        return np.empty(0)
    if len(lengths) == 1 and joined.isascii():
        # The usual batch (one client, one format): the characters as one (n, length)
        # matrix of bytes, straight from the joined text, with no numpy string array.
        length = lengths.pop()
        shape = _ISO_SHAPES.get(length)
        if shape is None:
            return np.full(n, np.nan)
        return _iso_parse(np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(n, length), shape)
    if max(lengths) > _ISO_LONGEST:  # numpy pads every string to the longest
        return None
    # Mixed lengths or non-ASCII text: code points of a numpy string array, one length at a time.
    text = np.array(values)
    codes = text.view(np.uint32).reshape(n, text.dtype.itemsize // 4)
    by_row = np.fromiter(map(len, values), dtype=np.intp, count=n)
    out = np.full(n, np.nan)
    for length in sorted(lengths):
        shape = _ISO_SHAPES.get(length)
        if shape is not None:
            rows = np.flatnonzero(by_row == length)
            out[rows] = _iso_parse(codes[rows, :length], shape)
    return out


def _iso_parse(chars: np.ndarray, shape: _IsoShape) -> np.ndarray:
    """Epoch seconds of each row of ``chars`` (character codes, one string of ``shape`` per
    row), NaN for a row with a wrong character or an out-of-range field."""
    n = len(chars)
    sep = chars[:, 10]
    ok = (sep == 84) | (sep == 32)  # 'T' or ' '
    wrong = (chars - shape.low) > shape.span
    if wrong.any():  # rarely: the per-row reduction costs more than the check itself
        ok &= ~wrong.any(axis=1)
    # One contiguous int64 row per digit (integer arithmetic: no float product, no BLAS).
    d = chars[:, shape.digits].T.astype(np.int64)
    d -= 48
    hour, minute, second = d[8] * 10 + d[9], d[10] * 10 + d[11], d[12] * 10 + d[13]
    fraction = 0
    for k, weight in enumerate(shape.fraction_weights):
        fraction = fraction + d[14 + k] * weight
    ok &= (hour <= 23) & (minute <= 59) & (second <= 59)
    if bool((d[:8] == d[:8, :1]).all()):
        # Every row has the same date (a batch rarely spans midnight): check it and count
        # its days once. Rows whose date characters are wrong are already refused by ``ok``.
        first = d[:8, 0].tolist()
        try:
            days = (
                date(
                    first[0] * 1000 + first[1] * 100 + first[2] * 10 + first[3],
                    first[4] * 10 + first[5],
                    first[6] * 10 + first[7],
                ).toordinal()
                - _EPOCH_ORDINAL
            )
        except (ValueError, OverflowError):  # an invalid date (Feb 30, year 0, ...) or non-digits
            return np.full(n, np.nan)
    else:
        year = d[0] * 1000 + d[1] * 100 + d[2] * 10 + d[3]
        month, day = d[4] * 10 + d[5], d[6] * 10 + d[7]
        leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
        month_ok = (month >= 1) & (month <= 12)
        last_day = _MONTH_DAYS[np.where(month_ok, month, 1)] + (leap & (month == 2))
        ok &= (year >= 1) & month_ok & (day >= 1) & (day <= last_day)
        # Days since 1970-01-01 of the proleptic Gregorian date (H. Hinnant's days_from_civil).
        y = year - (month <= 2)
        era = y // 400
        yoe = y - era * 400
        doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
        days = era * 146_097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719_468
    micros = (days * 86_400 + hour * 3_600 + minute * 60 + second) * 1_000_000 + fraction
    # Beyond 2**53 microseconds (before 1685 or after 2255) the integer does not
    # convert to a float exactly: those go to fromisoformat.
    ok &= np.abs(micros) < 2**53
    seconds = micros / 1e6
    if not ok.all():
        seconds[~ok] = np.nan
    return seconds


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
