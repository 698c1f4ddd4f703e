"""A model's state as bytes, for the Kafka collector's checkpoints and the instance
checkpoints of the models fed over HTTP (monitor/checkpointer.py; those hold the label
buffer every time, so that a retried id is a duplicate after a crash too, but beside the
model states, as what changed since the last checkpoint: monitor/label_checkpoints.py).

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

The per-version windows (config ``versions:``) are in it as well, with their counts and
the champion's and challenger's rows waiting (monitor/version_state.py); a checkpoint
written before they were has none, and its versions start over.

Not in a checkpoint: a warm-up in progress (a reference being built from the first
records); it restarts.

What result sinks keep per model (the alert engine's states) is in it too: the next owner
of the model goes on with the same alert episodes, so an alert fires once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import numpy as np
import orjson

from detectors.model import ModelDetector
from detectors.sketches import unpack
from monitor.checkpoint_bytes import Chunks, exact_json, json_chunks, pack_chunks
from monitor.joins import Pending
from monitor.label_checkpoints import AwaitingColumns, LabelCapture
from monitor.model_state import ModelState
from monitor.records import Record
from monitor.store.results import json_safe

log = logging.getLogger(__name__)

# 2: the partial records in an array of their own (JSON), not in the header; 1 is still read.
FORMAT_VERSION = 2
_READ_VERSIONS = (1, 2)
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
    (:meth:`monitor.label_buffer.LabelBuffer.entries_of` or
    :func:`monitor.label_checkpoints.entries_by_model`)."""
    return bytes(encode_model(capture_model(state, partials, sinks, awaiting)))


@dataclass
class Captured:
    """What :func:`capture_model` took of a model while it could not change, for
    :func:`encode_model` to serialise later, outside the pipeline's lock: ``header`` (JSON
    values), the partial records' fields and arrival times with their estimated sizes,
    numeric arrays (the detector's, the segments' and the versions' state as bytes) and, for a handover,
    the predictions awaiting labels (most of the bytes with the partial records: both are
    encoded a slice at a time)."""

    header: dict[str, Any]
    partials: list[tuple[dict[str, Any], float]]
    partial_sizes: list[int]
    arrays: dict[str, np.ndarray]
    awaiting: list[list[Any]] | AwaitingColumns | None = None


def capture_model(
    state: ModelState,
    partials: list[Pending],
    sinks: Mapping[str, ModelScopedSink],
    awaiting: list[list[Any]] | AwaitingColumns | None = None,
) -> Captured:
    """The first half of :func:`dump_model`, taken while the model cannot change. Only
    references to the partial records' values are taken (they are not changed in place)
    and fresh lists of immutable values for ``awaiting``: safe to encode later, off the lock."""
    header: dict[str, Any] = {
        "kind": "model_state",
        "format_version": FORMAT_VERSION,
        "model": state.name,
        "counts": {name: getattr(state, name) for name in _COUNTS},
        "reference_version": state.reference_version,
        "sinks": {name: json_safe(sink.model_state(state.name)) for name, sink in sinks.items()},
    }
    fields = [({f: getattr(p.record, f) for f in _RECORD_FIELDS}, p.arrived) for p in partials]
    arrays = {}
    if state.detector is not None:
        arrays["detector"] = np.frombuffer(state.detector.to_bytes(), np.uint8)
    segments = state.segments.to_bytes() if state.segments is not None else None
    if segments is not None:
        arrays["segments"] = np.frombuffer(segments, np.uint8)
    if state.versions is not None:
        arrays["versions"] = np.frombuffer(state.versions.to_bytes(), np.uint8)
    return Captured(header, fields, [p.size for p in partials], arrays, awaiting)


@dataclass
class LocalSnapshot:
    """What :meth:`monitor.pipeline.Pipeline.snapshot_local` took at ``taken_at`` (epoch s): the state of each
    local model that changed since the last snapshot, the count deltas of every local model
    up to that moment, the models owned elsewhere (whose stored local state is stale) and
    what changed in the label buffer (None: the caller keeps no journal of it)."""

    states: dict[str, Captured]
    counts: dict[tuple[str, str], dict[str, int]]
    external: set[str]
    taken_at: float
    labels: LabelCapture | None = None


def encode_model(captured: Captured) -> bytearray:
    """A :func:`capture_model` as checkpoint bytes: the partial records and the predictions
    awaiting labels go as JSON arrays beside the header (encoded a slice at a time:
    monitor/checkpoint_bytes.py), the detector as bytes."""
    header = dict(captured.header)
    parts: dict[str, Chunks] = {"partials": json_chunks(captured.partials, captured.partial_sizes, exact_json)}
    awaiting = captured.awaiting
    if isinstance(awaiting, tuple):  # ids and value rows (monitor.label_checkpoints.entries_by_model)
        header["awaiting_columns"] = True
        parts["awaiting"] = [b"[", *json_chunks(awaiting[0]), b",", *json_chunks(awaiting[1]), b"]"]
    elif awaiting is not None:
        parts["awaiting"] = json_chunks(awaiting)
    return pack_chunks(header, captured.arrays, parts)


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
    if header.get("kind") != "model_state" or header.get("format_version") not in _READ_VERSIONS:
        raise ValueError(f"not a model state checkpoint of format {' or '.join(map(str, _READ_VERSIONS))}")
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
    if "segments" in arrays and state.segments is not None:
        state.segments.restore(arrays["segments"].tobytes())
    if state.versions is not None and "versions" in arrays:
        state.versions.restore(arrays["versions"].tobytes(), state.name)
    elif state.versions is not None:  # written before version windows were in checkpoints: they start over
        state.versions.reset()
    saved = header.get("sinks", {})
    for name, sink in sinks.items():
        sink.restore_model(state.name, saved.get(name, []))
    stored = _partials_json(arrays["partials"].tobytes()) if "partials" in arrays else header["partials"]
    partials = [Pending(Record(**fields), float(arrived)) for fields, arrived in stored]
    if "awaiting" in arrays:
        awaiting = orjson.loads(arrays["awaiting"].tobytes())
        if header.get("awaiting_columns"):  # ids and value rows (monitor.label_checkpoints.entries_by_model)
            ids, values = awaiting
            awaiting = [[name, *value] for name, value in zip(ids, values, strict=True)]
        return partials, awaiting
    return partials, header.get("awaiting", [])  # as checkpoints before the array wrote them


def _partials_json(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # NaN, infinities or a huge integer: written by the stdlib (exact_json)
        return json.loads(data)


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
        if state.segments is not None:
            state.segments.start(state.detector.reference, state.detector.settings)
    if state.versions is not None:
        state.versions.reset()
