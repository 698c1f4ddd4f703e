"""Record validation: every rejection path with its reason code, path and message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.records import Reason, Record, Rejection, Validator
from monitor.settings import LimitsConfig

NOW = 1_700_000_000.0


@pytest.fixture
def validator() -> Validator:
    return Validator(LimitsConfig(max_string_length=16, max_id_length=12, max_inputs_per_record=3), {"fraud": None})


def ok(validator: Validator, item: dict) -> Record:
    outcome = validator.validate(item, 0, NOW)
    assert isinstance(outcome, Record), outcome
    return outcome


def bad(validator: Validator, item, index: int = 0) -> Rejection:
    outcome = validator.validate(item, index, NOW)
    assert isinstance(outcome, Rejection), outcome
    assert outcome.index == index and outcome.raw is item
    return outcome


def test_full_record(validator: Validator) -> None:
    record = ok(
        validator,
        {
            "model": "fraud", "version": 3, "id": 17, "timestamp": "2024-05-01T12:00:00Z",
            "inputs": {"amount": 12.5, "country": "fr", "new": True}, "prediction": {"yes": 0.25, "no": 0.75},
            "latency_ms": 4, "label": "no", "segment": {"region": "eu"},
        },
    )  # fmt: skip
    assert record.model == "fraud" and record.version == "3" and record.id == "17"
    assert record.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    assert record.inputs == {"amount": 12.5, "country": "fr", "new": True}
    assert record.has_prediction and record.prediction == {"yes": 0.25, "no": 0.75}
    assert record.has_label and record.label == "no"
    assert record.latency_ms == 4.0 and record.segment == {"region": "eu"}
    assert record.complete


def test_defaults_and_partials(validator: Validator) -> None:
    record = ok(validator, {"model": "fraud", "inputs": {"a": 1}, "prediction": 0})
    assert record.timestamp == NOW and record.id is None and record.has_prediction and record.prediction == 0
    assert ok(validator, {"model": "fraud", "id": "x", "label": False}).has_label
    naive = ok(validator, {"model": "fraud", "id": "x", "label": 1, "timestamp": "2024-05-01T12:00:00"})
    assert naive.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp()
    assert ok(validator, {"model": "fraud", "id": "x", "label": 1, "timestamp": 1.5}).timestamp == 1.5


@pytest.mark.parametrize(
    ("item", "path", "reason", "message"),
    [
        ([1, 2], "", Reason.NOT_AN_OBJECT, "a record must be a JSON object, got array"),
        ("text", "", Reason.NOT_AN_OBJECT, "a record must be a JSON object, got string"),
        ({"inputs": {}}, "model", Reason.MISSING_FIELD, "model is required"),
        ({"model": 5, "inputs": {}}, "model", Reason.WRONG_TYPE, "must be a non-empty string, got number"),
        ({"model": "", "inputs": {}}, "model", Reason.WRONG_TYPE, "must be a non-empty string, got string"),
        ({"model": "m" * 129}, "model", Reason.TOO_LONG, "must be at most 128 characters, got 129"),
        ({"model": "spam", "inputs": {}, "prediction": 1}, "model", Reason.UNKNOWN_MODEL,
         "model 'spam' is not configured (add it under models:, or set unknown_models: register)"),
        ({"model": "fraud", "inptus": {}}, "inptus", Reason.UNKNOWN_FIELD,
         "unknown field 'inptus'; record fields are model, version, id, timestamp, inputs, prediction, latency_ms, label, segment"),
        ({"model": "fraud"}, "", Reason.MISSING_FIELD, "a record needs at least one of inputs, prediction or label"),
        ({"model": "fraud", "inputs": {"a": 1}}, "id", Reason.MISSING_FIELD,
         "id is required for a partial record (it joins the parts)"),
        ({"model": "fraud", "id": "x" * 13, "label": 1}, "id", Reason.TOO_LONG, "must be at most 12 characters, got 13"),
        ({"model": "fraud", "id": 1.5, "label": 1}, "id", Reason.WRONG_TYPE, "must be a string, got number"),
        ({"model": "fraud", "id": "a", "label": 1, "version": []}, "version", Reason.WRONG_TYPE, "must be a string, got array"),
        ({"model": "fraud", "id": "a", "inputs": []}, "inputs", Reason.WRONG_TYPE,
         "must be an object of feature -> value, got array"),
        ({"model": "fraud", "id": "a", "inputs": {"a": 1, "b": 2, "c": 3, "d": 4}}, "inputs", Reason.TOO_MANY,
         "at most 3 features, got 4"),
        ({"model": "fraud", "id": "a", "inputs": {"a": {"deep": 1}}}, "inputs.a", Reason.WRONG_TYPE,
         "must be a number, string, boolean or null, got object"),
        ({"model": "fraud", "id": "a", "inputs": {"a": [1]}}, "inputs.a", Reason.WRONG_TYPE,
         "must be a number, string, boolean or null, got array"),
        ({"model": "fraud", "id": "a", "inputs": {"a": "x" * 17}}, "inputs.a", Reason.TOO_LONG,
         "string values must be at most 16 characters, got 17"),
        ({"model": "fraud", "id": "a", "inputs": {"x" * 17: 1}}, "inputs", Reason.TOO_LONG,
         "feature names must be at most 16 characters, got 17"),
        ({"model": "fraud", "id": "a", "prediction": [0.1]}, "prediction", Reason.WRONG_TYPE,
         "must be a number, string, boolean or object of class -> probability, got array"),
        ({"model": "fraud", "id": "a", "prediction": {"yes": 1.5}}, "prediction.yes", Reason.INVALID_VALUE,
         "class probabilities must be numbers in [0, 1], got 1.5"),
        ({"model": "fraud", "id": "a", "prediction": {"yes": "high"}}, "prediction.yes", Reason.INVALID_VALUE,
         "class probabilities must be numbers in [0, 1], got 'high'"),
        ({"model": "fraud", "id": "a", "label": {"yes": 1}}, "label", Reason.WRONG_TYPE,
         "must be a number, string or boolean, got object"),
        ({"model": "fraud", "id": "a", "label": 1, "latency_ms": -1}, "latency_ms", Reason.INVALID_VALUE,
         "must be a non-negative number of milliseconds, got -1"),
        ({"model": "fraud", "id": "a", "label": 1, "latency_ms": "5"}, "latency_ms", Reason.INVALID_VALUE,
         "must be a non-negative number of milliseconds, got '5'"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": 1_700_000_000_000}, "timestamp", Reason.INVALID_VALUE,
         "epoch seconds must be between 0 and 4102444800, got 1700000000000 (milliseconds? send seconds)"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": "yesterday"}, "timestamp", Reason.INVALID_VALUE,
         "must be epoch seconds or an ISO 8601 time, got 'yesterday'"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": True}, "timestamp", Reason.WRONG_TYPE,
         "must be epoch seconds or an ISO 8601 string, got boolean"),
        ({"model": "fraud", "id": "a", "label": 1, "segment": ["eu"]}, "segment", Reason.WRONG_TYPE,
         "must be an object of tag -> string, got array"),
        ({"model": "fraud", "id": "a", "label": 1, "segment": {"region": 3}}, "segment.region", Reason.WRONG_TYPE,
         "must be a string, got number"),
    ],
)  # fmt: skip
def test_rejections(validator: Validator, item, path: str, reason: str, message: str) -> None:
    rejection = bad(validator, item, index=7)
    assert (rejection.path, rejection.reason, rejection.message) == (path, reason, message)


def test_wrong_typed_feature_values_are_accepted(validator: Validator) -> None:
    """A string where a number is expected is what the model saw: data quality counts it."""
    record = ok(validator, {"model": "fraud", "inputs": {"amount": "12,5"}, "prediction": 1})
    assert record.inputs == {"amount": "12,5"}


def test_registration_cap() -> None:
    known = {"a": None, "b": None}
    validator = Validator(LimitsConfig(max_models=2), known, accept_unknown=True)
    rejection = validator.validate({"model": "c", "inputs": {}, "prediction": 1}, 0, NOW)
    assert isinstance(rejection, Rejection) and rejection.reason == Reason.UNKNOWN_MODEL
    assert "limit of 2 models is reached" in rejection.message
    known.pop("b")
    assert isinstance(validator.validate({"model": "c", "inputs": {}, "prediction": 1}, 0, NOW), Record)
