"""Malformed reference uploads (issue 15, case 8): whatever the body, ``build_reference``
either profiles it or raises :class:`ReferenceDataError` naming what is wrong and where
(the route answers 400 with it), never anything else (a 500). A property test throws
malformed CSV, JSONL and Parquet bodies (and their gzip) at it; the case that was found,
an NDJSON upload whose third line has ``"inputs": [null]``, is checked over HTTP against a
real ``monitor serve``."""

from __future__ import annotations

import gzip
import io
import json
import math
from pathlib import Path
from typing import Any

import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import ServiceProcess, car_loan_record, config
from support import settings as monitor_settings

from detectors.columns import Batch
from monitor.detection import schema_for
from monitor.reference_files import ReferenceDataError, build_reference
from monitor.settings import ModelConfig

FEATURES = [
    "car_value", "salary_range", "debt_to_income_ratio", "loan_length",
    "repaid_loan_on_prev_car", "size_of_downpayment", "driver_tenure",
]  # fmt: skip
COLUMNS = [*FEATURES, "prediction", "latency_ms", "label", "timestamp"]

# -- values and rows -------------------------------------------------------------------------
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63, max_value=2**70)
    | st.floats()
    | st.text(max_size=6)
    | st.sampled_from(["20K - 40K €", "1e309", "-inf", "NaN", "2024-05-01T12:00:00Z", "", "\x00"])
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


def good_record(i: int) -> dict[str, Any]:
    return car_loan_record(i)


@st.composite
def jsonl_bodies(draw: st.DrawFn) -> bytes:
    """Lines of records as ingested (``inputs`` objects) or flat rows, some broken: a field
    of any JSON type, a feature of any type, not an object, not JSON at all."""
    lines: list[bytes] = []
    flat = draw(st.booleans())
    for i in range(draw(st.integers(1, 8))):
        row: Any = good_record(i)
        if flat:
            row = {**row.pop("inputs"), **row}
        kind = draw(st.sampled_from(["good", "field", "feature", "drop", "value", "raw", "nonobject"]))
        if kind == "drop":  # a row without one of the features (or without inputs at all)
            target = row if flat else row["inputs"]
            target.pop(draw(st.sampled_from(FEATURES)))
            if draw(st.booleans()):
                row.pop("inputs", None)
        elif kind == "field":
            row[draw(st.sampled_from(["inputs", "prediction", "latency_ms", "timestamp", "label", "id"]))] = draw(
                json_values
            )
        elif kind == "feature":
            target = row if flat else (row["inputs"] if isinstance(row.get("inputs"), dict) else row)
            target[draw(st.sampled_from(FEATURES))] = draw(json_values)
        elif kind == "value":
            row = draw(json_values)
        if kind == "raw":
            lines.append(draw(st.binary(max_size=30)))
        elif kind == "nonobject":
            lines.append(json.dumps(draw(json_values), allow_nan=True).encode())
        else:
            lines.append(json.dumps(row, allow_nan=True).encode())
    return b"\n".join(lines)


@st.composite
def csv_bodies(draw: st.DrawFn) -> bytes:
    """A header of (some of) the columns, sometimes twice or with strangers, and rows of
    any cells: quotes, separators, newlines, numbers out of range, ragged rows."""
    header = draw(st.lists(st.sampled_from([*COLUMNS, "x", ""]), min_size=1, max_size=12))
    if draw(st.booleans()):
        header = [*FEATURES, "prediction", *header]
    cell = st.text(alphabet='ab,;"\n\r 0123456789.-eETFinaNé', max_size=8) | st.sampled_from(
        ["1e309", "-1e309", "nan", "True", "", '"', "1,2"]
    )
    rows = draw(st.lists(st.lists(cell, min_size=0, max_size=len(header) + 2), max_size=6))
    lines = [",".join(header)] + [",".join(row) for row in rows]
    return "\n".join(lines).encode("utf-8")


def _column(kind: str, n: int, draw: st.DrawFn) -> pa.Array:
    ints = st.integers(-(2**63), 2**63 - 1)
    if kind == "int":
        return pa.array(draw(st.lists(ints | st.none(), min_size=n, max_size=n)), pa.int64())
    if kind == "uint":
        return pa.array(draw(st.lists(st.integers(0, 2**64 - 1), min_size=n, max_size=n)), pa.uint64())
    if kind == "float":
        return pa.array(draw(st.lists(st.floats() | st.none(), min_size=n, max_size=n)), pa.float64())
    if kind == "string":
        return pa.array(draw(st.lists(st.text(max_size=5) | st.none(), min_size=n, max_size=n)), pa.string())
    if kind == "binary":
        return pa.array(draw(st.lists(st.binary(max_size=5) | st.none(), min_size=n, max_size=n)), pa.binary())
    if kind == "bool":
        return pa.array(draw(st.lists(st.booleans() | st.none(), min_size=n, max_size=n)), pa.bool_())
    if kind == "list":
        return pa.array(draw(st.lists(st.lists(ints, max_size=3) | st.none(), min_size=n, max_size=n)))
    if kind == "struct":
        return pa.array([{"a": draw(ints), "b": draw(st.text(max_size=3))} for _ in range(n)])
    if kind == "map":
        values = [[(draw(st.text(max_size=3)), draw(st.floats()))] for _ in range(n)]
        return pa.array(values, pa.map_(pa.string(), pa.float64()))
    if kind == "timestamp":
        return pa.array(draw(st.lists(ints | st.none(), min_size=n, max_size=n)), pa.timestamp("ns"))
    if kind == "dictionary":
        return pa.array(draw(st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n))).dictionary_encode()
    if kind == "decimal":
        return pa.array([None] * n, pa.decimal128(10, 2))
    return pa.nulls(n)


@st.composite
def parquet_bodies(draw: st.DrawFn) -> bytes:
    """Parquet files whose columns have any Arrow type (nested ones too), sometimes missing
    or extra, or files cut short or with bytes changed."""
    n = draw(st.integers(0, 5))
    names = draw(st.lists(st.sampled_from([*COLUMNS, "x"]), unique=True, max_size=12))
    if draw(st.booleans()):
        names = list(dict.fromkeys([*FEATURES, "prediction", *names]))
    kinds = ["int", "uint", "float", "string", "binary", "bool", "list", "struct", "map", "timestamp", "dictionary",
             "decimal", "null"]  # fmt: skip
    table = pa.table({name: _column(draw(st.sampled_from(kinds)), n, draw) for name in names})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    data = sink.getvalue()
    damage = draw(st.sampled_from(["none", "none", "cut", "flip"]))
    if damage == "cut" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]
    return data


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    fmt = draw(st.sampled_from(["csv", "jsonl", "parquet"]))
    body = draw({"csv": csv_bodies(), "jsonl": jsonl_bodies(), "parquet": parquet_bodies()}[fmt])
    wrap = draw(st.sampled_from(["plain", "plain", "plain", "gzip", "cut-gzip", "bytes"]))
    if wrap == "gzip":
        body = gzip.compress(body)
    elif wrap == "cut-gzip":
        body = gzip.compress(body)[:-3]
    elif wrap == "bytes":
        body = draw(st.binary(max_size=200))
    return body, fmt


MODEL: ModelConfig = monitor_settings(Path("/nonexistent")).models["car_loan"]


def invalid_utf8_parquet() -> bytes:
    """A Parquet file whose string column holds bytes that are not UTF-8 (pyarrow reads the
    file, and fails only when the values are taken: an ArrowException, a 500, until 15)."""
    columns = {name: pa.array([1.0, 2.0]) for name in [*FEATURES, "prediction"]}
    columns["salary_range"] = pa.array(["zzzz", "yyyy"])
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink, compression="none", write_statistics=False)
    return sink.getvalue().replace(b"zzzz", b"\xff\xfe\xfd\xfc")


ROW_WITHOUT_CAR_VALUE = {
    **good_record(0),
    "inputs": {k: v for k, v in good_record(0)["inputs"].items() if k != "car_value"},
}


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(body=bodies(), label=st.sampled_from([None, "label"]), latency=st.sampled_from([None, "latency_ms"]))
@example(  # the case found: a line without a feature, then "inputs": [null] (an AttributeError, a 500)
    body=(b"\n".join([orjson.dumps(ROW_WITHOUT_CAR_VALUE), orjson.dumps(good_record(1)), b'{"inputs": [null]}']), "jsonl"),
    label=None, latency=None,
)  # fmt: skip
@example(body=(invalid_utf8_parquet(), "parquet"), label=None, latency=None)
def test_malformed_bodies_raise_only_reference_data_errors(
    body: tuple[bytes, str], label: str | None, latency: str | None
) -> None:
    data, fmt = body
    try:
        profile, summary = build_reference(data, fmt, MODEL, latency_column=latency, label_column=label)
    except ReferenceDataError as exc:
        assert str(exc).strip(), "an error without a message"
        return
    assert summary["rows"] >= 1 and profile.schema.features  # profiled: a real reference
    assert all(v is None or math.isfinite(v) for v in (summary.get("performance") or {}).values())


def test_the_null_inputs_case_names_its_line_over_http(tmp_path: Path) -> None:
    # As reported: the first line lacks a feature, so the rows are read feature by feature,
    # and the third line's inputs is a list (AttributeError in detectors/columns.py: a 500).
    lines = [
        orjson.dumps(ROW_WITHOUT_CAR_VALUE),
        orjson.dumps(good_record(1)),
        orjson.dumps({**good_record(2), "inputs": [None]}),
    ]
    with ServiceProcess(tmp_path, config(tmp_path)) as service:
        answer = httpx.put(
            f"{service.url}/v1/models/car_loan/reference", content=b"\n".join(lines),
            headers={"content-type": "application/x-ndjson"},
        )  # fmt: skip
        assert answer.status_code == 400, answer.text
        assert answer.json() == {
            "detail": "reference for model 'car_loan': line 3: inputs must be a JSON object of feature values, got array"
        }
        assert httpx.get(f"{service.url}/v1/models/car_loan/references").json()["references"] == []


@pytest.mark.parametrize(
    ("lines", "detail"),
    [
        (
            [b'{"inputs": {"car_value": 1}, "prediction": 1}', b'{"inputs": "x"}'],
            "line 2: inputs must be a JSON object",
        ),
        ([b'{"inputs": {"car_value": 1}}', b"", b'{"inputs": 7}'], "line 3: inputs must be a JSON object"),
    ],
)
def test_record_lines_name_their_line(lines: list[bytes], detail: str) -> None:
    with pytest.raises(ReferenceDataError, match=detail):
        build_reference(b"\n".join(lines), "jsonl", MODEL)


def test_records_that_are_not_mappings_are_a_value_error_naming_the_record() -> None:
    """detectors/columns.py itself, for its other callers: a ValueError with a message."""
    schema = schema_for(MODEL)
    rows: list[Any] = [good_record(0), {"inputs": {"car_value": 1}}, {"inputs": [None]}]
    with pytest.raises(ValueError, match="^record 2: inputs must be a mapping of feature values, got list$"):
        Batch.from_records(rows, schema, default_timestamp=0.0)
    with pytest.raises(ValueError, match="^record 1 is not a mapping of fields, got str$"):
        Batch.from_records([good_record(0), "x"], schema, default_timestamp=0.0)
