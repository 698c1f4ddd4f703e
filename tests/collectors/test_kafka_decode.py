"""Kafka message -> records: our JSON records and CloudEvents through the Kafka protocol
binding (binary mode with ce_* headers, structured mode), and every rejection path."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import orjson

from collectors.kafka_messages import decode_message, message_headers
from monitor.records import Reason, Record
from monitor.settings import LimitsConfig, ModelConfig
from monitor.validation import Validator

DATA = Path(__file__).parent / "data"
# The message timestamp and the time it is read (the samples' ce-time is 2024-05-01T12:00:00Z).
NOW = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp()
MODELS = {
    "iris": ModelConfig(
        features={n: {"type": "numeric"} for n in ("sepal_length", "sepal_width", "petal_length", "petal_width")},
        prediction={"kind": "multiclass", "classes": ["setosa", "versicolor", "virginica"]},
    ),
    "loans": ModelConfig(features={"amount": {"type": "numeric"}}, prediction={"kind": "binary"}),
}
LIMITS = LimitsConfig(max_items_per_request=3, max_age_seconds=30 * 86_400)
VALIDATOR = Validator(LIMITS, MODELS)


def decode(value: bytes | None, headers: dict[str, str] | None = None):
    return decode_message(value, headers or {}, NOW, VALIDATOR)


def kafka_headers(http_sample: str) -> list[tuple[str, bytes]]:
    """A KServe logger event as the CloudEvents Kafka binding carries it: ce_<attr> headers."""
    event = json.loads((DATA / http_sample).read_text())
    headers = [(name.lower().replace("ce-", "ce_", 1), value.encode()) for name, value in event["headers"].items()]
    return headers, orjson.dumps(event["body"])


def test_one_record_and_an_array_of_records() -> None:
    one = {"model": "loans", "id": "a", "inputs": {"amount": 3.5}, "prediction": 1}
    records, rejections = decode(orjson.dumps(one))
    assert rejections == [] and records == [
        Record(model="loans", id="a", timestamp=NOW, inputs={"amount": 3.5}, prediction=1, has_prediction=True)
    ]
    records, rejections = decode(orjson.dumps([one, {**one, "id": "b"}, {**one, "model": "nope"}]))
    assert [r.id for r in records] == ["a", "b"]
    assert [(r.index, r.path, r.reason) for r in rejections] == [(2, "model", Reason.UNKNOWN_MODEL)]


def test_undecodable_empty_and_oversized_messages_are_rejections_with_the_reason() -> None:
    records, rejections = decode(b'{"model": "loans", ')
    assert records == [] and len(rejections) == 1
    assert rejections[0].reason == Reason.INVALID_JSON
    assert rejections[0].message.startswith("message value is not valid JSON at line 1, column 20 (char 19): ")
    assert rejections[0].raw == '{"model": "loans", '
    assert [(r.reason, r.message) for r in decode(None)[1]] == [(Reason.INVALID_JSON, "message value is empty")]
    assert [(r.reason, r.message) for r in decode(b"\xff\xfe")[1]][0][0] == Reason.INVALID_JSON
    records, rejections = decode(orjson.dumps([{"model": "loans"}] * 4))
    assert records == [] and [(r.reason, r.message) for r in rejections] == [
        (Reason.TOO_MANY, "4 records in one message; at most 3 (limits.max_items_per_request)")
    ]
    assert [(r.reason, r.path) for r in decode(b"[1]")[1]] == [(Reason.NOT_AN_OBJECT, "")]


def test_kserve_pair_in_binary_mode_joins_like_over_http() -> None:
    request_headers, request_body = kafka_headers("kserve_v1_request.json")
    response_headers, response_body = kafka_headers("kserve_v1_response.json")
    requests, rejected = decode(request_body, message_headers(request_headers))
    assert rejected == []
    responses, rejected = decode(response_body, message_headers(response_headers))
    assert rejected == []
    rid = "5f2a8c1e-7b4d-4e0a-9c3f-1d2e3f4a5b6c"
    assert [r.id for r in requests] == [f"{rid}:0", f"{rid}:1"] == [r.id for r in responses]
    assert requests[0].inputs == {"sepal_length": 6.8, "sepal_width": 2.8, "petal_length": 4.8, "petal_width": 1.4}
    assert [r.prediction for r in responses] == [1, 1]
    for request, response in zip(requests, responses, strict=True):
        assert request.merge(response) == [] and request.complete


def test_structured_mode_event_and_a_broken_one() -> None:
    event = {
        "specversion": "1.0", "id": "s1", "type": "org.kubeflow.serving.inference.request", "source": "/isvc",
        "inferenceservicename": "iris", "data": {"instances": [[5.1, 3.5, 1.4, 0.2]]},
    }  # fmt: skip
    headers = {"content-type": "application/cloudevents+json; charset=utf-8"}
    records, rejections = decode(orjson.dumps(event), headers)
    assert rejections == [] and [(r.model, r.id, r.inputs["petal_width"]) for r in records] == [("iris", "s1", 0.2)]
    records, rejections = decode(b"{not json", headers)
    assert records == [] and [r.reason for r in rejections] == [Reason.INVALID_EVENT]
    assert rejections[0].message.startswith("body is not valid JSON: ")


def test_binary_mode_with_a_missing_attribute_is_rejected_not_raised() -> None:
    headers = {"ce_specversion": "1.0", "ce_type": "org.kubeflow.serving.inference.request", "ce_source": "/x"}
    records, rejections = decode(b'{"instances": [[1, 2, 3, 4]]}', headers)
    assert records == [] and [(r.reason, r.message) for r in rejections] == [
        (Reason.INVALID_EVENT, "binary-mode CloudEvent is missing header ce-id")
    ]


def test_header_names_are_lower_cased_and_values_decoded() -> None:
    assert message_headers([("CE_ID", b"x"), ("k", None), ("bin", b"\xff")]) == {"ce_id": "x", "k": "", "bin": "\ufffd"}
    assert message_headers(None) == {}


# -- message timestamps: a record without a time of its own takes its message's ------------
def _partition(values: list[bytes], timestamps_ms: list[int], headers: dict | None = None):
    from collectors.kafka_consumer import Fetched

    n = len(values)
    return Fetched("logs", 0, list(range(n)), timestamps_ms, [None] * n, values, headers or {})


def test_an_out_of_range_message_timestamp_refuses_the_records_that_take_it() -> None:
    """Messages 0 and 2 stamped in year 9999 and 40 days back: their record without a
    timestamp is refused, path kafka.timestamp; a record with its own time in message 1 is
    not (validation checks that one); the others of the partition take their message's time."""
    from kafka import TopicPartition

    from collectors.kafka_messages import decode_batch

    record = {"model": "loans", "inputs": {"amount": 1.0}, "prediction": 1}
    values = [orjson.dumps({**record, "id": str(i)}) for i in range(4)]
    values[1] = orjson.dumps({**record, "id": "1", "timestamp": NOW - 5})
    far, old, fine = 253_402_214_400_000, int((NOW - 40 * 86_400) * 1000), int((NOW - 2) * 1000)
    decoded = decode_batch({TopicPartition("logs", 0): _partition(values, [far, far, old, fine])}, VALIDATOR, NOW)
    assert [(item["id"], item["timestamp"]) for item in decoded.items] == [("1", NOW - 5), ("3", fine / 1000)]
    refused = [(message.offset, r.index, r.path, r.reason, r.message) for message, _, rs in decoded.bad for r in rs]
    assert refused == [
        (0, 0, "kafka.timestamp", Reason.TIMESTAMP_OUT_OF_RANGE,
         "the Kafka message timestamp 9999-12-31T00:00:00Z is 251687649570 s after the receive time "
         "(2024-05-01T12:00:30Z); at most 300 s ahead is accepted (limits.max_future_seconds)"),
        (2, 0, "kafka.timestamp", Reason.TIMESTAMP_OUT_OF_RANGE,
         "the Kafka message timestamp 2024-03-22T12:00:30Z is 3456000 s before the receive time "
         "(2024-05-01T12:00:30Z); at most 2592000 s old is accepted (limits.max_age_seconds)"),
    ]  # fmt: skip
    assert decoded.positions == {TopicPartition("logs", 0): 4}
    # In range, the whole partition takes the fast path: one run of origins, nothing refused.
    decoded = decode_batch({TopicPartition("logs", 0): _partition(values, [fine] * 4)}, VALIDATOR, NOW)
    assert len(decoded.items) == 4 and decoded.bad == [] and decoded.items[0]["timestamp"] == fine / 1000


def test_a_cloudevent_without_time_over_kafka_takes_the_message_timestamp_checked() -> None:
    from kafka import TopicPartition

    from collectors.kafka_messages import decode_batch

    request_headers, request_body = kafka_headers("kserve_v1_request.json")
    headers = [(name, value) for name, value in request_headers if name != "ce_time"]
    far = 253_402_214_400_000
    part = _partition([request_body, request_body], [far, int(NOW * 1000)], {0: headers, 1: headers})
    decoded = decode_batch({TopicPartition("logs", 0): part}, VALIDATOR, NOW)
    assert [(message.offset, rs[0].path, rs[0].reason) for message, _, rs in decoded.bad] == [
        (0, "kafka.timestamp", Reason.TIMESTAMP_OUT_OF_RANGE)
    ]
    assert [r.timestamp for r in decoded.events] == [NOW, NOW]  # message 1: two rows at its timestamp
