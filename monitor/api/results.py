"""Reading detector results for ``GET /v1/models/{model}/results``: as strict as ingestion.

An unknown ``kind`` or ``feature`` is a 422 that lists the known ones (a typo must not
look like "no results"); ``since`` / ``until`` take ISO 8601 or epoch seconds and select
windows by their end time; pages follow ``(window_seq, id)`` with an opaque ``cursor``;
each row carries its times as ISO 8601 (``*_iso``) beside the epoch seconds it always had.
Rows come from :meth:`Store.results`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from fastapi import HTTPException

from detectors.segments import parse_slice, slice_name
from monitor.records import Invalid
from monitor.store import tables as t
from monitor.store.database import Store
from monitor.timestamps import parse_timestamp

# Every kind of row the detectors write (monitor.detection); kinds found in the store are
# accepted too, so rows of a newer kind are never refused.
RESULT_KINDS = (
    "feature_drift", "prediction_drift", "dataset_drift", "quality", "latency", "performance",
    "estimated_performance", "multivariate_drift", "version_divergence",
)  # fmt: skip
# Channels besides the features: the prediction, the latency and "" (model-wide rows).
CHANNELS = ("prediction", "latency_ms", "")
TIME_FIELDS = ("window_start", "window_end", "created_at")


def unprocessable(name: str, message: str) -> HTTPException:
    """A 422 shaped like the app's own validation errors: ``query.<name>: <message>``."""
    return HTTPException(422, f"query.{name}: {message}")


def parse_time(value: str | None, name: str) -> float | None:
    """Epoch seconds of a ``since`` / ``until`` value: ISO 8601 (naive is UTC) or epoch seconds."""
    if value is None:
        return None
    try:
        return parse_timestamp(float(value) if _is_number(value) else value, name)
    except Invalid as exc:
        raise unprocessable(name, exc.message) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def parse_cursor(value: str | None) -> tuple[int, int] | None:
    """The ``next`` of a previous page: ``"<window_seq>:<id>"``."""
    if value is None:
        return None
    seq, _, row_id = value.partition(":")
    try:
        return int(seq), int(row_id)
    except ValueError:
        raise unprocessable("cursor", f"must be the next value of a previous page, got {value!r}") from None


def parse_segment(value: str | None) -> str:
    """A ``segment`` filter: ``key:value`` (e.g. ``region:eu``); absent: the whole population ('')."""
    if value is None:
        return ""
    try:
        key, tag = parse_slice(value)
    except ValueError as exc:
        raise unprocessable("segment", str(exc)) from None
    return slice_name(key, tag)


def known_values(store: Store, model: str) -> tuple[set[str], set[str]]:
    """The kinds and features of ``model``'s stored rows."""
    c = t.results.c
    query = sa.select(c.kind, c.feature).where(c.model == model).distinct()
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    return {row.kind for row in rows}, {row.feature for row in rows}


def check_filters(store: Store, model: str, features: Iterable[str], kind: str | None, feature: str | None) -> None:
    """422 for a kind or feature the model cannot have (neither configured nor stored)."""
    if kind is None and feature is None:
        return
    stored_kinds, stored_features = known_values(store, model)
    kinds = sorted({*RESULT_KINDS, *stored_kinds})
    if kind is not None and kind not in kinds:
        raise unprocessable("kind", f"unknown result kind {kind!r}; kinds: {', '.join(kinds)}")
    features = list(features)
    stored = sorted(stored_features - {*features, *CHANNELS})  # e.g. a registered model's, inferred
    known = [*features, *stored, *CHANNELS]
    if feature is not None and feature not in known:
        shown = ", ".join(repr(f) for f in dict.fromkeys(known))
        raise unprocessable("feature", f"model {model!r} has no feature {feature!r}; features: {shown}")


def query(
    store: Store,
    model: str,
    *,
    kind: str | None,
    feature: str | None,
    method: str | None,
    since_seq: int | None,
    since: float | None,
    until: float | None,
    after: tuple[int, int] | None,
    limit: int,
    segment: str = "",
    model_version: str = "",
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of rows by ``window_seq`` then ``id``, and the cursor of the next page (None
    on the last). ``since`` / ``until``: windows that ended at or after / before."""
    rows = store.results(
        model, kind=kind, feature=feature, method=method, since_seq=since_seq, since=since, until=until,
        after=after, limit=limit + 1, segment=segment, model_version=model_version,
    )  # fmt: skip
    for row in rows:
        for name in TIME_FIELDS:
            row[f"{name}_iso"] = iso(row.get(name))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, f"{rows[-1]['window_seq']}:{rows[-1]['id']}"


def iso(seconds: float | None) -> str | None:
    """Epoch seconds as ISO 8601 in UTC with milliseconds, e.g. ``2024-05-01T12:00:00.000Z``."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
