"""The C allocator's settings that keep the service's memory bounded (glibc; elsewhere
these do nothing).

A checkpoint encodes a model's state into bytes (tens of MB with a full join buffer) on a
worker thread, writes them and frees them. Two things kept such freed temporaries resident:

- glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MiB),
  so the next such temporaries come from the heap, and freed heap memory stays resident.
  :func:`trim_heap` (``malloc_trim``) returns the free pages after each large checkpoint.
- glibc gives threads arenas of their own (up to 8 per core). A join flood of 32 MiB with a
  whole-buffer checkpoint every second grew the process by its buffer's size, 25-29 MiB, in
  most runs, but by 53-81 MiB in 6 of 31 (one of them in CI): one more encoding stayed in a
  worker thread's arena, which the trim did not give back. With a single arena, 0 of 30
  runs (25.0-29 MiB). The service's threads seldom allocate at the same moment (the GIL
  serialises most of their work), so sharing one arena costs little: see
  :func:`limit_malloc_arenas` for the measured cost.

Before these, tracemalloc and malloc_stats found copies that were not free at all:
SQLAlchemy's compiled-statement cache and SQLite's statement cache each kept the parameters
of the last state written (fixed in monitor/store/instance_checkpoints.py), and the stdlib
JSON encoder's many small temporaries fragmented the heap (partial records are encoded with
orjson now: monitor/checkpoint_bytes.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from typing import Any

TRIM_AFTER_BYTES = 1 << 20  # below this a temporary cannot leave much behind
ARENA_VARIABLE = "MALLOC_ARENA_MAX"  # read by glibc when a process starts
_M_ARENA_MAX = -8  # mallopt's parameter number for it (malloc.h)


def libc_function(name: str) -> Callable[..., Any] | None:
    library = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(library), name) if library else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_TRIM = libc_function("malloc_trim")


def trim_heap() -> None:
    """Return free heap memory to the OS (glibc's malloc_trim(0)); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)


def limit_malloc_arenas() -> None:
    """One malloc arena for this process and the processes it starts (uvicorn workers, the
    Kafka consumer process), as the service's entry points set up; an explicit
    ``MALLOC_ARENA_MAX`` in the environment wins.

    Cost: none seen in 3 A/B pairs of ``benchmarks/ingest_http.py --checkpoints on`` (CPU
    per 1,000 records 11.3 ms with one arena, 12.1 without; benchmarks/RESULTS.md)."""
    explicit = ARENA_VARIABLE in os.environ
    os.environ.setdefault(ARENA_VARIABLE, "1")  # children read it when they start
    mallopt = None if explicit else libc_function("mallopt")
    if mallopt is not None:  # this process has started already: tell its allocator
        mallopt(_M_ARENA_MAX, 1)
