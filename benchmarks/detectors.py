"""Detector cost: window updates, window evaluation against plain scipy, memory over 10M records.

    python benchmarks/detectors.py [--quick] [--repeats N] [--records N] [--profile] [--skip-memory]

One synthetic model (seeded): 20 numeric features (14 normal with varied mean and
scale, 3 log-normal, 3 uniform), 5 categorical ones (3, 8, 20, 50 and 200 values,
Zipf-like frequencies; the 200-value one overflows the reference's top-50), a binary
score prediction and a latency. The reference is 50,000 rows profiled with the
defaults (10 bins, 10,000-value sample, top 50 categories). Records are columnar
:class:`~detectors.columns.Batch` es of 1,000 rows, all generated before a clock starts
except in (c).

(a) update throughput, records/s: ``ModelDetector.update`` with tumbling windows of
    50,000 records, *including* the evaluation of every window that closes (the
    service's path), and ``Windower.update`` alone (counting, no evaluation).
(b) one closed window of 50,000 and of 500,000 records, two honest ratios (scipy time /
    ours, medians): (a') :func:`~detectors.evaluation.evaluate_window` (drift of 25
    features and of the prediction, data quality, latency) against scipy on the *same*
    evidence (``ks_2samp`` on the reference's and the window's samples,
    ``chi2_contingency`` on the same category counts); (b') counting the window's
    batches *and* evaluating it, against a plain loop over the *raw* rows:
    ``ks_2samp`` per numeric feature (reference 50k rows vs the window's rows) and, per
    categorical feature, ``pandas.Series.value_counts`` on both sides and
    ``chi2_contingency``. Some features drift in the window (3 numeric by 0.2 SD, one
    categorical); the verdicts are printed side by side as a sanity check (scipy
    p-values BH-adjusted at 0.05, no effect size). The end-to-end comparison from two
    DataFrames (profiling included) is ``benchmarks/compare.py``.
(c) memory: 10,000,000 records (1,000,000 with ``--quick``) through one
    ``ModelDetector``, generated batch by batch and dropped; VmRSS from
    ``/proc/self/status`` every 10 % of the run (half a window past each tenth, so
    that the open window is half full: 1.025M, 2.025M, ..., 10.025M), the growth
    from the first to the last sample, the RSS before the detector existed, the
    peak (VmHWM) and, with tracemalloc on for the whole run, Python-traced memory at
    the same points. It runs in a fresh process so that (a) and (b) do not count.

Timings are medians (with the range) of ``--repeats`` runs, wall clock: never the best
run, which flatters whichever side had the quieter moment. Targets: (a)
ModelDetector.update >= 200,000 records/s; (b') ratio >= 3x at 50k and >= 20x at 500k; (c) growth < 50 MB. For every missed
speed target the operation is profiled with cProfile and the top costs printed
(``--profile`` prints them for every measurement). Exit status 0 when every target
passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import multiprocessing
import os
import platform
import pstats
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy
from scipy import stats

# This file has the name of the package it measures: with its own directory first on the import
# path, ``import detectors`` would load this file again. Import from the checkout instead.
_HERE, _CHECKOUT = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
if str(_CHECKOUT) not in sys.path:
    sys.path.insert(0, str(_CHECKOUT))

from detectors.columns import Batch  # noqa: E402
from detectors.evaluation import evaluate_window  # noqa: E402
from detectors.model import DetectorSettings, ModelDetector  # noqa: E402
from detectors.profiles import ReferenceProfile  # noqa: E402
from detectors.schema import Schema  # noqa: E402
from detectors.stats import adjust_pvalues  # noqa: E402
from detectors.windows.policies import TumblingCountWindows, WindowPolicy  # noqa: E402
from detectors.windows.state import WindowLayout, WindowState  # noqa: E402

NUMERIC = [f"x{i:02d}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
CATEGORY_COUNTS = (3, 8, 20, 50, 200)
SCHEMA = Schema(
    {**dict.fromkeys(NUMERIC, "numeric"), **dict.fromkeys(CATEGORICAL, "categorical")},
    prediction_kind="binary",
    latency_column="latency_ms",
)
REFERENCE_ROWS = 50_000
WINDOW = 50_000
BATCH = 1_000
LOC = np.linspace(-50.0, 50.0, 14)
SCALE = np.geomspace(0.01, 100.0, 14)
SD = np.concatenate([SCALE, [np.sqrt((np.e**0.25 - 1) * np.e**0.25)] * 3, [10.0 / np.sqrt(12.0)] * 3])
DRIFTED_NUMERIC = (0, 7, 15)  # shifted by 0.2 SD in the drifted window
DRIFTED_CATEGORICAL = 1
VALUES = [
    np.array([f"{name}_v{k}" for k in range(size)], dtype=object)
    for name, size in zip(CATEGORICAL, CATEGORY_COUNTS, strict=True)
]
PROBS = [(1.0 / np.arange(1, size + 1)) / (1.0 / np.arange(1, size + 1)).sum() for size in CATEGORY_COUNTS]
TARGET_UPDATE = 200_000
TARGET_RATIO = {50_000: 3.0, 500_000: 20.0}
TARGET_GROWTH_MB = 50.0
_scipy_version = scipy.__version__


# ---- data ------------------------------------------------------------------------------------
@dataclass
class Raw:
    """Raw rows of one stretch of traffic: the numeric matrix and the categorical columns."""

    numeric: np.ndarray  # (n, 20)
    categorical: list[np.ndarray]  # 5 object arrays of n


def make_rows(rng: np.random.Generator, n: int, drift: bool = False) -> Raw:
    z = rng.standard_normal((n, 20))
    x = np.empty((n, 20))
    x[:, :14] = LOC + SCALE * z[:, :14]
    x[:, 14:17] = np.exp(0.5 * z[:, 14:17])
    x[:, 17:] = rng.random((n, 3)) * 10.0
    cats = []
    for c, (values, probs) in enumerate(zip(VALUES, PROBS, strict=True)):
        if drift and c == DRIFTED_CATEGORICAL:
            probs = probs[::-1]  # the rare values become the common ones
        cats.append(values[rng.choice(values.size, size=n, p=probs)])
    if drift:
        for j in DRIFTED_NUMERIC:
            x[:, j] += 0.2 * SD[j]
    return Raw(x, cats)


def to_batch(rng: np.random.Generator, raw: Raw, first: int) -> Batch:
    n = raw.numeric.shape[0]
    x = np.ascontiguousarray(raw.numeric.T)  # one contiguous row per feature
    return Batch(
        timestamps=first + np.arange(n, dtype=np.float64),
        inputs={
            **{name: x[j] for j, name in enumerate(NUMERIC)},
            **dict(zip(CATEGORICAL, raw.categorical, strict=True)),
        },
        prediction=rng.beta(2.0, 5.0, n),
        latency_ms=rng.gamma(2.0, 10.0, n),
    )


def batches(
    seed: int, total: int, first: int = 0, drift: bool = False, size: int = BATCH
) -> Iterator[tuple[Raw, Batch]]:
    rng = np.random.default_rng(seed)
    for start in range(0, total, size):
        raw = make_rows(rng, min(size, total - start), drift)
        yield raw, to_batch(rng, raw, first + start)


def reference(seed: int) -> tuple[ReferenceProfile, Raw]:
    rng = np.random.default_rng(seed)
    raw = make_rows(rng, REFERENCE_ROWS)
    profile = ReferenceProfile.from_batch(to_batch(rng, raw, 0), SCHEMA, version="bench")
    return profile, raw


# ---- measuring ---------------------------------------------------------------------------------
@dataclass
class Timing:
    wall: list[float]
    cpu: list[float]

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu)


def timed(fn: Callable[[], object], repeats: int) -> Timing:
    wall, cpu = [], []
    for _ in range(repeats):
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return Timing(wall, cpu)


ROOT = str(Path(__file__).resolve().parents[1]) + os.sep


def _where(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":  # a built-in
        return name
    short = filename.replace(ROOT, "").split("site-packages" + os.sep, 1)[-1]
    return f"{short}:{line}({name})"


def _is_project(func: tuple[str, int, str]) -> bool:
    filename = func[0]
    return filename.startswith(ROOT) and ".venv" not in filename and not filename.endswith("benchmarks/detectors.py")


def profile(fn: Callable[[], object], title: str, top: int = 10) -> str:
    """Where the time goes, with file:line: the project functions by the time spent in them and in the
    library code they call directly (numpy/scipy built-ins are charged to their project caller), then
    the plain cProfile list by own time."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    st = pstats.Stats(prof)
    table = st.stats  # type: ignore[attr-defined]  # func -> (cc, nc, tottime, cumtime, callers)
    total = st.total_tt  # type: ignore[attr-defined]
    charged: dict[tuple[str, int, str], float] = {}
    library: dict[tuple[str, int, str], dict[tuple[str, int, str], float]] = {}

    def ancestors(
        func: tuple[str, int, str], weight: float, depth: int = 0
    ) -> Iterator[tuple[tuple[str, int, str], float]]:
        """The nearest project callers of a library function, with their share of ``weight``."""
        callers = table[func][4]
        total_edge = sum(edge[3] for edge in callers.values())
        for caller, edge in callers.items():
            share = weight * (edge[3] / total_edge if total_edge else 1.0 / len(callers))
            if _is_project(caller):
                yield caller, share
            elif depth < 8 and caller in table:
                yield from ancestors(caller, share, depth + 1)

    for func, (_, _, _, cum, _) in table.items():
        if _is_project(func):
            charged[func] = charged.get(func, 0.0) + cum
    for callee, (_, _, _, _, callers) in table.items():
        if not _is_project(callee):
            for caller, edge in callers.items():
                if _is_project(caller):
                    library.setdefault(caller, {})[callee] = edge[3]
            continue
        for caller, edge in callers.items():
            if caller == callee:
                continue
            # a project callee is charged on its own line: take its time off the project code that
            # called it, directly or through library code (a generator consumed by np.fromiter)
            for owner, share in [(caller, edge[3])] if _is_project(caller) else ancestors(caller, edge[3]):
                if owner in charged:
                    charged[owner] -= share
    lines = [
        f"--- profile: {title} ({total * 1e3:.0f} ms profiled) ---",
        "project code, time in it and in the library calls it makes directly:",
    ]
    for func, t in sorted(charged.items(), key=lambda kv: -kv[1])[:top]:
        calls = sorted(library.get(func, {}).items(), key=lambda kv: -kv[1])[:2]
        via = ", ".join(f"{_where(c)} {v * 1e3:.0f} ms" for c, v in calls)
        lines.append(f"  {t * 1e3:7.1f} ms {t / total:5.1%}  {_where(func)}" + (f"  [{via}]" if via else ""))
    lines.append("own time (cProfile tottime):")
    for func, (_, nc, tt, _cum, _) in sorted(table.items(), key=lambda kv: -kv[1][2])[:top]:
        lines.append(f"  {tt * 1e3:7.1f} ms {tt / total:5.1%}  {nc:>6} calls  {_where(func)}")
    return "\n".join(lines)


def _count(n: int) -> str:
    return f"{n / 1e6:.5g}M" if n >= 1_000_000 else f"{n / 1e3:.5g}k"


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB (NaN where /proc is unavailable)."""
    found = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key = line.split(":", 1)[0]
                if key in found:
                    found[key] = int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return found["VmRSS"], found["VmHWM"]


def machine() -> str:
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name", platform.processor() or "unknown CPU")
    if "cpu family" in info:
        cpu += f" (family {info['cpu family']} model {info.get('model', '?')}, {float(info.get('cpu MHz', 'nan')):.0f} MHz)"
    load = "/".join(f"{v:.2f}" for v in os.getloadavg())
    return f"{os.cpu_count()} cores, {cpu}, load average {load}, Python {platform.python_version()}, numpy {np.__version__}, scipy {_scipy_version}"


def settings() -> DetectorSettings:
    return DetectorSettings(policy=WindowPolicy("count", size=WINDOW))


# ---- (a) updates --------------------------------------------------------------------------------
def bench_update(
    ref: ReferenceProfile, records: int, repeats: int, show_profile: bool
) -> tuple[dict[str, float], list[str]]:
    data = [b for _, b in batches(11, records)]
    closed: list[int] = []

    def model() -> None:
        det = ModelDetector(ref, settings())
        closed.append(sum(len(det.update(b)) for b in data))

    layout = WindowLayout(ref)

    def windower() -> None:
        win = TumblingCountWindows(layout, WINDOW)
        for b in data:
            win.update(b)

    t_model, t_win = timed(model, repeats), timed(windower, repeats)
    evaluated = closed[0]
    out = {
        "model_rps": records / t_model.best,
        "model_rps_median": records / t_model.median,
        "model_rps_cpu": records / t_model.best_cpu,
        "windower_rps": records / t_win.best,
        "windower_rps_median": records / t_win.median,
        "windower_rps_cpu": records / t_win.best_cpu,
        "eval_per_window": (t_model.best - t_win.best) / max(evaluated, 1),
        "windows": evaluated,
    }
    print(
        f"(a) update, {records:,} records in batches of {BATCH:,}, windows of {WINDOW:,} ({evaluated} closed), best of {repeats}"
    )
    print(
        f"    ModelDetector.update (incl. evaluation): {out['model_rps']:>10,.0f} records/s  (median {out['model_rps_median']:,.0f}; CPU time {out['model_rps_cpu']:,.0f})"
    )
    print(
        f"    Windower.update (counting only):         {out['windower_rps']:>10,.0f} records/s  (median {out['windower_rps_median']:,.0f}; CPU time {out['windower_rps_cpu']:,.0f})"
    )
    print(f"    evaluation share: {out['eval_per_window'] * 1e3:.0f} ms per closed window (difference of the two)")
    profiles = []
    if show_profile or out["model_rps"] < TARGET_UPDATE:
        profiles.append(profile(model, "ModelDetector.update"))
        profiles.append(profile(windower, "Windower.update"))
    return out, profiles


# ---- (b) evaluation vs scipy ---------------------------------------------------------------------
def scipy_loop(ref_raw: Raw, raw: Raw) -> tuple[list[float], list[float]]:
    """The plain way: ks_2samp per numeric feature, value counts + chi2_contingency per categorical one.
    ``numeric`` is feature-major here (one contiguous row per feature), as a columnar store would give it."""
    ks_p = [float(stats.ks_2samp(a, b).pvalue) for a, b in zip(ref_raw.numeric, raw.numeric, strict=True)]
    chi_p = []
    for a, b in zip(ref_raw.categorical, raw.categorical, strict=True):
        table = pd.concat([pd.Series(a).value_counts(), pd.Series(b).value_counts()], axis=1).fillna(0)
        chi_p.append(float(stats.chi2_contingency(table.to_numpy().T)[1]))
    return ks_p, chi_p


def feature_major(raw: Raw) -> Raw:
    return Raw(np.ascontiguousarray(raw.numeric.T), raw.categorical)


def closed_window(layout: WindowLayout, n: int) -> tuple[WindowState, Raw, list[Batch]]:
    window = WindowState(layout, seq=0, seed=5)
    parts, kept = [], []
    for raw, batch in batches(23, n, drift=True, size=10_000):
        window.update(batch)
        parts.append(raw)
        kept.append(batch)
    raw = Raw(
        np.concatenate([p.numeric for p in parts]),
        [np.concatenate(c) for c in zip(*(p.categorical for p in parts), strict=True)],
    )
    window.start, window.end = window.min_ts, window.max_ts
    return window, raw, kept


def scipy_on_window(window: WindowState) -> list[float]:
    """scipy on the same evidence as ours: ks_2samp on the reference's and the window's
    samples, chi2_contingency on the same category counts."""
    layout = window.layout
    out = [float(stats.ks_2samp(layout.reference_sorted[name], window.sample(name)).pvalue) for name in NUMERIC]
    for name in CATEGORICAL:
        table = np.vstack([window.reference_counts(name), window.counts(name)]).astype(float)
        out.append(float(stats.chi2_contingency(table[:, table.sum(axis=0) > 0])[1]))
    return out


def update_and_evaluate(layout: WindowLayout, kept: list[Batch]) -> None:
    window = WindowState(layout, seq=0, seed=5)
    for batch in kept:
        window.update(batch)
    evaluate_window(window)


def _ms(t: Timing) -> str:
    return f"{t.median * 1e3:7.1f} ms (range {min(t.wall) * 1e3:.1f}-{max(t.wall) * 1e3:.1f})"


def bench_evaluate(
    ref: ReferenceProfile, ref_raw: Raw, sizes: Sequence[int], repeats: int, show_profile: bool
) -> tuple[dict[int, dict[str, float]], list[str]]:
    """Ratios of medians: (a) our evaluation vs scipy on the same samples and counts, and (b)
    our update + evaluation of the window vs scipy on the raw rows (what a user without us
    runs). The end-to-end comparison from two DataFrames is benchmarks/compare.py."""
    layout = WindowLayout(ref)
    ref_raw = feature_major(ref_raw)
    results: dict[int, dict[str, float]] = {}
    profiles = []
    print(f"(b) one window vs plain scipy (reference {REFERENCE_ROWS:,} rows); medians and ranges of {repeats} runs")
    for n in sizes:
        window, raw, kept = closed_window(layout, n)
        raw = feature_major(raw)
        ours = timed(lambda w=window: evaluate_window(w), repeats)
        same = timed(lambda w=window: scipy_on_window(w), repeats)
        whole = timed(lambda k=kept: update_and_evaluate(layout, k), repeats)
        plain = timed(lambda r=raw: scipy_loop(ref_raw, r), repeats)
        results[n] = {
            "ours": ours.median,
            "scipy_same_sample": same.median,
            "ratio_same_sample": same.median / ours.median,
            "update_evaluate": whole.median,
            "scipy_raw": plain.median,
            "ratio": plain.median / whole.median,
        }
        print(f"    {n:>7,} records:")
        print(f"      (a) evaluate_window {_ms(ours)} | scipy on the same samples {_ms(same)} | "
              f"ratio {results[n]['ratio_same_sample']:.2f}x")  # fmt: skip
        print(f"      (b) update + evaluate {_ms(whole)} | scipy loop on the raw rows {_ms(plain)} | "
              f"ratio {results[n]['ratio']:.2f}x")  # fmt: skip
        ev = evaluate_window(window)
        ks_p, chi_p = scipy_loop(ref_raw, raw)
        flagged = [i for i, p in enumerate(adjust_pvalues(ks_p + chi_p, "bh")) if p < 0.05]
        names = NUMERIC + CATEGORICAL
        print(
            f"             drifted: ours {list(ev.drift.drifted_features)}; scipy (BH p < 0.05) {[names[i] for i in flagged]}"
        )
        if show_profile or results[n]["ratio"] < TARGET_RATIO.get(n, 0.0):
            profiles.append(profile(lambda k=kept: update_and_evaluate(layout, k), f"update + evaluate, {n:,} records"))
        del window, raw, kept
        gc.collect()
    return results, profiles


# ---- (c) memory ----------------------------------------------------------------------------------
def bench_memory(total: int) -> tuple[dict[str, float], list[str], list[str]]:
    """Run in a fresh process (see :func:`main`), so that RSS is that of one model's detector only."""
    ref = reference(7)[0]
    gc.collect()
    baseline = rss_mb()[0]  # interpreter, numpy/scipy/pandas and the reference profile
    det = ModelDetector(ref, settings())
    step = total // 10
    # Samples are taken half a window after each tenth of the run (1.025M, ..., 10.025M records), so the
    # open window is half full (its reservoir already full) rather than just closed and empty.
    offset = WINDOW // 2
    marks: list[tuple[int, float, float, float]] = []  # records, RSS MB, traced MB, traced peak MB
    tracemalloc.start()
    closed = 0
    start = time.perf_counter()
    for i, (_, batch) in enumerate(batches(31, total + offset)):
        closed += len(det.update(batch))
        done = (i + 1) * BATCH
        if done > offset and (done - offset) % step == 0:
            gc.collect()
            current, peak = tracemalloc.get_traced_memory()
            marks.append((done, rss_mb()[0], current / 2**20, peak / 2**20))
    elapsed = time.perf_counter() - start
    total += offset
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    first, last = marks[0], marks[-1]
    out = {
        "records": float(total),
        "from": float(first[0]),
        "rss_from": first[1],
        "rss_to": last[1],
        "growth": last[1] - first[1],
        "traced_from": first[2],
        "traced_to": last[2],
        "traced_peak": max(m[3] for m in marks),
        "hwm": rss_mb()[1],
        "baseline": baseline,
        "rps": total / elapsed,
        "windows": float(closed),
    }
    lines = [
        f"(c) memory, {total:,} records through one ModelDetector in a fresh process (batches generated on the fly, "
        f"tracemalloc on), {closed} windows closed, {out['rps']:,.0f} records/s incl. generation",
        "    records    " + " ".join(f"{_count(m[0]):>7}" for m in marks),
        "    VmRSS MB   " + " ".join(f"{m[1]:>7.1f}" for m in marks),
        "    traced MB  " + " ".join(f"{m[2]:>7.2f}" for m in marks),
        f"    before the detector (imports + reference): {baseline:.1f} MB RSS",
        f"    growth {_count(first[0])} -> {_count(last[0])}: {out['growth']:+.1f} MB RSS, "
        f"{last[2] - first[2]:+.2f} MB traced; peak RSS (VmHWM) {out['hwm']:.1f} MB; traced peak {out['traced_peak']:.1f} MB",
    ]
    notes = []
    if out["growth"] >= TARGET_GROWTH_MB:
        top = snapshot.statistics("lineno")[:12]
        notes.append("--- tracemalloc: largest live allocations at the end ---\n" + "\n".join(str(s) for s in top))
    return out, lines, notes


# ---- main ------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer records and repeats, (c) on 1M records")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats per measurement (default 5; 2 with --quick)"
    )
    parser.add_argument(
        "--records", type=int, default=None, help="records for (c) (default 10,000,000; 1,000,000 with --quick)"
    )
    parser.add_argument("--profile", action="store_true", help="print cProfile top costs for every measurement")
    parser.add_argument("--skip-memory", action="store_true", help="skip (c)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 5)
    total = args.records or (1_000_000 if args.quick else 10_000_000)
    if repeats < 1 or total < 10 * BATCH or total % (10 * BATCH):
        parser.error("--repeats must be >= 1 and --records a multiple of 10,000")
    start = time.perf_counter()
    print(f"machine: {machine()}")
    print(f"command: python benchmarks/detectors.py {' '.join(sys.argv[1:] if argv is None else argv)}".rstrip())
    ref, ref_raw = reference(7)
    print(
        f"model: {len(NUMERIC)} numeric + {len(CATEGORICAL)} categorical features, binary score prediction, latency; reference {REFERENCE_ROWS:,} rows"
    )
    update, p_a = bench_update(ref, 100_000 if args.quick else 250_000, repeats, args.profile)
    evaluate, p_b = bench_evaluate(ref, ref_raw, (50_000, 500_000), repeats, args.profile)
    memory: dict[str, float] = {}
    p_c: list[str] = []
    if not args.skip_memory:
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            memory, lines, p_c = pool.submit(bench_memory, total).result()
        print("\n".join(lines))
    checks = [
        (
            f"ModelDetector.update >= {TARGET_UPDATE:,} records/s",
            update["model_rps"] >= TARGET_UPDATE,
            f"{update['model_rps']:,.0f}",
        ),
        *[
            (
                f"update + evaluate >= {TARGET_RATIO[n]:.0f}x scipy on the raw rows at {n // 1000}k (medians)",
                evaluate[n]["ratio"] >= TARGET_RATIO[n],
                f"{evaluate[n]['ratio']:.2f}x",
            )
            for n in evaluate
        ],
    ]
    if memory:
        span = f"{_count(int(memory['from']))} -> {_count(int(memory['records']))}"
        checks.append(
            (
                f"RSS growth {span} < {TARGET_GROWTH_MB:.0f} MB",
                memory["growth"] < TARGET_GROWTH_MB,
                f"{memory['growth']:+.1f} MB",
            )
        )
    print()
    for text, ok, observed in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {text}: {observed}")
    if args.quick:
        print("note: --quick is a smoke run (fewer records and repeats); record figures from a full run")
    for block in p_a + p_b + p_c:
        print()
        print(block)
    print(f"elapsed: {time.perf_counter() - start:.1f} s")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
