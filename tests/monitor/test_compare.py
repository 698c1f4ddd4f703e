"""monitor.compare and monitor.profile: the service's verdicts from two DataFrames, inferred
column kinds, chunked profiles, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from support import CAR_LOAN_FEATURES, ROOT

import monitor
from detectors.columns import Batch
from detectors.model import ModelDetector
from monitor.detection import detector_settings, schema_for
from monitor.frames import TableError
from monitor.reference_files import reference_from_file
from monitor.settings import settings_from_mapping

DATA = ROOT / "tests" / "data" / "car_loan"
FEATURES = list(CAR_LOAN_FEATURES)


@pytest.fixture(scope="module")
def car_loan() -> tuple[pd.DataFrame, pd.DataFrame]:
    reference = pd.read_csv(DATA / "synthetic_car_loan_reference.csv.gz")
    analysis = pd.read_csv(DATA / "synthetic_car_loan_analysis.csv.gz")
    return reference, analysis


def test_compare_gives_the_service_detectors_verdicts_on_car_loan_windows(car_loan, tmp_path: Path) -> None:
    reference, analysis = car_loan
    settings = settings_from_mapping(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'm.db'}"},
            "models": {
                "car_loan": {
                    "features": CAR_LOAN_FEATURES,
                    "prediction": {"kind": "binary"},
                    "reference": {
                        "file": str(DATA / "synthetic_car_loan_reference.csv.gz"),
                        "prediction_column": "y_pred_proba",
                    },
                    "window": {"kind": "count", "size": 5000},
                }
            },
        }
    )
    config = settings.models["car_loan"]
    profile, _ = reference_from_file(DATA / "synthetic_car_loan_reference.csv.gz", config)
    detector = ModelDetector(profile, detector_settings(config, None))
    schema = schema_for(config)
    ref = monitor.profile(reference[FEATURES])
    drifted_windows = {}
    for w in range(10):
        rows = analysis.iloc[w * 5000 : (w + 1) * 5000]
        records = [
            {"inputs": {k: row[k] for k in FEATURES}, "prediction": row["y_pred_proba"], "timestamp": 0.0}
            for row in rows.to_dict("records")
        ]
        (service,) = detector.update(Batch.from_records(records, schema))
        ours = monitor.compare(ref, rows[FEATURES])
        assert ours.current_rows == 5000 and ours.reference_rows == 50_000
        for name in FEATURES:
            theirs, mine = service.drift.feature(name), ours.features[name]
            assert (mine.test, mine.effect, mine.adjusted_pvalue, mine.drift) == (
                theirs.test,
                theirs.effect,
                theirs.adjusted_pvalue,
                theirs.drift,
            ), (w, name)
        assert ours.dataset_drift == service.drift.dataset_drift
        drifted_windows[w] = set(ours.drifted_features)
    # the known truth of the data set (tests/data/car_loan/README.md)
    drifting = {"car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"}
    assert [drifted_windows[w] for w in range(5)] == [set()] * 5
    assert [drifted_windows[w] for w in range(5, 10)] == [drifting] * 5


def test_whole_tables_one_call_and_the_frame(car_loan) -> None:
    reference, analysis = car_loan
    result = monitor.compare(reference[FEATURES], analysis[FEATURES].iloc[25_000:])
    assert result.drifted_features == ["car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"]
    assert result.dataset_drift  # 4 of 7 > 0.5
    frame = result.to_frame()
    assert list(frame.index) == FEATURES
    assert frame.loc["car_value", "method"] == "ks" and frame.loc["salary_range", "method"] == "chi_square"
    assert frame["drift"].sum() == 4
    assert result.kinds["repaid_loan_on_prev_car"] == "boolean"
    assert result.to_dict()["drifted_features"] == result.drifted_features
    assert "<table" in result.to_html() and "repaid_loan_on_prev_car" in repr(result)
    # The decision's knobs are the service's: a huge minimum effect flags nothing.
    assert monitor.compare(reference[FEATURES], analysis[FEATURES].iloc[25_000:], min_effect_numeric=10.0,
                           min_effect_categorical=1.0).drifted_features == []  # fmt: skip


def test_kinds_inferred_and_booleans_in_any_spelling_are_one_value() -> None:
    n = 600
    reference = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "k": np.arange(n) % 3,
            "city": ["paris", "rome", None] * (n // 3),
            "flag": [True, "False", "false", False, "TRUE", None] * (n // 6),
            "when": pd.date_range("2026-01-01", periods=n, freq="min"),
        }
    )
    profile = monitor.profile(reference)
    assert profile.kinds == {"x": "numeric", "k": "numeric", "city": "categorical", "flag": "boolean"}
    flag = profile.reference.channels["flag"]
    assert flag.categories == ("false", "true") and flag.counts.tolist() == [300, 200]
    assert flag.null_count == 100
    # an override: k as categories
    overridden = monitor.profile(reference, schema={"x": "numeric", "k": "categorical"})
    assert overridden.reference.channels["k"].categories == ("0", "1", "2")
    current = reference.assign(flag=[False] * n)  # bools against the reference's strings
    assert monitor.compare(reference, current).features["flag"].drift


def test_profile_from_chunks_saved_and_loaded(car_loan, tmp_path: Path) -> None:
    reference, analysis = car_loan
    chunked = monitor.Profile()
    for start in range(0, len(reference), 7_000):
        chunked.update(reference[FEATURES].iloc[start : start + 7_000])
    exact = monitor.profile(reference[FEATURES])
    assert chunked.rows == exact.rows == 50_000
    for name in FEATURES:
        mine, theirs = chunked.reference.channels[name], exact.reference.channels[name]
        assert (mine.count, mine.null_count) == (theirs.count, theirs.null_count)
        assert int(mine.counts.sum()) == int(theirs.counts.sum())
    # categories are counted exactly; numeric bins within the sketch's rank error (0.5% of rows)
    assert (
        chunked.reference.channels["salary_range"].counts.tolist()
        == exact.reference.channels["salary_range"].counts.tolist()
    )
    car = chunked.reference.channels["car_value"]
    assert car.mean == pytest.approx(reference["car_value"].mean(), rel=1e-12)
    assert car.std == pytest.approx(reference["car_value"].std(ddof=0), rel=1e-9)
    assert car.sample.size == 10_000
    path = tmp_path / "car_loan.profile"
    chunked.save(path)
    loaded = monitor.Profile.load(path)
    assert loaded.reference.content_hash == chunked.reference.content_hash and loaded.kinds == chunked.kinds
    drifted = monitor.compare(loaded, analysis.iloc[25_000:]).drifted_features
    assert drifted == ["car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"]


def test_files_are_profiled_and_compared_in_chunks(car_loan, tmp_path: Path) -> None:
    reference, analysis = car_loan
    path = tmp_path / "current.parquet"
    analysis[FEATURES].iloc[25_000:].to_parquet(path)
    profile = monitor.profile(DATA / "synthetic_car_loan_reference.csv.gz", schema=dict.fromkeys(FEATURES, "numeric")
                              | {"salary_range": "categorical", "size_of_downpayment": "categorical",
                                 "repaid_loan_on_prev_car": "boolean"})  # fmt: skip
    assert profile.rows == 50_000
    result = monitor.compare(profile, path)
    assert result.current_rows == 25_000
    assert result.drifted_features == ["car_value", "salary_range", "loan_length", "repaid_loan_on_prev_car"]


def test_bad_input_gets_a_clear_error() -> None:
    frame = pd.DataFrame({"x": np.arange(200.0), "c": ["a", "b"] * 100})
    with pytest.raises(TableError, match="column 'y' is not in the reference table"):
        monitor.compare(frame, frame, schema={"y": "numeric"})
    with pytest.raises(TableError, match="column 'c' is not in the current table"):
        monitor.compare(frame, frame[["x"]])
    with pytest.raises(TableError, match="the reference table has no rows"):
        monitor.compare(frame.iloc[:0], frame)
    with pytest.raises(TableError, match="the current table has no rows"):
        monitor.compare(frame, frame.iloc[:0])
    with pytest.raises(TableError, match=r"column 'x' of the reference has no values \(all 200 rows are null\)"):
        monitor.compare(frame.assign(x=np.nan), frame)
    with pytest.raises(TableError, match=r"column 'x' of the current table has no values \(all 200 rows are null\)"):
        monitor.compare(frame, frame.assign(x=np.nan))
    with pytest.raises(TableError, match="schema\\['x'\\] must be one of"):
        monitor.compare(frame, frame, schema={"x": "text"})
    with pytest.raises(TypeError, match="unknown decision setting 'alfa'"):
        monitor.compare(frame, frame, alfa=0.01)
    with pytest.raises(ValueError, match="alpha"):
        monitor.compare(frame, frame, alpha=2.0)
    with pytest.raises(TableError, match="no such file"):
        monitor.compare("/nonexistent/reference.csv", frame)
    with pytest.raises(TableError, match="column 'flag': 'maybe' is not a boolean value"):
        monitor.compare(frame.assign(flag=[True] * 200), frame.assign(flag=["maybe"] * 200))
