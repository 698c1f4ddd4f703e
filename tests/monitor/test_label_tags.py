"""The label buffer keeps a prediction's segment tags only for the models configured with
``segments:`` (whose slices' performance windows read them): another model's tags would
take its byte budget for nothing. A model without segments holds exactly the bytes of
the same traffic sent without tags, on every way in (a batch, one record, a checkpoint's
entries put back); a model with segments holds its tags, counted."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from monitor.buffer_bytes import value_bytes
from monitor.label_buffer import LabelBuffer
from monitor.metrics import Metrics
from monitor.pipeline import Pipeline
from monitor.settings import settings_from_mapping

TAGS = [{"region": "eu"}, {"region": "us", "device": "kiosk"}, {}, {"region": "apac"}]


def _tags(i: int) -> dict[str, str]:
    return TAGS[i % len(TAGS)]


def _fill(buffer: LabelBuffer, tagged_models: set[str]) -> None:
    """The same entries for models "seg" and "plain" through every way in; tags sent only
    for the models in ``tagged_models``."""

    def tags(model: str, i: int) -> dict[str, str] | None:
        return _tags(i) if model in tagged_models else None

    for model in ("seg", "plain"):
        keys = [(model, f"b{i}") for i in range(40)]  # a batch of one model
        buffer.remember_all(keys, [0.5] * 40, [1.0] * 40, None, 1.0, model, [tags(model, i) for i in range(40)])
        for i in range(10):  # one record at a time
            buffer.remember_values((model, f"r{i}"), 1, 2.0, i % 2 == 0, 2.0, tags(model, i))
    # A batch of both models, the model unknown to the buffer.
    keys = [("seg" if i % 2 else "plain", f"m{i}") for i in range(20)]
    buffer.remember_all(keys, [0.1] * 20, [3.0] * 20, None, 3.0, None, [tags(k[0], i) for i, k in enumerate(keys)])
    # A checkpoint's entries put back (written by a version that kept every model's tags).
    keys = [("seg" if i % 2 else "plain", f"c{i}") for i in range(12)]
    entries = [(0, 0.5, 4.0, False, tags(k[0], i)) for i, k in enumerate(keys)]
    assert buffer.put_back_entries(keys, entries) == {}


def _tag_bytes(buffer: LabelBuffer, model: str) -> int:
    return sum(value_bytes(entry[4]) for key, entry in buffer.copy()[1].items() if key[0] == model and entry[4])


def test_only_models_with_segments_keep_their_tags() -> None:
    both = LabelBuffer(1_000, 1e9, tagged={"seg"})
    _fill(both, {"seg", "plain"})
    only_seg = LabelBuffer(1_000, 1e9, tagged={"seg"})
    _fill(only_seg, {"seg"})
    untagged = LabelBuffer(1_000, 1e9, tagged={"seg"})
    _fill(untagged, set())
    assert len(both) == len(only_seg) == len(untagged) == 2 * 50 + 20 + 12
    # "plain"'s tags were dropped on every way in: the same bytes as without them.
    assert both.bytes == only_seg.bytes
    assert [e[5] for e in both.entries_of("plain")] == [None] * 66
    # "seg" keeps its tags ({} is no tag) and they are counted.
    seg = both.entries_of("seg")
    # 40 + 10 + 10 + 6 entries; the tags of i % 4 == 2 are {} (none): 10 of the batch, 2 of the singles.
    assert (len(seg), sum(1 for e in seg if e[5])) == (66, 54)
    assert both.bytes - untagged.bytes == _tag_bytes(both, "seg") > 0
    # Without ``tagged`` every model keeps them (the buffer alone, as before).
    every = LabelBuffer(1_000, 1e9)
    _fill(every, {"seg", "plain"})
    assert every.bytes - untagged.bytes == _tag_bytes(every, "seg") + _tag_bytes(every, "plain")


def _pipeline(tags_for: set[str]) -> Pipeline:
    """A real pipeline of "seg" (``segments: [region]``) and "plain" fed the same traffic,
    as a batch (the columnar path) and as single records, tags sent for ``tags_for``."""
    features = {"x": {"type": "numeric"}}
    settings = settings_from_mapping(
        {"models": {"seg": {"features": features, "segments": ["region"]}, "plain": {"features": features}}}
    )
    pipeline = Pipeline(settings, Metrics(CollectorRegistry()), dead_letters=lambda items: None)

    def item(model: str, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"model": model, "id": f"p{i}", "timestamp": 1.7e9 + i, "inputs": {"x": 1.0},
                               "prediction": 0.5}  # fmt: skip
        if model in tags_for and _tags(i):
            out["segment"] = _tags(i)
        return out

    for model in ("seg", "plain"):
        assert pipeline.ingest_items([item(model, i) for i in range(100)], "http", 1.7e9).accepted == 100
        for i in range(100, 105):
            assert pipeline.ingest_items([item(model, i)], "http", 1.7e9).accepted == 1
    return pipeline


def test_the_pipeline_keeps_tags_only_for_models_with_segments() -> None:
    both, only_seg, untagged = _pipeline({"seg", "plain"}), _pipeline({"seg"}), _pipeline(set())
    labels = both._labels
    assert len(labels) == 210
    assert labels.bytes == only_seg._labels.bytes
    assert [e[5] for e in labels.entries_of("plain")] == [None] * 105
    kept = [e[5] for e in labels.entries_of("seg")]
    assert kept == [_tags(i) or None for i in range(105)]
    assert labels.bytes - untagged._labels.bytes == _tag_bytes(labels, "seg") == sum(value_bytes(t) for t in kept if t)
