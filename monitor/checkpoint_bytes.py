"""Checkpoint bytes built without large temporaries and without long holds of the GIL
(monitor/model_snapshots.py, monitor/label_checkpoints.py).

A checkpoint can be tens of MB: a join buffer full of large partial records, a label
buffer of 200,000 predictions. Encoded in one go it held the GIL for tens of ms (every
request in flight waited that out) and had 3-4 copies of itself alive at once: a 27.7 MiB
model state peaked at 83 MiB traced (the stdlib JSON of a header holding the partial
records, then :func:`detectors.sketches.pack`'s copies and concatenations). Here:

* :func:`json_chunks` encodes a list as a JSON array a slice at a time, letting other
  threads take the GIL between slices;
* :func:`pack_chunks` writes :func:`detectors.sketches.pack`'s container (read back by
  :func:`detectors.sketches.unpack`) into one preallocated buffer, copying each chunk once
  and dropping it once copied: the peak is twice the checkpoint's size (the encoded
  chunks, then the buffer), 55 MiB traced for that 27.7 MiB state.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import orjson

# The container of detectors.sketches.pack (magic, codec version, header length), written in place.
from detectors.sketches import CODEC_VERSION, MAGIC, PREFIX

Chunks = list[bytes | memoryview]

SLICE_ENTRIES = 5_000  # list items per encoder call: ~1 ms for label entries
SLICE_BYTES = 1 << 18  # or fewer, when the items' estimated sizes add up to this (large partial records: ~1.5 ms)
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _fast(items: Sequence[Any]) -> bytes:
    """orjson: NaN and infinities become null, numpy values numbers, other objects their
    repr (as monitor.store.results.json_safe makes them)."""
    return orjson.dumps(items, default=repr, option=_ORJSON_OPTIONS)


def exact_json(items: Sequence[Any]) -> bytes:
    """JSON whose NaN and infinities read back as themselves (partial records' inputs: a NaN
    input must stay a non-finite value, not become a null one): orjson, or the stdlib's
    encoder for the rare slice that holds one. (The stdlib's alone, over a flood of large
    records, left ~55 MB resident after a checkpoint in 2 runs of 9, against 0 of 8: its
    many small temporaries fragment the heap.)"""
    if not any(map(_non_finite, items)):
        try:
            return _fast(items)
        except orjson.JSONEncodeError:  # an integer beyond 64 bits: the stdlib's writes it
            pass
    return json.dumps(items, separators=(",", ":")).encode()


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_non_finite, value.values()))
    if isinstance(value, list | tuple):
        return any(map(_non_finite, value))
    return False


def json_chunks(
    items: Sequence[Any], sizes: Sequence[int] | None = None, dumps: Callable[[Sequence[Any]], bytes] = _fast
) -> Chunks:
    """``items`` as the pieces of one JSON array (joined, they are the array), encoded
    :data:`SLICE_ENTRIES` items at a time, or fewer where their estimated ``sizes`` (bytes)
    reach :data:`SLICE_BYTES`, with a GIL release between slices."""
    chunks: Chunks = [b"["]
    start = 0
    while start < len(items):
        stop = min(start + SLICE_ENTRIES, len(items))
        if sizes is not None:
            held, end = 0, start
            while end < stop and (end == start or held + sizes[end] <= SLICE_BYTES):
                held += sizes[end]
                end += 1
            stop = end
        encoded = dumps(items[start:stop])
        if len(chunks) > 1:
            chunks.append(b",")
        chunks.append(memoryview(encoded)[1:-1])  # the items without the brackets (a view: no copy)
        start = stop
        time.sleep(0)  # lets the event loop's thread take the GIL
    chunks.append(b"]")
    return chunks


def pack_chunks(header: Mapping[str, Any], arrays: Mapping[str, np.ndarray], parts: Mapping[str, Chunks]) -> bytearray:
    """``header``, numeric ``arrays`` and byte ``parts`` (each a list of chunks, stored as a
    uint8 array) in :func:`detectors.sketches.pack`'s container. The chunk lists are emptied
    as they are copied."""
    table: list[list[Any]] = []
    offset = 0
    pieces: list[Chunks] = []
    for name, array in arrays.items():
        a = np.ascontiguousarray(array)
        if a.dtype.byteorder == ">":
            a = a.astype(a.dtype.newbyteorder("<"))
        table.append([name, a.dtype.str, list(a.shape), offset, a.nbytes])
        pieces.append([a.reshape(-1).view(np.uint8).data])  # its bytes, not a copy
        offset += a.nbytes + (-a.nbytes) % 8
    for name, chunks in parts.items():
        nbytes = sum(map(len, chunks))
        table.append([name, "|u1", [nbytes], offset, nbytes])
        pieces.append(chunks)
        offset += nbytes + (-nbytes) % 8
    head = json.dumps({"h": header, "a": table}, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * ((-(len(head) + PREFIX.size)) % 8)
    start = PREFIX.size + len(head)
    out = bytearray(start + offset)  # zeroed: the padding between arrays
    PREFIX.pack_into(out, 0, MAGIC, CODEC_VERSION, len(head))
    out[PREFIX.size : start] = head
    view = memoryview(out)
    for (_, _, _, at, _), chunks in zip(table, pieces, strict=True):
        position = start + at
        for i, chunk in enumerate(chunks):
            view[position : position + len(chunk)] = chunk
            position += len(chunk)
            chunks[i] = b""  # copied: let it go now
        chunks.clear()
    view.release()
    return out
