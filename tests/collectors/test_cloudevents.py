"""Payload-logger CloudEvents -> partial records: every mode, body protocol and rejection path."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.cloudevents import EventEnvelopeError, parse_http
from monitor.records import Reason, Record, Rejection
from monitor.settings import LimitsConfig, ModelConfig

DATA = Path(__file__).parent / "data"
# The receive time: 30 s after the samples' ce-time (2024-05-01T12:00:00Z and a few seconds),
# so their times are within the accepted range.
NOW = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC).timestamp()
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
MODELS = {
    "iris": ModelConfig(
        features={name: {"type": "numeric"} for name in IRIS_FEATURES},
        prediction={"kind": "multiclass", "classes": ["setosa", "versicolor", "virginica"]},
    ),
    "loans": ModelConfig(
        features={"amount": {"type": "numeric"}, "purpose": {"type": "categorical"}},
        prediction={"kind": "binary", "output": "probability"},
    ),
    "price": ModelConfig(features={"rooms": {}}, prediction={"kind": "regression"}),
    "bare": ModelConfig(),
}
LIMITS = LimitsConfig(
    max_items_per_request=5,
    max_string_length=16,
    max_id_length=40,
    max_inputs_per_record=6,
    max_age_seconds=30 * 86_400,
)
KSERVE_REQUEST = "org.kubeflow.serving.inference.request"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"
ROW = [1, 2, 3, 4]


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def sample(name: str) -> tuple[dict[str, str], bytes]:
    event = json.loads((DATA / name).read_text())
    return event["headers"], orjson.dumps(event["body"])


def headers(kind: str = KSERVE_REQUEST, **extra: str) -> dict[str, str]:
    """Binary-mode headers of a KServe event for model iris, id r1, without ce-time."""
    base = {
        "ce-specversion": "1.0",
        "ce-id": "r1",
        "ce-type": kind,
        "ce-source": "http://isvc/",
        "ce-inferenceservicename": "iris",
        "content-type": "application/json",
    }
    return {**base, **{name.replace("_", "-"): value for name, value in extra.items()}}


def parse(
    head: dict[str, str], body: Any, limits: LimitsConfig = LIMITS, **kwargs: Any
) -> tuple[list[Record], list[Rejection]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_http(head, raw, models=MODELS, limits=limits, received_at=NOW, **kwargs)


def ok(head: dict[str, str], body: Any, **kwargs: Any) -> list[Record]:
    records, rejections = parse(head, body, **kwargs)
    assert rejections == []
    return records


def structured(event: dict[str, Any], **kwargs: Any) -> tuple[list[Record], list[Rejection]]:
    return parse({"Content-Type": "application/cloudevents+json; charset=utf-8"}, event, **kwargs)


def event(kind: str = KSERVE_REQUEST, data: Any = None, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "r1",
        "type": kind,
        "source": "http://isvc/",
        "inferenceservicename": "iris",
        **attributes,
        "data": data,
    }


def iris(*values: float) -> dict[str, float]:
    return dict(zip(IRIS_FEATURES, values, strict=True))


def inputs(model: str, id: str, timestamp: float, row: dict[str, Any]) -> Record:
    return Record(model=model, id=id, timestamp=timestamp, inputs=row)


def prediction(model: str, id: str, timestamp: float, value: Any) -> Record:
    return Record(model=model, id=id, timestamp=timestamp, prediction=value, has_prediction=True)


# -- KServe V1 --------------------------------------------------------------------------


def test_kserve_v1_pair_binary_mode() -> None:
    rid = "5f2a8c1e-7b4d-4e0a-9c3f-1d2e3f4a5b6c"
    requests = ok(*sample("kserve_v1_request.json"))
    responses = ok(*sample("kserve_v1_response.json"))
    at = ts("2024-05-01T12:00:00.123456")
    assert requests == [
        inputs("iris", f"{rid}:0", at, iris(6.8, 2.8, 4.8, 1.4)),
        inputs("iris", f"{rid}:1", at, iris(6.0, 3.4, 4.5, 1.6)),
    ]
    at = ts("2024-05-01T12:00:00.131072")
    assert responses == [prediction("iris", f"{rid}:0", at, 1), prediction("iris", f"{rid}:1", at, 1)]
    for request, response in zip(requests, responses, strict=True):
        assert request.merge(response) == [] and request.complete


def test_kserve_v1_pair_structured_mode_gives_the_same_records() -> None:
    for name in ("kserve_v1_request.json", "kserve_v1_response.json"):
        head, body = sample(name)
        attributes = {key.lower()[3:]: value for key, value in head.items() if key.lower().startswith("ce-")}
        as_event = {**attributes, "datacontenttype": "application/json", "data": orjson.loads(body)}
        records, rejections = structured(as_event)
        assert rejections == [] and records == ok(head, body)


def test_single_row_keeps_the_event_id_and_missing_time_means_received_at() -> None:
    assert ok(headers(), {"instances": [[5.1, 3.5, 1.4, 0.2]]}) == [inputs("iris", "r1", NOW, iris(5.1, 3.5, 1.4, 0.2))]
    assert ok(headers(KSERVE_RESPONSE), {"predictions": ["setosa"]}) == [prediction("iris", "r1", NOW, "setosa")]


def test_binary_body_is_json_whatever_the_clients_content_type() -> None:
    # KServe forwards the inference client's Content-Type; curl -d sends a form type.
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        assert ok(headers(content_type=content_type), {"instances": [ROW]}) == [inputs("iris", "r1", NOW, iris(*ROW))]
    head = {name: value for name, value in headers().items() if name != "content-type"}
    assert ok(head, {"instances": [ROW]}) == ok({**head, "content-type": ""}, {"instances": [ROW]})


def test_v1_named_rows_inputs_member_and_bare_values() -> None:
    named = {"instances": [{"amount": 1200, "purpose": "car"}, {"amount": None, "purpose": "house"}]}
    assert [r.inputs for r in ok(headers(ce_inferenceservicename="loans"), named)] == named["instances"]
    # V1 also allows "inputs" (rows, not V2 tensors).
    assert [r.inputs for r in ok(headers(), {"inputs": [[1, 2, 3, 4]]})] == [iris(1, 2, 3, 4)]
    # A bare value is a one-column row.
    assert [r.inputs for r in ok(headers(ce_inferenceservicename="price"), {"instances": [3, 4]})] == [
        {"rooms": 3},
        {"rooms": 4},
    ]


def test_v1_predictions_probabilities_dicts_and_default_class_names() -> None:
    body = {"predictions": [[0.5, 0.25, 0.25], {"setosa": 1.0}, [2], True]}
    assert [r.prediction for r in ok(headers(KSERVE_RESPONSE), body)] == [
        {"setosa": 0.5, "versicolor": 0.25, "virginica": 0.25},
        {"setosa": 1.0},
        2,
        True,
    ]
    records = ok(headers(KSERVE_RESPONSE, ce_inferenceservicename="bare"), {"predictions": [[0.25, 0.75]]})
    assert records[0].prediction == {"0": 0.25, "1": 0.75}


def test_model_without_features_names_positional_columns_f0_f1() -> None:
    assert [r.inputs for r in ok(headers(ce_inferenceservicename="bare"), {"instances": [[1, "a"]]})] == [
        {"f0": 1, "f1": "a"}
    ]
    records = ok(headers(ce_inferenceservicename="new"), {"instances": [[7]]}, accept_unknown=True)
    assert records == [inputs("new", "r1", NOW, {"f0": 7})]


# -- V2 / Open Inference Protocol -------------------------------------------------------


def test_v2_pair_single_tensor_and_probability_output() -> None:
    rid = "0b9e4d7a-2c61-4f58-8e3d-6a7b8c9d0e1f"
    requests = ok(*sample("kserve_v2_request.json"))
    assert requests == [
        inputs("iris", f"{rid}:0", ts("2024-05-01T12:00:01"), iris(6.8, 2.8, 4.8, 1.4)),
        inputs("iris", f"{rid}:1", ts("2024-05-01T12:00:01"), iris(6.0, 3.4, 4.5, 1.6)),
    ]
    # Two outputs and no prediction.output: the first, [2, 3], is class probabilities.
    responses = ok(*sample("kserve_v2_response.json"))
    at = ts("2024-05-01T12:00:01.004")
    assert responses == [
        prediction("iris", f"{rid}:0", at, {"setosa": 0.0, "versicolor": 0.25, "virginica": 0.75}),
        prediction("iris", f"{rid}:1", at, {"setosa": 0.125, "versicolor": 0.5, "virginica": 0.375}),
    ]


def test_v2_one_tensor_per_feature_bytes_become_strings() -> None:
    body = {
        "inputs": [
            {"name": "amount", "shape": [2, 1], "datatype": "FP64", "data": [[1200.0], [80.5]]},
            {"name": "purpose", "shape": [2], "datatype": "BYTES", "data": ["car", "house"]},
        ]
    }
    records = ok(headers(ce_inferenceservicename="loans"), body)
    assert [r.inputs for r in records] == [{"amount": 1200.0, "purpose": "car"}, {"amount": 80.5, "purpose": "house"}]
    assert [r.id for r in records] == ["r1:0", "r1:1"]
    # A single tensor named like a feature is that feature, not a positional matrix.
    single = {"inputs": [{"name": "rooms", "shape": [1], "datatype": "INT32", "data": [3]}]}
    assert ok(headers(ce_inferenceservicename="price"), single)[0].inputs == {"rooms": 3}


def test_v2_output_chosen_by_config_and_model_name_fallback() -> None:
    body = {
        "model_name": "loans",
        "outputs": [
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["no", "yes"]},
            {"name": "probability", "shape": [2, 1], "datatype": "FP32", "data": [0.25, 0.75]},
        ],
    }
    head = headers(KSERVE_RESPONSE)
    del head["ce-inferenceservicename"]  # no ce-inferenceservicename or ce-modelid: the V2 model_name
    assert ok(head, body) == [prediction("loans", "r1:0", NOW, 0.25), prediction("loans", "r1:1", NOW, 0.75)]


# -- Seldon -----------------------------------------------------------------------------


def test_seldon_pair_joins_on_request_id_with_names() -> None:
    puid, at = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a", ts("2024-05-01T12:00:02.5")
    assert ok(*sample("seldon_request.json")) == [inputs("iris", puid, at, iris(5.1, 3.5, 1.4, 0.2))]
    at = ts("2024-05-01T12:00:02.512")
    # Configured classes beat Seldon's default column names t:0, t:1, t:2.
    assert ok(*sample("seldon_response.json")) == [
        prediction("iris", puid, at, {"setosa": 0.875, "versicolor": 0.125, "virginica": 0.0})
    ]


def test_seldon_tensor_positional_rows_modelid_and_names_as_classes() -> None:
    # An empty ce-inferenceservicename (a local executor) falls back to ce-modelid.
    head = headers(
        "io.seldon.serving.inference.request", ce_requestid="p1", ce_modelid="iris", ce_inferenceservicename=""
    )
    body = {"data": {"tensor": {"shape": [2, 4], "values": [1, 2, 3, 4, 5, 6, 7, 8]}}}
    assert ok(head, body) == [
        inputs("iris", "p1:0", NOW, iris(1, 2, 3, 4)),
        inputs("iris", "p1:1", NOW, iris(5, 6, 7, 8)),
    ]
    head = headers("io.seldon.serving.inference.response", ce_inferenceservicename="bare")  # no requestid: ce-id
    body = {"data": {"names": ["no", "yes"], "ndarray": [[0.5, 0.5]]}}
    assert ok(head, body) == [prediction("bare", "r1", NOW, {"no": 0.5, "yes": 0.5})]


# -- modes and envelopes ----------------------------------------------------------------


def test_header_names_are_case_insensitive() -> None:
    mixed = {
        "CE-SPECVERSION": "1.0",
        "Ce-Id": "r1",
        "ce-TYPE": KSERVE_REQUEST,
        "Ce-Source": "s",
        "CE-InferenceServiceName": "iris",
        "CONTENT-TYPE": "Application/JSON",
    }
    assert ok(mixed, {"instances": [[1, 2, 3, 4]]}) == [inputs("iris", "r1", NOW, iris(1, 2, 3, 4))]
    records, rejections = parse(
        {"Content-Type": "Application/CloudEvents+JSON"}, event(data={"instances": [[1, 2, 3, 4]]})
    )
    assert rejections == [] and len(records) == 1


def test_batch_with_one_bad_event() -> None:
    body = (DATA / "structured_batch.json").read_bytes()
    records, rejections = parse({"content-type": "application/cloudevents-batch+json"}, body)
    at = ts("2024-05-01T12:00:03")
    assert records == [
        inputs("iris", "batch-1", at, iris(5.9, 3.0, 5.1, 1.8)),
        prediction(
            "iris", "batch-1", ts("2024-05-01T12:00:03.002"), {"setosa": 0.0, "versicolor": 0.125, "virginica": 0.875}
        ),
    ]
    [bad] = rejections
    assert (bad.index, bad.path, bad.reason, bad.model) == (1, "data.instances[0]", Reason.INVALID_VALUE, "iris")
    assert (
        "row has 3 values but the model has 4 features (sepal_length, sepal_width, petal_length, petal_width)"
        in bad.message
    )
    assert bad.raw == json.loads(body)[1]


def test_booleans_are_read_as_in_records_and_a_non_boolean_is_named_by_row_and_feature() -> None:
    """Rows of an inference request get what validation gives a record: "true"/"false" in
    any case are booleans for any feature, and a feature declared ``type: boolean`` also
    takes 1/0 (numbers or strings); anything else rejects the event at its row and feature."""
    flags = {"flags": ModelConfig(features={"owner": {"type": "boolean"}, "colour": {"type": "categorical"}})}
    head = headers(ce_inferenceservicename="flags")
    rows = [["TRUE", "False"], [1, "red"], ["0", "true"], [None, "blue"]]
    records, rejections = parse_http(
        head, orjson.dumps({"instances": rows}), models=flags, limits=LIMITS, received_at=NOW
    )
    assert rejections == []
    assert [r.inputs for r in records] == [
        {"owner": True, "colour": False},
        {"owner": True, "colour": "red"},
        {"owner": False, "colour": True},
        {"owner": None, "colour": "blue"},
    ]
    body = orjson.dumps({"instances": [[True, "red"], ["yes", "red"]]})
    records, [bad] = parse_http(head, body, models=flags, limits=LIMITS, received_at=NOW)
    assert records == []
    assert (bad.path, bad.reason, bad.model) == ("data.rows[1].owner", Reason.INVALID_VALUE, "flags")
    assert bad.message.endswith("got 'yes'"), bad.message


def test_batch_rows_share_the_request_budget() -> None:
    events = [event(data={"instances": [[1, 2, 3, 4]] * 3}, id=f"e{i}") for i in range(2)]
    records, rejections = parse({"content-type": "application/cloudevents-batch+json"}, events)
    assert len(records) == 3
    assert [(r.index, r.path, r.reason) for r in rejections] == [(1, "data", Reason.TOO_MANY)]
    assert "earlier events took 3" in rejections[0].message
    assert parse({"content-type": "application/cloudevents-batch+json"}, []) == ([], [])


def test_structured_data_base64() -> None:
    encoded = base64.b64encode(b'{"instances": [[1, 2, 3, 4]]}').decode()
    attributes = event(data_base64=encoded)
    del attributes["data"]
    records, rejections = structured(attributes)
    assert rejections == [] and records[0].inputs == iris(1, 2, 3, 4)


@pytest.mark.parametrize(
    ("head", "body", "status", "message"),
    [
        (
            {"content-type": "application/cloudevents+json"},
            b'{"id": "r1",\n "data": NaN}',
            400,
            "body is not valid JSON: unexpected character, expected a JSON value at line 2 column 10 (char 22)",
        ),
        (
            {"content-type": "application/cloudevents+json"},
            b"[]",
            400,
            "must be a JSON object, got array (send arrays as application/cloudevents-batch+json)",
        ),
        (
            {"content-type": "application/cloudevents-batch+json"},
            b"{}",
            400,
            "a batch (application/cloudevents-batch+json) must be a JSON array of events, got object",
        ),
        (
            {"content-type": "application/cloudevents-batch+json"},
            b"[" + b"{}," * 5 + b"{}]",
            413,
            "6 events in one batch; at most 5",
        ),
        (
            {"content-type": "application/cloudevents+protobuf"},
            b"\x00",
            415,
            "unsupported CloudEvents format 'application/cloudevents+protobuf'",
        ),
        (
            {"content-type": "text/plain"},
            b"{}",
            415,
            "content type 'text/plain' is not a CloudEvents format and there are no ce-* headers",
        ),
    ],
)
def test_request_level_errors(head: dict[str, str], body: bytes, status: int, message: str) -> None:
    with pytest.raises(EventEnvelopeError) as caught:
        parse(head, body)
    assert caught.value.status == status and message in caught.value.message


def test_binary_mode_missing_headers_and_body_limit() -> None:
    head = {name: value for name, value in headers().items() if name not in ("ce-id", "ce-source")}
    with pytest.raises(EventEnvelopeError) as caught:
        parse(head, {"instances": [[1, 2, 3, 4]]})
    assert (caught.value.status, caught.value.message) == (
        400,
        "binary-mode CloudEvent is missing header ce-id, ce-source",
    )
    with pytest.raises(EventEnvelopeError) as caught:
        parse(headers(), b" " * 2000, limits=LimitsConfig(max_body_bytes=1024))
    assert caught.value.status == 413


# -- rejections: path, reason and message for each way an event can be refused ----------

RESPONSE = KSERVE_RESPONSE


def tensor(name: str, shape: list[int], data: list[Any], datatype: str = "FP32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "datatype": datatype, "data": data}


# fmt: off
BINARY_REJECTIONS = [
    # (headers, body, path, reason, message fragment)
    (headers(ce_type="com.example.other"), {}, "ce-type", Reason.INVALID_EVENT, "unsupported event type 'com.example.other'; expected one of"),
    (headers(ce_type="io.seldon.serving.feedback"), {}, "ce-type", Reason.INVALID_EVENT, "Seldon feedback events"),
    (headers(ce_specversion="0.3"), {}, "ce-specversion", Reason.INVALID_EVENT, "must be '1.0'"),
    (headers(ce_id=""), {}, "ce-id", Reason.INVALID_VALUE, "must not be None or empty"),
    (headers(ce_time="yesterday"), {}, "ce-time", Reason.INVALID_VALUE, "must be an RFC 3339 time, got 'yesterday'"),
    (headers(ce_inferenceservicename="nope"), {"instances": [ROW]}, "ce-inferenceservicename", Reason.UNKNOWN_MODEL, "model 'nope' is not configured"),
    (headers(ce_inferenceservicename="m" * 129), {"instances": [ROW]}, "ce-inferenceservicename", Reason.TOO_LONG, "at most 128 characters, got 129"),
    ({k: v for k, v in headers().items() if k != "ce-inferenceservicename"}, {"instances": [ROW]}, "ce-inferenceservicename", Reason.MISSING_FIELD, "no model name"),
    (headers(), b'{"instances": [[1, 2, 3, NaN]]}', "data", Reason.INVALID_JSON, "body (application/json) is not valid JSON: unexpected character"),
    (headers(), b"", "data", Reason.MISSING_FIELD, "the data must be a JSON object (an inference request or response), got null"),
    (headers(), [ROW], "data", Reason.NOT_AN_OBJECT, "got array"),
    (headers(), {"rows": [ROW]}, "data", Reason.MISSING_FIELD, "not a V1, V2 or Seldon request: no instances, inputs or data member (members: rows)"),
    (headers(RESPONSE), {"result": 1}, "data", Reason.MISSING_FIELD, "not a V1, V2 or Seldon response: no predictions, outputs or data member (members: result)"),
    (headers(), {"instances": {"a": 1}}, "data.instances", Reason.WRONG_TYPE, "must be an array with one item per row, got object"),
    (headers(), {"inputs": {"sepal_length": [1]}}, "data.inputs", Reason.WRONG_TYPE, "columnar inputs are not supported"),
    (headers(), {"instances": []}, "data.instances", Reason.INVALID_VALUE, "has no rows"),
    (headers(), {"instances": [ROW] * 6}, "data.instances", Reason.TOO_MANY, "6 rows in one event; at most 5"),
    (headers(), {"instances": [ROW, [1, 2]]}, "data.instances[1]", Reason.INVALID_VALUE, "row has 2 values but the model has 4 features"),
    (headers(), {"instances": [[1, 2, [3], 4]]}, "data.instances[0][2]", Reason.WRONG_TYPE, "must be a number, string, boolean or null, got array"),
    (headers(), {"instances": [[1, 2, "x" * 17, 4]]}, "data.instances[0][2]", Reason.TOO_LONG, "at most 16 characters, got 17"),
    (headers(), {"instances": [{"color": "x" * 17}]}, "data.instances[0].color", Reason.TOO_LONG, "at most 16 characters"),
    (headers(), {"instances": [{f"k{i}": i for i in range(7)}]}, "data.instances[0]", Reason.TOO_MANY, "at most 6 features, got 7"),
    (headers(ce_inferenceservicename="bare"), {"instances": [list(range(7))]}, "data.instances[0]", Reason.TOO_MANY, "at most 6 features, got 7"),
    (headers(ce_id="i" * 39), {"instances": [ROW, ROW]}, "ce-id", Reason.TOO_LONG, "at most 40 characters, got 41"),
    # V2 requests
    (headers(), {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32"}]}, "data.inputs[0].data", Reason.MISSING_FIELD, "a V2 tensor needs data"),
    (headers(), {"inputs": [tensor("x", [2, 4], ROW)]}, "data.inputs[0].data", Reason.INVALID_VALUE, "shape [2, 4] needs 8 values, got 4"),
    (headers(), {"inputs": [tensor("x", [1, 4], ROW, "FLOAT")]}, "data.inputs[0].datatype", Reason.INVALID_VALUE, "unknown V2 datatype 'FLOAT'"),
    (headers(), {"inputs": [tensor("x", [1, 2, 2], ROW)]}, "data.inputs[0].shape", Reason.INVALID_VALUE, "must be [N] or [N, F] (rows first), got [1, 2, 2]"),
    (headers(), {"inputs": [tensor("x", [1, "4"], ROW)]}, "data.inputs[0].shape", Reason.WRONG_TYPE, "non-negative integers"),
    (headers(), {"inputs": [tensor("x", [1, 3], [1, 2, 3])]}, "data.inputs[0].shape", Reason.INVALID_VALUE, "row has 3 values but the model has 4 features"),
    (headers(), {"inputs": [tensor("x", [1, 4], [[[[[[[[[1, 2, 3, 4]]]]]]]]])]}, "data.inputs[0].data", Reason.INVALID_VALUE, "nested deeper than 8 levels"),
    (headers(), {"inputs": [tensor("x", [1, 4], [1, 2, {}, 4])]}, "data.inputs[0].data[2]", Reason.WRONG_TYPE, "got object"),
    (headers(ce_inferenceservicename="loans"), {"inputs": [tensor("amount", [2], [1, 2]), tensor("purpose", [2, 2], ["a", "b", "c", "d"], "BYTES")]}, "data.inputs[1].shape", Reason.INVALID_VALUE, "tensor 'purpose' has shape [2, 2]; with one tensor per feature each must be [N] or [N, 1]"),
    (headers(ce_inferenceservicename="loans"), {"inputs": [tensor("amount", [2], [1, 2]), tensor("purpose", [1], ["a"], "BYTES")]}, "data.inputs[1].shape", Reason.INVALID_VALUE, "tensor 'purpose' has 1 rows but data.inputs[0] has 2"),
    (headers(ce_inferenceservicename="loans"), {"inputs": [tensor("amount", [1], [1]), tensor("amount", [1], [2])]}, "data.inputs[1].name", Reason.INVALID_VALUE, "tensor name 'amount' is repeated"),
    # predictions
    (headers(RESPONSE), {"predictions": [[0.5, 0.5]]}, "data.predictions[0][0]", Reason.INVALID_VALUE, "got 2 class probabilities but prediction.classes lists 3"),
    (headers(RESPONSE), {"predictions": [[0.5, 1.5, 0.0]]}, "data.predictions[0][1]", Reason.INVALID_VALUE, "class probabilities must be numbers in [0, 1], got 1.5"),
    (headers(RESPONSE), {"predictions": [{"setosa": "high"}]}, "data.predictions[0].setosa", Reason.INVALID_VALUE, "got 'high'"),
    (headers(RESPONSE), {"predictions": [None]}, "data.predictions[0]", Reason.WRONG_TYPE, "got null"),
    (headers(RESPONSE), {"predictions": [[[0.1]]]}, "data.predictions[0][0]", Reason.WRONG_TYPE, "a one-item prediction list must hold a number, string or boolean, got array"),
    (headers(RESPONSE), {"predictions": ["x" * 17]}, "data.predictions[0]", Reason.TOO_LONG, "at most 16 characters"),
    (headers(RESPONSE, ce_inferenceservicename="price"), {"predictions": [[1.0, 2.0]]}, "data.predictions[0][0]", Reason.INVALID_VALUE, "configured as regression"),
    (headers(RESPONSE, ce_inferenceservicename="loans"), {"outputs": [tensor("label", [1], ["no"], "BYTES")]}, "data.outputs", Reason.INVALID_VALUE, "no output tensor named 'probability' (prediction.output); outputs are ['label']"),
    (headers(RESPONSE), {"outputs": {"p": [0.5]}}, "data.outputs", Reason.WRONG_TYPE, "must be an array of V2 tensors"),
    (headers(RESPONSE), {"outputs": [tensor("p", [1, 3], [0.5, 0.5, 2])]}, "data.outputs[0].data[2]", Reason.INVALID_VALUE, "got 2"),
    # Seldon
    (headers("io.seldon.serving.inference.request"), {"data": {"jsonData": {}}}, "data.data", Reason.INVALID_VALUE, "only ndarray and tensor Seldon payloads are supported, got jsonData"),
    (headers("io.seldon.serving.inference.request"), {"data": {"names": ["a"], "ndarray": [[1, 2]]}}, "data.data.ndarray[0][0]", Reason.INVALID_VALUE, "row 0 has 2 values but data.data.names lists 1"),
    (headers("io.seldon.serving.inference.request"), {"data": {"tensor": {"shape": [1, 4], "values": [1, 2, "x" * 17, 4]}}}, "data.data.tensor.values[2]", Reason.TOO_LONG, "at most 16"),
    (headers("io.seldon.serving.inference.request"), {"data": {"names": "a", "ndarray": [[1]]}}, "data.data.names", Reason.WRONG_TYPE, "array of strings"),
    # Names the client chooses: class names and Seldon names are held to max_string_length (16 here)
    (headers(RESPONSE, ce_inferenceservicename="bare"), {"predictions": [{"yes": 0.5, "c" * 17: 0.5}]}, "data.predictions[0]." + "c" * 17, Reason.TOO_LONG, "class names must be at most 16 characters, got 17"),
    (headers(RESPONSE, ce_inferenceservicename="bare"), {"predictions": [{"c" * 5000: 0.5}]}, "data.predictions[0]." + "c" * 64 + "...", Reason.TOO_LONG, "class names must be at most 16 characters, got 5000"),
    (headers("io.seldon.serving.inference.request"), {"data": {"names": ["a", "b", "c", "n" * 17], "ndarray": [ROW]}}, "data.data.names[3]", Reason.TOO_LONG, "names must be at most 16 characters, got 17"),
    (headers("io.seldon.serving.inference.response", ce_inferenceservicename="bare"), {"data": {"names": ["yes", "n" * 17], "ndarray": [[0.5, 0.5]]}}, "data.data.names[1]", Reason.TOO_LONG, "names must be at most 16 characters, got 17"),
    (headers("io.seldon.serving.inference.response", ce_inferenceservicename="bare"), {"data": {"names": [f"c{i}" for i in range(7)], "ndarray": [[0.1] * 7]}}, "data.data.names", Reason.TOO_MANY, "at most 6 features, got 7"),
    (headers(RESPONSE, ce_inferenceservicename="bare"), {"predictions": [[0.1] * 7]}, "data.predictions[0][0]", Reason.TOO_MANY, "at most 6 classes, got 7"),
    (headers(ce_inferenceservicename="_unknown"), {"instances": [ROW]}, "ce-inferenceservicename", Reason.INVALID_VALUE, "the model name '_unknown' is reserved: it is the metric label value of traffic for unknown models"),
    # event time: at most limits.max_future_seconds (300) after the receive time, at most max_age_seconds (30 days) before
    (headers(ce_time="9999-12-31T00:00:00Z"), {"instances": [ROW]}, "ce-time", Reason.TIMESTAMP_OUT_OF_RANGE, "9999-12-31T00:00:00Z is 251687649570 s after the receive time (2024-05-01T12:00:30Z); at most 300 s ahead is accepted (limits.max_future_seconds)"),
    (headers(ce_time="2024-05-01T12:05:30.001Z"), {"instances": [ROW]}, "ce-time", Reason.TIMESTAMP_OUT_OF_RANGE, "2024-05-01T12:05:30.001000Z is 300.001 s after the receive time"),
    (headers(ce_time="2024-03-01T12:00:30Z"), {"instances": [ROW]}, "ce-time", Reason.TIMESTAMP_OUT_OF_RANGE, "2024-03-01T12:00:30Z is 5270400 s before the receive time (2024-05-01T12:00:30Z); at most 2592000 s old is accepted (limits.max_age_seconds)"),
]
# fmt: on


@pytest.mark.parametrize(("head", "body", "path", "reason", "message"), BINARY_REJECTIONS)
def test_binary_rejections(head: dict[str, str], body: Any, path: str, reason: str, message: str) -> None:
    records, rejections = parse(head, body)
    assert records == []
    [rejection] = rejections
    assert (rejection.index, rejection.path, rejection.reason) == (0, path, reason), rejection.message
    assert message in rejection.message
    # The dead letter keeps the event: its attributes (from the headers) and its data.
    assert rejection.raw["id"] == head["ce-id"] and rejection.raw["type"] == head["ce-type"]
    if not isinstance(body, bytes):
        assert rejection.raw["data"] == body
    elif reason == Reason.INVALID_JSON:
        assert rejection.raw["data"] == body.decode()  # unparsable: kept as text


def test_rejection_names_the_model_once_known() -> None:
    [unknown] = parse(headers(ce_inferenceservicename="nope"), {"instances": [ROW]})[1]
    [bad_row] = parse(headers(), {"instances": [[1]]})[1]
    [bad_json] = parse(headers(), b"{")[1]
    [bad_type] = parse(headers(ce_type="x"), {"instances": [ROW]})[1]
    assert (unknown.model, bad_row.model, bad_json.model, bad_type.model) == ("nope", "iris", "iris", None)


# fmt: off
STRUCTURED_REJECTIONS = [
    # (event, path, reason, message fragment)
    ({k: v for k, v in event().items() if k != "id"}, "id", Reason.MISSING_FIELD, "Missing required attribute: 'id'"),
    (event(id=7), "id", Reason.WRONG_TYPE, "must be a string, got number"),
    (event(subject=["s"]), "subject", Reason.WRONG_TYPE, "must be a string, got array"),
    (event(time=1714564800), "time", Reason.WRONG_TYPE, "must be an RFC 3339 time string, got number"),
    (event(time="2024-13-01T00:00:00Z"), "time", Reason.INVALID_VALUE, "must be an RFC 3339 time, got '2024-13-01T00:00:00Z'"),
    (event(Model="iris"), "Model", Reason.INVALID_EVENT, "should only contain lowercase letters and numbers"),
    ({**event(), "data": None, "data_base64": "not base64!"}, "data_base64", Reason.INVALID_VALUE, "must be base64 of a JSON body: not valid base64"),
    ({**event(), "data": None, "data_base64": base64.b64encode(b"{").decode()}, "data_base64", Reason.INVALID_JSON, "must be base64 of a JSON body: unexpected end of data"),
    (event(data={"instances": [ROW]}, inferenceservicename=5), "inferenceservicename", Reason.WRONG_TYPE, "the model name must be a non-empty string, got number"),
    (event("io.seldon.serving.inference.request", {"data": {"ndarray": [ROW]}}, requestid=["p"]), "requestid", Reason.WRONG_TYPE, "must be a string, got array"),
    (event(data='{"instances": [[1, 2, 3, 4]]}'), "data", Reason.NOT_AN_OBJECT, "got string"),
    (event(data={"instances": [ROW]}, time="9999-12-31T00:00:00Z"), "time", Reason.TIMESTAMP_OUT_OF_RANGE, "9999-12-31T00:00:00Z is 251687649570 s after the receive time"),
    (event(data={"instances": [ROW]}, time="2024-05-01T12:05:31+00:00"), "time", Reason.TIMESTAMP_OUT_OF_RANGE, "2024-05-01T12:05:31Z is 301 s after the receive time"),
]
# fmt: on


@pytest.mark.parametrize(("item", "path", "reason", "message"), STRUCTURED_REJECTIONS)
def test_structured_rejections(item: dict[str, Any], path: str, reason: str, message: str) -> None:
    records, rejections = structured(item)
    assert records == []
    [rejection] = rejections
    assert (rejection.index, rejection.path, rejection.reason) == (0, path, reason), rejection.message
    assert message in rejection.message and rejection.raw == item


def test_batch_item_that_is_not_an_object() -> None:
    good = event(data={"instances": [ROW]})
    records, rejections = parse({"content-type": "application/cloudevents-batch+json"}, [good, "event", good])
    assert len(records) == 2
    assert [(r.index, r.path, r.reason, r.message, r.raw) for r in rejections] == [
        (1, "", Reason.NOT_AN_OBJECT, "an event must be a JSON object, got string", "event"),
    ]


def test_event_times_at_the_bounds_are_accepted() -> None:
    """The range is inclusive: exactly 300 s ahead and exactly 30 days back are accepted."""
    for time in ("2024-05-01T12:05:30Z", "2024-04-01T12:00:30Z"):
        [record] = ok(headers(ce_time=time), {"instances": [ROW]})
        assert record.timestamp == ts(time.removesuffix("Z"))
    records, rejections = structured(event(data={"instances": [ROW]}, time="2024-05-01T12:05:30Z"))
    assert rejections == [] and records[0].timestamp == NOW + 300


def test_without_an_age_limit_old_times_pass_but_not_before_1970() -> None:
    """limits.max_age_seconds is unset by default: a time years back passes (a replay of
    history); the range of epoch seconds (1970 to 2100) still holds."""
    [record] = ok(headers(ce_time="2018-10-30T18:00:00Z"), {"instances": [ROW]}, limits=LimitsConfig())
    assert record.timestamp == ts("2018-10-30T18:00:00")
    _, [rejection] = parse(headers(ce_time="0001-01-01T00:00:00Z"), {"instances": [ROW]}, limits=LimitsConfig())
    assert (rejection.path, rejection.reason, rejection.message) == (
        "ce-time", Reason.TIMESTAMP_OUT_OF_RANGE,
        "0001-01-01T00:00:00Z is outside 1970-01-01T00:00:00Z to 2100-01-01T00:00:00Z, the event times accepted",
    )  # fmt: skip


def test_an_event_without_time_takes_the_message_time_which_is_checked_too() -> None:
    """Kafka: an event with no time attribute takes its message's timestamp; out of range,
    the path names it."""
    [record] = ok(headers(), {"instances": [ROW]}, message_time=NOW - 60)
    assert record.timestamp == NOW - 60
    records, [rejection] = parse(headers(), {"instances": [ROW]}, message_time=NOW + 3600)
    assert records == [] and (rejection.path, rejection.reason, rejection.message) == (
        "kafka.timestamp", Reason.TIMESTAMP_OUT_OF_RANGE,
        "the Kafka message timestamp 2024-05-01T13:00:30Z is 3600 s after the receive time (2024-05-01T12:00:30Z); "
        "at most 300 s ahead is accepted (limits.max_future_seconds)",
    )  # fmt: skip
    [record] = ok(headers(ce_time="2024-05-01T12:00:00Z"), {"instances": [ROW]}, message_time=NOW + 3600)
    assert record.timestamp == NOW - 30  # its own time wins, and is what is checked


def test_a_request_registers_at_most_max_models_counting_its_own_events() -> None:
    """unknown_models: register: 4 configured models and a limit of 6 leave room for 2 new
    ones in a batch naming 5 (another event of an admitted model passes)."""
    names = ["n1", "n2", "n1", "n3", "n4", "n5"]
    batch = [event(data={"instances": [ROW]}, id=f"e{i}", inferenceservicename=name) for i, name in enumerate(names)]
    records, rejections = parse(
        {"content-type": "application/cloudevents-batch+json"}, batch,
        limits=LimitsConfig(max_models=6), accept_unknown=True,
    )  # fmt: skip
    assert [r.model for r in records] == ["n1", "n2", "n1"]
    assert [(r.index, r.model, r.reason) for r in rejections] == [
        (3, "n3", Reason.UNKNOWN_MODEL),
        (4, "n4", Reason.UNKNOWN_MODEL),
        (5, "n5", Reason.UNKNOWN_MODEL),
    ]
    assert rejections[0].message == (
        "model 'n3' is not configured and the limit of 6 models is reached (limits.max_models)"
    )
    # A set shared across requests (Kafka: one poll batch) counts them all.
    admitted: set[str] = set()
    for name in ("n1", "n2", "n3"):
        parse(headers(ce_inferenceservicename=name), {"instances": [ROW]},
              limits=LimitsConfig(max_models=6), accept_unknown=True, admitted=admitted)  # fmt: skip
    assert admitted == {"n1", "n2"}
