"""Record validation: every rejection path with its reason code, path and message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.records import Reason, Record, Rejection
from monitor.settings import LimitsConfig
from monitor.validation import Validator

# The receive time: 30 s after the 2024-05-01T12:00:00Z of the items below, so their times
# are within the accepted range (300 s ahead, the default, and 30 days back, set below).
NOW = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp()


LIMITS = LimitsConfig(max_string_length=16, max_id_length=12, max_inputs_per_record=3, max_age_seconds=30 * 86_400)


@pytest.fixture
def validator() -> Validator:
    return Validator(LIMITS, {"fraud": None})


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
    assert ok(validator, {"model": "fraud", "id": "x", "label": 1, "timestamp": NOW - 1.5}).timestamp == NOW - 1.5
    # A file replay has no receive time: any time passes (1970 here).
    history = Validator(validator.limits, {"fraud": None}, check_event_time=False)
    assert ok(history, {"model": "fraud", "id": "x", "label": 1, "timestamp": 1.5}).timestamp == 1.5


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
        # Names a client chooses are held to max_string_length like values; a long one is cut in the path.
        ({"model": "fraud", "id": "a", "prediction": {"yes": 0.5, "c" * 17: 0.5}}, "prediction." + "c" * 17,
         Reason.TOO_LONG, "class names must be at most 16 characters, got 17"),
        ({"model": "fraud", "id": "a", "prediction": {"c" * 100_000: 0.5}}, "prediction." + "c" * 64 + "...",
         Reason.TOO_LONG, "class names must be at most 16 characters, got 100000"),
        ({"model": "fraud", "id": "a", "label": 1, "segment": {"t" * 17: "eu"}}, "segment." + "t" * 17,
         Reason.TOO_LONG, "tag names must be at most 16 characters, got 17"),
        ({"model": "_unknown", "id": "a", "label": 1}, "model", Reason.INVALID_VALUE,
         "the model name '_unknown' is reserved: it is the metric label value of traffic for unknown models"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": "9999-12-31T00:00:00Z"}, "timestamp",
         Reason.TIMESTAMP_OUT_OF_RANGE, "9999-12-31T00:00:00Z is 251687649570 s after the receive time "
         "(2024-05-01T12:00:30Z); at most 300 s ahead is accepted (limits.max_future_seconds)"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": NOW + 301}, "timestamp",
         Reason.TIMESTAMP_OUT_OF_RANGE, "2024-05-01T12:05:31Z is 301 s after the receive time "
         "(2024-05-01T12:00:30Z); at most 300 s ahead is accepted (limits.max_future_seconds)"),
        ({"model": "fraud", "id": "a", "label": 1, "timestamp": "2024-03-01T00:00:00"}, "timestamp",
         Reason.TIMESTAMP_OUT_OF_RANGE, "2024-03-01T00:00:00Z is 5313630 s before the receive time "
         "(2024-05-01T12:00:30Z); at most 2592000 s old is accepted (limits.max_age_seconds)"),
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
    # The accepted range of event times (NOW + 300 s, NOW - 30 days), inclusive.
    lambda r: {**r, "timestamp": NOW + 300},
    lambda r: {**r, "timestamp": NOW + 300.5},
    lambda r: {**r, "timestamp": NOW - 30 * 86_400},
    lambda r: {**r, "timestamp": NOW - 30 * 86_400 - 0.001},
    lambda r: {**r, "timestamp": "2024-05-01T12:05:30Z"},  # NOW + 300
    lambda r: {**r, "timestamp": "2024-05-01T12:05:30.001Z"},
    lambda r: {**r, "timestamp": "2024-04-01T12:00:30.000Z"},  # NOW - 30 days
    lambda r: {**r, "timestamp": "2024-04-01T12:00:29.999Z"},
    lambda r: {**r, "timestamp": "9999-12-31T00:00:00Z"},
    lambda r: {**r, "timestamp": "0001-01-01T00:00:00Z"},
    lambda r: {**r, "prediction": {"c" * 17: 0.5}},
    lambda r: {**r, "segment": {"t" * 17: "eu"}},
    lambda r: {**r, "model": "_unknown"},
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


def test_the_default_range_has_no_age_bound_but_1970_to_2100_always_holds() -> None:
    """Defaults: 300 s ahead, no age bound (history over the live API passes); ISO times
    obey the 1970-2100 range of epoch seconds, in a file replay too (no receive time)."""
    live = Validator(LimitsConfig(), {"fraud": None})
    history = Validator(LimitsConfig(), {"fraud": None}, check_event_time=False)
    old = {"model": "fraud", "id": "a", "label": 1, "timestamp": "2018-10-30 18:00:00.000"}
    assert ok(live, old).timestamp == datetime(2018, 10, 30, 18, tzinfo=UTC).timestamp()
    outside = "is outside 1970-01-01T00:00:00Z to 2100-01-01T00:00:00Z, the event times accepted"
    for validating in (live, history):
        for stamp in ("0001-01-01T00:00:00Z", "1969-12-31T23:59:59.999Z", "9999-12-31T00:00:00Z"):
            rejection = bad(validating, {**old, "timestamp": stamp})
            assert (rejection.path, rejection.reason) == ("timestamp", Reason.TIMESTAMP_OUT_OF_RANGE)
            if validating is history or not stamp.startswith("9999"):
                assert rejection.message == f"{stamp.replace('.999', '.999000')} {outside}"
    assert ok(history, {**old, "timestamp": "2099-12-31T23:59:59Z"}).timestamp == 4_102_444_799.0
    assert ok(history, {**old, "timestamp": "1970-01-01T00:00:00Z"}).timestamp == 0.0
    # Column-wise the same: 8 rows, the three outside refused, the rest columnar.
    items = [{**_base(i), "timestamp": t} for i, t in enumerate(
        ["2018-10-30T18:00:00Z", "0001-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "9999-12-31T00:00:00Z",
         "1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "2024-05-01T12:00:00Z", "2024-05-01T12:00:01Z"])]  # fmt: skip
    valid = history.validate_items(items, NOW, features=lambda m: KINDS)
    assert [r.index for r in valid.rejections] == [1, 3, 5] and [len(c) for c in valid.columns] == [5]


@pytest.mark.parametrize("column", ["numbers", "iso"])
def test_out_of_range_times_column_wise_are_those_of_item_by_item(validator: Validator, column: str) -> None:
    """Out-of-range times in a column of numbers or of ISO strings: numpy comparisons leave
    exactly those rows to item-by-item validation, which refuses them; the rest stay columnar."""
    offsets = [0, -10, 299, 300, 300.001, 301, 86_400, -30 * 86_400, -30 * 86_400 - 0.001, -40 * 86_400]
    items = []
    for i in range(40):
        offset = offsets[i % len(offsets)]
        stamp = NOW + offset
        text = datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        items.append({**_base(i), "timestamp": stamp if column == "numbers" else text})
    valid = validator.validate_items(items, NOW, features=lambda m: KINDS)
    refused = [
        i for i in range(40) if offsets[i % len(offsets)] in (300.001, 301, 86_400, -30 * 86_400 - 0.001, -40 * 86_400)
    ]
    assert [r.index for r in valid.rejections] == refused and len(refused) == 20
    assert {r.reason for r in valid.rejections} == {Reason.TIMESTAMP_OUT_OF_RANGE}
    assert {r.path for r in valid.rejections} == {"timestamp"}
    assert [len(c) for c in valid.columns] == [20] and valid.records == []  # the accepted ones all columnar
    expected = [validator.validate(item, pos, NOW) for pos, item in enumerate(items)]
    assert [r.to_dict() for r in valid.rejections] == [r.to_dict() for r in expected if isinstance(r, Rejection)]
    assert valid.columns[0].timestamps == [r.timestamp for r in expected if isinstance(r, Record)]


def _registering(max_models: int, known: dict) -> Validator:
    return Validator(LimitsConfig(max_models=max_models), known, accept_unknown=True)


def test_one_call_registers_at_most_max_models_counting_its_own() -> None:
    """limits.max_models counts the models earlier items of the same call will register:
    2 known + 10 new names under a limit of 5 -> the first 3 new ones pass, 7 are refused."""
    known = {"fraud": None, "other": None}
    items = [{"model": f"m{i}", "id": str(i), "inputs": {"a": 1}, "prediction": 1} for i in range(10)]
    items.insert(4, {"model": "m0", "id": "again", "inputs": {"a": 2}, "prediction": 0})  # admitted already: passes
    items.insert(1, {"model": "bad", "id": "x" * 300, "label": 1})  # refused for its id: takes no place
    items += [{**_base(i), "model": "fraud"} for i in range(8)]  # a known model's complete records: columnar
    valid = _registering(5, known).validate_items(items, NOW, features=lambda m: KINDS if m == "fraud" else None)
    assert sorted({r.model for r in valid.records}) == ["m0", "m1", "m2"] and len(valid.records) == 4
    assert [len(c) for c in valid.columns] == [8]
    limit = [r for r in valid.rejections if r.reason == Reason.UNKNOWN_MODEL]
    assert [r.model for r in limit] == [f"m{i}" for i in range(3, 10)]
    assert limit[0].to_dict() == {
        "index": 4, "path": "model", "reason": Reason.UNKNOWN_MODEL,
        "message": "model 'm3' is not configured and the limit of 5 models is reached (limits.max_models)",
    }  # fmt: skip
    assert [r.reason for r in valid.rejections if r.model == "bad"] == [Reason.TOO_LONG]
    # Calls on their own each count against the known models only (the pipeline registers between calls).
    validator = _registering(5, known)
    assert all(isinstance(validator.validate(items[k], 0, NOW), Record) for k in (7, 8, 9, 10))


def test_ten_thousand_new_models_in_one_request_register_max_models() -> None:
    known: dict = {}
    items = [{"model": f"model-{i}", "id": "1", "inputs": {"a": 1}, "prediction": 1} for i in range(10_000)]
    valid = _registering(100, known).validate_items(items, NOW)
    assert len(valid.records) == 100 and len({r.model for r in valid.records}) == 100
    assert len(valid.rejections) == 9_900 and {r.reason for r in valid.rejections} == {Reason.UNKNOWN_MODEL}


def test_the_reserved_model_name() -> None:
    from monitor.metrics import UNKNOWN_MODEL
    from monitor.records import RESERVED_MODEL_NAME
    from monitor.settings import ConfigError, settings_from_mapping

    assert RESERVED_MODEL_NAME == UNKNOWN_MODEL == "_unknown"
    rejection = _registering(100, {}).validate({"model": "_unknown", "id": "a", "label": 1}, 0, NOW)
    assert isinstance(rejection, Rejection) and (rejection.path, rejection.reason) == ("model", Reason.INVALID_VALUE)
    with pytest.raises(ConfigError) as error:
        settings_from_mapping({"models": {"fraud": {}, "_unknown": {}}})
    assert error.value.problems == ["models: '_unknown' is reserved: the metric label of unknown models' traffic"]
