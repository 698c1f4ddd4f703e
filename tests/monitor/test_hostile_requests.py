"""Generated hostile input against every endpoint of the app's OpenAPI schema.

Hypothesis builds malformed and hostile requests (random bytes, random and deeply nested
JSON, mutated valid records, wrong and missing content types, odd query values and path
parameters) and sends them through the real app. No answer may be a 5xx, and the app
must still serve a valid record afterwards. At least 1,000 requests per endpoint.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import car_loan_record, client
from support import settings as make_settings

EXAMPLES_PER_ENDPOINT = 1000

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(),
    st.text(max_size=40), st.sampled_from(["car_loan", "iris", "", "x" * 5000, "2024-01-01T00:00:00Z", "\x00"]),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=30,
)
record_keys = st.sampled_from(
    ["model", "version", "id", "timestamp", "inputs", "prediction", "latency_ms", "label", "segment", "extra"]
)


@st.composite
def mutated_records(draw: st.DrawFn) -> dict:
    """A valid record with a few fields replaced by arbitrary JSON, or removed."""
    record = car_loan_record(draw(st.integers(0, 10**6)))
    for _ in range(draw(st.integers(1, 3))):
        key = draw(record_keys)
        if draw(st.booleans()):
            record[key] = draw(json_values)
        else:
            record.pop(key, None)
    if draw(st.booleans()) and isinstance(record.get("inputs"), dict):
        record["inputs"][draw(st.text(max_size=10))] = draw(json_values)
    return record


def dump(value: object) -> bytes:
    # The standard library writes what orjson refuses (NaN, Infinity, huge integers): good hostile input.
    return json.dumps(value).encode()


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(dump),
    mutated_records().map(dump),
    st.lists(mutated_records(), max_size=5).map(dump),
    st.lists(mutated_records(), max_size=5).map(lambda items: b"\n".join(dump(i) for i in items)),
    st.integers(1, 3000).map(nested),
    st.just(
        b'{"specversion": "1.0", "id": "x", "type": "org.kubeflow.serving.inference.request", "source": "s", "data": {"instances": [[1, 2]]}}'
    ),
)
content_types = st.sampled_from(
    [
        "application/json", "application/x-ndjson", "application/cloudevents+json", "application/cloudevents-batch+json",
        "text/plain", "", "application/json; charset=latin-1", "multipart/form-data; boundary=x", "application/\x7f",
    ]
)  # fmt: skip
ce_headers = st.dictionaries(
    st.sampled_from(
        ["ce-id", "ce-type", "ce-source", "ce-specversion", "ce-inferenceservicename", "ce-time", "ce-modelid"]
    ),
    st.one_of(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        st.sampled_from(
            ["org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response", "iris", "1.0"]
        ),
    ),
    max_size=7,
)
query_values = st.one_of(st.text(max_size=20), st.integers(-(2**70), 2**70).map(str), st.just("x" * 3000))


def endpoints() -> list[tuple[str, str]]:
    from monitor.api.app import create_app

    schema = create_app(make_settings(Path("/nonexistent-unused"))).openapi()
    return sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)


@pytest.fixture(scope="module")
def app_client(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("hostile")
    with client(make_settings(tmp, auth={"tokens": [{"name": "t", "token": "secret"}]})) as pair:
        yield pair[0]


@pytest.mark.parametrize(("method", "path"), endpoints())
def test_no_5xx_on_hostile_requests(app_client, method: str, path: str) -> None:
    count = 0

    @settings(max_examples=EXAMPLES_PER_ENDPOINT, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(
        body=bodies if method in ("POST", "PUT") else st.none(),
        content_type=content_types,
        headers=ce_headers,
        query=st.dictionaries(
            st.sampled_from(["model", "reason", "limit", "before_id", "x"]), query_values, max_size=3
        ),
        path_value=st.text(
            alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="/?#%"),
            min_size=1,
            max_size=40,
        ),
        auth=st.sampled_from(["Bearer secret", "Bearer wrong", "", "Basic x", "Bearer " + "s" * 5000]),
    )
    def run(body, content_type, headers, query, path_value, auth) -> None:
        nonlocal count
        url = re.sub(r"\{[^}]+\}", lambda _: path_value, path)
        request_headers = {**headers, "content-type": content_type}
        if auth:
            request_headers["authorization"] = auth
        response = app_client.request(method, url, content=body, headers=request_headers, params=query)
        count += 1
        assert response.status_code < 500, (method, url, response.status_code, response.text[:500])

    run()
    assert count >= EXAMPLES_PER_ENDPOINT
    # still serving valid traffic
    ok = app_client.post("/v1/records", json=car_loan_record(1), headers={"authorization": "Bearer secret"})
    assert ok.status_code == 200
