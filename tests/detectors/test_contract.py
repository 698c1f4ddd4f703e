"""The contract every stateful detector of :data:`detectors.registry.DETECTORS` keeps.

One suite, parametrised by registry name:

(a) invalid parameters raise ValueError naming the parameter and the bad value;
(b) nothing before warm-up: no result until a window closes, flushing an empty
    detector gives None, and a window under the detector's minimum gives no verdict;
(c) deterministic with a seed: same seed and data -> identical results and
    checkpoints; another seed -> another reservoir sample, the same counts;
(d) checkpoint -> restore -> continue gives exactly what the uninterrupted
    detector gives (mid-window, at a window boundary, and before any data);
(e) bounded state: the checkpoint after 10x more data has the same size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import FrozenInstanceError
from typing import Any

import numpy as np
import pandas as pd
import pytest

from detectors.evaluation import Evaluation
from detectors.profiles import ReferenceProfile
from detectors.registry import DETECTORS, DetectorSpec
from detectors.schema import Schema

NAMES = sorted(DETECTORS)
SCHEMA = Schema(
    {"x1": "numeric", "x2": "numeric", "x3": "numeric", "c1": "categorical", "c2": "categorical"},
    prediction_kind="binary",
    latency_column="latency_ms",
)


def _reference(n: int = 2_000) -> ReferenceProfile:
    rng = np.random.default_rng(0)
    df = pd.DataFrame(
        {
            "x1": rng.normal(0.0, 1.0, n),
            "x2": rng.gamma(2.0, 3.0, n),
            "x3": rng.uniform(-5.0, 5.0, n),
            "c1": rng.choice(np.array(["a", "b", "c", "d"], dtype=object), n, p=[0.4, 0.3, 0.2, 0.1]),
            "c2": rng.choice(np.array(["yes", "no"], dtype=object), n),
            "prediction": rng.random(n),
            "latency_ms": rng.gamma(2.0, 10.0, n),
        }
    )
    return ReferenceProfile.from_frame(df, SCHEMA, version="contract", sample_size=1_000)


REF = _reference()


def _spec(name: str) -> DetectorSpec:
    return DETECTORS[name]


def _build(spec: DetectorSpec, **overrides: Any) -> Any:
    return spec.build(REF, **{**spec.example_params, **overrides})


def _chunks(
    spec: DetectorSpec, total: int, *, seed: int = 1, first: int = 0, sizes: tuple[int, ...] = (97, 250, 13, 640)
) -> Iterator[Any]:
    """``total`` records as inputs of uneven sizes (so windows close mid-batch), reproducibly."""
    done, i = 0, 0
    while done < total:
        n = min(sizes[i % len(sizes)], total - done)
        yield spec.example(REF, n, seed * 100_003 + i, first + done)
        done, i = done + n, i + 1


def _feed(spec: DetectorSpec, det: Any, total: int, **kw: Any) -> list[Any]:
    out: list[Any] = []
    for data in _chunks(spec, total, **kw):
        out.extend(spec.feed(det, data))
    return out


def _dump(results: list[Any]) -> list[str]:
    """Results as canonical JSON text (NaN-safe equality, and proof that to_dict is JSON-able)."""
    return [json.dumps(None if r is None else r.to_dict(), sort_keys=True) for r in results]


# ---- the registry itself --------------------------------------------------------------------------
def test_registry_names_the_service_detectors() -> None:
    assert {"model", "performance"} <= set(DETECTORS)
    for name, spec in DETECTORS.items():
        assert spec.name == name
        assert spec.invalid, f"{name} documents no invalid parameters"
        assert spec.warm_up > 0
        with pytest.raises(FrozenInstanceError):
            spec.name = "other"  # type: ignore[misc]


# ---- (a) invalid parameters ------------------------------------------------------------------------
INVALID = [
    pytest.param(name, case, id=f"{name}-{case.param}-{i}")
    for name in NAMES
    for i, case in enumerate(DETECTORS[name].invalid)
]


@pytest.mark.parametrize(("name", "case"), INVALID)
def test_invalid_parameters_name_the_field_and_the_value(name: str, case: Any) -> None:
    spec = _spec(name)
    with pytest.raises(ValueError) as info:
        _build(spec, **case.params)
    message = str(info.value)
    assert case.param in message, message
    # the bad value is shown as given, in the "got ..." part of the message
    assert "got" in message and repr(case.value) in message.rsplit("got", 1)[1], message


@pytest.mark.parametrize("name", NAMES)
def test_example_parameters_are_valid(name: str) -> None:
    spec = _spec(name)
    det = _build(spec)
    assert spec.flush(det) is None


# ---- (b) nothing before warm-up ---------------------------------------------------------------------
def _no_drift_verdict(result: Evaluation) -> bool:
    drift = result.drift
    return (
        drift.n_evaluated == 0
        and not drift.dataset_drift
        and all(f.insufficient and f.test is None for f in drift.features)
        and (result.prediction is None or result.prediction.insufficient)
    )


# Records under each detector's minimum, and what a flush then gives: ModelDetector evaluates
# any non-empty window but reports every feature "insufficient" under DriftSettings.min_samples
# (100); PerformanceWindows gives no result under min_labels (100).
BELOW_MINIMUM: dict[str, tuple[int, Callable[[Any], bool]]] = {
    "model": (99, lambda r: isinstance(r, Evaluation) and r.n == 99 and _no_drift_verdict(r)),
    "performance": (99, lambda r: r is None),
}


def test_every_detector_states_its_minimum() -> None:
    assert set(BELOW_MINIMUM) == set(DETECTORS)


@pytest.mark.parametrize("name", NAMES)
def test_no_result_before_warm_up(name: str) -> None:
    spec = _spec(name)
    det = _build(spec)
    assert spec.flush(det) is None  # nothing fed: nothing to flush
    assert spec.feed(det, spec.example(REF, 0, 0, 0)) == []  # an empty input is fine
    assert spec.flush(det) is None
    assert _feed(spec, det, spec.warm_up - 1) == []
    assert int(spec.counts(det)["n"][0]) == spec.warm_up - 1
    closed = spec.feed(det, spec.example(REF, 1, 99, spec.warm_up - 1))
    assert len(closed) == 1 and closed[0] is not None
    assert spec.flush(det) is None  # the window just closed: the open one is empty


@pytest.mark.parametrize("name", NAMES)
def test_flush_below_the_minimum_gives_no_verdict(name: str) -> None:
    spec = _spec(name)
    below, no_verdict = BELOW_MINIMUM[name]
    det = _build(spec)
    assert _feed(spec, det, below) == []
    result = spec.flush(det)
    assert no_verdict(result), result


# ---- (c) deterministic with a seed --------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_results(name: str) -> None:
    spec = _spec(name)
    total = int(3.5 * spec.warm_up)
    a, b = _build(spec), _build(spec)
    ra, rb = _feed(spec, a, total), _feed(spec, b, total)
    assert len(ra) == 3
    assert _dump(ra) == _dump(rb)
    assert a is not b and spec.checkpoint(a) == spec.checkpoint(b)
    assert _dump([spec.flush(a)]) == _dump([spec.flush(b)])


@pytest.mark.parametrize("name", NAMES)
def test_other_seed_other_sample_same_counts(name: str) -> None:
    spec = _spec(name)
    if spec.seed_param is None:
        det = _build(spec)
        _feed(spec, det, spec.warm_up // 2)
        assert spec.sample(det) is None  # no randomness, nothing seeded
        pytest.skip(f"{name} is deterministic: it has no seed")
    seed = spec.example_params.get(spec.seed_param, 0)
    total = int(2.5 * spec.warm_up)
    a, b = _build(spec), _build(spec, **{spec.seed_param: seed + 1})
    ra, rb = _feed(spec, a, total), _feed(spec, b, total)
    ca, cb = spec.counts(a), spec.counts(b)
    assert ca.keys() == cb.keys()
    for key in ca:
        np.testing.assert_array_equal(ca[key], cb[key], err_msg=key)
    sa, sb = spec.sample(a), spec.sample(b)
    assert sa is not None and sb is not None and sa.shape == sb.shape
    assert not np.array_equal(sa, sb)
    assert [r.n for r in ra] == [r.n for r in rb]
    # what comes from counts is identical, what comes from the sample is not
    assert [r.quality.to_dict() for r in ra] == [r.quality.to_dict() for r in rb]
    assert [r.to_dict()["drift"] for r in ra] != [r.to_dict()["drift"] for r in rb]


# ---- (d) checkpoint -> restore -> continue ---------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [0.0, 0.37, 1.0, 1.5])
def test_restore_continues_exactly(name: str, cut: float) -> None:
    spec = _spec(name)
    first, rest = int(cut * spec.warm_up), int(2.6 * spec.warm_up)
    straight = _build(spec)
    before = _feed(spec, straight, first)
    data = spec.checkpoint(straight)
    restored = spec.restore(data, REF, **spec.example_params)
    assert spec.checkpoint(restored) == data
    np.testing.assert_equal(spec.counts(restored), spec.counts(straight))
    ra = _feed(spec, straight, rest, seed=2, first=first)
    rb = _feed(spec, restored, rest, seed=2, first=first)
    assert len(before) + len(ra) == int((cut + 2.6) * spec.warm_up) // spec.warm_up
    assert _dump(ra) == _dump(rb)
    assert spec.checkpoint(straight) == spec.checkpoint(restored)
    assert _dump([spec.flush(straight)]) == _dump([spec.flush(restored)])


# ---- (e) bounded state ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_size_does_not_grow_with_data(name: str) -> None:
    spec = _spec(name)
    w, half = spec.warm_up, spec.warm_up // 2
    det = _build(spec)
    # Checkpoints after 2.5 and after 25.5 windows, each taken with the same half window open (same
    # records, so a sparse sketch holds the same buckets): any difference is history kept by mistake.
    _feed(spec, det, 2 * w)
    _feed(spec, det, half, seed=9, first=2 * w)
    size_small = len(spec.checkpoint(det))
    _feed(spec, det, 23 * w - half, seed=3, first=2 * w + half)
    assert int(spec.counts(det)["n"][0]) == 0
    _feed(spec, det, half, seed=9, first=25 * w)
    size_large = len(spec.checkpoint(det))
    assert int(spec.counts(det)["n"][0]) == half
    # only header numbers (sequence numbers, times, RNG state digits) may change length
    assert abs(size_large - size_small) <= 32, (size_small, size_large)
