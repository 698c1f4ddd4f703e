"""The segment x feature view (``/ui/segments?model=M``): one row per slice of the traffic
(``region:eu``, see :mod:`detectors.segments`), one column per feature, each cell the
slice's latest window's effect against its reference, coloured like the heatmap
(effect / its threshold) and marked when the feature drifted there; a cell opens the
feature page of that slice's window (``/ui/feature?...&segment=region:eu``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from monitor.report.links import Links
from monitor.report.pages import document, table
from monitor.report.svg import cell_colour, esc, num
from monitor.store import tables as t
from monitor.store.database import Store

MAX_SLICES = 5_000  # rows drawn at most (a model has keys x (max_values + 1) slices)


def latest_segment_rows(store: Store, model: str) -> list[dict[str, Any]]:
    """The feature-drift effect rows of each slice's newest window, by segment then feature."""
    c = t.results.c
    sliced = sa.and_(c.model == model, c.segment != "", c.kind == "feature_drift")
    newest = sa.select(c.segment, sa.func.max(c.window_seq).label("seq")).where(sliced).group_by(c.segment).subquery()
    query = (
        sa.select(c.segment, c.window_seq, c.feature, c.statistic, c.threshold, c.drift, c.detail, c.window_end)
        .join(newest, sa.and_(c.segment == newest.c.segment, c.window_seq == newest.c.seq))
        .where(sliced)
        .order_by(c.segment, c.feature, c.id)
        .limit(MAX_SLICES * 64)
    )
    with store.engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    return [row for row in rows if (row["detail"] or {}).get("role") == "effect"]


def segments_page(
    model: str, rows: Sequence[Mapping[str, Any]], features: Sequence[str], links: Links, *, signed_in: bool = False
) -> str:
    """The page of :func:`latest_segment_rows`; ``features`` orders the columns (the config's)."""
    by_slice: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        by_slice.setdefault(row["segment"], {})[row["feature"]] = row
    shown = [f for f in features if any(f in cells for cells in by_slice.values())]
    shown += sorted({f for cells in by_slice.values() for f in cells} - set(shown))
    body_rows = []
    for segment, cells in list(by_slice.items())[:MAX_SLICES]:
        first = next(iter(cells.values()))
        reference = (first.get("detail") or {}).get("reference_slice", "")
        seq = first["window_seq"]
        body_rows.append([
            esc(segment), esc(reference), str(seq),
            *(effect_cell(cells.get(f), links.feature(model, f, seq, segment)) for f in shown),
        ])  # fmt: skip
    title = f'<h1>Segments of <span class="model-name">{esc(model)}</span></h1>'
    nav = f'<p><a href="{esc(links.model(model))}">Whole population</a></p>'
    if not body_rows:
        body = '<p class="muted">No segment window has been evaluated yet (config <code>segments:</code>).</p>'
    else:
        body = (
            "<p class=\"muted\">Each slice's latest window. Colour: effect / its threshold against the slice's "
            "reference (its own rows, or the whole reference); <b>bold red</b>: drifted.</p>"
            + table(["segment", "reference", "window", *shown], body_rows, cls="segments")
        )
    return document(f"{model} segments - model monitor", title + nav + body, links, signed_in=signed_in)


def effect_cell(row: Mapping[str, Any] | None, href: str | None = None) -> str:
    """One effect row as a coloured cell (bold red when drifted), a link to ``href`` if given."""
    if row is None:
        return '<span class="muted">-</span>'
    score, threshold = row["statistic"], row["threshold"]
    ratio = None if score is None or not threshold else score / threshold
    mark = ' class="drift"' if row["drift"] else ""
    text = esc(num(score)) if href is None else f'<a href="{esc(href)}">{esc(num(score))}</a>'
    return f'<span{mark} style="background:{cell_colour(ratio)};padding:0 4px">{text}</span>'
