"""Segment and version analysis cost: update and evaluation with 10 and 100 segment values,
and with 1, 2 and 5 active model versions and a champion/challenger pair, as ratios
against the run without them in the same process.

    python benchmarks/segments.py [--records N] [--repeats R] [--only segments|versions] [--quick]

One synthetic model (seeded): 10 numeric features, a reference of 100,000 rows whose
``region`` tag takes V values (each value's rows have their own mean), so every value
has a reference slice of its own (``min_reference_rows`` 500). Traffic: N records
(default 2,000,000: each of 100 values then closes two windows) in batches of 1,000, tumbling windows of 10,000 records, V values
equally busy (``max_values`` = V). Measured, medians of R runs (wall clock):

* update: ``ModelDetector.update`` (whole population) alone, against the same plus
  ``SegmentDetectors.update`` (counting only: the slices' closed windows are kept);
* evaluation: evaluating every window that closed (whole; whole plus slices).

Each slice gets 1/V of the traffic, so with count windows it closes a window every
10,000 * V records: the evaluation ratio is about (1 + number of slice windows / whole
windows).

Versions (monitor/version_state.py, the pipeline's own ``ModelVersions``): the same model
with a regression prediction channel; the traffic's ``version`` takes K values equally
often (``versions.max_active`` 5), each version with windows of its own against the
model's reference. Measured: ``ModelDetector.update`` alone against the same plus
``ModelVersions.update`` (its closed windows queued, not evaluated), and the evaluation of
every closed window (whole; whole plus versions). Champion/challenger: versions 1 and 2 of
shadow traffic (each request scored by both, one id), paired over each whole window
(``ModelVersions.window_closed``: the rows taken during the update, the two-sample test
and agreement count with the evaluation).

Each row is the median and range (min-max) over R runs of the ratio to the run without
segments or versions with the same seed, run just before it. Timings on a shared 2-core
machine are noisy: read the ratios, not the absolute numbers, and run again on a quiet
host before quoting them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# benchmarks/detectors.py has the name of the package: with this directory first on the
# import path, ``import detectors`` would load that file. Import from the checkout instead.
_HERE, _CHECKOUT = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_CHECKOUT) not in sys.path:
    sys.path.insert(0, str(_CHECKOUT))

from detectors.columns import Batch  # noqa: E402
from detectors.evaluation import evaluate_window  # noqa: E402
from detectors.model import DetectorSettings, ModelDetector  # noqa: E402
from detectors.profiles import ReferenceProfile  # noqa: E402
from detectors.schema import Schema  # noqa: E402
from detectors.segments import SegmentDetectors, SegmentSpec, build_slices, tag_columns  # noqa: E402
from detectors.versions import VersionDivergence  # noqa: E402
from detectors.windows.policies import WindowPolicy  # noqa: E402
from monitor.version_state import ModelVersions, Pairing  # noqa: E402

FEATURES = [f"f{i}" for i in range(10)]
SCHEMA = Schema(dict.fromkeys(FEATURES, "numeric"))
BATCH = 1_000
SETTINGS = DetectorSettings(policy=WindowPolicy("count", 10_000))


def _data(rng: np.random.Generator, n: int, values: int) -> tuple[np.ndarray, np.ndarray]:
    region = rng.integers(values, size=n)
    x = rng.normal(size=(n, len(FEATURES))) + region[:, None] * 0.5
    return x, np.array([f"v{r}" for r in region], dtype=object)


def _batch(x: np.ndarray, t0: float) -> Batch:
    return Batch(timestamps=t0 + np.arange(len(x), dtype=float), inputs={f: x[:, j] for j, f in enumerate(FEATURES)})


def _reference(rng: np.random.Generator, values: int) -> tuple[ReferenceProfile, SegmentSpec]:
    spec = SegmentSpec(("region",), max_values=values, min_reference_rows=500)
    x, tags = _data(rng, 100_000, values)
    batch = _batch(x, 0.0)
    slices = build_slices(batch, {"region": tags}, SCHEMA, spec)
    whole = ReferenceProfile.from_batch(batch, SCHEMA, version="1")
    return ReferenceProfile(SCHEMA, whole.channels, version="1", params=whole.params, slices=slices), spec


def run(values: int | None, records: int, seed: int) -> tuple[float, float, str]:
    """Seconds to update, seconds to evaluate, slice windows (values None: no segments)."""
    rng = np.random.default_rng(seed)
    reference, spec = _reference(rng, values or 1)
    whole = ModelDetector(reference, SETTINGS)
    segments = None if values is None else SegmentDetectors(reference, SETTINGS, spec)
    batches = []
    for start in range(0, records, BATCH):
        x, tags = _data(rng, BATCH, values or 1)
        batches.append((_batch(x, float(start)), tag_columns([{"region": t} for t in tags], ["region"])))
    closed, slice_windows = [], []
    begin = time.perf_counter()
    for batch, tags in batches:
        closed += whole.close(batch)
        if segments is not None:
            slice_windows += segments.update(batch, tags)
    if segments is not None:
        slice_windows += segments.drain()  # the rows still waiting to be counted in bulk
    updated = time.perf_counter()
    for window in closed:
        evaluate_window(window, SETTINGS.evaluation)
    if segments is not None:
        for w in slice_windows:
            segments.evaluate(w)
    return updated - begin, time.perf_counter() - updated, f"{len(slice_windows)} slice windows"


VERSIONED = Schema(dict.fromkeys(FEATURES, "numeric"), prediction_kind="regression")
CHAMPION, CHALLENGER = "1", "2"


class Deferred:
    """Stands in for the pipeline's evaluator (monitor/evaluator.py): keeps the jobs the
    versions queue during the update, run afterwards, so update and evaluation are timed apart."""

    def __init__(self) -> None:
        self.jobs: list[Callable[[], Any]] = []

    def submit(self, job: Callable[[], Any]) -> None:
        self.jobs.append(job)

    def submit_window(self, window: Any, settings: Any, then: Callable[[Any], Any]) -> None:
        self.jobs.append(lambda: then(evaluate_window(window, settings)))


def _versioned_batch(rng: np.random.Generator, n: int, t0: float) -> Batch:
    x = rng.normal(size=(n, len(FEATURES)))
    prediction = x[:, 0] / 2 + rng.normal(scale=0.1, size=n)
    inputs = {f: x[:, j] for j, f in enumerate(FEATURES)}
    return Batch(timestamps=t0 + np.arange(n, dtype=float), inputs=inputs, prediction=prediction)


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def run_versions(active: int, paired: bool, records: int, seed: int) -> tuple[float, float, str]:
    """Seconds to update, seconds to evaluate, and what was published, for traffic over
    ``active`` versions (0: no ``versions:``), or a champion and challenger scoring every
    request (``paired``)."""
    rng = np.random.default_rng(seed)
    reference = ReferenceProfile.from_batch(_versioned_batch(rng, 100_000, 0.0), VERSIONED, version="1")
    whole = ModelDetector(reference, SETTINGS)
    versions = None
    if active or paired:
        pairing = Pairing(CHAMPION, CHALLENGER, 10_000, None, 0.0) if paired else None
        versions = ModelVersions(max_active=5, pairing=pairing)
        versions.start(reference, SETTINGS)
    deferred: Any = Deferred()  # what ModelVersions asks of an Evaluator
    published: list[Any] = []
    batches = []
    for start in range(0, records, BATCH):
        batch = _versioned_batch(rng, BATCH, float(start))
        if paired:  # shadow traffic: rows 2j and 2j + 1 are one request scored by both versions
            names = [CHAMPION, CHALLENGER] * (BATCH // 2)
            ids = _objects([f"r{(start + j) // 2}" for j in range(BATCH)])
        else:
            names = [str(v + 1) for v in rng.integers(max(active, 1), size=BATCH)]
            ids = _objects([])
        batches.append((batch, (_objects(names), ids)))
    closed = []
    begin = time.perf_counter()
    for batch, tagged in batches:
        windows = whole.close(batch)
        if versions is not None:
            versions.update(batch, tagged, deferred, published.append)
            for window in windows:
                versions.window_closed(window, "1", deferred, published.append)
        closed += windows
    updated = time.perf_counter()
    for window in closed:
        evaluate_window(window, SETTINGS.evaluation)
    for job in deferred.jobs:
        job()
    pairs = sum(isinstance(p, VersionDivergence) for p in published)
    return updated - begin, time.perf_counter() - updated, f"{len(published) - pairs} version windows, {pairs} pairs"


Run = tuple[float, float, str]  # seconds to update, seconds to evaluate, what was published


def _ratios(label: str, runs: list[Run], base: list[Run]) -> str:
    """One row: median seconds, and the median and range of the per-run ratios to ``base``."""

    def part(i: int) -> str:
        ratios = sorted(r[i] / b[i] for r, b in zip(runs, base, strict=True))
        median = statistics.median(r[i] for r in runs)
        return f"{median:.2f} s, x{statistics.median(ratios):.2f} ({ratios[0]:.2f}-{ratios[-1]:.2f})"

    return f"{label:<20} update {part(0)}; evaluation {part(1)}; {runs[0][2]}"


def _header(title: str, base: list[Run], records: int) -> None:
    update, evaluation = statistics.median(b[0] for b in base), statistics.median(b[1] for b in base)
    print(f"{title}: update {update:.2f} s ({records / update:,.0f} records/s), evaluation {evaluation:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("segments", "versions"), help="one half of the benchmark")
    parser.add_argument("--quick", action="store_true", help="100,000 records, 1 run")
    args = parser.parse_args()
    records, repeats = (100_000, 1) if args.quick else (args.records, args.repeats)
    print(f"{records:,} records, windows of 10,000, {len(FEATURES)} numeric features, {repeats} run(s);")
    print("each row: median seconds, x median ratio (min-max) to the run without, same seed")
    if args.only != "versions":
        base: list[Run] = []
        runs: dict[int, list[Run]] = {values: [] for values in (10, 100)}
        for seed in range(repeats):  # interleaved: each ratio compares runs made close in time
            base.append(run(None, records, seed))
            for values, each in runs.items():
                each.append(run(values, records, seed))
        _header("unsegmented", base, records)
        for values, each in runs.items():
            print(_ratios(f"{values} segment values", each, base))
    if args.only != "segments":
        plans = {"1 version": (1, False), "2 versions": (2, False), "5 versions": (5, False),
                 "champion/challenger": (0, True)}  # fmt: skip
        base = []
        found: dict[str, list[Run]] = {label: [] for label in plans}
        for seed in range(repeats):
            base.append(run_versions(0, False, records, seed))
            for label, (active, paired) in plans.items():
                found[label].append(run_versions(active, paired, records, seed))
        _header("no versions", base, records)
        for label, each in found.items():
            print(_ratios(label, each, base))


if __name__ == "__main__":
    main()
