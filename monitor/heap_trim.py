"""Give the heap's free memory back to the operating system after a large temporary.

A checkpoint encodes a model's state into bytes (megabytes with a full join buffer) and
frees them once written. glibc raises its mmap threshold each time a large mmapped block
is freed (up to 32 MiB), so the next such temporaries come from the heap, and freed heap
memory stays resident. ``malloc_trim`` returns the free pages. Elsewhere than glibc it does
nothing.

It was not enough alone: a flood holding a 32 MiB join buffer grew the process ~110 MB
with checkpoints against ~45 MB without, and this trim helped one run of three, because
most of that memory was not free. Found with tracemalloc and malloc_stats: SQLAlchemy's
compiled-statement cache and SQLite's statement cache each kept the parameters of the
last state written (fixed in monitor/store/instance_checkpoints.py), and the stdlib JSON
encoder's many small temporaries fragmented the heap in 2 runs of 9 (partial records are
encoded with orjson now: monitor/checkpoint_bytes.py). With those, the same flood with a
checkpoint of the whole buffer every second usually grows the process 27-29 MiB, the
buffer's own size; but in 1 of 6 later runs 54 MiB, and once in CI 83 MiB: a whole-buffer
checkpoint can still leave one encoding (~27 MB) resident, not yet found, so the flood test
in tests/monitor/test_buffer_budgets.py runs with checkpoints off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

TRIM_AFTER_BYTES = 1 << 20  # below this a temporary cannot leave much behind


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to call
        return None


_TRIM = _malloc_trim()


def trim_heap() -> None:
    """Return free heap memory to the OS (glibc's malloc_trim(0)); a no-op elsewhere."""
    if _TRIM is not None:
        _TRIM(0)
