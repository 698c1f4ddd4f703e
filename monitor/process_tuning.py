"""Process-wide tuning for the service's own processes (``monitor serve``, ``monitor
consume``), applied by their entry points, never on ``import monitor``: a notebook or a
model server that imports the library keeps its own thread pools and settings."""

from __future__ import annotations

import os

# numpy's BLAS starts a thread per core whose threads spin between calls: after one matrix
# product they took most of a core from ingestion (seen in the Kafka benchmark). The
# monitor's matrix work is small, so one BLAS thread is enough.
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads() -> None:
    """One BLAS thread for this process and the processes it starts (uvicorn workers, the
    Kafka consumer process). An explicit setting in the environment wins.

    The variables reach child processes, which load numpy after they start; this process
    has usually loaded numpy already, so its pool is resized through threadpoolctl."""
    explicit = any(variable in os.environ for variable in BLAS_THREAD_VARIABLES)
    for variable in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(variable, "1")
    if explicit:
        return
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
