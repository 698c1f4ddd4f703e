"""Detection quality of the default drift decision: detection rate per shift and window size.

    python benchmarks/detection_quality.py [--trials N] [--multivariate-trials M] [--quick] [--jobs J] [--seed S]

Prints, for a numeric and a categorical feature, the share of seeded trials in
which :func:`detectors.decision.decide_prediction` with the default
:class:`~detectors.decision.DriftSettings` flags drift, then one PASS/FAIL line
per target. Exit status 0 when every target passes.

What a trial is (the path the service uses, one feature):

* numeric: the reference is 50,000 N(0, 1) rows reduced to a profile - a
  bounded sample of 10,000 rows, 10 quantile bins (edges at the reference
  deciles) with their counts, and the reference std. The current window is n
  rows of N(shift, 1) reduced the same way: a uniform sample of min(n, 10,000)
  rows plus exact bin counts of all n rows. Shift is in reference SDs.
* categorical: 4 equally likely categories; the reference is 50,000 rows, the
  window n rows in which ``shift`` (a proportion: 0.05 = 5 percentage points)
  moved from category 0 to category 1; evidence is the two count vectors.

Drawing 1M rows per trial would dominate the run time, so windows are generated
in a way that is identical in distribution: rows are i.i.d., so a uniform
sample of k of the n rows is distributed as k fresh i.i.d. rows; we draw those
k rows, and the bin counts of the other n - k rows as one multinomial draw from
the bin probabilities of N(shift, 1) (normal CDF at the reference edges). The
window's exact counts are the sample's counts plus that draw, so sample and
counts have the right joint distribution. Likewise the first 10,000 of the
50,000 i.i.d. reference rows are a uniform sample of them, and categorical
windows are one multinomial draw. Every cell uses its own seed derived from
``--seed``, the feature kind and the cell position, so any cell can be rerun.

Targets (defaults): numeric false alarms (shift 0) <= 1 % at every size;
shifts >= 0.25 SD detected in >= 99 % at every size; 0.05 SD not flagged at 1M
(<= 1 %). Categorical: false alarms <= 1 % at every size; 5 pp detected in >=
99 % at >= 10k rows (at 1k rows 5 pp among 4 categories is at the limit of what
~1,000 rows can separate from noise at a 1 % false-alarm rate; reported, not a
target); 0.5 pp not flagged at 1M (<= 1 %).

Multivariate table (issue 21): a change of correlation only. Three standard normal
features, corr(x1, x2) = 0.8 in a 20,000-row reference; a window of 5,000 rows in which
corr(x1, x2) is 0.8 (no change), 0.6, 0.5 or 0.2, the marginals unchanged. Each trial
goes the service's way: a reference profile, estimators fitted on the reference
(:func:`detectors.estimation.fitting.fit_estimators`, PCA and the domain classifier), a
:class:`~detectors.model.ModelDetector` closing one 5,000-row window (row sample 5,000),
``evaluate`` (univariate: a feature drifts) and ``estimate``. Targets: PCA and the domain
classifier flag 0.8 -> 0.5 in >= 95 % of trials and the no-change window in < 2 %;
univariate drift flags every row in < 2 % (its false alarms: nothing univariate changed).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from scipy import stats

try:
    from detectors.decision import CategoricalEvidence, DriftSettings, NumericEvidence, decide_prediction
except ImportError:  # running from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from detectors.decision import CategoricalEvidence, DriftSettings, NumericEvidence, decide_prediction
# The multivariate table's module sits next to this file; appended, not put first, so that
# ``detectors`` stays the package (benchmarks/detectors.py is a benchmark of the same name).
sys.path.append(str(Path(__file__).resolve().parent))
from multivariate_quality import check_multivariate, format_multivariate, multivariate_rates  # noqa: E402

SIZES: tuple[int, ...] = (1_000, 10_000, 100_000, 1_000_000)
NUMERIC_SHIFTS: tuple[float, ...] = (0.0, 0.05, 0.1, 0.25, 0.5)  # reference SDs
CATEGORICAL_SHIFTS: tuple[float, ...] = (0.0, 0.005, 0.01, 0.025, 0.05)  # proportion moved
REFERENCE_ROWS = 50_000
SAMPLE_CAP = 10_000
N_BINS = 10
CATEGORY_PROBS: tuple[float, ...] = (0.25, 0.25, 0.25, 0.25)
KINDS = ("numeric", "categorical")


def numeric_evidence(rng: np.random.Generator, shift: float, n: int) -> NumericEvidence:
    """Reference profile and window evidence for one numeric trial (see module docstring)."""
    reference = rng.standard_normal(REFERENCE_ROWS)
    edges = np.quantile(reference, np.arange(1, N_BINS) / N_BINS)
    ref_counts = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=N_BINS)
    k = min(n, SAMPLE_CAP)
    sample = shift + rng.standard_normal(k)
    cur_counts = np.bincount(np.searchsorted(edges, sample, side="right"), minlength=N_BINS)
    if n > k:
        cdf = stats.norm.cdf(np.concatenate([[-np.inf], edges, [np.inf]]) - shift)
        probs = np.diff(cdf)
        cur_counts = cur_counts + rng.multinomial(n - k, probs / probs.sum())
    return NumericEvidence(
        reference_sample=reference[:SAMPLE_CAP],
        current_sample=sample,
        reference_counts=ref_counts,
        current_counts=cur_counts,
        reference_spread=float(reference.std()),
    )


def categorical_evidence(rng: np.random.Generator, shift: float, n: int) -> CategoricalEvidence:
    """Reference and window category counts for one categorical trial."""
    base = np.asarray(CATEGORY_PROBS)
    moved = base.copy()
    moved[0] -= shift
    moved[1] += shift
    return CategoricalEvidence(rng.multinomial(REFERENCE_ROWS, base), rng.multinomial(n, moved))


def run_cell(kind: str, shift_index: int, size_index: int, trials: int, seed: int, settings: DriftSettings) -> float:
    """Detection rate of one (kind, shift, size) cell over ``trials`` seeded trials."""
    rng = np.random.default_rng([seed, KINDS.index(kind), shift_index, size_index])
    make = numeric_evidence if kind == "numeric" else categorical_evidence
    shift = (NUMERIC_SHIFTS if kind == "numeric" else CATEGORICAL_SHIFTS)[shift_index]
    hits = sum(decide_prediction(make(rng, shift, SIZES[size_index]), settings).drift for _ in range(trials))
    return hits / trials


def detection_rates(
    kind: str, trials: int, seed: int = 0, settings: DriftSettings | None = None, jobs: int = 1
) -> np.ndarray:
    """Matrix of detection rates, rows = shifts, columns = ``SIZES``."""
    settings = settings or DriftSettings()
    shifts = NUMERIC_SHIFTS if kind == "numeric" else CATEGORICAL_SHIFTS
    cells = [(kind, i, j, trials, seed, settings) for i in range(len(shifts)) for j in range(len(SIZES))]
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            rates = list(pool.map(run_cell, *zip(*cells, strict=True)))
    else:
        rates = [run_cell(*cell) for cell in cells]
    return np.asarray(rates).reshape(len(shifts), len(SIZES))


def format_table(kind: str, rates: np.ndarray, trials: int) -> str:
    shifts = NUMERIC_SHIFTS if kind == "numeric" else CATEGORICAL_SHIFTS
    unit = "mean shift (reference SDs)" if kind == "numeric" else "moved (percentage points)"
    head = f"{kind}: detection rate over {trials} trials per cell; rows = {unit}, columns = window rows"
    lines = [head, f"{'shift':>8} | " + " | ".join(f"{_size(n):>7}" for n in SIZES)]
    for shift, row in zip(shifts, rates, strict=True):
        label = f"{shift:.2f}" if kind == "numeric" else f"{shift * 100:.1f}"
        lines.append(f"{label:>8} | " + " | ".join(f"{r * 100:6.1f}%" for r in row))
    return "\n".join(lines)


def check_targets(numeric: np.ndarray, categorical: np.ndarray) -> list[tuple[str, bool, str]]:
    """(description, passed, observed) for every target of the module docstring."""
    big = [i for i, s in enumerate(NUMERIC_SHIFTS) if s >= 0.25]
    i_cat5 = CATEGORICAL_SHIFTS.index(0.05)
    at_least_10k = [j for j, n in enumerate(SIZES) if n >= 10_000]
    j_1m = SIZES.index(1_000_000)
    rows = [
        ("numeric false alarms (shift 0) <= 1% at every size", numeric[0].max() <= 0.01, _pct(numeric[0])),
        (
            "numeric shift >= 0.25 SD detected >= 99% at every size",
            numeric[big].min() >= 0.99,
            _pct(numeric[big].min(axis=0)),
        ),
        ("numeric 0.05 SD not flagged at 1M (<= 1%)", numeric[1, j_1m] <= 0.01, _pct(numeric[1, [j_1m]])),
        ("categorical false alarms (shift 0) <= 1% at every size", categorical[0].max() <= 0.01, _pct(categorical[0])),
        (
            "categorical 5 pp detected >= 99% at >= 10k rows",
            categorical[i_cat5, at_least_10k].min() >= 0.99,
            _pct(categorical[i_cat5, at_least_10k]),
        ),
        ("categorical 0.5 pp not flagged at 1M (<= 1%)", categorical[1, j_1m] <= 0.01, _pct(categorical[1, [j_1m]])),
    ]
    return [(text, bool(ok), observed) for text, ok, observed in rows]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="trials per cell (default 200, >= 100 for the targets)")
    parser.add_argument("--quick", action="store_true", help="20 trials per cell: a smoke run, too few for the targets")
    parser.add_argument(
        "--multivariate-trials", type=int, default=100, help="trials per multivariate row (default 100)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args(argv)
    trials = 20 if args.quick else args.trials
    if trials < 1 or args.jobs < 1:
        parser.error("--trials and --jobs must be >= 1")
    start = time.perf_counter()
    numeric = detection_rates("numeric", trials, args.seed, jobs=args.jobs)
    categorical = detection_rates("categorical", trials, args.seed, jobs=args.jobs)
    print(format_table("numeric", numeric, trials), end="\n\n")
    print(format_table("categorical", categorical, trials), end="\n\n")
    mv_trials = 10 if args.quick else args.multivariate_trials
    multivariate = multivariate_rates(mv_trials, args.seed, jobs=args.jobs)
    print(format_multivariate(multivariate, mv_trials), end="\n\n")
    results = check_targets(numeric, categorical) + check_multivariate(multivariate)
    for text, ok, observed in results:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {observed}")
    if trials < 100:
        print(f"note: {trials} trials per cell is a smoke run; the targets need >= 100")
    print(f"defaults: {DriftSettings()}")
    print(f"elapsed: {time.perf_counter() - start:.1f} s")
    return 0 if all(ok for _, ok, _ in results) else 1


def _size(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k"


def _pct(values: np.ndarray) -> str:
    return ", ".join(f"{v * 100:.1f}%" for v in np.atleast_1d(values))


if __name__ == "__main__":
    sys.exit(main())
