"""The model monitor: settings, record schema, pipeline, storage, the app and the command."""

import os

# numpy's BLAS starts a thread per core whose threads spin between calls: after one matrix
# product they took most of a core from ingestion (seen in the Kafka benchmark). The
# monitor's matrix work is small, so one BLAS thread is enough. Set before numpy loads;
# an explicit setting in the environment wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
