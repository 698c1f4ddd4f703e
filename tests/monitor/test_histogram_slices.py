"""A slice's windows (detectors.segments) keep their histograms too, stored with the slice
(migration 0014: ``histograms.segment`` in the unique key): a slice's window and the whole
population's with the same number are both stored, and each reads back apart; the rows a
page draws are the whole population's, not the slices' (whose windows are numbered apart)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import sqlalchemy as sa

from detectors.columns import Batch
from detectors.evaluation import Evaluation
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema, channel_name
from detectors.windows.policies import WindowPolicy
from monitor.detection import evaluation_rows
from monitor.store.database import Store
from monitor.store.migrate import current_revision, downgrade, upgrade
from monitor.store.result_sink import StoreSink

SCHEMA = Schema({"amount": "numeric"}, prediction_kind="binary")
REFERENCE = pd.DataFrame({"amount": np.arange(1000, dtype=float), "prediction": [0, 1] * 500})


def _evaluation(low: float) -> Evaluation:
    profile = ReferenceProfile.from_frame(REFERENCE, SCHEMA, version="1", bins=10)
    detector = ModelDetector(profile, DetectorSettings(policy=WindowPolicy("count", 500)))
    current = pd.DataFrame({"amount": np.linspace(low, low + 400, 500), "prediction": [1] * 500})
    (evaluation,) = detector.update(Batch.from_frame(current, SCHEMA, default_timestamp=100.0))
    return evaluation


def test_a_slice_and_the_whole_population_keep_their_own_histograms_of_one_window(store: Store) -> None:
    whole, eu = _evaluation(0.0), replace(_evaluation(600.0), segment="region:eu", reference_slice="whole")
    assert whole.window_seq == eu.window_seq == 0  # precondition: the same key but for the segment
    sink = StoreSink(store)
    for evaluation in (whole, eu, eu):  # the slice's window evaluated again after a crash: stored once
        sink.publish("shop", "1", evaluation)
    drawn = {
        segment: [(r["feature"], r["data"]["current"]) for r in store.histograms("shop", segment=segment)]
        for segment in ("", "region:eu")
    }
    assert drawn == {
        "": [(channel_name(h.feature), list(h.current)) for h in whole.histograms],
        "region:eu": [(channel_name(h.feature), list(h.current)) for h in eu.histograms],
    }
    assert drawn[""] != drawn["region:eu"] and sum(drawn["region:eu"][0][1]) == 500
    kinds = ("feature_drift", "dataset_drift")
    rows = store.drawn_results("shop", kinds, since_seq=0)
    assert len(rows) == len([r for r in evaluation_rows("shop", whole) if r["kind"] in kinds])  # no slice rows
    assert len(store.drawn_results("shop", kinds, since_seq=0, segment="region:eu")) == len(rows)


def test_0014_keeps_the_rows_and_the_downgrade_drops_only_the_slices(store_url: str) -> None:
    upgrade(store_url, "0013_reference_model_versions")
    engine = sa.create_engine(store_url)
    row = {"model": "shop", "reference_version": "1", "window_seq": 3, "feature": "amount", "kind": "numeric",
           "window_end": 1.0, "data": '{"current": [1]}', "created_at": 1.0}  # fmt: skip
    insert = sa.text(
        "INSERT INTO histograms (model, reference_version, window_seq, feature, kind, window_end, data, created_at)"
        " VALUES (:model, :reference_version, :window_seq, :feature, :kind, :window_end, :data, :created_at)"
    )
    with engine.begin() as conn:
        conn.execute(insert, row)
    upgrade(store_url)
    assert current_revision(store_url) == "0014_histogram_slices"
    with Store(store_url, migrate=False) as store:
        assert [(r["window_seq"], r["segment"], r["data"]) for r in store.histograms("shop")] == [
            (3, "", {"current": [1]})
        ]
        fresh = {k: v for k, v in row.items() if k != "created_at"}
        store.add_histograms([{**fresh, "data": {"current": [2]}, "segment": "region:eu"}])
        assert [r["data"] for r in store.histograms("shop", segment="region:eu")] == [{"current": [2]}]
    downgrade(store_url, "0013_reference_model_versions")
    with engine.connect() as conn:
        kept = conn.execute(sa.text("SELECT window_seq, data FROM histograms")).all()
    engine.dispose()
    # SQLite gives the JSON column's text, PostgreSQL its value.
    assert [(seq, json.loads(data) if isinstance(data, str) else data) for seq, data in kept] == [(3, {"current": [1]})]
