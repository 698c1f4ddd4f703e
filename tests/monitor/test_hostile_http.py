"""Hostile requests over real HTTP against a real ``monitor serve`` (issue 16).

The service runs with auth on and two models with references (car_loan: numeric and
categorical features, binary; iris: multiclass) and small count windows, so hostile
traffic also closes windows and writes results. Every operation of the running service's
OpenAPI (read with a token) gets schemathesis's own cases (positive and negative, the
path's model a configured one or generated), then >= 1,000 hypothesis-built hostile
requests with the admin token and real path values: mutated records, labels and junk as
JSON and NDJSON, CloudEvents in all three modes, reference files as CSV, JSONL and Parquet
(damaged or not). Of every 24 requests one names an unknown model (or another bad path
value), one has a hostile query, one a content type its body does not have; every 33rd
has a bad token. The test counts the answers that only a body parser gives and asserts
that most requests got one. No answer may be a 5xx, what the answers say was accepted is
what /metrics counted, and the service log has no traceback.

Malformed HTTP framing, over raw sockets, is in test_hostile_requests.py.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import random
import re
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from schemathesis import GenerationMode
from support import CAR_LOAN_FEATURES, ServiceProcess, car_loan_record, config

TOKEN = "hostile-http-admin-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
REQUESTS_PER_OPERATION = 1000  # hypothesis-built, on top of schemathesis's own cases
SCHEMA_CASES_PER_OPERATION = 60  # schemathesis generates ~20 ms a case: a sample, not the bulk
MAX_BODY_BYTES = 1024 * 1024
MAX_ITEMS = 50
MODELS = {"car_loan": list(CAR_LOAN_FEATURES), "iris": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}
IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
REFERENCE_ROUTES = {("PUT", "/v1/models/{model}/reference"), ("PUT", "/v1/models/{model}/versions/{version}/reference")}
BODY_ROUTES = {("POST", "/v1/records"), ("POST", "/v1/cloudevents"), *REFERENCE_ROUTES}
SETTINGS = settings(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck),
                    print_blob=False)  # fmt: skip


# -- the service ---------------------------------------------------------------------------------
def valid_inputs(model: str, rng: random.Random) -> dict[str, Any]:
    """A row of valid feature values. Drawn from ``rng``, not by hypothesis: one draw (the
    seed) instead of seven per row keeps generation cheap; the hostile parts are drawn."""
    if model == "iris":
        return {name: rng.uniform(0.1, 8) for name in MODELS["iris"]}
    return {
        "car_value": rng.uniform(5_000, 60_000), "salary_range": rng.choice(["20K - 40K €", "60K+"]),
        "debt_to_income_ratio": rng.random(), "loan_length": rng.choice([12, 24, 36]),
        "repaid_loan_on_prev_car": rng.choice([True, False]), "size_of_downpayment": rng.choice(["10%", "0%"]),
        "driver_tenure": rng.uniform(0, 12),
    }  # fmt: skip


def reference_csvs(directory: Path) -> dict[str, Path]:
    """400 seeded rows of each model's features and prediction."""
    rng, paths = random.Random(16), {}
    for name, classes in (("car_loan", [0, 1]), ("iris", IRIS_CLASSES)):
        rows = [[*valid_inputs(name, rng).values(), rng.choice(classes)] for _ in range(400)]
        paths[name] = directory / f"{name}.csv"
        paths[name].write_text("\n".join(",".join(map(str, row)) for row in [[*MODELS[name], "prediction"], *rows]))
    return paths


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    tmp = tmp_path_factory.mktemp("hostile-http")
    data = config(tmp, auth={"tokens": [{"name": "admin", "token": TOKEN}]},  # every scope
                  limits={"max_body_bytes": MAX_BODY_BYTES, "max_items_per_request": MAX_ITEMS})  # fmt: skip
    for name, path in reference_csvs(tmp).items():
        data["models"][name] |= {
            "reference": {"file": str(path)},
            "window": {"kind": "count", "size": 40},
            "versions": {"max_active": 3},
        }
    running = ServiceProcess(tmp, data).start(timeout=120)  # generous: the machine may be busy
    try:
        yield running
    finally:
        running.stop()


def metric_total(service: ServiceProcess, name: str, **labels: str) -> float:
    """The sum of a family's samples (those with ``labels``) in the service's /metrics."""
    families = text_string_to_metric_families(httpx.get(f"{service.url}/metrics", timeout=60).text)
    samples = [sample for family in families for sample in family.samples if sample.name == name]
    return sum(sample.value for sample in samples if all(sample.labels.get(k) == v for k, v in labels.items()))


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=20),
    st.sampled_from(["car_loan", "iris", "", "x" * 3000, "2024-01-01T00:00:00Z", "\x00", "\ud800", "NaN", "1e999"]),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
model_names = st.sampled_from(sorted(MODELS)) | st.sampled_from(["unknown", "Car_Loan", "car_loan ", "x" * 300, ""])


# Strategies are built once, here, not on every draw: hypothesis validates each new strategy
# object, which cost about a third of the generation time (the draws are the same).
ONE_IN: dict[int, st.SearchStrategy[int]] = {}
any_model = st.sampled_from(sorted(MODELS)) | model_names
booleans, up_to = st.booleans(), {n: st.integers(0, n) for n in (2, 3, 4)}


def one_in(draw: st.DrawFn, n: int) -> bool:
    if n not in ONE_IN:
        ONE_IN[n] = st.sampled_from(range(n))
    return draw(ONE_IN[n]) == 0  # near uniform, unlike st.integers in big examples


def dump(value: Any) -> bytes:
    # The standard library writes what orjson refuses (NaN, Infinity, lone surrogates escaped).
    return json.dumps(value).encode()


rngs = st.integers(0, 2**32 - 1).map(random.Random)


input_names = st.sampled_from(MODELS["car_loan"]) | st.text(max_size=10)


@st.composite
def records(draw: st.DrawFn) -> Any:
    """A record, a label, or one of them with fields replaced by any JSON, or removed."""
    model, rng = draw(any_model), draw(rngs)
    shape = rng.choice(["full", "full", "inputs", "prediction", "label"])
    record: dict[str, Any] = {"model": model, "id": f"r{rng.randrange(400)}"}  # duplicates and label joins
    if shape in ("full", "inputs"):
        record["inputs"] = valid_inputs(model, rng)
    if shape in ("full", "prediction"):
        record["prediction"] = rng.choice(IRIS_CLASSES) if model == "iris" else rng.randrange(2)
        record["latency_ms"] = rng.uniform(0, 500)
    if shape == "label":
        record["label"] = draw(json_values) if one_in(draw, 4) else rng.choice([*IRIS_CLASSES, 0, 1])
    for _ in range(draw(up_to[3])):
        key = draw(st.sampled_from([*record, "timestamp", "version", "segment", "extra", "inputs"]))
        record[key] = draw(json_values)
        if draw(booleans):
            record.pop(key)
    if one_in(draw, 5) and isinstance(record.get("inputs"), dict):
        record["inputs"][draw(input_names)] = draw(json_values)
    return draw(json_values) if one_in(draw, 20) else record


nested = st.integers(1, 3000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth)
junk = st.one_of(st.binary(max_size=300), json_values.map(dump), nested)
JSON_TYPES = ["application/json", "application/json; charset=utf-8"]
NDJSON_TYPES = ["application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"]
OTHER_TYPES = ["text/plain", "", "multipart/form-data; boundary=x", "application/\x7f", "text/csv", "*/*"]


@st.composite
def record_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    """JSON objects, arrays (some past the item limit) or NDJSON of records, or junk."""
    items = draw(st.lists(records(), max_size=8))
    if items and one_in(draw, 10):
        items = (items * (MAX_ITEMS // len(items) + 1))[: MAX_ITEMS + 1]  # one past the item limit
    shape = draw(st.sampled_from(["object", "array", "ndjson", "ndjson", "junk"]))
    if shape == "object":
        body, types = dump(items[0] if items else {}), JSON_TYPES
    elif shape == "array":
        body, types = dump(items), JSON_TYPES
    elif shape == "ndjson":
        lines = [dump(item) for item in items]
        for _ in range(draw(st.integers(0, 2))):  # blank, broken and binary lines among them
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from([b"", b"{", b"\r", b"\xff\xfe"])))
        body, types = draw(st.sampled_from([b"\n", b"\r\n"])).join(lines), NDJSON_TYPES
    else:
        body, types = draw(junk), JSON_TYPES + NDJSON_TYPES
    return body, draw(st.sampled_from(types))


EVENT_TYPES = ["org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response",
               "io.seldon.serving.inference.request", "io.seldon.serving.feedback", "x"]  # fmt: skip


@st.composite
def event_data(draw: st.DrawFn, model: str, kind: str) -> Any:
    """A V1 or V2 body of 0-3 rows, a cell or the shape sometimes wrong, or any JSON."""
    features, rng = MODELS.get(model, MODELS["car_loan"]), draw(rngs)
    rows = rng.randrange(4)
    if kind.endswith("response"):
        data: Any = rng.choice([{"predictions": [rng.randrange(2) for _ in range(rows)]}, {
            "model_name": model, "outputs": [{"name": "p", "datatype": "FP32", "shape": [rows], "data": [0.5] * rows}]
        }])  # fmt: skip
    elif rng.random() < 0.5:
        data = {"instances": [list(valid_inputs(model, rng).values()) for _ in range(rows)]}
        if rows and one_in(draw, 3):  # a cell of any type, or a row one too long
            data["instances"][0][draw(st.sampled_from(range(len(features))))] = draw(scalars)
            data["instances"][-1] += [draw(scalars)] * one_in(draw, 3)
    else:
        flat = [rng.uniform(0, 10) for _ in range(rows * len(features))]
        shape = draw(st.sampled_from([[rows, len(features)], [rows, len(features)], [rows], [-1, 2**40]]))
        data = {"inputs": [{"name": "x", "datatype": draw(st.sampled_from(["FP32", "FP32", "BYTES", "??"])),
                            "shape": shape, "data": flat}]}  # fmt: skip
    return draw(json_values) if one_in(draw, 10) else data


event_types, event_ids = st.sampled_from(EVENT_TYPES[:2]) | st.sampled_from(EVENT_TYPES), st.integers(0, 400)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    model = draw(any_model)
    kind = draw(event_types)
    event = {"specversion": "1.0", "id": f"r{draw(event_ids)}", "source": "hostile", "type": kind,
             "inferenceservicename": model, "data": draw(event_data(model, kind))}  # fmt: skip
    for _ in range(draw(up_to[2])):
        key = draw(st.sampled_from([*event, "time", "data_base64", "modelid", "BAD-name"]))
        event[key] = draw(json_values)
        if draw(booleans):
            event.pop(key)
    return event


def sendable(value: str) -> str:
    """``value`` as a header value an HTTP client sends: printable ASCII (anything else as
    "?"), no leading blank. requests refuses control characters (\\x1c is whitespace to its
    check), line breaks and a leading blank before anything is sent, which would fail the
    test on a drawn value and prove nothing about the service; malformed header bytes go
    over raw sockets in test_hostile_requests.py."""
    return re.sub(r"[^\x20-\x7e]", "?", value).lstrip(" ")


@st.composite
def event_requests(draw: st.DrawFn) -> tuple[bytes, str, dict[str, str]]:
    """(body, content type, ce-* headers) of a binary, structured or batched request."""
    mode = draw(st.sampled_from(["binary", "structured", "batch", "junk"]))
    if mode == "batch":
        batch = draw(st.lists(events(), max_size=6))
        if batch and one_in(draw, 10):
            batch = (batch * (MAX_ITEMS // len(batch) + 1))[: MAX_ITEMS + 1]  # one past the item limit
        return dump(batch), "application/cloudevents-batch+json", {}
    event = draw(events())
    if mode == "structured":
        return dump(event), "application/cloudevents+json", {}
    if mode == "junk":
        avro = one_in(draw, 4)  # a format the service does not read: 415
        return draw(junk), "application/cloudevents+avro" if avro else "application/cloudevents+json", {}
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
    headers = {f"ce-{k}": sendable(v if isinstance(v, str) else json.dumps(v)) for k, v in event.items() if k != "data"}
    if one_in(draw, 4):
        headers[draw(st.sampled_from(["ce-time", "ce-id", "ce-specversion", "ce-type", "ce-x"]))] = sendable(
            draw(printable)
        )
    body = draw(junk) if one_in(draw, 6) else dump(event.get("data"))
    return body, draw(st.sampled_from(["application/json", "", "application/x-www-form-urlencoded"])), headers


cells = st.one_of(st.floats(0, 50_000).map(str), st.sampled_from(["", "nan", "1e309", "True", '"', "a,b", "é\n"]),
                  st.text(alphabet='ab,;"\n\r 0123456789.-eE', max_size=8))  # fmt: skip


@st.composite
def reference_rows(draw: st.DrawFn, model: str) -> tuple[list[str], list[list[Any]]]:
    extra = draw(st.lists(st.sampled_from(["prediction", "label", "latency_ms", "timestamp", "x", ""]), max_size=3))
    columns = [*MODELS[model], "prediction", *extra]
    if one_in(draw, 4):
        columns = draw(st.lists(st.sampled_from(columns), max_size=len(columns) + 2))
    rng = draw(rngs)
    rows = [[*valid_inputs(model, rng).values(), rng.randrange(2), 1, 2.5, "2024-01-01T00:00:00Z", 0, 0][
        : len(columns)] for _ in range(draw(st.sampled_from(range(31))))]  # fmt: skip
    for _ in range(draw(st.integers(0, 4)) if rows else 0):  # hostile cells in random places
        draw(st.sampled_from(rows)).insert(draw(st.integers(0, len(columns))), draw(cells))
    return columns, rows


def parquet(columns: list[str], rows: list[list[Any]], kinds: list[str]) -> bytes:
    table: dict[str, Any] = {}
    for i, name in enumerate(dict.fromkeys(columns)):
        values = [row[i] if i < len(row) else None for row in rows]
        kind = kinds[i % len(kinds)]
        if kind in ("string", "binary"):  # binary: bytes that are not UTF-8 where text is expected
            text = [None if v is None else str(v).encode() + (b"\xff" if kind == "binary" else b"") for v in values]
            table[name] = pa.array(text, pa.binary() if kind == "binary" else pa.string())
        else:
            table[name] = pa.array([v if isinstance(v, int | float) and not isinstance(v, bool) else None
                                    for v in values], pa.float64())  # fmt: skip
    sink = io.BytesIO()
    pq.write_table(pa.table(table), sink)
    return sink.getvalue()


@st.composite
def reference_bodies(draw: st.DrawFn) -> tuple[bytes, str, dict[str, str]]:
    """(body, content type, query) of a reference upload: CSV, JSONL or Parquet, sometimes
    gzipped, cut short, with a byte changed, or junk."""
    columns, rows = draw(reference_rows(draw(st.sampled_from(sorted(MODELS)))))
    fmt = draw(st.sampled_from(["csv", "jsonl", "parquet"]))
    if fmt == "csv":
        body = "\n".join(",".join(map(str, line)) for line in [columns, *rows]).encode()
    elif fmt == "jsonl":
        flat = draw(st.booleans())
        lines = [dict(zip(columns, row, strict=False)) for row in rows]  # flat rows, or records:
        lines = lines if flat else [{"inputs": line, "prediction": line.pop("prediction", None)} for line in lines]
        body = b"\n".join(dump(line) for line in lines)
    else:
        body = parquet(columns, rows, draw(st.lists(st.sampled_from(["float", "string", "binary"]), min_size=1)))
    damage = draw(st.sampled_from(["none"] * 4 + ["gzip", "cut", "flip", "junk"]))
    if damage == "gzip":
        body = gzip.compress(body)
    elif damage in ("cut", "flip") and body:
        at = draw(st.integers(0, len(body) - 1))
        body = body[:at] if damage == "cut" else body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1 :]
    elif damage == "junk":
        body = draw(junk)
    types = {"csv": "text/csv", "jsonl": "application/x-ndjson", "parquet": "application/vnd.apache.parquet"}
    query = {"format": fmt} if one_in(draw, 10) else {}
    for name in ("prediction_column", "label_column", "latency_column"):
        if columns and one_in(draw, 6):
            query[name] = draw(st.sampled_from(columns))
    return body, types[fmt], query


FEATURES = sorted({name for names in MODELS.values() for name in names})
numbers = st.integers(-(2**70), 2**70).map(str) | st.integers(-2, 20_000).map(str) | st.sampled_from(["", "1.5", "x"])
QUERY_VALUES: dict[str, st.SearchStrategy[str]] = {
    "model": model_names, "kind": st.sampled_from(["drift", "quality", "latency", "performance", "dataset", "x"]),
    "feature": st.sampled_from(FEATURES), "method": st.sampled_from(["ks", "psi", "chi2", "wasserstein", "x"]),
    "since_seq": numbers, "limit": numbers, "before_id": numbers, "webhook": st.text(max_size=120),
    "state": st.sampled_from(["pending", "firing", "resolved", "inactive", "delivered", "dead", "x"]),
    "reason": st.sampled_from(["invalid_json", "unknown_model", "wrong_type", "x" * 100]),
    "format": st.sampled_from(["csv", "jsonl", "parquet", "xml", ""]), "label_column": st.text(max_size=300),
    "since": st.sampled_from(["2024-01-01T00:00:00Z", "0", "1e20", "-1", "yesterday"]), "cursor": st.text(max_size=70),
}  # fmt: skip
REAL_PATH_VALUES: dict[str, st.SearchStrategy[str]] = {"model": st.sampled_from(sorted(MODELS)), "delivery_id":
    st.integers(1, 50).map(str), "alert_id": st.sampled_from(["car_loan:drift", "iris:quality", "1"]),
    "version": st.sampled_from(["1", "2", "v3"])}  # fmt: skip
OTHER_PATH_VALUES: dict[str, st.SearchStrategy[str]] = {"model": model_names | st.text(max_size=40),
    "alert_id": st.just("x" * 600) | st.text(max_size=40), "delivery_id": numbers,
    "version": st.just("x" * 600) | st.text(max_size=40)}  # fmt: skip
BAD_AUTH = ["Bearer wrong", "", "Basic eDp4", "Bearer " + "s" * 5000, f"bearer {TOKEN}x"]
# The mix of every 24 requests, by count: exact shares, not left to the draws.
OTHER_PATH, OTHER_QUERY, OTHER_TYPE, MIX = 5, 11, 17, 24


@dataclass
class Sent:
    """Path values, query and content type both right and wrong: :class:`Sender` picks."""

    method: str
    path: str
    values: dict[str, tuple[str, str]]
    query: dict[str, Any]
    other_query: dict[str, Any]
    headers: dict[str, str]
    other_type: str
    body: bytes | None = None


any_text, json_types, other_types = st.text(max_size=20), st.sampled_from(JSON_TYPES), st.sampled_from(OTHER_TYPES)
other_query_names = st.lists(st.sampled_from([*QUERY_VALUES, "x"]), min_size=1, max_size=3)
OTHER_QUERY_VALUES = {name: QUERY_VALUES.get(name, any_text) | st.just("x" * 3000) for name in [*QUERY_VALUES, "x"]}


@functools.cache
def query_names(known: tuple[str, ...]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(known), unique=True)


@st.composite
def hostile_requests(draw: st.DrawFn, method: str, path: str, known: list[str]) -> Sent:
    """A request to ``method path``; ``known``: the operation's query parameters."""
    values = {name: (draw(REAL_PATH_VALUES[name]), draw(OTHER_PATH_VALUES[name]))
              for name in re.findall(r"\{(\w+)\}", path)}  # fmt: skip
    other_query: dict[str, Any] = {}
    for name in draw(other_query_names):
        value = draw(OTHER_QUERY_VALUES[name])
        other_query[name] = [value, value] if one_in(draw, 4) else value  # a repeated parameter too
    headers, query = dict[str, str](), dict[str, Any]()
    body: bytes | None = None
    if (method, path) == ("POST", "/v1/records"):
        body, headers["content-type"] = draw(record_bodies())
    elif (method, path) == ("POST", "/v1/cloudevents"):
        body, headers["content-type"], ce = draw(event_requests())
        headers |= ce
    elif (method, path) in REFERENCE_ROUTES:
        body, headers["content-type"], query = draw(reference_bodies())
    else:
        for name in draw(query_names(tuple(known))) if known else []:
            query[name] = draw(QUERY_VALUES.get(name, any_text))
        if one_in(draw, 5):  # a body where none is expected
            body, headers["content-type"] = draw(junk), draw(json_types)
    return Sent(method, path, values, query, other_query, headers, draw(other_types), body)


@dataclass
class Tally:
    """Every answer of one operation: statuses, and how many reached a body parser."""

    operation: str
    statuses: Counter[int] = field(default_factory=Counter)
    reached_parser: int = 0
    items: Counter[str] = field(default_factory=Counter)  # "accepted", "rejected": as the answers say
    server_errors: list[str] = field(default_factory=list)

    def count(self, status: int, text: str, what: str) -> None:
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append(f"{what} -> {status} {text[:300]}")
        answer = json.loads(text) if text.startswith("{") else None  # every JSON answer is an object
        if isinstance(answer, dict) and isinstance(answer.get("accepted"), int):
            self.items.update(accepted=answer["accepted"], rejected=answer["rejected"])
        self.reached_parser += self.reached(status, answer)

    @staticmethod
    def reached(status: int, answer: Any) -> bool:
        """The body went through a parser: an ingestion result (200, or 422 with every item
        refused), a 201 reference, a parser's 400, or 413 for too many items or events (the
        body-size 413 comes before any parsing and does not count, nor FastAPI's 422s)."""
        answer = answer if isinstance(answer, dict) else {}
        too_many = status == 413 and any(word in str(answer.get("detail")) for word in ("items", "events"))
        return status in (200, 201, 400) or (status == 422 and "accepted" in answer) or too_many


class Sender:
    """Sends the drawn requests in order on a thread of its own, so that the service answers
    one while the next is drawn (the two use a core each)."""

    def __init__(self, base: str, tally: Tally):
        self.base, self.tally, self.session, self.number = base, tally, requests.Session(), 0
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending: list[Future[None]] = []

    def __call__(self, sent: Sent) -> None:
        self.pending.append(self.pool.submit(self.send, sent, self.number))
        self.number += 1

    def send(self, sent: Sent, number: int) -> None:
        values = {name: pair[number % MIX == OTHER_PATH] for name, pair in sent.values.items()}
        url = re.sub(r"\{(\w+)\}", lambda m: quote(values[m.group(1)], safe=""), sent.path)
        query = sent.other_query if number % MIX == OTHER_QUERY else sent.query
        headers = {**AUTH, **sent.headers}
        if number % MIX == OTHER_TYPE:
            headers["content-type"] = sent.other_type
        if number % 33 == 32:
            headers["authorization"] = BAD_AUTH[number // 33 % len(BAD_AUTH)]
        answer = self.session.request(sent.method, self.base + url, params=query, headers=headers, data=sent.body,
                                      timeout=60)  # fmt: skip
        self.tally.count(answer.status_code, answer.text, f"{sent.method} {url} {query} {headers} {sent.body!r:.300}")

    def wait(self) -> None:
        [future.result() for future in self.pending]  # a request without an answer fails here
        self.pool.shutdown()


# -- the tests -----------------------------------------------------------------------------------
def operations() -> list[tuple[str, str]]:
    """The operations of an app built in-process (the running service must list these)."""
    from support import settings as make_settings

    from monitor.api.app import create_app

    schema = create_app(make_settings(Path("/nonexistent-unused"))).openapi()
    return sorted((method.upper(), path) for path, item in schema["paths"].items() for method in item)


OPERATIONS = operations()
ACCEPTED_SOURCE = {("POST", "/v1/records"): "http", ("POST", "/v1/cloudevents"): "cloudevents"}


@pytest.fixture(scope="module")
def schema(service: ServiceProcess) -> Any:
    loaded: Any = schemathesis.openapi.from_url(f"{service.url}/openapi.json", headers=AUTH, timeout=60)
    served = sorted((op.ok().method.upper(), op.ok().path) for op in loaded.get_all_operations())
    assert served == OPERATIONS
    return loaded


def schema_cases(operation: Any) -> st.SearchStrategy[Any]:
    """schemathesis's cases, positive and (with anything to break) negative; the path's
    model a configured one two times in three."""
    has_model = any(p.name == "model" for p in operation.path_parameters)
    modes = [GenerationMode.POSITIVE]
    if len(operation.path_parameters) or len(operation.query) or len(operation.body):
        modes.append(GenerationMode.NEGATIVE)
    return st.one_of([
        operation.as_strategy(mode, path_parameters=values)
        for mode in modes
        for values in ([None, *({"model": name} for name in MODELS)] if has_model else [None])
    ])  # fmt: skip


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_generated_requests_reach_the_parsers_and_never_get_a_5xx(
    service: ServiceProcess, schema: Any, method: str, path: str
) -> None:
    tally = Tally(f"{method} {path}")
    session, sender = requests.Session(), Sender(service.url, tally)
    source = ACCEPTED_SOURCE.get((method, path))
    operation = schema[path][method]
    counted = {kind: f"monitor_records_{kind}_total" for kind in ("accepted", "rejected")} if source else {}
    before = {kind: metric_total(service, name, source=str(source)) for kind, name in counted.items()}

    @settings(SETTINGS, max_examples=SCHEMA_CASES_PER_OPERATION)
    @given(case=schema_cases(operation))
    def from_schema(case: Any) -> None:
        response = case.call(base_url=service.url, headers=AUTH, session=session, timeout=60)
        tally.count(response.status_code, response.text, f"schemathesis {case.as_curl_command()[:500]}")

    @settings(SETTINGS, max_examples=REQUESTS_PER_OPERATION)
    @given(sent=hostile_requests(method, path, [parameter.name for parameter in operation.query]))
    def hostile(sent: Sent) -> None:
        sender(sent)

    from_schema()
    hostile()
    sender.wait()
    total = sum(tally.statuses.values())
    print(f"{tally.operation}: {total} requests, {tally.reached_parser} parsed, {dict(tally.statuses)}")
    assert total >= REQUESTS_PER_OPERATION
    assert tally.server_errors == [], f"{len(tally.server_errors)} answers >= 500: {tally.server_errors[:5]}"
    if (method, path) in BODY_ROUTES:
        # Most requests must have been read by a parser, or the test proves little about it.
        assert tally.reached_parser >= 0.8 * total, (tally.reached_parser, total, dict(tally.statuses))
    for kind, name in counted.items():  # what the answers say is what the service counted
        assert metric_total(service, name, source=str(source)) - before[kind] == tally.items[kind], kind
    valid = httpx.post(f"{service.url}/v1/records", json=car_loan_record(10**6), headers=AUTH, timeout=60)
    assert valid.status_code == 200, valid.text  # and still serving
    assert "Traceback" not in service.log()
