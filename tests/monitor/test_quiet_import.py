"""Importing the library changes nothing global in the caller's process; the service's
entry points tune their own processes (one BLAS thread, garbage-collector thresholds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support import ROOT

BLAS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

QUIET = """
import gc, json, os
environ, threshold, frozen = dict(os.environ), gc.get_threshold(), gc.get_freeze_count()
import monitor, monitor.cli, monitor.client, monitor.comparison, monitor.profiling
import numpy, pandas
frame = pandas.DataFrame({"x": numpy.arange(500.0), "c": ["a", "b"] * 250})
monitor.compare(frame, frame)
seen = {
    "environ_same": dict(os.environ) == environ,
    "threshold_same": gc.get_threshold() == threshold,
    "frozen": gc.get_freeze_count() - frozen,
}
from threadpoolctl import threadpool_info  # only now: it sets a variable of its own
print(json.dumps({
    **seen,
    "blas_threads": [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"],
}))
"""

TUNED = f"""
import json, os
BLAS = {BLAS!r}
import numpy  # loaded before the command runs, as in `monitor serve`
from monitor.process_tuning import limit_blas_threads
from threadpoolctl import threadpool_info
limit_blas_threads()
print(json.dumps({{
    "environ": [os.environ.get(name) for name in BLAS],
    "blas_threads": [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"],
}}))
"""


def _run(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in BLAS}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env={**clean, **env}, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_import_and_compare_leave_the_process_alone() -> None:
    seen = _run(QUIET)
    assert seen["environ_same"] and seen["threshold_same"] and seen["frozen"] == 0
    # numpy's own default (one thread per core), not the service's single thread
    assert seen["blas_threads"] and all(n == os.cpu_count() for n in seen["blas_threads"])


def test_service_entry_point_tuning_sets_one_blas_thread() -> None:
    seen = _run(TUNED)
    assert seen["environ"] == ["1", "1", "1"]  # for the processes it starts
    assert seen["blas_threads"] and set(seen["blas_threads"]) == {1}  # and this process, numpy loaded
    # an explicit setting wins: left as given, and this process's pool untouched
    explicit = _run(TUNED, OPENBLAS_NUM_THREADS="2")
    assert explicit["environ"] == ["2", "1", "1"]
    assert explicit["blas_threads"] and set(explicit["blas_threads"]) == {2}
