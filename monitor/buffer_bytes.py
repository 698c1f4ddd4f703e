"""What an entry of the join or label buffer costs in memory, estimated when it enters.

The buffers' byte budgets (``limits.join_buffer_bytes``, ``limits.label_buffer_bytes``)
count these estimates. An estimate is a function of the entry's content only, the same
whichever path the entry took, and cheap: a string is its ``sys.getsizeof`` (a C call: the
object header plus its length times its character width, so wide characters cannot slip
past the budget at a quarter of their cost), a number, boolean or null a constant
(NUMBER_BYTES), a flat dict its own table plus its keys and values, and a constant per
entry stands for the structures around it (the buffer's slots, key tuple, entry tuple or
objects, floats). A column of predictions is estimated with a few C-level passes
(:func:`label_entries_bytes`), not a Python call per value.

Calibration (tracemalloc, CPython 3.11, 64-bit; ``tests/monitor/test_buffer_bytes.py``
keeps it true): with the constants below the estimate is never below the traced memory of
an entry (objects parsed from JSON, as a request's) and at most about 1.7 times it:

| entry | traced bytes per entry | estimated |
|---|---:|---:|
| label, columnar path (200,000 / 20,000 entries; id ``req-0000000123``, float prediction) | 309 / 286 | 401 |
| label, one record at a time (50,000 entries; 1,000 to 30,000: 359-379) | 359 | 401 |
| join, prediction only (1,000 to 30,000 entries) | 524-552 | 593 |
| join, 5 features (4 numbers, a string of 8) | 872 | 1,215 |
| join, 25 features (20 numbers, 5 strings of 8) | 2,457-2,469 | 4,079 |
| join, 1,024 strings of 1,000 characters | 1,135,962 | 1,170,057 |

The estimate runs over where objects are shared: the model name (one string for a whole
columnar batch, counted per entry), feature names (the JSON parser reuses key strings
between records), small integers, booleans and null (shared by the interpreter). Where it
matters - large entries - the strings dominate and are counted exactly. The constants
cover the growth steps of the buffers' dict and order list (traced bytes per entry vary by
~8% with the number of entries).

Real memory (RSS) also holds the allocator's slack: memory freed by a request's transient
objects stays mapped while long-lived buffered objects sit among it (a few times the
request body: ``tests/monitor/test_buffer_budgets.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from sys import getsizeof
from typing import Any

import numpy as np

from monitor.records import Record

# Per-entry structures besides the values, calibrated (module docstring). Label buffer: the
# dict slot (up to 2x for its growth steps), the (model, id) key tuple, the (prediction,
# timestamp, arrived, labelled, segment) tuple, two floats, the order list's slot and the size's.
LABEL_ENTRY_BYTES = 256
# Join buffer: the Record (11 slots) and Pending objects, the ordered dict's node and slot,
# the key tuple, the timestamp, arrival and latency floats.
JOIN_ENTRY_BYTES = 448
# A number (and a boolean or null): a float is 24 bytes, an int up to 2**60 28-32 (JSON
# numbers are parsed to at most 64 bits), True, False and None are shared. One constant,
# so that a column of numbers costs no call per value.
NUMBER_BYTES = 32

_NUMBERS = frozenset({int, float, bool, type(None)})
_FLAT = _NUMBERS | {str}
_ASCII_HEADER = getsizeof("")  # an ASCII string is this plus one byte per character


def value_bytes(value: Any) -> int:
    """A JSON value's estimated size: a string by ``getsizeof``, a number NUMBER_BYTES, a
    container its own size plus its parts' (records' objects are flat: no recursion)."""
    kind = type(value)
    if kind is str:
        return getsizeof(value)
    if kind in _NUMBERS:
        return NUMBER_BYTES
    if isinstance(value, Mapping):
        keys, values = value.keys(), value.values()
        if set(map(type, keys)) == {str} and _FLAT.issuperset(map(type, values)):
            strings = [v for v in values if type(v) is str]
            numbers = len(value) - len(strings)
            return getsizeof(value) + sum(map(getsizeof, keys)) + sum(map(getsizeof, strings)) + NUMBER_BYTES * numbers
        return getsizeof(value) + sum(value_bytes(k) + value_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return getsizeof(value) + sum(map(value_bytes, value))
    return getsizeof(value)


def record_bytes(record: Record) -> int:
    """A partial record's estimated size in the join buffer."""
    size = JOIN_ENTRY_BYTES + getsizeof(record.model) + getsizeof(record.id)
    if record.version is not None:
        size += getsizeof(record.version)
    if record.inputs is not None:
        size += value_bytes(record.inputs)
    if record.has_prediction:
        size += value_bytes(record.prediction)
    if record.has_label:
        size += value_bytes(record.label)
    if record.segment is not None:
        size += value_bytes(record.segment)
    return size


def label_entry_bytes(key: tuple[str, str], prediction: Any, segment: Mapping[str, str] | None = None) -> int:
    """A label buffer entry's estimated size: its key, the prediction it keeps and its
    segment tags, if any (a flat dict, counted whole: each entry holds its own)."""
    size = LABEL_ENTRY_BYTES + getsizeof(key[0]) + getsizeof(key[1]) + value_bytes(prediction)
    return size if segment is None else size + value_bytes(segment)


def label_entries_bytes(
    keys: Sequence[tuple[str, str]],
    predictions: Sequence[Any],
    kinds: set[type] | None = None,
    model: str | None = None,
    segments: Sequence[Mapping[str, str] | None] | None = None,
) -> np.ndarray:
    """:func:`label_entry_bytes` of each ``(key, prediction, segment)`` (int64), column-wise: for
    a batch of one model with numbers or strings for predictions, a few C-level passes and
    no Python call per entry (~50 µs per 1,000). ``kinds``: the predictions' types, and
    ``model``: the model of every key, when the caller knows them (a pass less each);
    ``segments``: each entry's tags (None: no entry has any; a Python call per entry else)."""
    sizes = string_bytes(list(map(itemgetter(1), keys)))
    constant = LABEL_ENTRY_BYTES
    kinds = set(map(type, predictions)) if kinds is None else kinds
    if kinds <= _NUMBERS:
        constant += NUMBER_BYTES
    elif kinds == {str}:
        sizes += string_bytes(predictions)
    else:
        sizes += np.fromiter(map(value_bytes, predictions), np.int64, len(predictions))
    models = {model} if model is not None else set(map(itemgetter(0), keys))
    if len(models) == 1:
        constant += getsizeof(models.pop())
    else:
        sizes += string_bytes(list(map(itemgetter(0), keys)))
    sizes += constant
    if segments is not None:
        sizes += np.fromiter((0 if tags is None else value_bytes(tags) for tags in segments), np.int64, len(segments))
    return sizes


def string_bytes(strings: Sequence[str]) -> np.ndarray:
    """``getsizeof`` of each string (int64): for ASCII text (one check over the joined
    strings) the header plus the length, which is what getsizeof gives, at a tenth of its
    cost."""
    try:
        ascii_only = "".join(strings).isascii()
    except TypeError:  # not all strings
        return np.fromiter(map(value_bytes, strings), np.int64, len(strings))
    if not ascii_only:
        return np.fromiter(map(getsizeof, strings), np.int64, len(strings))
    sizes = np.fromiter(map(len, strings), np.int64, len(strings))
    sizes += _ASCII_HEADER
    return sizes
