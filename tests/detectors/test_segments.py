"""Segment analysis: a shift diluted in the whole population is found in its slice, each
slice against its own reference rows; values bounded (pooled and counted); Bonferroni
across slices keeps no-shift data quiet; checkpoints round-trip."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from detectors.columns import Batch
from detectors.decision import DriftSettings
from detectors.evaluation import Evaluation, EvaluationSettings, evaluate_window
from detectors.model import DetectorSettings, ModelDetector
from detectors.profiles import ReferenceProfile
from detectors.schema import Schema
from detectors.segments import (
    OTHER,
    MisraGries,
    SegmentDetectors,
    SegmentSpec,
    bonferroni,
    build_slices,
    memory_bound,
    parse_slice,
    tag_columns,
)
from detectors.windows.policies import WindowPolicy

FEATURES = ("f0", "f1", "f2", "f3")
SCHEMA = Schema(dict.fromkeys(FEATURES, "numeric"))
REGIONS = [f"r{i}" for i in range(10)]
WINDOW = 2_000
REFERENCE_ROWS = 5_000  # per region
SETTINGS = DetectorSettings(policy=WindowPolicy("count", WINDOW), sample_size=WINDOW)
SPEC = SegmentSpec(("region",), max_values=20, min_reference_rows=500)


def _region_rows(rng: np.random.Generator, region: int, n: int, shift: float = 0.0) -> np.ndarray:
    """Rows of one region: its own mean (3 * i) and spread (1 + i / 10) per feature; ``shift``
    in the region's own SDs added to f0 and f1."""
    scale = 1.0 + region / 10
    x = rng.normal(3.0 * region, scale, size=(n, len(FEATURES)))
    x[:, :2] += shift * scale
    return x


def _traffic(rng: np.random.Generator, per_region: int, shifted: int | None = None, shift: float = 0.0):
    """Rows of all regions, ``per_region`` each (10% of traffic per region), interleaved: each
    run of 10 rows holds one row of every region in random order, so every window has the
    same mix of regions (a random mix moves all features of a whole-population window
    together by about the minimum effect: that is not the shift under test)."""
    parts = [_region_rows(rng, i, per_region, shift if i == shifted else 0.0) for i in range(len(REGIONS))]
    x = np.concatenate(parts)
    regions = np.repeat(np.array(REGIONS, dtype=object), per_region)
    order = np.argsort(rng.random((per_region, len(REGIONS))), axis=1) * per_region + np.arange(per_region)[:, None]
    return x[order.ravel()], regions[order.ravel()]


def _batch(x: np.ndarray, t0: float = 0.0) -> Batch:
    return Batch(
        timestamps=t0 + np.arange(len(x), dtype=float), inputs={f: x[:, j].copy() for j, f in enumerate(FEATURES)}
    )


def _reference(rng: np.random.Generator) -> ReferenceProfile:
    x, regions = _traffic(rng, REFERENCE_ROWS)
    batch, tags = _batch(x), tag_columns([{"region": r} for r in regions], ["region"])
    slices = build_slices(batch, tags, SCHEMA, SPEC)
    whole = ReferenceProfile.from_batch(batch, SCHEMA, version="1")
    return ReferenceProfile(SCHEMA, whole.channels, version="1", params=whole.params, slices=slices)


def _drifted(evaluation: Evaluation) -> list[str]:
    return sorted(evaluation.drift.drifted_features)


def test_a_diluted_shift_is_found_in_its_slice_only() -> None:
    rng = np.random.default_rng(7)
    reference = _reference(rng)
    assert sorted(reference.slices) == [f"region:{r}" for r in REGIONS]
    assert ReferenceProfile.from_bytes(reference.to_bytes()).slices.keys() == reference.slices.keys()
    whole = ModelDetector(reference, SETTINGS)
    segments = SegmentDetectors(reference, SETTINGS, SPEC)
    whole_results: list[Evaluation] = []
    slice_results: list[Evaluation] = []
    before, after = 5, 20  # region windows before and after the shift (each region 10% of traffic)
    for round_ in range(before + after):
        shift = 1.0 if round_ >= before else 0.0
        x, regions = _traffic(rng, WINDOW, shifted=3, shift=shift)
        batch = _batch(x, t0=round_ * 10 * WINDOW)
        whole_results += whole.update(batch)
        tags = tag_columns([{"region": r} for r in regions], ["region"])
        slice_results += [segments.evaluate(w) for w in segments.update(batch, tags)]
    assert len(whole_results) == 10 * (before + after)
    assert [r.window_seq for r in whole_results] == list(range(10 * (before + after)))
    assert [e.drift.n_drifted for e in whole_results] == [0] * len(whole_results)
    by_region: dict[str, list[Evaluation]] = {}
    for e in slice_results:
        by_region.setdefault(e.segment, []).append(e)
    assert sorted(by_region) == [f"region:{r}" for r in REGIONS]
    for name, results in by_region.items():
        assert [r.window_seq for r in results] == list(range(before + after)), name
        assert {r.reference_slice for r in results} == {name}
        assert {r.n for r in results} == {WINDOW}
        expected = [["f0", "f1"] if name == "region:r3" and r.window_seq >= before else [] for r in results]
        assert [_drifted(r) for r in results] == expected, name
    # Bonferroni over the 10 slices in use: each slice's tests ran at 0.05 / 10.
    shifted = by_region["region:r3"][-1]
    assert segments.evaluation_settings("region").drift.alpha == pytest.approx(0.005)
    assert all(f.test.threshold == pytest.approx(0.005) for f in shifted.drift.features if f.test is not None)
    assert segments.pooled == {"region": 0}


def test_bonferroni_keeps_the_false_alarm_rate_across_slices_at_alpha() -> None:
    """100 rounds of windows of 10 unshifted regions, with no minimum effect (the p-values
    alone decide: the worst case). A round has a false alarm when any slice flags any
    feature. Bonferroni over the 10 slices keeps such rounds at about alpha (0.05); the
    same windows judged without it alarm in far more rounds."""
    rng = np.random.default_rng(11)
    reference = _reference(rng)
    loose = DetectorSettings(
        policy=WindowPolicy("count", WINDOW),
        sample_size=WINDOW,
        evaluation=EvaluationSettings(drift=DriftSettings(min_effect_numeric=0.0)),
    )
    segments = SegmentDetectors(reference, loose, SPEC)
    corrected, uncorrected = [0] * 100, [0] * 100
    for round_ in range(100):
        x, regions = _traffic(rng, WINDOW)
        tags = tag_columns([{"region": r} for r in regions], ["region"])
        closed = segments.update(_batch(x, round_ * 1e5), tags)
        assert len(closed) == 10
        corrected[round_] = sum(segments.evaluate(w).drift.n_drifted for w in closed)
        uncorrected[round_] = sum(evaluate_window(w.window, loose.evaluation).drift.n_drifted for w in closed)
    alarmed, alarmed_raw = sum(map(bool, corrected)), sum(map(bool, uncorrected))
    print(f"rounds with a false alarm: {alarmed} of 100 with Bonferroni, {alarmed_raw} without")
    assert alarmed <= 10  # alpha = 0.05 per round; 10 leaves room for chance over 100 rounds
    assert alarmed_raw >= 3 * max(alarmed, 5)


def test_ten_thousand_distinct_values_stay_within_the_bound_and_are_pooled_exactly() -> None:
    rng = np.random.default_rng(3)
    reference = _reference(rng)
    spec = SegmentSpec(("region", "device"), max_values=20, min_reference_rows=500, admit_rows=100)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    segments = SegmentDetectors(reference, SETTINGS, spec)
    distinct: set[str] = set()
    for round_ in range(5):
        x = rng.normal(size=(10_000, len(FEATURES)))
        # 30 busy devices with 150 rows a round (20 take the slots, as soon as they pass
        # admit_rows; 10 find them taken), and 5,500 one-off devices a round; 10 regions
        devices = [f"busy-{i % 30:02d}" if i < 4_500 else f"once-{round_}-{i}" for i in range(10_000)]
        distinct.update(devices)
        tags = [{"region": REGIONS[i % 10], "device": d} for i, d in enumerate(devices)]
        segments.update(_batch(x, round_ * 1e5), tag_columns(tags, spec.keys))
    offered_distinct = len(distinct)
    del x, devices, tags, distinct  # the test's own inputs are not the detectors' state
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    probe = ModelDetector(reference, SETTINGS)  # one window filled to its sample size
    probe.update(_batch(rng.normal(size=(WINDOW - 1, len(FEATURES)))))
    assert probe.windower.open_window is not None
    window_bytes = probe.windower.open_window.nbytes
    layout_bytes = sum(
        a.nbytes for a in ModelDetector(reference.slices["region:r0"], SETTINGS).layout.reference_sorted.values()
    )
    one = _batch(np.zeros((1, len(FEATURES))))
    row_bytes = one.timestamps.nbytes + sum(a.nbytes for a in (*one.inputs.values(), *one.status.values()))
    assert segments.waiting_rows > 0  # the bound's waiting rows are there
    bound = memory_bound(spec, window_bytes, 1, layout_bytes, max_value_chars=1024, row_bytes=row_bytes)
    print(f"segment state: {used} bytes traced, bound {bound} bytes")
    assert used <= bound
    assert offered_distinct == 27_530
    assert segments.admitted["device"] == [f"busy-{i:02d}" for i in range(20)]
    assert sorted(segments.detectors["device"]) == [OTHER, *(f"busy-{i:02d}" for i in range(20))]
    assert sorted(segments.detectors["region"]) == sorted(REGIONS)
    # pooled: every row but those of the 20 admitted devices (admitted with their first 150 rows)
    assert segments.pooled == {"region": 0, "device": 50_000 - 20 * 150 * 5}
    assert len(segments.candidates["device"].counts) <= 4 * spec.max_values


def test_misra_gries_never_overcounts() -> None:
    mg = MisraGries(2)
    assert [mg.add(v, w) for v, w in [("a", 5), ("b", 1), ("c", 3), ("a", 1), ("d", 1)]] == [5, 1, 2, 5, 0]
    assert mg.counts == {"a": 4, "c": 1}


def test_segment_detectors_round_trip_a_checkpoint() -> None:
    rng = np.random.default_rng(5)
    reference = _reference(rng)
    one, two = SegmentDetectors(reference, SETTINGS, SPEC), None
    x, regions = _traffic(rng, 1_200)
    tags = tag_columns([{"region": r} for r in regions], ["region"])
    assert one.update(_batch(x), tags) == []
    two = SegmentDetectors.from_bytes(one.to_bytes(), reference, SETTINGS, SPEC)
    assert two.to_bytes() == one.to_bytes()
    x, regions = _traffic(rng, 1_200)
    tags = tag_columns([{"region": r} for r in regions], ["region"])
    a = [one.evaluate(w).to_dict() for w in one.update(_batch(x, 1e4), tags)]
    b = [two.evaluate(w).to_dict() for w in two.update(_batch(x, 1e4), tags)]
    assert len(a) == 10 and a == b
    with pytest.raises(ValueError, match="other segment settings"):
        SegmentDetectors.from_bytes(one.to_bytes(), reference, SETTINGS, SegmentSpec(("region",), max_values=5))


def test_bad_specs_and_slices_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="segments.max_values must be an integer >= 1, got 0"):
        SegmentSpec(("region",), max_values=0)
    with pytest.raises(ValueError, match="without ':'"):
        SegmentSpec(("re:gion",))
    with pytest.raises(ValueError, match="a segment is 'key:value'"):
        parse_slice("region")
    assert parse_slice("url:http://x") == ("url", "http://x")
    assert bonferroni(EvaluationSettings(), 4).drift.alpha == pytest.approx(0.0125)
