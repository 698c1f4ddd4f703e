"""Segment analysis cost: update and evaluation with 10 and 100 segment values, as ratios
against the unsegmented run in the same process.

    python benchmarks/segments.py [--records N] [--repeats R] [--quick]

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
windows). Timings on a shared 2-core machine are noisy: read the ratios, not the
absolute numbers, and run again on a quiet host before quoting them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

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
from detectors.windows.policies import WindowPolicy  # noqa: E402

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


def run(values: int | None, records: int, seed: int) -> tuple[float, float, int]:
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
    return updated - begin, time.perf_counter() - updated, len(slice_windows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="100,000 records, 1 run")
    args = parser.parse_args()
    records, repeats = (100_000, 1) if args.quick else (args.records, args.repeats)
    base = [run(None, records, seed) for seed in range(repeats)]
    base_update = statistics.median(b[0] for b in base)
    base_eval = statistics.median(b[1] for b in base)
    print(f"{records:,} records, windows of 10,000, {len(FEATURES)} numeric features, medians of {repeats}")
    print(
        f"unsegmented: update {base_update:.2f} s ({records / base_update:,.0f} records/s), evaluation {base_eval:.2f} s"
    )
    for values in (10, 100):
        runs = [run(values, records, seed) for seed in range(repeats)]
        update = statistics.median(r[0] for r in runs)
        evaluation = statistics.median(r[1] for r in runs)
        print(
            f"{values:>3} values: update {update:.2f} s (x{update / base_update:.2f}), "
            f"evaluation {evaluation:.2f} s (x{evaluation / base_eval:.2f}, {runs[0][2]} slice windows)"
        )


if __name__ == "__main__":
    main()
