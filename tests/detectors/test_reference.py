"""Columnar batches and reference profiles: coercion counts, bins, categories, storage, files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from detectors.columns import NULL, VALID, WRONG_TYPE, Batch
from detectors.profiles import ReferenceProfile, categorical_profile, numeric_profile
from detectors.schema import LATENCY, PREDICTION, Schema


def _hand_bins(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin (-inf, e0], (e0, e1], ..., (e_last, inf), by explicit comparisons."""
    cuts = [-math.inf, *edges.tolist(), math.inf]
    return np.array([sum(1 for v in values if lo < v <= hi) for lo, hi in zip(cuts[:-1], cuts[1:], strict=True)])


# ---- batches -------------------------------------------------------------------------------------
SCHEMA = Schema({"x": "numeric", "c": "categorical"}, prediction_kind="binary", latency_column="latency_ms")


def test_from_records_encodes_null_wrong_type_nan_and_booleans() -> None:
    rows = [
        {"inputs": {"x": 1.5, "c": "a"}, "prediction": 0.2, "latency_ms": 10, "timestamp": 100},
        {"inputs": {"x": None, "c": None}, "prediction": {"no": 0.3, "yes": 0.7}, "latency_ms": None, "timestamp": 101},
        {"inputs": {"x": "3.5", "c": True}, "prediction": "high", "latency_ms": "fast", "timestamp": 102.5},
        {"inputs": {"c": 3.0}, "prediction": None, "timestamp": "1970-01-01T00:01:43Z"},
        {"inputs": {"x": float("nan"), "c": {"a": 1}}, "prediction": 1, "latency_ms": 5.0, "timestamp": 104},
        {"inputs": {"x": True, "c": 7}, "prediction": 0.9, "latency_ms": 1, "timestamp": 105},
    ]
    b = Batch.from_records(rows, SCHEMA)
    assert len(b) == 6
    np.testing.assert_array_equal(b.timestamps, [100, 101, 102.5, 103, 104, 105])
    x = b.inputs["x"]
    assert x[0] == 1.5 and x[5] == 1.0 and np.isnan(x[1:5]).all()
    np.testing.assert_array_equal(b.status["x"], [VALID, NULL, WRONG_TYPE, NULL, VALID, VALID])  # NaN given = a value
    assert b.inputs["c"].tolist() == ["a", None, "true", "3", None, "7"]
    np.testing.assert_array_equal(b.status["c"], [0, 0, 0, 0, WRONG_TYPE, 0])
    # binary score: a mapping gives the greatest key's probability ('yes' > 'no')
    np.testing.assert_allclose(b.prediction, [0.2, 0.7, np.nan, np.nan, 1.0, 0.9])
    np.testing.assert_array_equal(b.status[PREDICTION], [0, 0, WRONG_TYPE, NULL, 0, 0])
    np.testing.assert_array_equal(b.status[LATENCY], [0, NULL, WRONG_TYPE, NULL, 0, 0])


def test_from_records_prediction_kinds_and_timestamp_rules() -> None:
    multi = Schema({"x": "numeric"}, prediction_kind="multiclass")
    rows = [
        {"inputs": {"x": 1}, "prediction": {"cat": 0.2, "dog": 0.5, "eel": 0.3}, "timestamp": 1},
        {"inputs": {"x": 2}, "prediction": "cat", "timestamp": 2},
        {"inputs": {"x": 3}, "prediction": 2, "timestamp": 3},
    ]
    assert Batch.from_records(rows, multi).prediction.tolist() == ["dog", "cat", "2"]
    pos = Schema({"x": "numeric"}, prediction_kind="binary", positive_class="no")
    assert Batch.from_records([{"prediction": {"no": 0.3, "yes": 0.7}, "timestamp": 0}], pos).prediction[0] == 0.3
    with pytest.raises(ValueError, match="record 1 has no timestamp"):
        Batch.from_records([{"timestamp": 1}, {}], multi)
    assert Batch.from_records([{}], multi, default_timestamp=9.0).timestamps[0] == 9.0
    assert Batch.from_records([], multi).timestamps.shape == (0,)


def test_batch_validates_lengths_and_selects_rows_with_status() -> None:
    with pytest.raises(ValueError, match="column 'x' must be 1-D with 3 rows"):
        Batch(timestamps=np.zeros(3), inputs={"x": np.zeros(2)})
    b = Batch.from_records(
        [{"inputs": {"x": v}, "timestamp": i} for i, v in enumerate([1, None, "s", 4])], Schema({"x": "numeric"})
    )
    sub = b.select(slice(1, 3))
    np.testing.assert_array_equal(sub.status["x"], [NULL, WRONG_TYPE])
    assert len(b.select(np.array([True, False, False, True]))) == 2


def test_schema_validation_messages() -> None:
    with pytest.raises(ValueError, match=r"features\['x'\] must be 'numeric' or 'categorical', got 'text'"):
        Schema({"x": "text"})
    with pytest.raises(ValueError, match="prediction_kind must be one of"):
        Schema({}, prediction_kind="ranking")
    with pytest.raises(ValueError, match="is reserved"):
        Schema({PREDICTION: "numeric"})
    s = Schema({"b": "numeric", "a": "categorical"}, prediction_kind="multiclass")
    assert Schema.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert list(s.channels()) == ["b", "a", PREDICTION]


# ---- numeric profiles ----------------------------------------------------------------------------
def test_numeric_bins_are_reference_deciles_and_match_hand_counts() -> None:
    x = np.arange(1000, dtype=float)
    p = numeric_profile(x, None, bins=10)
    np.testing.assert_array_equal(p.edges, [99, 199, 299, 399, 499, 599, 699, 799, 899])
    np.testing.assert_array_equal(p.counts, [100] * 10)
    np.testing.assert_array_equal(p.counts, _hand_bins(x, p.edges))
    # open-ended tails: values far outside the reference still get a bin
    np.testing.assert_array_equal(p.bin_index(np.array([-1e9, 99.0, 99.5, 1e9])), [0, 0, 1, 9])
    assert (p.min, p.max, p.mean) == (0.0, 999.0, 499.5)
    assert p.std == pytest.approx(np.std(x))


def test_numeric_ties_give_no_empty_bins() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate([np.zeros(600), rng.integers(1, 4, 300).astype(float), np.full(100, 50.0)])
    p = numeric_profile(x, None, bins=10)
    assert np.all(np.diff(p.edges) > 0) and p.edges[-1] < 50.0
    assert p.counts.min() > 0 and p.counts.sum() == 1000
    np.testing.assert_array_equal(p.counts, _hand_bins(x, p.edges))
    const = numeric_profile(np.full(50, 3.0), None)
    assert const.n_bins == 1 and const.counts.tolist() == [50]


def test_numeric_quality_counts_and_bounded_seeded_sample() -> None:
    x = np.concatenate([np.arange(20_000, dtype=float), [np.nan] * 5, [np.inf, -np.inf], [np.nan] * 3])
    status = np.zeros(x.size, dtype=np.int8)
    status[20_000:20_005] = NULL
    status[20_007:] = WRONG_TYPE
    p = numeric_profile(x, status, sample_size=1_000, seed=5)
    assert (p.count, p.null_count, p.nonfinite_count, p.wrong_type_count) == (20_010, 5, 2, 3)
    assert p.null_rate == pytest.approx(5 / 20_010) and p.counts.sum() == 20_000
    assert p.sample.size == 1_000 and np.unique(p.sample).size == 1_000 and np.isfinite(p.sample).all()
    np.testing.assert_array_equal(p.sample, numeric_profile(x, status, sample_size=1_000, seed=5).sample)
    assert not np.array_equal(p.sample, numeric_profile(x, status, sample_size=1_000, seed=6).sample)
    # no status: NaN is null (pandas convention)
    q = numeric_profile(np.array([1.0, np.nan, np.inf]), None)
    assert (q.null_count, q.nonfinite_count) == (1, 1)


# ---- categorical profiles ------------------------------------------------------------------------
def test_categorical_top_k_other_tail_and_ties() -> None:
    vals = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + ["d", "e", None, None]
    col = np.array(vals, dtype=object)
    p = categorical_profile(col, None, top_k=3, max_tracked_categories=1)
    assert p.categories == ("a", "b", "c")  # equal counts: by text
    assert p.counts.tolist() == [5, 5, 3] and p.other_count == 2 and p.null_count == 2
    assert p.tail == frozenset({"d"}) and not p.tail_complete
    assert p.aligned_counts().tolist() == [5, 5, 3, 2]


# ---- whole profiles, storage, files --------------------------------------------------------------
def _frame(n: int = 2_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(10, 2, n)
    x[::97] = np.nan
    return pd.DataFrame(
        {
            "x": x,
            "c": rng.choice(["red", "green", "blue"], n),
            "flag": rng.random(n) < 0.3,
            "prediction": rng.random(n),
            "latency_ms": rng.gamma(2.0, 15.0, n),
        }
    )


FULL = Schema(
    {"x": "numeric", "c": "categorical", "flag": "categorical"}, prediction_kind="binary", latency_column="latency_ms"
)


def test_profile_has_every_channel_and_round_trips() -> None:
    ref = ReferenceProfile.from_frame(_frame(), FULL, version="2024-06-01", bins=8, sample_size=500, seed=3)
    assert list(ref.channels) == ["x", "c", "flag", PREDICTION, LATENCY]
    assert set(ref.channels["flag"].categories) == {"true", "false"}
    assert ref.channels["x"].null_count == len(range(0, 2_000, 97))
    back = ReferenceProfile.from_bytes(ref.to_bytes())
    assert back.content_hash == ref.content_hash and back.version == "2024-06-01" and back.schema == FULL
    for name, p in ref.channels.items():
        q = back.channels[name]
        np.testing.assert_array_equal(q.counts, p.counts)
        if hasattr(p, "edges"):
            np.testing.assert_array_equal(q.edges, p.edges)
            np.testing.assert_array_equal(q.sample, p.sample)
            assert (q.min, q.max, q.mean, q.std) == (p.min, p.max, p.mean, p.std)
        else:
            assert (q.categories, q.tail, q.other_count) == (p.categories, p.tail, p.other_count)


def test_content_hash_ignores_version_label_but_not_content_and_detects_corruption() -> None:
    a = ReferenceProfile.from_frame(_frame(), FULL, version=1)
    b = ReferenceProfile.from_frame(_frame(), FULL, version=2)
    c = ReferenceProfile.from_frame(_frame(seed=1), FULL, version=1)
    assert a.content_hash == b.content_hash != c.content_hash
    data = bytearray(a.to_bytes())
    data[-9] ^= 0xFF  # flip a byte of the last array
    with pytest.raises(ValueError, match="content hash mismatch"):
        ReferenceProfile.from_bytes(bytes(data))


def test_profile_parameter_validation() -> None:
    with pytest.raises(ValueError, match="bins must be an integer >= 1, got 0"):
        ReferenceProfile.from_frame(_frame(), FULL, version=1, bins=0)
    with pytest.raises(ValueError, match=r"columns missing from the table: \['c'\]"):
        ReferenceProfile.from_frame(_frame().drop(columns="c"), FULL, version=1)
    with pytest.raises(ValueError, match="version must be a str or int"):
        ReferenceProfile.from_frame(_frame(), FULL, version=None)  # type: ignore[arg-type]


def test_from_file_csv_parquet_jsonl_give_the_same_profile(tmp_path: Path) -> None:
    df = _frame(500)
    df.to_csv(tmp_path / "ref.csv", index=False)
    df.to_parquet(tmp_path / "ref.parquet")
    with (tmp_path / "flat.jsonl").open("w") as fh:
        for row in df.to_dict("records"):
            fh.write(
                json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}) + "\n"
            )
    with (tmp_path / "records.jsonl").open("w") as fh:
        for i, row in enumerate(df.to_dict("records")):
            x = None if math.isnan(row["x"]) else row["x"]
            fh.write(
                json.dumps(
                    {
                        "inputs": {"x": x, "c": row["c"], "flag": row["flag"]},
                        "prediction": row["prediction"],
                        "latency_ms": row["latency_ms"],
                        "timestamp": i,
                    }
                )
                + "\n"
            )
    hashes = {
        ReferenceProfile.from_file(tmp_path / f, FULL, version=1).content_hash
        for f in ("ref.csv", "ref.parquet", "flat.jsonl", "records.jsonl")
    }
    assert hashes == {ReferenceProfile.from_frame(df, FULL, version=1).content_hash}
    with pytest.raises(ValueError, match="unsupported reference file type '.xlsx'"):
        ReferenceProfile.from_file(tmp_path / "ref.xlsx", FULL, version=1)
