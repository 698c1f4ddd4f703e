"""What the label buffer keeps of a prediction: what a late label needs for the
performance windows (the positive class's score, the arg-max class), not the whole class ->
probability mapping, with exactly the performance results keeping the whole mapping gives."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from detectors.performance import PerformanceResult
from detectors.profiles import ReferenceProfile
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.settings import settings_from_mapping

CLASSES = ["a", "b", "c"]
NOW = 1_700_001_000.0


class Results:
    """A result sink keeping the performance results."""

    def __init__(self) -> None:
        self.performance: list[PerformanceResult] = []

    def publish(self, model: str, reference_version: str, result: object) -> None:
        if isinstance(result, PerformanceResult):
            self.performance.append(result)


def _pipeline(kind: str) -> tuple[Pipeline, Results]:
    model: dict[str, Any] = {
        "features": {"x": {"type": "numeric"}},
        "prediction": {"kind": kind, **({"classes": CLASSES} if kind == "multiclass" else {})},
        "performance": {"window_size": 100, "min_labels": 100},
    }
    settings = settings_from_mapping({"models": {"m": model}, "server": {"evaluation": "thread"}})
    results = Results()
    pipeline = Pipeline(settings, Metrics(CollectorRegistry()), sinks=[results], clock=lambda: NOW)
    rng = np.random.default_rng(1)
    predictions: Any = {
        "binary": rng.random(500),
        "multiclass": rng.choice(CLASSES, 500),
        "regression": rng.normal(size=500),
    }[kind]
    rows = pd.DataFrame({"x": rng.normal(size=500), "prediction": predictions})
    pipeline.set_reference("m", ReferenceProfile.from_frame(rows, pipeline.models["m"].schema, version="1"))
    return pipeline, results


def _prediction(kind: str, rng: random.Random) -> Any:
    """Mostly mappings, with the odd cases: ties, the positive class or every class missing,
    an unknown class winning, plain values."""
    roll = rng.random()
    if kind == "binary":
        p = round(rng.random(), 3)
        return rng.choice([{"0": 1 - p, "1": p}, {"1": p, "0": 1 - p}, {"0": p}, {}, p]) if roll < 0.9 else 1
    if kind == "multiclass":
        probabilities = [round(rng.random(), 2) for _ in CLASSES]
        if roll < 0.1:
            return rng.choice(CLASSES)
        if roll < 0.2:
            return {"d": 0.9, "a": 0.1}
        if roll < 0.3:
            return {"a": 0.4, "b": 0.4, "c": 0.2}  # a tie: the first wins
        return dict(zip(CLASSES, probabilities, strict=True))
    return {"a": 0.5} if roll < 0.2 else round(rng.gauss(0, 1), 3)


def _label(kind: str, rng: random.Random) -> Any:
    return {"binary": rng.choice([0, 1]), "multiclass": rng.choice(CLASSES), "regression": round(rng.gauss(0, 1), 3)}[
        kind
    ]


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_late_labels_give_the_same_performance_as_with_whole_predictions(kind: str) -> None:
    rng = random.Random(kind)
    items = [
        {"model": "m", "id": f"r{i}", "timestamp": 1_700_000_000 + i, "inputs": {"x": rng.random()},
         "prediction": _prediction(kind, rng)}
        for i in range(600)
    ]  # fmt: skip
    labels = [Record(model="m", id=f"r{i}", label=_label(kind, rng), has_label=True) for i in range(600)]
    rng.shuffle(labels)

    whole, expected = _pipeline(kind)
    whole._labels._keep = None  # the buffer as it was: every prediction kept whole
    kept, _ = _pipeline(kind)
    for pipeline in (whole, kept):
        pipeline.ingest_items(items[:400], "http", NOW)  # validated column-wise
        records = [pipeline.validator.validate(item, i, NOW) for i, item in enumerate(items[400:])]
        assert all(type(r) is Record for r in records)
        pipeline.ingest(records, [], "http")  # one record at a time
    assert kept._labels._awaiting.keys() == whole._labels._awaiting.keys()
    assert not any(isinstance(entry[0], Mapping) for entry in kept._labels._awaiting.values())
    assert sum(isinstance(entry[0], Mapping) for entry in whole._labels._awaiting.values()) > 100
    assert kept._labels.bytes < whole._labels.bytes

    # What kept predictions become in a handover checkpoint, and whole ones from a
    # checkpoint written before predictions were kept small, once put back.
    after_kept, got_kept = _pipeline(kind)
    after_kept.restore("m", kept.checkpoint(["m"], handover=True)["m"])
    after_whole, got_whole = _pipeline(kind)
    after_whole.restore("m", whole.checkpoint(["m"], handover=True)["m"])
    assert after_whole._labels._awaiting == after_kept._labels._awaiting
    for pipeline in (whole, kept, after_kept, after_whole):
        pipeline.ingest(labels, [], "http")
        pipeline.settle()
    got = kept._sinks[0]
    assert isinstance(got, Results)
    # 600 labelled predictions, windows of 100 counted ones (a prediction without a score,
    # or a mapping as a regression prediction, is skipped, as before).
    assert len(expected.performance) == (6 if kind == "multiclass" else 4)
    assert repr(got.performance) == repr(expected.performance)
    assert repr(got_kept.performance) == repr(got_whole.performance) == repr(expected.performance)
