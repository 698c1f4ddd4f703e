"""A reference built from the first N records after start-up, stored as a version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.reference_startup import reference_saver
from monitor.settings import settings_from_mapping
from monitor.store.database import Store
from monitor.store.result_sink import StoreSink


def records(rng: np.random.Generator, start: int, n: int, shift: float = 0.0) -> list[Record]:
    x = rng.normal(shift, 1.0, n)
    colour = rng.choice(["red", "green", "blue"], n)
    return [
        Record(model="m", id=str(start + i), timestamp=1000.0 + start + i, inputs={"x": float(x[i]), "colour": str(colour[i])},
               prediction=float(i % 2), has_prediction=True)
        for i in range(n)
    ]  # fmt: skip


def test_first_records_become_the_reference_and_later_ones_are_windowed(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {
            "storage": {"url": f"sqlite:///{tmp_path / 'm.db'}"},
            "models": {
                "m": {
                    "features": {"x": {"type": "numeric"}, "colour": {"type": "categorical"}},
                    "prediction": {"kind": "binary"},
                    "reference": {"from_first_records": 2000},
                    "window": {"kind": "count", "size": 1000},
                }
            },
        }
    )
    store = Store(settings.storage.url)
    pipeline = Pipeline(
        settings, Metrics(CollectorRegistry()), sinks=[StoreSink(store)], save_reference=reference_saver(store)
    )
    rng = np.random.default_rng(5)
    state = pipeline.models["m"]
    pipeline.ingest(records(rng, 0, 1500), [], "http")
    pipeline.settle()
    assert state.detector is None and state.warming_up
    pipeline.ingest(records(rng, 1500, 1500), [], "http")  # 500 more complete the reference; 1000 open window 0
    pipeline.ingest(records(rng, 3000, 2000, shift=1.0), [], "http")  # windows 1 and 2 drift
    pipeline.settle()
    (reference,) = store.references("m")
    assert (reference["version"], reference["source"], reference["active"]) == ("1", "first_records", True)
    assert reference["summary"]["rows"] == 2000
    assert state.reference_version == "1" and state.windows_evaluated == 3
    drift = {r["window_seq"]: r["drift"] for r in store.results("m", kind="feature_drift", feature="x", method="ks")}
    assert drift == {0: False, 1: True, 2: True}
    store.close()
