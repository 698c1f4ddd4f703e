"""What a window keeps to be drawn: its counts in the reference's bins and categories, in the
evaluation, in the store (once per window, pruned by age), and back in a page's view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from detectors.columns import Batch
from detectors.evaluation import Evaluation
from detectors.histograms import OTHER
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.windows.policies import WindowPolicy
from monitor.report.view import load_view
from monitor.store import tables as t
from monitor.store.database import Store
from monitor.store.result_sink import StoreSink, histogram_rows

SCHEMA = Schema({"amount": "numeric", "colour": "categorical"}, prediction_kind="binary")
RNG = np.random.default_rng(7)
REFERENCE = pd.DataFrame(
    {"amount": np.arange(1000, dtype=float), "colour": ["red"] * 500 + ["blue"] * 300 + ["green"] * 200,
     "prediction": [0, 1] * 500}
)  # fmt: skip
CURRENT = pd.DataFrame(
    {"amount": RNG.uniform(300, 1500, 500), "colour": ["red"] * 100 + ["blue"] * 250 + ["pink"] * 150,
     "prediction": [1] * 500}
)  # fmt: skip


def _evaluation() -> Evaluation:
    profile = ReferenceProfile.from_frame(REFERENCE, SCHEMA, version="1", bins=10)
    detector = ModelDetector(profile, DetectorSettings(policy=WindowPolicy("count", 500)))
    batch = Batch.from_frame(CURRENT, SCHEMA, default_timestamp=100.0)
    (evaluation,) = detector.update(batch)
    return evaluation


def test_an_evaluation_carries_the_counts_in_the_reference_bins_and_categories() -> None:
    evaluation = _evaluation()
    amount, colour, prediction = evaluation.histograms
    edges = np.quantile(np.arange(1000.0), np.arange(1, 10) / 10, method="inverted_cdf")
    assert amount.kind == "numeric" and amount.edges == tuple(edges)
    assert amount.reference == (100,) * 10
    expected = np.bincount(np.searchsorted(edges, CURRENT.amount, side="left"), minlength=10)
    assert amount.current == tuple(int(c) for c in expected) and sum(amount.current) == 500
    assert colour.kind == "categorical" and colour.categories == ("red", "blue", "green", OTHER)
    assert colour.reference == (500, 300, 200, 0) and colour.current == (100, 250, 0, 150)
    assert prediction.feature == "__prediction__" and sum(prediction.current) == 500


def test_the_store_keeps_each_window_once_and_a_view_reads_it_back(store: Store) -> None:
    evaluation = _evaluation()
    sink = StoreSink(store)
    sink.publish("shop", "1", evaluation)
    sink.publish("shop", "1", evaluation)  # evaluated again after a crash: not stored twice
    rows = store.histograms("shop")
    assert [(r["feature"], r["window_seq"], r["kind"]) for r in rows] == [
        ("amount", 0, "numeric"), ("colour", 0, "categorical"), ("prediction", 0, "numeric")
    ]  # fmt: skip
    assert len(rows) == 3
    assert rows[1]["data"]["current"] == [100, 250, 0, 150]
    view = load_view(store, "shop", feature="colour", histograms=True)
    assert list(view.histograms) == [("colour", evaluation.window_seq)]
    assert view.histograms[("colour", evaluation.window_seq)]["categories"] == ["red", "blue", "green", OTHER]
    assert view.features == ["amount", "colour"] and view.cells[("colour", evaluation.window_seq)].drift


def test_rows_older_than_the_retention_are_pruned_on_the_next_write(store: Store) -> None:
    first = histogram_rows("shop", _evaluation())
    store.add_histograms(first)
    with store.engine.begin() as conn:  # written two days ago
        conn.execute(sa.update(t.histograms).values(created_at=t.histograms.c.created_at - 2 * 86_400))
    later = [{**row, "window_seq": 1} for row in first]
    store.add_histograms(later, keep_seconds=86_400)
    assert [r["window_seq"] for r in store.histograms("shop")] == [1, 1, 1]


def test_a_bad_row_is_refused_naming_it(store: Store) -> None:
    row = histogram_rows("shop", _evaluation())[0]
    with pytest.raises(ValueError, match=r"add_histograms row 1: feature must be a string of at most 256"):
        store.add_histograms([row, {**row, "feature": "x" * 300}])
    with pytest.raises(ValueError, match=r"add_histograms row 0: missing column\(s\) \['data'\]"):
        store.add_histograms([{k: v for k, v in row.items() if k != "data"}])
    assert store.histograms("shop") == []
