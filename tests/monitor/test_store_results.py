"""The store's references and detector results, against a real database (SQLite, and
PostgreSQL when MONITOR_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from monitor.store.database import Store
from monitor.store.results import _STORED_RESULT_KEYS

HASH = "0123456789abcdef" * 4


def save(store: Store, model: str = "fraud", data: bytes = b"profile", **overrides) -> str:
    options = {"content_hash": HASH, "source": "upload", "summary": {"rows": 10}} | overrides
    return store.save_reference(model, data, **options)


def result(seq: int, **overrides) -> dict:
    row = {
        "model": "fraud",
        "window_seq": seq,
        "window_start": 1000.0 + seq,
        "window_end": 1001.0 + seq,
        "reference_version": "1",
        "kind": "feature_drift",
        "feature": "amount",
        "method": "ks",
        "statistic": 0.1,
        "pvalue": 0.5,
        "threshold": 0.05,
        "drift": False,
        "n_reference": 2000,
        "n_current": 500,
        "detail": None,
    }
    return row | overrides


# -- references ----------------------------------------------------------------------


def test_versions_count_up_per_model_with_exactly_one_active(store: Store) -> None:
    assert store.active_reference("fraud") is None
    assert store.references("fraud") == []
    before = time.time()
    assert save(store, data=b"one", source="file") == "1"
    assert save(store, data=b"two", source="upload", summary={"rows": 20, "channels": [{"name": "amount"}]}) == "2"
    assert save(store, "churn", b"other") == "1"  # versions are per model
    assert save(store, data=b"three", source="cli") == "3"

    assert store.active_reference("fraud") == ("3", b"three")
    assert store.active_reference("churn") == ("1", b"other")
    listed = store.references("fraud")
    assert [(row["version"], row["active"], row["source"]) for row in listed] == [
        ("3", True, "cli"),
        ("2", False, "upload"),
        ("1", False, "file"),
    ]
    assert listed[1]["summary"] == {"rows": 20, "channels": [{"name": "amount"}]}
    assert all(before <= row["created_at"] <= time.time() and row["content_hash"] == HASH for row in listed)
    assert all("profile" not in row for row in listed)
    assert sum(row["active"] for row in listed) == 1


def test_versions_compare_as_numbers_past_nine(store: Store) -> None:
    versions = [save(store, data=f"p{i}".encode()) for i in range(11)]
    assert versions == [str(i) for i in range(1, 12)]
    assert store.active_reference("fraud") == ("11", b"p10")


def test_profile_bytes_may_be_built_for_the_assigned_version(store: Store) -> None:
    schema = Schema(features={"amount": "numeric", "country": "categorical"}, prediction_kind="binary")
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "amount": rng.lognormal(3, 1, 500),
            "country": rng.choice(["fr", "de", "es"], 500),
            "prediction": rng.uniform(0, 1, 500),
        }
    )
    profile = ReferenceProfile.from_frame(frame, schema, version="draft")
    save(store, data=b"first")

    def encode(version: str) -> bytes:
        return ReferenceProfile(profile.schema, profile.channels, version=version, params=profile.params).to_bytes()

    version = store.save_reference("fraud", encode, content_hash=profile.content_hash, source="upload", summary={})
    assert version == "2"
    stored_version, data = store.active_reference("fraud")
    loaded = ReferenceProfile.from_bytes(data)
    assert (stored_version, loaded.version, loaded.content_hash) == ("2", "2", profile.content_hash)


def test_save_reference_refuses_bad_arguments_and_keeps_the_active_one(store: Store) -> None:
    save(store, data=b"good")
    with pytest.raises(
        ValueError,
        match=r"reference of model 'fraud': source must be one of upload, file, first_records, cli, mlflow, got 'ftp'",
    ):
        save(store, source="ftp")
    with pytest.raises(ValueError, match=r"reference of model 'fraud': summary is not JSON-serialisable"):
        save(store, summary={"mean": float("nan")})
    with pytest.raises(ValueError, match=r"reference of model '': model must not be empty"):
        save(store, model="")
    with pytest.raises(ValueError, match=r"content_hash must be a string of at most 64 characters"):
        save(store, content_hash="x" * 65)
    with pytest.raises(ValueError, match=r"the profile must be non-empty bytes, got str"):
        store.save_reference("fraud", lambda version: "text", content_hash=HASH, source="cli", summary={})
    assert store.active_reference("fraud") == ("1", b"good")
    assert len(store.references("fraud")) == 1


def test_concurrent_saves_get_distinct_versions_and_leave_one_active(store: Store) -> None:
    threads, saves = 3, 4
    start = threading.Barrier(threads)
    errors: list[BaseException] = []
    versions: list[str] = []

    def work(n: int) -> None:
        start.wait()
        try:
            for i in range(saves):
                versions.append(save(store, data=f"{n}-{i}".encode()))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    assert sorted(versions, key=int) == [str(v) for v in range(1, threads * saves + 1)]
    listed = store.references("fraud")
    assert [row["version"] for row in listed if row["active"]] == [str(threads * saves)]


# -- results -------------------------------------------------------------------------


def test_results_round_trip_with_non_finite_numbers_as_null(store: Store) -> None:
    before = time.time()
    store.add_results(
        [
            result(
                3,
                statistic=float("nan"),
                pvalue=np.float64("inf"),
                threshold=np.float32(0.25),
                drift=np.bool_(True),
                n_reference=np.int64(2000),
                n_current=None,
                window_start=None,
                reference_version=4,
                detail={"bins": np.array([0.5, np.nan, np.inf]), "count": np.int32(3), 7: {"nested": float("-inf")}},
            ),
            result(3, kind="quality", feature="", method="null_rate", created_at=42.0, detail={"rate": 0.01}),
        ]
    )
    drift, quality = store.results("fraud")
    assert drift == {
        "id": drift["id"], "model": "fraud", "window_seq": 3, "window_start": None, "window_end": 1004.0,
        "reference_version": "4", "kind": "feature_drift", "feature": "amount", "method": "ks",
        "statistic": None, "pvalue": None, "threshold": 0.25, "drift": True, "n_reference": 2000,
        "n_current": None, "detail": {"bins": [0.5, None, None], "count": 3, "7": {"nested": None}},
        "created_at": drift["created_at"], "segment": "", "model_version": "",
    }  # fmt: skip
    assert before <= drift["created_at"] <= time.time()
    assert quality["created_at"] == 42.0 and quality["feature"] == "" and quality["drift"] is False
    assert quality["detail"] == {"rate": 0.01}


def test_results_are_a_time_series_with_filters(store: Store) -> None:
    # Inserted out of order: the series is ordered by window, then by insertion.
    store.add_results([result(2, method="ks"), result(0, method="ks"), result(2, method="psi", statistic=0.3)])
    store.add_results([result(1, method="ks"), result(1, feature="country", method="chi2")])
    store.add_results([result(1, kind="latency", feature="", method="p99", statistic=12.5, drift=True)])
    store.add_results([result(5, model="churn")])

    series = store.results("fraud")
    assert [(r["window_seq"], r["kind"], r["feature"], r["method"]) for r in series] == [
        (0, "feature_drift", "amount", "ks"),
        (1, "feature_drift", "amount", "ks"),
        (1, "feature_drift", "country", "chi2"),
        (1, "latency", "", "p99"),
        (2, "feature_drift", "amount", "ks"),
        (2, "feature_drift", "amount", "psi"),
    ]
    ids = [r["id"] for r in series if r["window_seq"] == 2]
    assert ids == sorted(ids)
    assert [r["window_seq"] for r in store.results("fraud", kind="feature_drift", feature="amount", method="ks")] == [
        0,
        1,
        2,
    ]
    assert [r["method"] for r in store.results("fraud", kind="latency")] == ["p99"]
    assert [r["feature"] for r in store.results("fraud", feature="country")] == ["country"]
    assert [r["window_seq"] for r in store.results("fraud", since_seq=2)] == [2, 2]
    assert [r["window_seq"] for r in store.results("fraud", since_seq=1, limit=2)] == [1, 1]
    assert store.results("fraud", kind="performance") == []
    assert [r["window_seq"] for r in store.results("churn")] == [5]
    with pytest.raises(ValueError, match="results: limit must be at least 1, got 0"):
        store.results("fraud", limit=0)


def test_latest_results_are_the_newest_window_of_each_kind(store: Store) -> None:
    store.add_results([result(seq, feature=f) for seq in range(3) for f in ("amount", "country")])
    store.add_results([result(seq, kind="latency", feature="", method="p99") for seq in (0, 1)])
    store.add_results([result(9, model="churn")])
    latest = store.latest_results("fraud")
    assert [(r["kind"], r["window_seq"], r["feature"]) for r in latest] == [
        ("feature_drift", 2, "amount"),
        ("feature_drift", 2, "country"),
        ("latency", 1, ""),
    ]
    assert store.latest_results("nobody") == []


def test_add_results_refuses_a_bad_row_and_stores_none_of_the_batch(store: Store) -> None:
    bad_rows = [
        ({"colour": "red"}, r"add_results row 1: unknown column\(s\) 'colour'"),
        ({"window_seq": 1.5}, r"add_results row 1: window_seq must be an integer, got 1.5"),
        ({"drift": 1}, r"add_results row 1: drift must be a boolean, got 1"),
        ({"statistic": "high"}, r"add_results row 1: statistic must be a number or None, got 'high'"),
        ({"n_current": 2.5}, r"add_results row 1: n_current must be an integer or None, got 2.5"),
        ({"feature": "f" * 257}, r"add_results row 1: feature must be a string of at most 256 characters"),
        ({"kind": ""}, r"add_results row 1: kind must not be empty"),
    ]
    for overrides, message in bad_rows:
        with pytest.raises(ValueError, match=message):
            store.add_results([result(0), result(1, **overrides)])
    row = result(0)
    del row["method"]
    with pytest.raises(ValueError, match=r"add_results row 0: missing column\(s\) 'method'"):
        store.add_results([row])
    store.add_results([])
    assert store.results("fraud") == []


def test_optional_columns_may_be_left_out(store: Store) -> None:
    store.add_results(
        [{"model": "fraud", "window_seq": 0, "kind": "quality", "feature": "", "method": "", "drift": True}]
    )
    (row,) = store.results("fraud")
    assert row["drift"] is True
    assert all(row[name] is None for name in ("window_start", "statistic", "detail", "reference_version", "n_current"))


def test_results_stored_already_are_not_stored_again(store: Store) -> None:
    first = [
        result(1),
        result(1, feature="country", method="chi2"),
        result(1, kind="latency", feature="", method="p99", reference_version=None),
    ]
    store.add_results(first)
    # The window evaluated again after a crash, in a batch with the next window and another model's.
    store.add_results([*first, result(2), result(1, model="churn")])
    store.add_results([result(1, reference_version="2")])  # against another reference: another result
    assert [(r["window_seq"], r["kind"], r["feature"], r["reference_version"]) for r in store.results("fraud")] == [
        (1, "feature_drift", "amount", "1"),
        (1, "feature_drift", "country", "1"),
        (1, "latency", "", None),
        (1, "feature_drift", "amount", "2"),
        (2, "feature_drift", "amount", "1"),
    ]
    assert len(store.results("churn")) == 1


def test_the_look_up_of_stored_results_is_an_index_search(tmp_path: Path) -> None:
    # Not a scan of the model's results, which grow by a window's worth every window.
    values = {"model": ["fraud"], "kind": ["quality", "latency"], "feature": ["", "amount"], "window_seq": [7]}
    query = _STORED_RESULT_KEYS.params(values)
    with Store(f"sqlite:///{tmp_path / 'monitor.db'}") as store, store.engine.connect() as conn:
        sql = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
    assert plan == [
        "SEARCH results USING INDEX ix_results_model_kind_feature_seq (model=? AND kind=? AND feature=? AND window_seq=?)"
    ]


def test_a_window_of_results_is_one_insert(store: Store) -> None:
    rows = [result(seq, feature=f"f{i}", statistic=math.sqrt(i)) for seq in range(10) for i in range(200)]
    inserts: list[bool] = []  # executemany flag of each INSERT: round trips, countable on a busy machine

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            inserts.append(executemany)

    sa.event.listen(store.engine, "before_cursor_execute", before)
    store.add_results(rows)
    sa.event.remove(store.engine, "before_cursor_execute", before)
    assert inserts == [True]  # one executemany, not 2,000 inserts
    assert len(store.results("fraud", limit=5000)) == 2000
