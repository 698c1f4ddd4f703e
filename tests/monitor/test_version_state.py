"""Per-version windows in a real Pipeline (monitor/version_state.py): the bound on active
versions (least recently seen retired, counted), a reference attached to one version, shadow
traffic keyed by id and version on both ingest paths (records and columns), and the agreement
of the ids both versions scored as a hand count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from prometheus_client import CollectorRegistry

from detectors.columns import Batch
from detectors.evaluation import Evaluation
from detectors.profiles import ReferenceProfile
from detectors.versions import VersionDivergence
from monitor.cli import main
from monitor.detection import schema_for, with_version
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.settings import settings_from_mapping
from monitor.store.database import Store

WINDOW = 200


class Collected:
    def __init__(self) -> None:
        self.results: list[Any] = []

    def publish(self, model: str, reference_version: str, result: Any) -> None:
        self.results.append(result)


def _pipeline(versions: dict[str, Any]) -> tuple[Pipeline, Collected]:
    model = {"features": {"x": {"type": "numeric"}}, "prediction": {"kind": "regression"},
             "window": {"size": WINDOW, "min_records": 50}, "versions": versions}  # fmt: skip
    settings = settings_from_mapping({"models": {"m": model}, "server": {"evaluation": "thread"}})
    sink = Collected()
    return Pipeline(settings, Metrics(CollectorRegistry()), sinks=[sink]), sink


def _profile(pipeline: Pipeline, mean: float, version: str) -> ReferenceProfile:
    schema = schema_for(pipeline.configs["m"])
    x = np.random.default_rng(0).normal(mean, 1.0, 2_000)
    batch = Batch.from_columns(schema, np.zeros(x.size), {"x": x}, prediction=x)
    return with_version(ReferenceProfile.from_batch(batch, schema, version=version), version)


def _record(i: int, version: str | None, x: float, prediction: float | None = None) -> Record:
    p = x if prediction is None else prediction
    return Record("m", f"id-{i}", version, 1.7e9 + i, {"x": x}, p, has_prediction=True)


def test_bound_retires_the_least_recently_seen_and_a_version_uses_its_own_reference() -> None:
    pipeline, sink = _pipeline({"max_active": 2})
    pipeline.set_reference("m", _profile(pipeline, 0.0, "1"))
    versions = pipeline.models["m"].versions
    assert versions is not None
    versions.attach("b", _profile(pipeline, 5.0, "2"))
    rng = np.random.default_rng(4)
    sent = 0
    for version, mean in (("a", 0.0), ("b", 5.0), (None, 0.0), ("c", 0.0)):
        records = [_record(sent + j, version, float(rng.normal(mean, 1.0))) for j in range(WINDOW)]
        pipeline.ingest(records, [], "test")
        pipeline.settle()
        sent += WINDOW
    own = [r for r in sink.results if isinstance(r, Evaluation) and r.model_version]
    assert [(r.model_version, r.window_seq, r.reference_version, r.n, r.drift.dataset_drift) for r in own] == [
        ("a", 0, "1", WINDOW, False), ("b", 0, "2", WINDOW, False), ("c", 0, "1", WINDOW, False)
    ]  # fmt: skip
    # Three versions through max_active 2: "a", the least recently seen, retired; no-version rows in none.
    assert (list(versions.detectors), versions.retired) == (["b", "c"], 1)
    whole = [r for r in sink.results if isinstance(r, Evaluation) and not r.model_version]
    assert [r.n for r in whole] == [WINDOW] * 4


def test_shadow_traffic_is_not_duplicate_on_either_path_and_agreement_is_a_hand_count() -> None:
    pipeline, sink = _pipeline({"champion": "1", "challenger": "2", "agreement_tolerance": 0.5})
    pipeline.set_reference("m", _profile(pipeline, 0.0, "1"))
    rng = np.random.default_rng(8)
    x = rng.normal(0.0, 1.0, WINDOW // 2)
    offsets = np.where(np.arange(WINDOW // 2) % 3 == 0, 0.2, 2.0)  # ids 0, 3, 6, ... agree
    records = []
    for j in range(WINDOW // 2):
        records.append(_record(j, "1", float(x[j])))
        records.append(_record(j, "2", float(x[j]), float(x[j] + offsets[j])))
    first = pipeline.ingest(records[: WINDOW // 2], [], "test")  # the Record path
    items = [
        {"model": "m", "id": r.id.split("\x1f")[0], "version": r.version, "timestamp": r.timestamp,
         "inputs": r.inputs, "prediction": r.prediction}
        for r in records[WINDOW // 2 :]
    ]  # fmt: skip
    second = pipeline.ingest_items(items, "test", 1.7e9)  # the column path
    pipeline.settle()
    assert (first.duplicates, second.duplicates, first.accepted + second.accepted) == (0, 0, WINDOW)
    again = pipeline.ingest([_record(0, "2", 0.0)], [], "test")  # the same id and version again: a duplicate
    assert again.duplicates == 1
    [result] = [r for r in sink.results if isinstance(r, VersionDivergence)]
    agreed = int(np.sum(np.abs(offsets) <= 0.5))
    assert (result.pairs, result.agreed, agreed) == (WINDOW // 2, agreed, 34)
    assert (result.n_champion, result.n_challenger, result.drift) == (WINDOW // 2, WINDOW // 2, True)


def test_cli_sets_a_versions_reference_beside_the_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(2)
    model = {"features": {"x": {"type": "numeric"}}, "prediction": {"kind": "regression"}}
    data = {"storage": {"url": f"sqlite:///{tmp_path / 'monitor.db'}"},
            "models": {"m": {**model, "versions": {"max_active": 3}}, "plain": model}}  # fmt: skip
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(data))
    files = []
    for name, mean in (("model.csv", 0.0), ("v2.csv", 4.0)):
        x = rng.normal(mean, 1.0, 300)
        pd.DataFrame({"x": x, "prediction": x}).to_csv(tmp_path / name, index=False)
        files.append(str(tmp_path / name))
    assert main(["reference", "set", "m", files[0], "--config", str(config_file)]) == 0
    assert main(["reference", "set", "m", files[1], "--config", str(config_file), "--version", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].startswith("model m: reference version 2 of model version 2 stored (300 rows")
    assert main(["reference", "set", "plain", files[1], "--config", str(config_file), "--version", "2"]) == 2
    assert "model 'plain' has no per-version windows" in capsys.readouterr().err
    with Store(data["storage"]["url"]) as store:
        assert [r["version"] for r in store.references("m")] == ["1"]  # the model's own only
        assert store.active_reference("m") is not None and store.active_reference("m")[0] == "1"
        assert {v: number for v, (number, _) in store.version_references("m").items()} == {"2": "2"}
