"""Issue 17, item 3: ``type: boolean`` features. true/false in any case (JSON or strings)
and 1/0 (numbers or strings) are one pair of values in live records (item by item and
column by column) and in reference files; anything else is a per-field rejection; the
detectors see a categorical channel of "true" and "false"."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from support import PYTHON, ROOT, ServiceProcess, config, wait_for

from monitor.detection import schema_for
from monitor.records import Record
from monitor.reference_files import ReferenceDataError, build_reference
from monitor.settings import settings_from_mapping
from monitor.validation import Validator

FEATURES = {"flag": {"type": "boolean"}, "x": {"type": "numeric"}}
WINDOW = 120
REFERENCE_ROWS = 300
MESSAGE = "must be a boolean: true or false (JSON, or a string in any case), or 1 or 0 (number or string), got "


def spelled(i: int) -> Any:
    """Row i's flag, true on every third row (as in the reference), in the spellings clients send."""
    value = i % 3 == 0
    spellings = [value, str(value), str(value).upper(), int(value), str(int(value)), float(value), str(value).lower()]
    return spellings[i % len(spellings)]


def reference_csv() -> str:
    # 0/1, as a spreadsheet or a numpy export stores booleans: pandas reads an int64 column.
    rows = [f"{int(i % 3 == 0)},{i % 7},1" for i in range(REFERENCE_ROWS)]
    return "flag,x,prediction\n" + "\n".join(rows) + "\n"


def model(reference: Path) -> dict[str, Any]:
    return {"features": FEATURES, "window": {"size": WINDOW}, "reference": {"file": str(reference)}}


def records(model_name: str) -> list[dict[str, Any]]:
    return [
        {"model": model_name, "id": str(i), "inputs": {"flag": spelled(i), "x": i % 7}, "prediction": 1}
        for i in range(WINDOW)
    ]


def test_a_0_1_reference_and_every_spelling_of_traffic_compare_equal(tmp_path: Path) -> None:
    reference = tmp_path / "reference.csv"
    reference.write_text(reference_csv())
    models = {"items": model(reference), "columns": model(reference)}
    with ServiceProcess(tmp_path, config(tmp_path, models=models)) as service:
        summary = httpx.get(f"{service.url}/v1/models/items/reference", timeout=30).json()["summary"]
        flag = summary["channels"][0]
        assert (flag["name"], flag["kind"], flag["top"]) == ("flag", "categorical", [["false", 200], ["true", 100]])
        # "items": one record per call (item-by-item validation); "columns": one call of 120
        # (column-by-column validation, the non-bool spellings handed item by item).
        for record in records("items"):
            assert httpx.post(f"{service.url}/v1/records", json=record, timeout=30).json()["accepted"] == 1
        posted = httpx.post(f"{service.url}/v1/records", json=records("columns"), timeout=30).json()
        assert (posted["accepted"], posted["rejected"]) == (WINDOW, 0)
        for name in models:
            rows = wait_for(
                lambda name=name: httpx.get(
                    f"{service.url}/v1/models/{name}/results", params={"feature": "flag"}, timeout=30
                ).json()["results"],
                120,
                f"the first window of {name}",
            )
            by_method = {row["method"]: row for row in rows}
            assert by_method["unseen"]["statistic"] == 0.0, name
            assert by_method["wrong_type"]["statistic"] == 0.0, name
            assert by_method["null_increase"]["statistic"] == 0.0, name
            # 40 of 120 true, as 100 of 300 in the reference: the same distribution exactly.
            assert by_method["jensen_shannon_debiased"]["statistic"] == 0.0, name
            assert by_method["jensen_shannon_debiased"]["drift"] is False, name


def test_a_value_that_is_not_a_boolean_is_rejected_with_its_path(tmp_path: Path) -> None:
    reference = tmp_path / "reference.csv"
    reference.write_text(reference_csv())
    with ServiceProcess(tmp_path, config(tmp_path, models={"m": model(reference)})) as service:
        batch = records("m")[:20]
        bad = {3: "yes", 7: 2, 11: 0.5, 12: "", 15: "t"}
        for index, value in bad.items():
            batch[index]["inputs"]["flag"] = value
        batch[17]["inputs"]["flag"] = None  # null: a missing value, accepted
        answer = httpx.post(f"{service.url}/v1/records", json=batch, timeout=30)
        assert answer.status_code == 200
        body = answer.json()
        assert (body["accepted"], body["rejected"]) == (15, 5)
        assert body["errors"] == [
            {"index": i, "path": "inputs.flag", "reason": "invalid_value", "message": MESSAGE + repr(v)}
            for i, v in bad.items()
        ]
        alone = httpx.post(f"{service.url}/v1/records", json={**batch[3], "id": "alone"}, timeout=30)
        assert alone.status_code == 422
        assert alone.json()["errors"] == [
            {"index": 0, "path": "inputs.flag", "reason": "invalid_value", "message": MESSAGE + "'yes'"}
        ]


def _validator() -> tuple[Validator, Any]:
    settings = settings_from_mapping({"models": {"m": {"features": {**FEATURES, "c": {"type": "categorical"}}}}})
    schema = schema_for(settings.models["m"])
    return Validator(settings.limits, dict(settings.models)), lambda name: schema.features if name == "m" else None


def test_column_by_column_and_item_by_item_validation_agree() -> None:
    validator, features = _validator()
    values: list[Any] = [True, False, None, "TRUE", "false", 1, 0, 1.0, 0.0, "1", "0", "yes", 2, -1, 0.5, "", [1], {}]
    items = [
        {
            "model": "m",
            "id": str(i),
            "inputs": {"flag": value, "x": i, "c": "False" if i % 18 == 3 else "a"},
            "prediction": 1,
        }
        for i, value in enumerate(values * 3)
    ]
    one_by_one = [validator.validate(item, i, 1e9) for i, item in enumerate(items)]
    batch = validator.validate_items(items, 1e9, features=features)
    # Precondition: both paths ran (the JSON booleans and nulls stay column by column).
    columnar = {p: chunk.record(j) for chunk in batch.columns for j, p in enumerate(chunk.positions)}
    assert len(columnar) == 9 and batch.records
    together: dict[int, Any] = {**columnar, **dict(zip(batch.record_positions, batch.records, strict=True))}
    together.update({r.index: r for r in batch.rejections})
    assert sorted(together) == list(range(len(items)))
    for i, expected in enumerate(one_by_one):
        got = together[i]
        assert type(got) is type(expected), i
        if isinstance(expected, Record):
            assert got.inputs == expected.inputs, i
            assert type(got.inputs["flag"]) is type(expected.inputs["flag"]), i  # True, not 1
        else:
            assert (got.path, got.reason, got.message) == (expected.path, expected.reason, expected.message), i
    flags = [r.inputs["flag"] for r in one_by_one if isinstance(r, Record)]
    assert flags == [True, False, None, True, False, True, False, True, False, True, False] * 3
    reasons = [(r.path, r.reason) for r in one_by_one if not isinstance(r, Record)]
    assert reasons == ([("inputs.flag", "invalid_value")] * 5 + [("inputs.flag", "wrong_type")] * 2) * 3


def test_boolean_words_still_apply_to_categorical_features_and_do_not_reject() -> None:
    validator, _ = _validator()
    record = validator.validate({"model": "m", "id": "1", "inputs": {"flag": "0", "x": 1, "c": "yes"}}, 0, 1e9)
    assert isinstance(record, Record) and record.inputs == {"flag": False, "x": 1, "c": "yes"}


# --- reference files -----------------------------------------------------------------------


def _config(**feature: Any) -> Any:
    return settings_from_mapping({"models": {"m": {"features": {"flag": {"type": "boolean", **feature}}}}}).models["m"]


def _categories(data: bytes, fmt: str) -> list[list[Any]]:
    _profile, summary = build_reference(data, fmt, _config())
    return summary["channels"][0]["top"]


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (["0", "1", "1", ""], [["true", 2], ["false", 1]]),  # int64 with a null: float64 with NaN
        (["TRUE", "false", "True", "FALSE"], [["false", 2], ["true", 2]]),
        (["true", "0", "1", "False"], [["false", 2], ["true", 2]]),  # mixed: strings
    ],
)
def test_a_reference_csv_column_reads_as_records_do(column: list[str], expected: list[list[Any]]) -> None:
    data = ("flag,prediction\n" + "".join(f"{v},1\n" for v in column)).encode()
    assert _categories(data, "csv") == expected


def test_parquet_and_jsonl_references_read_alike() -> None:
    frame = pd.DataFrame({"flag": [True, False, None, True], "prediction": [1, 1, 1, 1]})
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    assert _categories(buffer.getvalue(), "parquet") == [["true", 2], ["false", 1]]
    lines = [{"inputs": {"flag": v}, "prediction": 1} for v in (1, "FALSE", True, None)]
    jsonl = "\n".join(json.dumps(line) for line in lines).encode()
    assert _categories(gzip.compress(jsonl), "jsonl") == [["true", 2], ["false", 1]]


def test_a_reference_value_that_is_not_a_boolean_refuses_the_file() -> None:
    data = b"flag,prediction\n1,1\nyes,1\n0,1\nmaybe,1\n"
    with pytest.raises(ReferenceDataError) as caught:
        build_reference(data, "csv", _config())
    assert str(caught.value) == f"column 'flag' (type: boolean), row 2: {MESSAGE}'yes' (2 rows have such values)"
    lines = b'{"inputs": {"flag": true}, "prediction": 1}\n{"inputs": {"flag": 2}, "prediction": 1}\n'
    with pytest.raises(ReferenceDataError) as caught:
        build_reference(lines, "jsonl", _config())
    assert str(caught.value) == f"record 2: inputs.flag (type: boolean) {MESSAGE}2"


def test_check_config_validates_boolean_features(tmp_path: Path) -> None:
    good, reference = tmp_path / "good.csv", tmp_path / "reference.csv"
    good.write_text("flag,prediction\nTRUE,1\n0,1\n")
    reference.write_text("flag,other,prediction\n1,1,1\n2,1,1\n")
    models = {
        "good": {"features": {"flag": {"type": "boolean"}}, "reference": {"file": str(good)}},
        "bad_value": {"features": {"flag": {"type": "boolean"}}, "reference": {"file": str(reference)}},
        "bounded": {"features": {"flag": {"type": "boolean", "max": 1}}},
        "typo": {"features": {"flag": {"type": "bool"}}},
    }
    path = tmp_path / "monitor.yaml"
    path.write_text(json.dumps({"storage": {"url": f"sqlite:///{tmp_path / 'm.db'}"}, "models": models}))
    checked = subprocess.run(
        [PYTHON, "-m", "monitor.cli", "check-config", str(path)],
        capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
    )  # fmt: skip
    assert checked.returncode == 1, checked.stderr
    problem = f"{reference}: column 'flag' (type: boolean), row 2: {MESSAGE}2"
    assert checked.stdout.splitlines() == [
        "models.bounded.features.flag: a boolean feature has no min or max (they bound numeric features)",
        "models.typo.features.flag.type: must be one of numeric, categorical, boolean, got 'bool'",
        f"models.bad_value.reference.file: {problem}",
    ]
