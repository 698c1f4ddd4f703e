"""Record validation: every rejection path with its reason code, path and message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.records import Reason, Record, Rejection
from monitor.settings import LimitsConfig
from monitor.validation import Validator

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


# -- validate_items: the columnar path gives what validate gives item by item -------------
KINDS = {"amount": "numeric", "country": "categorical", "new": "numeric"}


def _base(i: int) -> dict:
    return {
        "model": "fraud", "id": f"r{i}", "timestamp": f"2024-05-01T12:00:{i % 60:02d}.{i % 1000:03d}Z",
        "inputs": {"amount": 12.5 + i, "country": "fr", "new": i % 2 == 0}, "prediction": i % 2, "latency_ms": 3.5,
    }  # fmt: skip


# Each mutation turns a valid complete record into a valid odd one or an invalid one.
MUTATIONS = [
    lambda r: r,
    lambda r: {**r, "id": 17},  # an integer id becomes a string
    lambda r: {**r, "id": "x" * 13},  # too long
    lambda r: {**r, "id": None},
    lambda r: {k: v for k, v in r.items() if k != "id"},
    lambda r: {**r, "version": "v2"},
    lambda r: {**r, "version": 3},
    lambda r: {**r, "version": ["v"]},
    lambda r: {**r, "timestamp": 1_700_000_000},
    lambda r: {**r, "timestamp": 1_700_000_000.25},
    lambda r: {**r, "timestamp": 1_700_000_000_000},  # milliseconds
    lambda r: {**r, "timestamp": -1},
    lambda r: {**r, "timestamp": True},
    lambda r: {**r, "timestamp": None},
    lambda r: {k: v for k, v in r.items() if k != "timestamp"},
    lambda r: {**r, "timestamp": "2024-05-01T12:00:00"},
    lambda r: {**r, "timestamp": "2024-05-01 12:00:00.123456+00:00"},
    lambda r: {**r, "timestamp": "2024-05-01T12:00:00+02:00"},
    lambda r: {**r, "timestamp": "2024-05-01T24:00:00Z"},
    lambda r: {**r, "timestamp": "2024-02-30T12:00:00Z"},
    lambda r: {**r, "timestamp": "0000-05-01T12:00:00Z"},
    lambda r: {**r, "timestamp": "2024-05-01X12:00:00"},
    lambda r: {**r, "timestamp": "yesterday"},
    lambda r: {**r, "timestamp": "2024-05-01T12:00:00.12Z"},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": None}},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": "12.5"}},  # wrong type: kept, counted later
    lambda r: {**r, "inputs": {**r["inputs"], "amount": "x" * 17}},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": [1]}},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": float("nan")}},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": 10**30}},
    lambda r: {**r, "inputs": {**r["inputs"], "amount": 10**400}},  # beyond a float
    lambda r: {**r, "inputs": {**r["inputs"], "country": 3}},
    lambda r: {**r, "inputs": {**r["inputs"], "country": {"a": 1}}},
    lambda r: {**r, "inputs": {"new": True, "country": "de", "amount": 1}},  # another key order
    lambda r: {**r, "inputs": {"amount": 1, "country": "de"}},  # a feature missing
    lambda r: {**r, "inputs": {"amount": 1, "country": "de", "other": 2}},  # an unconfigured one
    lambda r: {**r, "inputs": {"amount": 1, "country": "de", "new": 1, "more": 2}},  # too many
    lambda r: {**r, "inputs": None},
    lambda r: {k: v for k, v in r.items() if k != "inputs"},
    lambda r: {**r, "inputs": [1, 2, 3]},
    lambda r: {**r, "prediction": None},
    lambda r: {k: v for k, v in r.items() if k != "prediction"},
    lambda r: {**r, "prediction": 0.25},
    lambda r: {**r, "prediction": True},
    lambda r: {**r, "prediction": "yes"},
    lambda r: {**r, "prediction": {"yes": 0.25, "no": 0.75}},
    lambda r: {**r, "prediction": {"yes": 2}},
    lambda r: {**r, "prediction": float("inf")},
    lambda r: {**r, "prediction": [0.5]},
    lambda r: {**r, "label": 1},
    lambda r: {**r, "label": "x" * 17},
    lambda r: {**r, "label": {"a": 1}},
    lambda r: {**r, "latency_ms": 4},
    lambda r: {**r, "latency_ms": -1},
    lambda r: {**r, "latency_ms": True},
    lambda r: {**r, "latency_ms": None},
    lambda r: {**r, "latency_ms": float("inf")},
    lambda r: {**r, "segment": {"region": "eu"}},
    lambda r: {**r, "segment": {"region": 1}},
    lambda r: {**r, "model": "other"},
    lambda r: {**r, "model": None},
    lambda r: {**r, "model": 7},
    lambda r: {**r, "model": ["fraud"]},  # unhashable
    lambda r: {**r, "timestamp": "2024-05-01T12:00:00Z" + " " * 40},
    lambda r: {**r, "extra": 1},
    lambda r: {"model": "fraud", "id": r["id"], "label": 1},
    lambda r: "not an object",
    lambda r: [r],
]


def _outcomes(validator: Validator, items: list, indices: list[int] | None) -> tuple[dict, list]:
    valid = validator.validate_items(items, NOW, indices=indices, features=lambda m: KINDS if m == "fraud" else None)
    records = dict(zip(valid.record_positions, valid.records, strict=True))
    for chunk in valid.columns:
        for j, pos in enumerate(chunk.positions):
            assert pos not in records
            records[pos] = chunk.record(j)
    return records, [(r.to_dict(), r.raw, r.model) for r in valid.rejections]


@pytest.mark.parametrize("seed", range(12))
def test_validate_items_matches_validate_item_by_item(validator: Validator, seed: int) -> None:
    import random

    rng = random.Random(seed)
    n = rng.choice([8, 40, 200])
    share = rng.choice([0.0, 0.02, 0.3])  # how many items are mutated
    items = [
        rng.choice(MUTATIONS[1:])(_base(i)) if rng.random() < share else _base(i) for i in range(n)
    ]  # fmt: skip
    indices = sorted(rng.sample(range(2 * n), n)) if seed % 2 else None
    records, rejections = _outcomes(validator, items, indices)
    expected_records, expected_rejections = {}, []
    for pos, item in enumerate(items):
        outcome = validator.validate(item, pos if indices is None else indices[pos], NOW)
        if isinstance(outcome, Record):
            expected_records[pos] = outcome
        else:
            expected_rejections.append((outcome.to_dict(), outcome.raw, outcome.model))
    assert rejections == expected_rejections
    assert records.keys() == expected_records.keys()
    for pos, record in records.items():
        # NaN is not equal to itself: compare the inputs' representation
        assert repr(record) == repr(expected_records[pos]), pos


@pytest.mark.parametrize("mutation", range(len(MUTATIONS)))
def test_each_odd_item_in_a_batch_of_valid_ones(validator: Validator, mutation: int) -> None:
    items = [_base(i) for i in range(10)]
    items[4] = MUTATIONS[mutation](items[4])
    records, rejections = _outcomes(validator, items, None)
    expected = [validator.validate(item, pos, NOW) for pos, item in enumerate(items)]
    assert rejections == [(r.to_dict(), r.raw, r.model) for r in expected if isinstance(r, Rejection)]
    assert {p: repr(r) for p, r in records.items()} == {
        p: repr(r) for p, r in enumerate(expected) if isinstance(r, Record)
    }


def test_validate_items_is_columnar_for_complete_records(validator: Validator) -> None:
    items = [_base(i) for i in range(20)] + [{"model": "fraud", "id": "r3", "label": 1}]
    valid = validator.validate_items(items, NOW, features=lambda m: KINDS)
    assert [len(c) for c in valid.columns] == [20] and valid.record_positions == [20]
    chunk = valid.columns[0]
    assert chunk.features == ("amount", "country", "new") and chunk.positions == list(range(20))
    assert chunk.timestamps[1] == datetime(2024, 5, 1, 12, 0, 1, 1000, tzinfo=UTC).timestamp()
    assert valid.accepted == 21


def test_iso_timestamps_column_wise_are_those_of_fromisoformat() -> None:
    import math
    import random

    from monitor.timestamps import _iso_array, parse_timestamp
    from monitor.timestamps import timestamps_column as _timestamps

    rng = random.Random(5)
    for low, high in ((-8_000_000_000, 9_000_000_000), (-62_000_000_000, 250_000_000_000)):
        values = []
        for _ in range(2000):
            stamp = datetime.fromtimestamp(rng.uniform(low, high), UTC)
            sep, spec = rng.choice("T "), rng.choice(["seconds", "milliseconds", "microseconds"])
            text = stamp.isoformat(sep=sep, timespec=spec)
            values.append(rng.choice([text, text.replace("+00:00", "Z"), text.replace("+00:00", "")]))
        bad: set[int] = set()
        assert _timestamps(values, NOW, bad) == [parse_timestamp(v, "timestamp") for v in values] and not bad
        if low > -9_000_000_000:  # within 2**53 microseconds of 1970: all done column-wise
            assert not any(map(math.isnan, _iso_array(values)))


def test_validate_items_does_not_pad_a_long_string_into_every_row(validator: Validator) -> None:
    """A numeric column with one huge string (or a huge timestamp string) must not become a
    numpy array of rows x its length: it is refused as too long, cheaply."""
    import tracemalloc

    items = [_base(i) for i in range(50)]
    items[3]["inputs"]["amount"] = "x" * 1_000_000
    items[4]["timestamp"] = "2024-05-01T12:00:00Z" + "0" * 1_000_000
    tracemalloc.start()
    valid = validator.validate_items(items, NOW, features=lambda m: KINDS)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [(r.index, r.reason) for r in valid.rejections] == [(3, Reason.TOO_LONG), (4, Reason.INVALID_VALUE)]
    assert valid.accepted == 48 and peak < 20_000_000
