"""Validation: raw JSON-decoded items -> :class:`~monitor.records.Record` or
:class:`~monitor.records.Rejection`.

Validation is hand-written rather than a pydantic model because it runs for every item
on the ingestion hot path (a 25-feature record validates in a few microseconds) and
because each rejection must name the field path and the reason in our own words.
Wrong-typed feature *values* (a string where a number is expected) are not rejected:
they are what the model saw, and the data-quality checks count them.

A batch of complete records of a configured model is validated column by column
(:meth:`Validator.validate_items`); anything that path finds fault with goes item by item,
so every rejection keeps its exact path and message.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitor.columnar_validation import PLAIN_SCALARS, ColumnarValidation
from monitor.model_config import ModelConfig
from monitor.records import (
    MAX_MODEL_NAME,
    RECORD_FIELDS,
    RESERVED_MODEL_NAME,
    Invalid,
    Reason,
    Record,
    RecordColumns,
    Rejection,
    ValidatedItems,
    is_number,
    json_type,
    reserved_model_name,
    shown_name,
)
from monitor.settings import LimitsConfig
from monitor.timestamps import EventTimeRange, parse_timestamp

# "true" and "false" in any case are the booleans they spell (Python's str(False) is
# "False", a CSV may hold "FALSE"): one category whatever the client's spelling, as JSON
# booleans and a reference file's boolean column give (README, Records: booleans).
BOOLEAN_WORDS = {"true": True, "false": False}
_WORD_LENGTHS = frozenset(map(len, BOOLEAN_WORDS))
# A feature declared `type: boolean` also takes 1 and 0, as numbers or strings, and nothing
# else (README, Records: booleans). Numbers are looked up by value: 1, 1.0 and True are one
# key of a dict (equal, same hash), so are 0, 0.0 and False.
BOOLEAN_VALUES: dict[Any, bool] = {**BOOLEAN_WORDS, "1": True, "0": False, True: True, False: False}
BOOLEAN_EXPECTED = "a boolean: true or false (JSON, or a string in any case), or 1 or 0 (number or string)"

# Batches smaller than this are validated item by item (the columnar set-up does not pay off).
MIN_COLUMNAR = 8
HISTORY = EventTimeRange.history()


@dataclass
class Validator(ColumnarValidation):
    """Validates raw JSON-decoded items against the limits and the known models.

    ``known_models`` is consulted on every item; ``accept_unknown`` lets items of other
    models through (the pipeline then registers them), up to ``limits.max_models`` models
    counting those the same call lets through. Timestamps are refused outside 1970 to 2100
    and, with ``check_event_time`` (live ingestion, where ``received_at`` is when the item
    arrived), outside :class:`~monitor.timestamps.EventTimeRange` of ``received_at``; a file
    replay (history, no receive time) turns that off.
    """

    limits: LimitsConfig
    known_models: Any  # a container of model names (a dict or set, kept live by the caller)
    accept_unknown: bool = False
    check_event_time: bool = True
    _field_set: frozenset[str] = field(default=frozenset(RECORD_FIELDS), init=False)
    _accepted: EventTimeRange | None = field(default=None, init=False)  # the range of the last received_at
    # Model -> (its config when looked at, its boolean features): one lookup per record.
    _booleans: dict[str, tuple[Any, frozenset[str]]] = field(default_factory=dict, init=False)

    def validate(
        self, item: Any, index: int, received_at: float, admitted: set[str] | None = None
    ) -> Record | Rejection:
        """One item: a Record, or a Rejection naming the field path and reason.

        ``admitted`` holds the unknown models this call's earlier items were accepted for
        (the pipeline registers them after validation), so that one call cannot register
        more than ``limits.max_models``; a model of an accepted item is added to it."""
        try:
            return self._record(item, received_at, set() if admitted is None else admitted)
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
        ``'numeric'`` or ``'categorical'``, in schema order; a boolean feature is categorical
        there, :meth:`boolean_features` names them): the complete records of such
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
        admitted: set[str] = set()  # unknown models this call accepted (only items taken one by one can have them)
        for pos in slow:
            outcome = validate(items[pos], pos if indices is None else indices[pos], received_at, admitted)
            if type(outcome) is Record:
                records.append(outcome)
                positions.append(pos)
            else:
                rejections.append(outcome)
        return ValidatedItems(records, positions, columns, rejections)

    def event_times(self, received_at: float) -> EventTimeRange:
        """The event times accepted for items received at ``received_at``."""
        if not self.check_event_time:
            return HISTORY
        accepted = self._accepted
        if accepted is None or accepted.received_at != received_at:
            accepted = self._accepted = EventTimeRange.of(received_at, self.limits)
        return accepted

    def _record(self, item: Any, received_at: float, admitted: set[str]) -> Record:
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
        new_model = False
        if type(model) is not str or model not in self.known_models:  # the common case skips the checks
            model = self._model(model, admitted)
            new_model = model not in self.known_models
        limit = self.limits.max_id_length
        record_id = get("id")
        if record_id is not None and not (type(record_id) is str and len(record_id) <= limit):
            record_id = self._text(record_id, "id", limit, allow_number=True)
        version = get("version")
        if version is not None:
            version = self._text(version, "version", limit, allow_number=True)
        stamp = get("timestamp")
        if stamp is None:
            timestamp = received_at
        else:
            timestamp = parse_timestamp(stamp, "timestamp")
            accepted = self.event_times(received_at)
            if not accepted.low <= timestamp <= accepted.high:
                raise accepted.problem(timestamp, "timestamp")
        inputs = get("inputs")
        if inputs is not None:
            inputs = self._inputs(inputs)
            booleans = self.boolean_features(model)
            if booleans:
                inputs = boolean_inputs(inputs, booleans)
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
            if not is_number(latency) or latency < 0:
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
        if new_model:
            admitted.add(model)  # only now: a refused item registers nothing
        return Record(
            model, record_id, version, timestamp, inputs, prediction, latency, label, segment, has_prediction, has_label
        )

    def boolean_features(self, model: str) -> frozenset[str]:
        """The features ``model`` declares ``type: boolean`` (none when ``known_models`` holds
        names rather than configs)."""
        known = self.known_models
        config = known.get(model) if type(known) is dict else None
        cached = self._booleans.get(model)
        if cached is not None and cached[0] is config:
            return cached[1]
        names = config.boolean_features if isinstance(config, ModelConfig) else frozenset()
        self._booleans[model] = (config, names)
        return names

    def _model(self, value: Any, admitted: set[str]) -> str:
        if value is None:
            raise Invalid("model", Reason.MISSING_FIELD, "model is required")
        if not isinstance(value, str) or not value:
            raise Invalid("model", Reason.WRONG_TYPE, f"must be a non-empty string, got {json_type(value)}")
        if len(value) > MAX_MODEL_NAME:
            raise Invalid("model", Reason.TOO_LONG, f"must be at most {MAX_MODEL_NAME} characters, got {len(value)}")
        if value not in self.known_models:
            if value == RESERVED_MODEL_NAME:
                raise reserved_model_name(value, "model")
            if not self.accept_unknown:
                raise Invalid(
                    "model",
                    Reason.UNKNOWN_MODEL,
                    f"model {value!r} is not configured (add it under models:, or set unknown_models: register)",
                )
            if value not in admitted and len(self.known_models) + len(admitted) >= self.limits.max_models:
                # Each model adds metric series and state: registration from traffic is capped,
                # counting the models this call's earlier items will register.
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

    def _inputs(self, inputs: Any) -> dict[str, Any]:
        if type(inputs) is dict and len(inputs) <= self.limits.max_inputs_per_record:
            # Fast path (every valid record): one pass over the values by exact type.
            max_len = self.limits.max_string_length
            for value in inputs.values():
                kind = type(value)
                if kind is str:
                    if len(value) > max_len or (len(value) in _WORD_LENGTHS and value.lower() in BOOLEAN_WORDS):
                        break
                elif kind not in PLAIN_SCALARS:
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
        words: list[str] = []  # features whose value is "true" or "false" in some case
        for name, value in inputs.items():
            if value is None or isinstance(value, (int, float)):  # bool is an int; the JSON parser refuses NaN/inf
                continue
            if isinstance(value, str):
                if len(value) > max_len:
                    message = f"string values must be at most {max_len} characters, got {len(value)}"
                    raise Invalid(f"inputs.{name}", Reason.TOO_LONG, message)
                if value.lower() in BOOLEAN_WORDS:
                    words.append(name)
                continue
            message = f"must be a number, string, boolean or null, got {json_type(value)}"
            raise Invalid(f"inputs.{name}", Reason.WRONG_TYPE, message)
        for name in inputs:
            if len(name) > max_len:
                message = f"feature names must be at most {max_len} characters, got {len(name)}"
                raise Invalid("inputs", Reason.TOO_LONG, message)
        if words:  # a copy: the caller's item is kept as sent (dead letters, Kafka copies)
            inputs = {**inputs, **{name: BOOLEAN_WORDS[inputs[name].lower()] for name in words}}
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
            max_len = self.limits.max_string_length
            for name, prob in value.items():
                if len(name) > max_len:
                    message = f"class names must be at most {max_len} characters, got {len(name)}"
                    raise Invalid(f"{path}.{shown_name(name)}", Reason.TOO_LONG, message)
                if not is_number(prob) or not 0.0 <= prob <= 1.0:
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
            if len(name) > self.limits.max_string_length:
                message = f"tag names must be at most {self.limits.max_string_length} characters, got {len(name)}"
                raise Invalid(f"segment.{shown_name(name)}", Reason.TOO_LONG, message)
            if not isinstance(value, str):
                raise Invalid(f"segment.{name}", Reason.WRONG_TYPE, f"must be a string, got {json_type(value)}")
            if len(value) > self.limits.max_string_length:
                raise Invalid(
                    f"segment.{name}", Reason.TOO_LONG, f"must be at most {self.limits.max_string_length} characters"
                )
        return segment


def as_boolean(value: Any) -> bool:
    """A boolean feature's value (not null) as a bool; ValueError saying what was expected
    and what came otherwise."""
    try:
        return BOOLEAN_VALUES[value.lower() if type(value) is str else value]
    except (KeyError, TypeError):  # TypeError: unhashable (an array or object)
        shown = repr(value[:40]) + ("..." if len(value) > 40 else "") if isinstance(value, str) else None
        if shown is None:
            shown = repr(value) if isinstance(value, (int, float)) else json_type(value)
        raise ValueError(f"must be {BOOLEAN_EXPECTED}, got {shown}") from None


def boolean_inputs(inputs: dict[str, Any], names: frozenset[str], path: str = "inputs") -> dict[str, Any]:
    """``inputs`` with the values of the boolean features ``names`` as bools (a copy when any
    changes: the caller's item is kept as sent); Invalid at ``<path>.<name>`` for a value that
    is not a boolean. Null and an absent feature stay what they are (missing values)."""
    changed: dict[str, bool] = {}
    for name in names:
        value = inputs.get(name)
        if value is not None and type(value) is not bool:
            try:
                changed[name] = as_boolean(value)
            except ValueError as exc:
                raise Invalid(f"{path}.{name}", Reason.INVALID_VALUE, str(exc)) from None
    return {**inputs, **changed} if changed else inputs


def spelled_booleans(inputs: dict[str, Any], names: frozenset[str], path: str = "inputs") -> dict[str, Any]:
    """What validation does to booleans, for inputs that come another way (an inference
    request's rows): "true"/"false" in any case as the booleans they spell, whatever the
    feature, then :func:`boolean_inputs` for the declared boolean features ``names``."""
    words = {
        name: BOOLEAN_WORDS[value.lower()]
        for name, value in inputs.items()
        if type(value) is str and len(value) in _WORD_LENGTHS and value.lower() in BOOLEAN_WORDS
    }
    return boolean_inputs({**inputs, **words} if words else inputs, names, path)
