"""The version x feature view (``/ui/versions?model=M``): one row per model version with
windows of its own (monitor/version_state.py), most recently evaluated first, one column
per feature, each cell the version's latest window's effect against the version's
reference (or the model's), coloured like the heatmap and marked when the feature drifted
there; as the segment view (monitor/report/segments.py) is for slices."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from monitor.report.links import Links
from monitor.report.pages import document, table, when
from monitor.report.segments import effect_cell
from monitor.report.svg import esc
from monitor.store import tables as t
from monitor.store.database import Store

# Rows drawn at most: the store keeps every version ever seen (versions.max_active is only
# how many have windows at once), the page the most recently evaluated ones.
MAX_VERSIONS = 100


def latest_version_rows(store: Store, model: str) -> list[dict[str, Any]]:
    """The feature-drift effect rows and the dataset-drift row of each version's newest
    window, for the :data:`MAX_VERSIONS` versions evaluated last, newest first."""
    c = t.results.c
    own = sa.and_(c.model == model, c.model_version != "", c.segment == "", c.kind == "dataset_drift")
    newest = (
        sa.select(
            c.model_version,
            sa.func.max(c.window_seq).label("seq"),
            sa.func.max(c.created_at).label("stored_at"),
            sa.func.max(c.window_end).label("ended"),
        )
        .where(own)
        .group_by(c.model_version)
        # Rows written together (one batch of the store's writer) are told apart by their traffic.
        .order_by(sa.desc("stored_at"), sa.desc("ended"))
        .limit(MAX_VERSIONS)
        .subquery()
    )
    query = (
        sa.select(c.model_version, c.window_seq, c.window_end, c.reference_version, c.kind, c.feature, c.statistic,
                  c.threshold, c.drift, c.n_current, c.detail)
        .join(newest, sa.and_(c.model_version == newest.c.model_version, c.window_seq == newest.c.seq))
        .where(c.model == model, c.segment == "", c.kind.in_(("feature_drift", "dataset_drift")))
        .order_by(sa.desc(newest.c.stored_at), sa.desc(newest.c.ended), c.model_version, c.feature, c.id)
    )  # fmt: skip
    with store.engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(query).mappings()]
    return [r for r in rows if r["kind"] == "dataset_drift" or (r["detail"] or {}).get("role") == "effect"]


def versions_page(
    model: str, rows: Sequence[Mapping[str, Any]], features: Sequence[str], links: Links, *, signed_in: bool = False
) -> str:
    """The page of :func:`latest_version_rows`; ``features`` orders the columns (the config's)."""
    windows: dict[str, Mapping[str, Any]] = {}
    cells: dict[str, dict[str, Mapping[str, Any]]] = {}
    for row in rows:
        version = row["model_version"]
        if row["kind"] == "dataset_drift":
            windows[version] = row
        else:
            cells.setdefault(version, {})[row["feature"]] = row
        cells.setdefault(version, {})
    shown = [f for f in features if any(f in found for found in cells.values())]
    shown += sorted({f for found in cells.values() for f in found} - set(shown))
    body_rows = []
    for version, found in cells.items():
        window = windows.get(version) or next(iter(found.values()))
        drifted = (window.get("detail") or {}).get("drifted")
        body_rows.append([
            f'<span class="version">{esc(version)}</span>', esc(window["reference_version"]),
            str(window["window_seq"]), esc(window.get("n_current") or "-"), esc(when(window.get("window_end"))),
            '<span class="drift">' + esc(len(drifted)) + "</span>" if drifted else esc(0 if drifted == [] else "-"),
            *(effect_cell(found.get(f)) for f in shown),
        ])  # fmt: skip
    title = f'<h1>Versions of <span class="model-name">{esc(model)}</span></h1>'
    nav = f'<p><a href="{esc(links.model(model))}">Whole population</a></p>'
    if not body_rows:
        body = '<p class="muted">No version window has been evaluated yet (config <code>versions:</code>).</p>'
    else:
        body = (
            "<p class=\"muted\">Each version's latest window, the most recently evaluated version first. Colour: "
            "effect / its threshold against the version's reference (its own, or the model's); "
            "<b>bold red</b>: drifted.</p>"
            + table(["version", "reference", "window", "records", "ended", "drifted", *shown], body_rows,
                    cls="versions")
        )  # fmt: skip
    return document(f"{model} versions - model monitor", title + nav + body, links, signed_in=signed_in)
