"""Issue 17, item 3: "true"/"false" in any case are booleans, in live records (item by
item and column by column) and in reference files, so that Python's ``str(False)`` is not
an unseen category against a reference that spells it ``false``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import client, settings, wait_for

from monitor.settings import load_settings
from monitor.validation import Validator

FEATURES = {"flag": {"type": "categorical"}, "x": {"type": "numeric"}}
WINDOW = 120


def spelled(i: int) -> Any:
    """Row i's flag, true on every third row, in one of the spellings clients send."""
    value = i % 3 == 0
    return [value, str(value), str(value).upper(), str(value).lower()][i % 4]


def reference_csv() -> str:
    # "maybe" keeps pandas from reading the column as booleans: the words stay strings.
    rows = [f"{spelled(i) if i % 10 else 'maybe'},{i % 7},1" for i in range(300)]
    return "flag,x,prediction\n" + "\n".join(rows) + "\n"


def test_validation_turns_boolean_words_into_booleans(tmp_path: Path) -> None:
    validator = Validator(load_settings(None).limits, {"m"})
    item = {"model": "m", "id": "1", "inputs": {"a": "False", "b": "TRUE", "c": "falsey", "d": "true "}}
    record = validator.validate(item, 0, 0.0)
    assert record.inputs == {"a": False, "b": True, "c": "falsey", "d": "true "}  # type: ignore[union-attr]
    assert item["inputs"]["a"] == "False"  # the caller's item is kept as sent


@pytest.mark.parametrize("batch", [1, WINDOW], ids=["item by item", "column by column"])
def test_str_false_is_the_reference_false(tmp_path: Path, batch: int) -> None:
    config = settings(tmp_path, models={"m": {"features": FEATURES, "window": {"size": WINDOW}}})
    with client(config) as (http, _):
        put = http.put("/v1/models/m/reference", content=reference_csv(), headers={"content-type": "text/csv"})
        assert put.status_code == 201
        categories = http.get("/v1/models/m/reference").json()["summary"]["channels"][0]
        assert sorted(category for category, _ in categories["top"]) == ["false", "maybe", "true"]
        records = [
            {"model": "m", "id": str(i), "inputs": {"flag": spelled(i) if i % 10 else "maybe", "x": i % 7},
             "prediction": 1}
            for i in range(WINDOW)
        ]  # fmt: skip
        for start in range(0, WINDOW, batch):
            assert http.post("/v1/records", json=records[start : start + batch]).json()["accepted"] == batch
        rows = wait_for(
            lambda: http.get("/v1/models/m/results", params={"feature": "flag"}).json()["results"], 60, "results"
        )
        by_method = {row["method"]: row for row in rows}
        assert by_method["unseen"]["statistic"] == 0.0
        assert by_method["wrong_type"]["statistic"] == 0.0
        assert by_method["jensen_shannon_debiased"]["statistic"] == 0.0
        assert by_method["jensen_shannon_debiased"]["drift"] is False
