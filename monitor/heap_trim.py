"""Give the heap's free memory back to the operating system after a large temporary.

A checkpoint encodes a model's state into bytes (megabytes with full join and label
buffers) and frees them once written. glibc raises its mmap threshold each time a large
mmapped block is freed (up to 32 MiB), so the next such temporaries come from the heap, and
freed heap memory stays resident. ``malloc_trim`` returns the free pages. Measured with a
flood holding a 32 MiB join buffer: ~110 MB of growth with checkpoints against ~45 MB
without; with this trim, one run of three grew 39 MB and two still ~108 MB, so part of the
cost is elsewhere (not yet found). Elsewhere than glibc it does nothing.
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
