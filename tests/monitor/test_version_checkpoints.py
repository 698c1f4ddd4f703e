"""Version windows in checkpoints (monitor/version_state.py ``to_bytes`` / ``restore``,
written by monitor/model_snapshots.py): a model state with three active versions (one more
retired), open windows and champion/challenger rows waiting, round-tripped exactly; windows
taken against a reference that changed while down are dropped; a checkpoint without
versions restores with versions starting over; a Kafka-style hand-over between two
pipelines moves them; and through a real ``monitor serve``
stopped with SIGTERM, each version's open window resumes and closes with exactly its
window's rows."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from support import ServiceProcess, config, wait_for
from version_traffic import shop_records, shop_reference_csv

from detectors.columns import Batch
from detectors.evaluation import Evaluation
from detectors.profiles import ReferenceProfile
from detectors.sketches import pack, unpack
from detectors.versions import VersionDivergence
from monitor.detection import schema_for, with_version
from monitor.metrics import Metrics
from monitor.model_snapshots import dump_model, load_model
from monitor.model_state import ModelState
from monitor.pipeline import Pipeline
from monitor.records import Record
from monitor.settings import ModelConfig, settings_from_mapping
from monitor.version_pairing import Pairing

WINDOW = 200
WAIT = 120.0  # generous: the machine may be busy; never a threshold on speed


class Collected:
    def __init__(self) -> None:
        self.results: list[Any] = []

    def publish(self, model: str, reference_version: str, result: Any) -> None:
        self.results.append(result)


def _model(versions: dict[str, Any] | None) -> dict[str, Any]:
    model: dict[str, Any] = {"features": {"x": {"type": "numeric"}}, "prediction": {"kind": "regression"},
                             "window": {"size": WINDOW, "min_records": 50}}  # fmt: skip
    if versions is not None:
        model["versions"] = versions
    return model


def _config(versions: dict[str, Any] | None) -> ModelConfig:
    return settings_from_mapping({"models": {"m": _model(versions)}}).models["m"]


def _profile(config: ModelConfig, mean: float, version: str) -> ReferenceProfile:
    schema = schema_for(config)
    x = np.random.default_rng(int(mean * 10)).normal(mean, 1.0, 2_000)
    batch = Batch.from_columns(schema, np.zeros(x.size), {"x": x}, prediction=x)
    return with_version(ReferenceProfile.from_batch(batch, schema, version=version), version)


PAIRED = {"max_active": 3, "champion": "1", "challenger": "2", "agreement_tolerance": 0.5}


def _state(
    sink: Collected, versions: dict[str, Any] | None = PAIRED, own: ReferenceProfile | None = None
) -> ModelState:
    """Model m against reference "1" (mean 0); version "3" with ``own`` attached (a reference
    of its own, mean 3), as the store's are at start-up."""
    config = _config(versions)
    state = ModelState("m", config, [sink])
    state.set_reference(_profile(config, 0.0, "1"))
    if state.versions is not None:
        state.versions.attach("3", own if own is not None else _profile(config, 3.0, "2"))
    return state


NOISE = np.random.default_rng(0).normal(0.0, 1.0, 1_000)


def _records(start: int, n: int, version: str, mean: float = 0.0, shift: float = 0.0) -> list[Record]:
    """``n`` records of ``version``, ids ``id-{start}`` on (the champion and the challenger
    score the same ids), event time 1.7e9 + the record's position in the test's stream."""
    x = mean + NOISE[start : start + n]  # by id: the champion and the challenger see the same inputs
    return [
        Record("m", f"id-{start + j}", version, 1.7e9 + start + j, {"x": float(x[j])}, float(x[j] + shift),
               has_prediction=True)
        for j in range(n)
    ]  # fmt: skip


# The traffic before the checkpoint: version "0" is retired by the fourth version (max_active
# 3); "1" seen again last. 150 records in all: the whole population's window (200) stays open.
BEFORE = [("0", 0, 20, 0.0, 0.0), ("1", 20, 30, 0.0, 0.0), ("2", 20, 40, 0.0, 0.1), ("3", 60, 50, 3.0, 0.0),
          ("1", 50, 10, 0.0, 0.0)]  # fmt: skip


def _send(state: ModelState, traffic: list[tuple[str, int, int, float, float]]) -> None:
    for version, start, n, mean, shift in traffic:
        state.observe(_records(start, n, version, mean, shift), complete=True)
        state.feed()


def _versions(state: ModelState) -> list[tuple[Any, ...]]:
    assert state.versions is not None
    return [(v["version"], v["records"], v["open_window_records"], v["windows_evaluated"], v["first_seen"],
             v["last_seen"], v["reference"]) for v in state.versions.public(state.reference_version)]  # fmt: skip


def test_a_checkpoint_round_trips_the_versions_and_a_restored_state_goes_on_identically() -> None:
    one_sink, two_sink = Collected(), Collected()
    one = _state(one_sink)
    _send(one, BEFORE)
    assert one.versions is not None and one.versions.pairing is not None
    # Precondition: every version's window open with an exact number of rows, nothing evaluated.
    listing = [("1", 40, 40, 0, 1.7e9 + 20, 1.7e9 + 59, "1"), ("3", 50, 50, 0, 1.7e9 + 60, 1.7e9 + 109, "2"),
               ("2", 40, 40, 0, 1.7e9 + 20, 1.7e9 + 59, "1")]  # fmt: skip
    assert (_versions(one), one.versions.retired, list(one.versions.detectors)) == (listing, 1, ["2", "3", "1"])
    assert one_sink.results == [] and one.detector is not None and one.detector.open_records == 150
    waiting, _ = one.versions.pairing.state()
    assert [len(waiting["rows"][role]["ids"]) for role in ("champion", "challenger")] == [40, 40]

    data = dump_model(one, [], {})
    two = _state(two_sink)
    hooked: list[str] = []
    assert two.versions is not None
    two.versions.on_new_version = hooked.append  # versions without their own reference ask for one again
    load_model(two, data, {})
    assert (_versions(two), two.versions.retired, list(two.versions.detectors)) == (listing, 1, ["2", "3", "1"])
    assert two.versions.pairing is not None and two.versions.pairing.state()[0] == waiting
    assert two.versions.to_bytes() == one.versions.to_bytes()  # the windows' samples and RNG states too
    assert hooked == ["2", "1"]

    # The rest: 50 more rows (200 in all) close the whole population's window, and the
    # champion's and challenger's rows are compared over it; "1" and "2" then fill their windows.
    after = [("2", 110, 50, 0.0, 0.1), ("1", 160, WINDOW - 40, 0.0, 0.0), ("2", 160, WINDOW - 90, 0.0, 0.1)]
    for state in (one, two):
        _send(state, after)
    for sink in (one_sink, two_sink):
        divergences = [
            (r.n_champion, r.n_challenger, r.pairs, r.agreed) for r in sink.results if isinstance(r, VersionDivergence)
        ]
        # First whole window: the 40 ids of each waiting at the checkpoint, 50 more of "2" (ids
        # 110-159, not scored by "1"); the second (event times 160-319): ids 160-319 of "1",
        # 160-269 of "2" (all of its rows so far: they were counted before the window closed).
        assert divergences == [(40, 90, 40, 40), (160, 110, 110, 110)]
        own = [
            (r.model_version, r.window_seq, r.n) for r in sink.results if isinstance(r, Evaluation) and r.model_version
        ]
        assert own == [("1", 0, WINDOW), ("2", 0, WINDOW)]
    assert [v[:4] for v in _versions(two)] == [("2", WINDOW, 0, 1), ("1", WINDOW, 0, 1), ("3", 50, 50, 0)]
    assert two.versions.to_bytes() == one.versions.to_bytes()


def test_windows_of_a_reference_changed_while_down_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    one = _state(Collected())
    _send(one, BEFORE)
    data = dump_model(one, [], {})
    config = _config(PAIRED)
    # Version 3's own reference replaced while the service was down: its window was against the old one.
    two = _state(Collected(), own=_profile(config, 4.0, "3"))
    with caplog.at_level(logging.WARNING, "monitor.version_state"):
        load_model(two, data, {})
    assert [v[:3] for v in _versions(two)] == [("1", 40, 40), ("2", 40, 40)]
    assert two.versions is not None and two.versions.retired == 1
    assert "model m version 3: window of the checkpoint not restored" in caplog.text
    assert "another reference profile" in caplog.text
    # The model's own reference replaced: every version without its own starts over, "3" resumes.
    caplog.clear()
    three = _state(Collected())
    three.set_reference(_profile(config, 0.5, "4"))
    with caplog.at_level(logging.WARNING, "monitor.version_state"):
        load_model(three, data, {})
    assert [v[:3] for v in _versions(three)] == [("3", 50, 50)]
    dropped = [r.message.split(":")[0] for r in caplog.records if r.name == "monitor.version_state"]
    assert dropped == ["model m version 2", "model m version 1"]
    # The next record of version 1 starts new windows against the new reference.
    _send(three, [("1", 200, 5, 0.0, 0.0)])
    assert [v[:3] + v[-1:] for v in _versions(three)] == [("1", 5, 5, "4"), ("3", 50, 50, "2")]


def test_a_checkpoint_without_versions_restores_with_versions_starting_over() -> None:
    old = _state(Collected(), versions=None)  # as a checkpoint written before versions were in them
    _send(old, BEFORE)
    data = dump_model(old, [], {})
    two = _state(Collected())
    _send(two, [("1", 0, 10, 0.0, 0.0)])
    load_model(two, data, {})
    assert two.versions is not None and (_versions(two), two.versions.retired) == ([], 0)
    assert two.versions.pairing is not None and two.versions.pairing.state()[0]["rows"]["champion"]["ids"] == []
    assert (two.records, two.detector is not None and two.detector.open_records) == (150, 150)


def test_a_hand_over_moves_the_versions_to_the_next_owner() -> None:
    """The Kafka collector's hand-over, in process: the checkpoint written when partitions are
    given up, the old owner's versions forgotten (its records are read again elsewhere), the
    new owner's restored; the rest of the traffic there closes each window exactly once."""
    pipelines, sinks = [], []
    for _ in range(2):
        sink = Collected()
        settings = settings_from_mapping({"models": {"m": _model(PAIRED)}, "server": {"evaluation": "thread"}})
        pipeline = Pipeline(settings, Metrics(CollectorRegistry()), sinks=[sink])
        pipeline.set_reference("m", _profile(_config(PAIRED), 0.0, "1"))
        pipelines.append(pipeline)
        sinks.append(sink)
    old, new = pipelines
    for version, start, n, mean, shift in BEFORE:
        old.ingest(_records(start, n, version, mean, shift), [], "kafka")
    old.settle()
    [data] = old.checkpoint(["m"], handover=True).values()
    old.release("m")
    gone = old.models["m"].versions
    assert gone is not None and gone.pairing is not None
    assert (gone.public("1"), gone.retired, gone.pairing.state()[0]["rows"]["champion"]["ids"]) == ([], 0, [])
    new.restore("m", data)
    versions = new.models["m"].versions
    assert versions is not None
    # One batch of 150 rows here (the pipeline hands rows on 256 at a time): versions in order of first appearance.
    assert ([v["version"] for v in versions.public("1")], versions.retired) == (["3", "2", "1"], 1)
    new.ingest(_records(160, WINDOW - 40, "1"), [], "kafka")
    new.settle()
    own = [
        (r.model_version, r.window_seq, r.n) for r in sinks[1].results if isinstance(r, Evaluation) and r.model_version
    ]
    assert (own, [r for r in sinks[0].results if isinstance(r, Evaluation) and r.model_version]) == (
        [("1", 0, WINDOW)],
        [],
    )


def _through_bytes(pairing: Pairing) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    header, arrays = pairing.state()
    return unpack(pack({"pairing": header}, arrays))[0]["pairing"], unpack(pack({}, arrays))[1]


def test_pairing_rows_round_trip_with_class_names_and_stay_within_the_cap() -> None:
    one = Pairing("a", "b", cap=5, threshold=None, tolerance=0.0)
    ids = _objects(["i0", None, "i2", "i3"])
    one.add("a", np.arange(4.0), _objects(["cat", "dog", None, "cat"]), ids)
    one.add("b", np.arange(2.0), np.array([0.25, np.nan]), ids[:2])
    one.add("b", np.arange(2.0, 6.0), np.array([1.0, 2.0, 3.0, 4.0]), ids)  # one past the cap
    header, arrays = _through_bytes(one)
    assert (header["overflow"], header["rows"]["champion"], header["rows"]["challenger"]["predictions"]) == (
        1, {"ids": ["i0", None, "i2", "i3"], "predictions": ["cat", "dog", None, "cat"]}, None
    )  # fmt: skip
    assert arrays["challenger.predictions"].tolist()[2:] == [1.0, 2.0, 3.0] and np.isnan(
        arrays["challenger.predictions"][1]
    )
    same = Pairing("a", "b", cap=5, threshold=None, tolerance=0.0)
    same.restore(header, arrays)
    again, again_arrays = _through_bytes(same)
    assert again == header and {k: v.tobytes() for k, v in again_arrays.items()} == {
        k: v.tobytes() for k, v in arrays.items()
    }
    smaller = Pairing("a", "b", cap=3, threshold=None, tolerance=0.0)
    smaller.restore(header, arrays)  # fewer rows may wait now: the rest counted as overflow
    kept, kept_arrays = _through_bytes(smaller)
    assert (kept["overflow"], kept["rows"]["champion"]["predictions"], kept["rows"]["challenger"]["ids"]) == (
        1 + 1 + 2, ["cat", "dog", None], ["i0", None, "i0"]
    )  # fmt: skip
    assert kept_arrays["challenger.timestamps"].tolist() == [0.0, 1.0, 2.0]
    other = Pairing("a", "c", cap=5, threshold=None, tolerance=0.0)
    other.restore(header, arrays)  # another challenger: the rows are not its
    assert (other.overflow, _through_bytes(other)[0]["rows"]["challenger"]["ids"]) == (0, [])


def _objects(values: list[Any]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


# -- through a real service ------------------------------------------------------------------
SERVICE_WINDOW = 1_000
OPEN = {"1": 600, "2": 700}  # each version's rows before the stop: its window open


def _listing(http: httpx.Client) -> dict[str, tuple[int, int, int, float | None]]:
    body = http.get("/v1/models/shop/versions").json()
    return {
        v["version"]: (v["records"], v["open_window_records"], v["windows_evaluated"], v["first_seen"])
        for v in body["versions"]
    }


def test_version_windows_resume_after_sigterm_through_a_real_service(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    model = {
        "features": {"a": {"type": "numeric"}, "b": {"type": "numeric"}},
        "prediction": {"kind": "regression"},
        "window": {"size": SERVICE_WINDOW, "min_records": 100},
        "versions": {"max_active": 2},
    }
    # One checkpoint an hour: only the one written at SIGTERM counts here.
    data = config(tmp_path, storage={"checkpoint_seconds": 3600}, models={"shop": model})
    csv = {"content-type": "text/csv"}
    means = {"1": 0.0, "2": 3.0}
    first = {"1": 0, "2": OPEN["1"]}  # ids and event times: v1's rows, then v2's
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        v1, v2 = shop_reference_csv(rng, 0.0, 3_000), shop_reference_csv(rng, 3.0, 3_000)
        assert http.put("/v1/models/shop/reference", content=v1, headers=csv).status_code == 201
        assert http.put("/v1/models/shop/versions/2/reference", content=v2, headers=csv).status_code == 201
        for version in ("1", "2"):
            body = shop_records(rng, means[version], version, first[version], OPEN[version])
            assert http.post("/v1/records", json=body).json()["accepted"] == OPEN[version]
        before = {v: (OPEN[v], OPEN[v], 0, 1.7e9 + first[v]) for v in ("1", "2")}
        # Precondition: each version's window is open with exactly its rows when the stop comes.
        wait_for(lambda: _listing(http) == before, WAIT, "each version's rows in its open window")
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
        assert "shut down cleanly" in service.log()
    sent = OPEN["1"] + OPEN["2"]
    with ServiceProcess(tmp_path, data) as service, httpx.Client(base_url=service.url, timeout=60) as http:
        assert _listing(http) == before  # restored, not started over
        for version in ("1", "2"):
            rest = SERVICE_WINDOW - OPEN[version]
            body = shop_records(rng, means[version], version, sent, rest)
            assert http.post("/v1/records", json=body).json()["accepted"] == rest
            sent += rest

        def closed() -> list[dict] | None:
            own = [
                row
                for version in ("1", "2")
                for row in http.get(
                    "/v1/models/shop/results", params={"kind": "dataset_drift", "version": version}
                ).json()["results"]
            ]
            return own if len(own) == 2 else None

        results = wait_for(closed, WAIT, "both versions' windows evaluated")
        # One window each, of the rows before the stop and the rest after it: it resumed.
        assert sorted((r["model_version"], r["window_seq"], r["n_current"], r["reference_version"]) for r in results) == [
            ("1", 0, SERVICE_WINDOW, "1"), ("2", 0, SERVICE_WINDOW, "2")
        ]  # fmt: skip
        after = {v: (SERVICE_WINDOW, 0, 1, 1.7e9 + first[v]) for v in ("1", "2")}
        assert wait_for(lambda: _listing(http) == after, WAIT, "the versions' counts")
        assert service.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
