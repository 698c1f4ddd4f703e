"""A model's state as bytes, for the Kafka collector's checkpoints and the instance
checkpoints of the models fed over HTTP (monitor/checkpointer.py; those hold the label
buffer every time, so that a retried id is a duplicate after a crash too).

A checkpoint holds what the model's records have produced up to the consumed offsets it is
stored with: the counts, the detector's windows (open window, RNG state, open performance
window; closed windows have already been evaluated and published) and the partial records
still waiting in the join buffer for their other part. Restoring it and reading on from
those offsets gives the same state as if the process had never stopped.

The label buffer (recent predictions awaiting delayed labels, up to 200,000 entries) is in
the checkpoints written when the model is handed over (partitions given up, or the
instance stopping), not in the periodic ones: writing it every second would cost more than
it saves. So labels keep finding their predictions across rebalances and restarts; after a
crash the next owner restores a periodic checkpoint, without the buffer, and labels for
predictions made before it are counted as unmatched (``monitor_labels_unmatched_total``).
Exactly-once counting does not need it either way: the buffer of a checkpoint holds the
predictions up to its offsets, and only messages after them are read again.

Not in a checkpoint: a warm-up in progress (a reference being built from the first
records); it restarts.

What result sinks keep per model (the alert engine's states) is in it too: the next owner
of the model goes on with the same alert episodes, so an alert fires once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import numpy as np
import orjson

from detectors.model import ModelDetector
from detectors.sketches import pack, unpack
from monitor.joins import AwaitingColumns, Pending
from monitor.model_state import ModelState
from monitor.records import Record
from monitor.store.results import json_safe

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
_RECORD_FIELDS = (
    "model", "id", "version", "timestamp", "inputs", "prediction", "latency_ms", "label", "segment",
    "has_prediction", "has_label",
)  # fmt: skip
_COUNTS = ("records", "incomplete", "labelled", "windows_evaluated")


class ModelScopedSink(Protocol):
    """A result sink that keeps per-model state of its own (the alert engine's states): it
    travels in the model's checkpoint, so the next owner goes on from it."""

    def model_state(self, model: str) -> Any: ...

    def restore_model(self, model: str, state: Any) -> None: ...


def _is_scoped(sink: object) -> TypeGuard[ModelScopedSink]:
    # model_state marks such a sink; restore_model comes with it.
    return hasattr(sink, "model_state")


def scoped_sinks(sinks: Iterable[object]) -> dict[str, ModelScopedSink]:
    return {type(sink).__name__: sink for sink in sinks if _is_scoped(sink)}


def dump_model(
    state: ModelState,
    partials: list[Pending],
    sinks: Mapping[str, ModelScopedSink],
    awaiting: list[list[Any]] | AwaitingColumns | None = None,
) -> bytes:
    """Serialise ``state`` (its pending records already fed), its buffered partial records,
    what ``sinks`` keep for it and, for a handover, its predictions awaiting labels
    (:meth:`monitor.joins.LabelBuffer.entries_of` or :func:`monitor.joins.entries_by_model`)."""
    return encode_model(capture_model(state, partials, sinks, awaiting))


Captured = tuple[dict[str, Any], dict[str, np.ndarray]]


def capture_model(
    state: ModelState,
    partials: list[Pending],
    sinks: Mapping[str, ModelScopedSink],
    awaiting: list[list[Any]] | AwaitingColumns | None = None,
) -> Captured:
    """The first half of :func:`dump_model`, taken while the model cannot change: copies of
    what the checkpoint holds, for :func:`encode_model` to serialise later, outside the
    pipeline's lock (the predictions awaiting labels are most of the bytes)."""
    header: dict[str, Any] = {
        "kind": "model_state",
        "format_version": FORMAT_VERSION,
        "model": state.name,
        "counts": {name: getattr(state, name) for name in _COUNTS},
        "reference_version": state.reference_version,
        "partials": [[{f: getattr(p.record, f) for f in _RECORD_FIELDS}, p.arrived] for p in partials],
        "sinks": {name: json_safe(sink.model_state(state.name)) for name, sink in sinks.items()},
    }
    if awaiting is not None:
        header["awaiting"] = awaiting  # fresh lists of immutable values: safe to encode later, off the lock
    arrays = {}
    if state.detector is not None:
        arrays["detector"] = np.frombuffer(state.detector.to_bytes(), np.uint8)
    return header, arrays


@dataclass
class LocalSnapshot:
    """What :meth:`monitor.pipeline.Pipeline.snapshot_local` took at ``taken_at`` (epoch s): the state of each
    local model that changed since the last snapshot, the count deltas of every local model
    up to that moment, and the models owned elsewhere (whose stored local state is stale)."""

    states: dict[str, Captured]
    counts: dict[tuple[str, str], dict[str, int]]
    external: set[str]
    taken_at: float


def encode_model(captured: Captured) -> bytes:
    """A :func:`capture_model` as checkpoint bytes. The predictions awaiting labels (up to
    the label buffer's byte budget) go as one orjson array beside the header rather than in
    it: ~20x faster than the header's stdlib JSON for 100,000 entries."""
    header, arrays = captured
    if "awaiting" in header:
        header = dict(header)
        awaiting = header.pop("awaiting")
        if isinstance(awaiting, tuple):  # ids and value rows (monitor.joins.entries_by_model)
            header["awaiting_columns"] = True
            encoded = b"[" + _json_list(awaiting[0]) + b"," + _json_list(awaiting[1]) + b"]"
        else:
            encoded = _json_list(awaiting)
        arrays = {**arrays, "awaiting": np.frombuffer(encoded, np.uint8)}
    return pack(header, arrays)


_ENCODE_CHUNK = 5_000  # entries per orjson call: ~1 ms each, so the event loop's thread gets the GIL between them


def _json_list(items: list[Any]) -> bytes:
    """``items`` as a JSON array, encoded a chunk at a time: one orjson call over 100,000
    entries holds the GIL for tens of ms, a pause every request in flight would wait out.
    NaN and infinities become null, numpy values numbers, other objects their repr (as
    json_safe makes them)."""
    options = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
    chunks = []
    for start in range(0, len(items), _ENCODE_CHUNK):
        chunks.append(orjson.dumps(items[start : start + _ENCODE_CHUNK], default=repr, option=options)[1:-1])
        time.sleep(0)  # lets the event loop's thread take the GIL
    return b"[" + b",".join(chunks) + b"]"


def load_model(
    state: ModelState, data: bytes, sinks: Mapping[str, ModelScopedSink]
) -> tuple[list[Pending], list[list[Any]]]:
    """Put a checkpoint back into ``state`` and ``sinks``; returns the partial records to
    re-buffer and the predictions awaiting labels (none unless it was a handover).

    Windows come back only if the checkpoint was taken against the reference now active:
    after a reference change the model starts new windows (and says so), as it would have
    if it had been running.
    """
    header, arrays = unpack(data)
    if header.get("kind") != "model_state" or header.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a model state checkpoint of format {FORMAT_VERSION}")
    if header.get("model") != state.name:
        raise ValueError(f"checkpoint of model {header.get('model')!r}, not {state.name!r}")
    for name in _COUNTS:
        setattr(state, name, int(header["counts"][name]))
    if "detector" in arrays and state.detector is not None:
        current = state.detector
        try:
            state.detector = ModelDetector.from_bytes(arrays["detector"].tobytes(), current.reference, current.settings)
        except ValueError as exc:
            log.warning("model %s: windows of the checkpoint not restored (%s): new windows start", state.name, exc)
    elif "detector" in arrays:
        log.warning("model %s: no reference loaded, the checkpoint's windows cannot be restored", state.name)
    saved = header.get("sinks", {})
    for name, sink in sinks.items():
        sink.restore_model(state.name, saved.get(name, []))
    partials = [Pending(Record(**fields), float(arrived)) for fields, arrived in header["partials"]]
    if "awaiting" in arrays:
        awaiting = orjson.loads(arrays["awaiting"].tobytes())
        if header.get("awaiting_columns"):  # ids and value rows (monitor.joins.entries_by_model)
            ids, values = awaiting
            awaiting = [[name, *value] for name, value in zip(ids, values, strict=True)]
        return partials, awaiting
    return partials, header.get("awaiting", [])  # as checkpoints before the array wrote them


def reset_model(state: ModelState, sinks: Mapping[str, ModelScopedSink]) -> None:
    """Forget what the model has counted (its partitions went to another instance, which
    restores the checkpoint): zero counts, fresh windows against the same reference, and
    nothing in ``sinks``."""
    for sink in sinks.values():
        sink.restore_model(state.name, [])
    for name in _COUNTS:
        setattr(state, name, 0)
    state.feed()  # nothing pending may leak into the fresh windows
    if state.detector is not None:
        state.detector = ModelDetector(state.detector.reference, state.detector.settings)
